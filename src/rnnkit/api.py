"""The Python API, mirroring the command line:

    import rnnkit
    model = rnnkit.train("lm", out="models/shakespeare", steps=2000, hidden=256)
    print(model.generate("ROMEO:", length=300, seed=0))
    model = rnnkit.load("models/shakespeare")      # in a later session
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from .tasks import base as tasks
from .training import model_dir as md
from .training.trainer import TrainingOptions


def load(model_dir):
    """The trained model in ``model_dir`` with its task's action method (``generate``, …)."""
    config = md.load_config(Path(model_dir))
    return tasks.get_task(config["task"]).load(Path(model_dir), config)


def train(task: str, out, resume: bool = False, quiet: bool = True, overwrite: bool = False, **options):
    """Train ``task`` into ``out`` (or resume it) with the command line's options; returns ``load(out)``.

    overwrite: replace a model already in ``out``, as ``--overwrite`` does.
    """
    task_fields = {f.name for f in fields(tasks.get_task(task).Options)}
    training_fields = {f.name for f in fields(TrainingOptions)}
    unknown = sorted(set(options) - task_fields - training_fields)
    if unknown:
        raise TypeError(f"options: unknown {unknown}; {task!r} takes {sorted(task_fields | training_fields)}")
    tasks.train(task, out, {k: v for k, v in options.items() if k in task_fields},
                {k: v for k, v in options.items() if k in training_fields}, resume=resume, quiet=quiet, overwrite=overwrite)
    return load(out)
