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


def numerical_grad(loss_fn, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """∂loss/∂array by central differences, perturbing ``array`` in place (float64 only)."""
    assert array.dtype == np.float64, "finite differences need float64"
    grad = np.zeros_like(array)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = loss_fn()
        flat[i] = old - eps
        minus = loss_fn()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad
