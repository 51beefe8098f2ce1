"""Choosing how long to train by K-fold cross-validation on the training data.

A small training set leaves a validation split of a handful of examples: its loss is noise, and
the best weights it keeps can be those of an almost untrained model. Instead, K models are
trained, each on K−1 folds and validated on the remaining one, every ``valid_every`` steps; the
K validation curves are averaged step by step, and the number of steps is the first at which the
mean of ``--monitor`` is best. The final model is then trained on all the training data for that
many steps (the task does that; this module only chooses).

    folds = stratified_folds(labels, k, seed)            # K index arrays, each class dealt evenly
    result = cross_validate(make_fold, k, training, "min", quiet)
    result["steps"], result["curve"]                     # the chosen steps; [{"step", metric: mean}, …]

Each fold runs the task's own training run through the one Trainer (same optimizer, clipping,
schedule and divergence checks) in a temporary directory, removed afterwards, with early
stopping off: the curve must reach every step.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..training.model_dir import load_weights
from ..training.trainer import Trainer, TrainingInterrupted, TrainingOptions


def stratified_folds(labels, folds: int, seed: int) -> list[np.ndarray]:
    """``folds`` sorted index arrays that partition ``range(len(labels))``.

    Each class's examples, in an order drawn from ``seed``, are dealt round the folds, the deal
    starting where the previous class's stopped, so fold sizes differ by at most one and every
    fold holds ⌊n_c/K⌋ or ⌈n_c/K⌉ of class c. Labels that are numbers (a regressor's) form one class.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng([seed, 2])
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)] if labels.dtype.kind in "UO" else [np.arange(labels.size)]
    out: list[list[int]] = [[] for _ in range(folds)]
    start = 0
    for members in classes:
        for j, i in enumerate(rng.permutation(members)):
            out[(start + j) % folds].append(int(i))
        start = (start + len(members)) % folds
    return [np.array(sorted(f), dtype=np.int64) for f in out]


def choose_steps(curves: list[list[dict]], monitor: str, direction: str) -> tuple[int, list[dict]]:
    """(steps, mean curve): the fold curves (``[{"step", metric: value}, …]`` each, validated at
    the same steps) averaged metric by metric, and the first step whose mean ``monitor`` is best."""
    steps = sorted(set.intersection(*({r["step"] for r in c} for c in curves)))
    by_step = [{r["step"]: r for r in c} for c in curves]
    mean = [{"step": s, **{k: float(np.mean([c[s][k] for c in by_step])) for k in curves[0][0] if k != "step"}}
            for s in steps]
    values = np.array([m[monitor] for m in mean]) * (-1 if direction == "max" else 1)
    return int(steps[int(np.argmin(values))]), mean  # argmin: the first of equal bests


def cross_validate(make_fold, folds: int, training: TrainingOptions, direction: str, quiet: bool,
                   keep_weights: bool = False) -> dict:
    """Train ``folds`` models and choose the number of steps (see the module docstring).

    make_fold(k) -> (model, run, config): fold k's model, its training run (trained on the other
    folds, validated on fold k) and the config its temporary model directory records.
    Returns {"folds", "steps", "monitor", "curve": the mean curve, "fold_best_steps"}; with
    ``keep_weights`` also "fold_weights": each fold model's weights at the chosen step (not JSON;
    until the choice, every fold's weights at every validation wait in a temporary directory).
    """
    kept = tempfile.TemporaryDirectory(prefix="rnnkit-cv-weights-") if keep_weights else contextlib.nullcontext()
    with kept as kept_dir:
        return _cross_validate(make_fold, folds, training, direction, quiet, None if kept_dir is None else Path(kept_dir))


def _cross_validate(make_fold, folds: int, training: TrainingOptions, direction: str, quiet: bool,
                    kept_dir: Path | None) -> dict:
    options = replace(training, patience=0, time_limit=0.0)  # every fold reaches every step
    curves, kept = [], []
    for k in range(folds):
        if not quiet:
            sys.stderr.write(f"cross-validation: fold {k + 1} of {folds}, {options.steps} steps\n")
        model, run, config = make_fold(k)
        with tempfile.TemporaryDirectory(prefix="rnnkit-cv-") as tmp:
            keep = None if kept_dir is None else kept_dir / f"fold{k}"
            trainer = Trainer(model, run, tmp, config, options, quiet=True, direction=direction, keep_validated=keep)
            try:
                trainer.fit()
            except TrainingInterrupted as exc:  # its checkpoint lies in a directory about to be removed
                raise TrainingInterrupted(f"stopped during cross-validation (fold {k + 1} of {folds}); nothing was "
                                          "saved: start the run again", exc.signum) from None
            records = trainer.validations  # (in a job, the same on every rank; rank 0 alone writes tmp)
        kept.append(trainer.validated_weights)
        curves.append([{"step": r["step"], **{key[6:]: v for key, v in r.items() if key.startswith("valid_")}}
                       for r in records])
    steps, mean = choose_steps(curves, training.monitor, direction)
    fold_best = [choose_steps([c], training.monitor, direction)[0] for c in curves]
    result = {"folds": folds, "steps": steps, "monitor": training.monitor, "curve": mean, "fold_best_steps": fold_best}
    if kept_dir is not None:
        result["fold_weights"] = [load_weights(paths[steps]) for paths in kept]
    return result


__all__ = ["choose_steps", "cross_validate", "stratified_folds"]
