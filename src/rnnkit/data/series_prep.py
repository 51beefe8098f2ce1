"""Preparing numeric series for a classifier: each series on its own scale, long series shortened.

    v = level_and_scale(s)      # (2C,): what z_normalise takes away, as log std and asinh(mean / std)
    s = z_normalise(s)          # (T, C): each channel of this series to mean 0, std 1
    s = average_down(s, 256)    # (min(T, 256), C): a longer series averaged over 256 equal segments
    s = summarise_down(s, 256)  # (min(T, 256), 3C): each segment's mean, minimum and maximum

Each acts on one series at a time, so training and prediction treat a series alike whatever
else is in the batch.
"""

from __future__ import annotations

import numpy as np


def z_normalise(series: np.ndarray) -> np.ndarray:
    """(T, C) → (T, C): each channel minus its mean, over its standard deviation. A constant
    channel (std below 1e-8 of its scale) becomes zeros rather than noise blown up."""
    s = np.asarray(series, dtype=np.float64)
    mean = s.mean(axis=0)
    std = s.std(axis=0)
    flat = std <= 1e-8 * np.maximum(np.abs(mean), 1.0)
    return (s - mean) / np.where(flat, np.inf, std)


def level_and_scale(series: np.ndarray) -> np.ndarray:
    """(T, C) → (2C,): what ``z_normalise`` takes from each channel, in units that do not depend on
    the series' size: log of its standard deviation (C), then asinh of its mean over that deviation
    (C). With the z-normalised steps they give the series back exactly; a series 10⁴ times smaller
    than another differs by 9.2 in the first, where the training part's standardisation would leave
    it a flat line. A flat channel's deviation is its floor, 1e-8·max(|mean|, 1)."""
    s = np.asarray(series, dtype=np.float64)
    mean = s.mean(axis=0)
    std = np.maximum(s.std(axis=0), 1e-8 * np.maximum(np.abs(mean), 1.0))
    return np.concatenate([np.log(std), np.arcsinh(mean / std)])


def average_down(series: np.ndarray, max_steps: int) -> np.ndarray:
    """(T, C) → (T', C), T' = min(T, max_steps): a series longer than ``max_steps`` becomes the
    means of ``max_steps`` consecutive segments of (nearly) equal length (the piecewise aggregate
    approximation); a shorter one is returned unchanged. ``max_steps`` 0 keeps every step."""
    s = np.asarray(series)
    T = len(s)
    if not max_steps or T <= max_steps:
        return s
    starts = _segment_starts(T, max_steps)
    sums = np.add.reduceat(s.astype(np.float64), starts, axis=0)
    counts = np.diff(np.append(starts, T))
    return sums / counts[:, None]


def summarise_down(series: np.ndarray, max_steps: int) -> np.ndarray:
    """(T, C) → (T', 3C), T' = min(T, max_steps): the segments of ``average_down``, each as its
    mean (channels 0…C−1), minimum (C…2C−1) and maximum (2C…3C−1). A fast oscillation (an
    appliance's current, a vibration) averages to a flat line; its envelope survives in the
    minimum and maximum. A series no longer than ``max_steps`` keeps every step, each step its
    own segment (mean = minimum = maximum), so the channels mean the same for every length."""
    s = np.asarray(series, dtype=np.float64)
    T = len(s)
    if not max_steps or T <= max_steps:
        return np.concatenate([s, s, s], axis=1)
    starts = _segment_starts(T, max_steps)
    return np.concatenate([average_down(s, max_steps), np.minimum.reduceat(s, starts, axis=0),
                           np.maximum.reduceat(s, starts, axis=0)], axis=1)


def _segment_starts(T: int, max_steps: int) -> np.ndarray:
    """The first step of each of ``max_steps`` (nearly) equal segments of T > max_steps steps."""
    return (np.arange(max_steps) * T) // max_steps  # strictly increasing since T > max_steps


#: the network's input channels for each of the data's, by --segments (range: mean, minimum, maximum)
SEGMENT_WIDTH = {"mean": 1, "range": 3}


def input_width(segments: str, znorm: str) -> int:
    """The prepared series' channels for each of the data's: one, three with ``segments`` range,
    and two more (level and scale) with ``znorm`` scaled."""
    return SEGMENT_WIDTH[segments] + (2 if znorm == "scaled" else 0)


__all__ = ["average_down", "input_width", "level_and_scale", "summarise_down", "z_normalise"]
