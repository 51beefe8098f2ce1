"""Training: the model directory (and, next, the one Trainer for every task)."""

from .model_dir import (
    ModelDirError,
    append_metrics,
    atomic_write_bytes,
    atomic_write_json,
    load_checkpoint,
    load_config,
    load_model_weights,
    load_weights,
    read_metrics,
    restore_rng,
    rewind_metrics,
    rng_state,
    save_checkpoint,
    save_model,
    save_weights,
)

__all__ = [
    "ModelDirError",
    "atomic_write_bytes", "atomic_write_json",
    "save_weights", "load_weights",
    "save_model", "load_config", "load_model_weights",
    "save_checkpoint", "load_checkpoint",
    "rng_state", "restore_rng",
    "append_metrics", "read_metrics", "rewind_metrics",
]
