"""Pictures of a training run, drawn from its metrics log (matplotlib, no display needed)."""

from __future__ import annotations

import io
import math
from pathlib import Path

from . import model_dir as md


def pyplot():
    """matplotlib.pyplot on the file-only backend, imported when a picture is drawn (it is slow
    to import, and ``import rnnkit`` must not pay for it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def output_path(path, flag: str) -> Path:
    """A picture's path that a user gave (``--plot``, ``--heatmap``), checked before any work: its
    directory must exist (a mistyped path is refused, not created as a tree of directories) and
    the path must not be a directory. Errors are ValueErrors that start with ``flag``."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"{flag}: {path}: the directory {path.parent} does not exist; create it first or choose another path")
    if path.is_dir():
        raise ValueError(f"{flag}: {path} is a directory; give a file name such as {path / 'plot.png'}")
    return path


def save_figure(fig, path) -> Path:
    """Write a figure as PNG atomically (creating the folder: pictures inside a model directory) and close it."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    pyplot().close(fig)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    md.atomic_write_bytes(path, buf.getvalue())
    return path


def plot_loss_curve(out_dir) -> Path:
    """loss.png: training loss (per logged window) and validation loss against the step, in the
    unit the command line reports (bits per character for a character language model)."""
    plt = pyplot()
    records = md.read_metrics(out_dir)
    config = md.load_config(out_dir)
    scale, unit = loss_unit(records, config)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for label, points in loss_series(records, config).items():
        if points:
            style = dict(lw=1, alpha=0.8) if label == "training" else dict(marker="o", lw=2)
            ax.plot(*zip(*[(step, loss * scale) for step, loss in points]), label=label, **style)
    cv = cross_validation(config)
    if cv:
        ax.axvline(cv["steps"], color="grey", lw=1, ls=":", label=f"steps chosen: {cv['steps']}")
    ax.set_xlabel("step")
    ax.set_ylabel(unit)
    ax.set_title(f"{config.get('task', '?')} model {Path(out_dir).name}: training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return save_figure(fig, Path(out_dir) / "loss.png")


def cross_validation(config: dict) -> dict | None:
    """The record of the cross-validation that chose a model's steps (classify's), or None."""
    return (config.get("encoding") or {}).get("cross_validation")


def loss_series(records: list[dict], config: dict) -> dict[str, list[tuple[int, float]]]:
    """What loss.png draws, as (step, loss) points: the training loss of each logged window, and
    the validation loss; where a cross-validation chose the steps, its folds' mean validation loss
    at every step it validated (what the run's own validations read, and all that a model made of
    the fold networks has: it trains no step)."""
    series = {"training": [(r["step"], r["train_loss"]) for r in records if "train_loss" in r]}
    cv = cross_validation(config)
    if cv:
        series[f"validation: {cv['folds']}-fold cross-validation, mean"] = [(r["step"], r["loss"]) for r in cv["curve"]]
    else:
        series["validation"] = [(r["step"], r["valid_loss"]) for r in records if "valid_loss" in r]
    return series


def loss_unit(records: list[dict], config: dict) -> tuple[float, str]:
    """(factor, axis label) for a run's loss: a cross-entropy per token (its validation reports
    bits_per_token) is drawn in bits per character or per token; any other loss as it is."""
    if not any("valid_bits_per_token" in r for r in records):
        return 1.0, "loss"
    kind = (config.get("vocabulary") or {}).get("kind")
    return 1 / math.log(2), f"bits per {'character' if kind == 'char' else 'token'}"


def plot_confusion(matrix, labels, path, title: str = "") -> Path:
    """A confusion matrix as a heat map: rows true, columns predicted, counts in the cells."""
    import numpy as np

    matrix = np.asarray(matrix)
    plt = pyplot()
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * n, 1.0 + 0.5 * n), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    if n <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=8,
                        color="white" if matrix[i, j] > threshold else "black")
    return save_figure(fig, path)
