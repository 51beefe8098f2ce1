"""Input checks in one place: every error names the argument, what was expected and what came."""

from __future__ import annotations

import math

import numpy as np


class NonFiniteError(ValueError):
    """NaN or infinity where a number is needed: bad input, or a diverging training run."""


def float_array(value, name: str, dtype, ndims: tuple[int, ...] | None = None, finite: bool = True) -> np.ndarray:
    """``value`` as a C-contiguous array of ``dtype``, with its number of dimensions checked.

    Non-finite values are rejected: they would silently poison every later step.
    """
    if type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous and (ndims is None or value.ndim in ndims):
        arr = value  # already what the conversions below would return: a streamed step's input, each call
    else:
        arr = _converted(value, name, dtype, ndims)
    if finite and not all_finite(arr):
        raise non_finite_error(arr, name)
    return arr


def _converted(value, name: str, dtype, ndims: tuple[int, ...] | None) -> np.ndarray:
    """``value`` as a C-contiguous array of ``dtype``, its kind and number of dimensions checked."""
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if ndims is not None and arr.ndim not in ndims:
        expected = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name}: expected a {expected} array, got {arr.ndim}-D with shape {arr.shape}")
    return np.asarray(arr, dtype=dtype, order="C")  # not ascontiguousarray, which makes 0-D into 1-D


def non_finite_error(arr: np.ndarray, name: str) -> NonFiniteError:
    """The error for an array with NaN or infinite values: how many, under the argument's name."""
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    return NonFiniteError(f"{name}: contains {bad} NaN or infinite value(s)")


def all_finite(arr: np.ndarray) -> bool:
    """Whether every value of a float array is finite. A sum of squares is finite when every value
    is (unless one is too large to square): one BLAS pass and no temporary, 2–3× faster than
    ``isfinite(arr).all()``, which decides only when the sum is not finite."""
    return math.isfinite(np.vdot(arr, arr)) or bool(np.isfinite(arr).all())


def int_array(value, name: str, ndims: tuple[int, ...] | None = None) -> np.ndarray:
    """``value`` as an int64 array (class indices, token ids, lengths)."""
    arr = np.asarray(value)
    if arr.dtype.kind == "f" and arr.size and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "biu" and arr.size:
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    if ndims is not None and arr.ndim not in ndims:
        expected = " or ".join(f"{d}-D" for d in ndims)
        raise ValueError(f"{name}: expected a {expected} integer array, got {arr.ndim}-D with shape {arr.shape}")
    return arr.astype(np.int64, copy=False)


def expect_shape(arr: np.ndarray, expected: tuple[int, ...], name: str, what: str = "") -> None:
    if arr.shape != tuple(expected):
        hint = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected shape {tuple(expected)}{hint}, got {arr.shape}")


def positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def probability(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return float(value)


def native_float_array(value, name: str, ndims: tuple[int, ...] | None = None, finite: bool = True) -> np.ndarray:
    """Like ``float_array``, keeping float32 and float64 as they come (other numbers become float64).

    For layers without parameters (dropout, losses) whose precision is the caller's.
    """
    arr = float_array(value, name, None, ndims, finite)
    return arr if arr.dtype.type in (np.float32, np.float64) else arr.astype(np.float64)


def nonnegative_float(value, name: str) -> float:
    """A finite number >= 0 (learning rates, decay coefficients, clipping thresholds)."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not (number and np.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def sequence_lengths(lengths, T: int, B: int):
    """``lengths`` as a (B,) int array with 1 <= length <= T; None stays None."""
    if lengths is None:
        return None
    lengths = int_array(lengths, "lengths", ndims=(0, 1)).reshape(-1)
    if lengths.shape != (B,):
        raise ValueError(f"lengths: expected one length per sequence, {B} in all, got {lengths.size}")
    if lengths.min() < 1:
        raise ValueError(f"lengths: every length must be >= 1, got {int(lengths.min())}")
    if lengths.max() > T:
        raise ValueError(f"lengths: a length of {int(lengths.max())} exceeds the sequence's {T} time steps")
    return lengths
