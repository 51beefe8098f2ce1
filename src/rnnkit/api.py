"""The Python API, mirroring the command line:

    import rnnkit
    model = rnnkit.train("lm", out="models/shakespeare", steps=2000, hidden=256, overwrite=True)
    print(model.generate("ROMEO:", length=300, seed=0))   # the prime and what follows it
    model = rnnkit.load("models/shakespeare")      # in a later session

The first of them to run in a process applies what the command applies where it starts: the BLAS
thread policy (rnnkit.threads) and the allocator's reuse of freed arrays (rnnkit.memory: without
it an LSTM layer's training step faulted in 3,100 pages and took 1.4× as long).
Errors name the Python arguments (``overwrite=True``), not the command's flags.
"""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

from . import progress
from .memory import keep_freed_memory
from .tasks import base as tasks
from .threads import apply_thread_policy
from .training import model_dir as md
from .training.trainer import TrainingOptions

_started = False


def _as_the_command_starts() -> None:
    """The command's settings, once in a process: a setting the program changed in between stays."""
    global _started
    if not _started:
        apply_thread_policy(once=True)
        keep_freed_memory()
        _started = True


def load(model_dir):
    """The trained model in ``model_dir`` with its task's action method (``generate``, …)."""
    _as_the_command_starts()
    return tasks.load_model(model_dir)


def train(task: str, out, resume: bool = False, quiet: bool = False, overwrite: bool = False, callbacks=(), **options):
    """Train ``task`` into ``out`` (or resume it) with the command line's options; returns ``load(out)``.

    overwrite: replace a model already in ``out``, as ``--overwrite`` does.
    quiet: no progress bar (or, when stderr is not a terminal, no progress lines).
    callbacks: functions called with each metrics record, a dict: every ``log_every`` steps
    (``step``, ``train_loss``, ``lr``, ``grad_norm``, ``clipped_fraction``, ``tokens_per_s``) and
    at each validation (``step`` and ``valid_*`` metrics; a language model adds ``valid_sample``).
    """
    _as_the_command_starts()
    task_fields = {f.name for f in fields(tasks.get_task(task).Options)}
    training_fields = {f.name for f in fields(TrainingOptions)}
    unknown = sorted(set(options) - task_fields - training_fields)
    if unknown:
        raise TypeError(f"options: unknown {unknown}; {task!r} takes {sorted(task_fields | training_fields)}")
    try:
        with progress.reporting(quiet=quiet, callbacks=callbacks):
            tasks.train(task, out, {k: v for k, v in options.items() if k in task_fields},
                        {k: v for k, v in options.items() if k in training_fields}, resume=resume, quiet=quiet,
                        overwrite=overwrite)
    except (ValueError, RuntimeError) as exc:
        exc.args = (api_wording(str(exc), task), *exc.args[1:])
        raise
    return load(out)


def import_weights(task: str, weights, out, overwrite: bool = False, quiet: bool = False, seed: int = 0, **options):
    """A model directory of ``task`` in ``out`` whose weights are a PyTorch state dict (``weights``: a
    .safetensors file, or a .pt/.pth one when torch is installed), as ``rnnkit import``; returns
    ``load(out)``. ``options`` are ``train``'s task options (they set the shapes); the encoding is
    fitted on ``data`` as training fits it with the same options and ``seed``."""
    from .importing import import_weights as _import

    _as_the_command_starts()
    task_fields = {f.name for f in fields(tasks.get_task(task).Options)}
    unknown = sorted(set(options) - task_fields)
    if unknown:
        raise TypeError(f"options: unknown {unknown}; importing {task!r} takes {sorted(task_fields)} and seed")
    try:
        with progress.reporting(quiet=quiet):
            _import(task, weights, out, options, seed=seed, quiet=quiet, overwrite=overwrite)
    except (ValueError, RuntimeError) as exc:
        exc.args = (api_wording(str(exc), task), *exc.args[1:])
        raise
    return load(out)


def api_wording(message: str, task: str) -> str:
    """An error as the Python API says it: the command line's flags become its arguments
    (`rnnkit train --resume DIR` → ``rnnkit.train(task, DIR, resume=True)``, ``--overwrite`` →
    ``overwrite=True``, ``--hidden`` → ``hidden``)."""
    message = re.sub(r"`rnnkit train --resume ([^`]+)`", lambda m: f"`rnnkit.train({task!r}, {m[1]!r}, resume=True)`", message)
    return re.sub(r"--([a-z][a-z-]*)", lambda m: {"overwrite": "overwrite=True", "resume": "resume=True"}.get(
        m[1], m[1].replace("-", "_")), message)
