"""A tune's piano roll as a PNG: one bar per note, pitch against time (matplotlib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..training.plots import pyplot, save_figure

_NAMES = ("C", "C♯", "D", "E♭", "E", "F", "F♯", "G", "A♭", "A", "B♭", "B")


def plot_piano_roll(notes: np.ndarray, path, title: str = "") -> Path:
    """Draw ``notes`` (n, 4: pitch, start s, end s, velocity) as a piano roll, darker for louder,
    the C of each octave named on the pitch axis; written atomically."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    plt = pyplot()
    end = float(notes[:, 2].max()) if len(notes) else 1.0
    fig, ax = plt.subplots(figsize=(min(16, 3 + end * 0.6), 3.5), dpi=100)
    for pitch, start, stop, velocity in notes:
        gap = min(0.03, 0.2 * (stop - start))  # repeated notes of one pitch stay apart
        ax.broken_barh([(start, stop - start - gap)], (pitch - 0.4, 0.8), facecolors=plt.cm.Blues(0.35 + 0.65 * velocity / 127))
    low, high = (int(notes[:, 0].min()) - 2, int(notes[:, 0].max()) + 2) if len(notes) else (58, 82)
    ax.set_ylim(low, high)
    ax.set_xlim(0, end)
    ticks = [p for p in range(low, high + 1) if p % 12 == 0] or [low]
    ax.set_yticks(ticks, [f"{_NAMES[p % 12]}{p // 12 - 1}" for p in ticks])
    ax.set_xlabel("seconds")
    ax.set_ylabel("pitch")
    ax.grid(axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


__all__ = ["plot_piano_roll"]
