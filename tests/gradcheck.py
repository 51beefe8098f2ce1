"""Shared tools for the tests: norm-wise relative error and central finite differences."""

from __future__ import annotations

import numpy as np


def rel_err(a, b) -> float:
    """‖a − b‖ / ‖b‖ (‖a − b‖ itself when b is zero)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    denom = np.linalg.norm(b)
    diff = np.linalg.norm(a - b)
    return float(diff / denom) if denom > 0 else float(diff)


def numerical_grad(loss_fn, array: np.ndarray, eps: float = 1e-6, entries=None) -> np.ndarray:
    """∂loss/∂array by central differences, perturbing ``array`` in place (float64 only); at the
    flat indices ``entries`` alone when given (the others stay 0)."""
    assert array.dtype == np.float64, "finite differences need float64"
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size) if entries is None else entries:
        old = flat[i]
        flat[i] = old + eps
        plus = loss_fn()
        flat[i] = old - eps
        minus = loss_fn()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def gate_sample(shape: tuple[int, int], block_rows: int, seed: int, per_block: int = 2) -> np.ndarray:
    """Flat indices of a seeded sample of a weight matrix's entries (rows, columns): ``per_block``
    distinct ones in each block of ``block_rows`` rows (one gate's rows; all rows one block when
    they do not divide), at random rows and columns of the block."""
    rows, cols = shape
    block_rows = block_rows if rows % block_rows == 0 else rows
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.arange(start * cols, (start + block_rows) * cols), min(per_block, block_rows * cols), replace=False)
             for start in range(0, rows, block_rows)]
    return np.sort(np.concatenate(picks))
