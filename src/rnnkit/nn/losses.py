"""Losses: cross-entropy, mean squared error, binary cross-entropy on logits.

Each ``forward`` returns the loss as a Python float; ``backward(grad=1.0)`` returns
``grad · ∂loss/∂prediction`` in the prediction's shape and dtype.
"""

from __future__ import annotations

import math

import numpy as np

from .module import Module
from .validation import expect_shape, float_array, int_array, native_float_array, probability

REDUCTIONS = ("mean", "sum")


def _reduction(value) -> str:
    if value not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {value!r}")
    return value


def _upstream(grad) -> float:
    """The scalar ∂(whatever comes after)/∂loss that backward multiplies in."""
    g = np.asarray(grad)
    if g.shape != () or g.dtype.kind not in "biuf":
        raise TypeError(f"grad: expected a number, got {grad!r}")
    g = float(g)
    if not math.isfinite(g):
        raise ValueError(f"grad: expected a finite number, got {g}")
    return g


def _softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + eˣ) without overflow."""
    return np.logaddexp(0, x)


class CrossEntropyLoss(Module):
    r"""Softmax cross-entropy over the last axis, as ``torch.nn.CrossEntropyLoss`` with class indices.

    Shapes: ``logits: (*, C)``, ``target: (*)`` integer classes, ``mask: (*)`` optional weights
    (bool or non-negative floats). The class axis is LAST: for 2-D input this is torch's ``(N, C)``;
    for more dimensions torch wants ``(N, C, d1, ...)``, i.e. ``torch.movedim(logits, -1, 1)``.

    With p = softmax(z), ε = label_smoothing and w_i the mask (1 without one), for each position i:
        l_i = (1 − ε)·(−log p_i[t_i]) + (ε / C)·Σ_c −log p_i[c]
    Positions with t_i = ignore_index contribute nothing. Then
        sum:   L = Σ_i w_i l_i
        mean:  L = Σ_i w_i l_i / D,   D = Σ_{i : t_i ≠ ignore_index} w_i
    which is torch's mean (over non-ignored positions) when w = 1. When D = 0 (every position
    ignored or masked) the mean is 0 with zero gradient, where torch gives NaN.

    Backward: ∂L/∂z_i = (w_i / D) · (p_i − (1 − ε)·onehot(t_i) − ε / C)   (D = 1 for sum).
    """

    def __init__(self, ignore_index: int = -100, label_smoothing: float = 0.0, reduction: str = "mean"):
        super().__init__()
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"ignore_index: expected an integer, got {ignore_index!r}")
        self.ignore_index = int(ignore_index)
        self.label_smoothing = probability(label_smoothing, "label_smoothing")
        self.reduction = _reduction(reduction)

    def forward(self, logits, target, mask=None) -> float:
        """logits: (*, C), target: (*), mask: (*) or None → scalar loss."""
        z = native_float_array(logits, "logits")
        if z.ndim == 0 or z.shape[-1] == 0:
            raise ValueError(f"logits: expected shape (*, C) with at least one class, got {z.shape}")
        C = z.shape[-1]
        t = int_array(target, "target")
        expect_shape(t, z.shape[:-1], "target", "the shape of logits without the class axis")
        counted = t != self.ignore_index
        bad = counted & ((t < 0) | (t >= C))
        if bad.any():
            raise ValueError(f"target: class {t[bad][0]} is out of range for {C} classes; "
                             f"expected classes in [0, {C}) or ignore_index={self.ignore_index}")
        w = counted.astype(z.dtype)
        if mask is not None:
            m = float_array(mask, "mask", z.dtype)
            expect_shape(m, t.shape, "mask", "the shape of target")
            if (m < 0).any():
                raise ValueError(f"mask: expected non-negative weights, got minimum {m.min()}")
            w *= m
        D = w.sum() if self.reduction == "mean" else 1.0
        scale = (w / D if D > 0 else np.zeros_like(w)).reshape(-1)

        z = z.reshape(-1, C)
        t = np.where(counted, t, 0).reshape(-1)  # any valid class; its row is weighted 0
        shifted = z - z.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        s = e.sum(axis=1, keepdims=True)
        logp = shifted - np.log(s)
        l = -logp[np.arange(t.size), t]
        eps = self.label_smoothing
        if eps:
            l = (1 - eps) * l - (eps / C) * logp.sum(axis=1)
        self._push_cache((e / s, t, scale, np.shape(logits)))
        return float(scale @ l)

    def backward(self, grad=1.0) -> np.ndarray:
        """→ ∂L/∂logits: (*, C), times ``grad``."""
        g = _upstream(grad)
        p, t, scale, shape = self._pop_cache()
        dz = p  # the cache is ours alone, so the softmax can become the gradient in place
        eps = self.label_smoothing
        if eps:
            dz -= eps / p.shape[1]
        dz[np.arange(t.size), t] -= 1 - eps
        dz *= (g * scale)[:, None]
        return dz.reshape(shape)

    def extra_repr(self) -> str:
        return (f"ignore_index={self.ignore_index}, label_smoothing={self.label_smoothing}, "
                f"reduction={self.reduction!r}")


class MSELoss(Module):
    r"""Mean squared error: ``L = Σ (x − y)² / n`` (n = x.size for mean, 1 for sum).

    Shapes: ``input: (*)``, ``target: (*)``, the same shape (no broadcasting).
    Backward: ∂L/∂x = 2 (x − y) / n.
    """

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction(reduction)

    def forward(self, input, target) -> float:
        """input: (*), target: (*) → scalar loss."""
        x = native_float_array(input, "input")
        y = float_array(target, "target", x.dtype)
        expect_shape(y, x.shape, "target", "the shape of input")
        d = x - y
        n = max(d.size, 1) if self.reduction == "mean" else 1  # an empty batch costs 0, not NaN
        self._push_cache((d, n))
        return float(np.vdot(d, d) / n)

    def backward(self, grad=1.0) -> np.ndarray:
        """→ ∂L/∂input: (*), times ``grad``."""
        g = _upstream(grad)
        d, n = self._pop_cache()
        return d * d.dtype.type(2 * g / n)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class BCEWithLogitsLoss(Module):
    r"""Binary cross-entropy on logits, as ``torch.nn.BCEWithLogitsLoss``.

    Shapes: ``logits: (*)``, ``target: (*)`` in [0, 1], the same shape; ``pos_weight`` broadcasts
    against the last axes (e.g. ``(C,)`` for ``(N, C)`` multi-label logits). With σ the sigmoid and
    softplus(x) = log(1 + eˣ), so that −log σ(x) = softplus(−x) and −log(1 − σ(x)) = softplus(x):
        l = pos_weight · y · softplus(−x) + (1 − y) · softplus(x)
    summed, or averaged over every entry. Backward:
        ∂l/∂x = (1 − y) · σ(x) − pos_weight · y · σ(−x)
    """

    def __init__(self, reduction: str = "mean", pos_weight=None):
        super().__init__()
        self.reduction = _reduction(reduction)
        self.pos_weight = None if pos_weight is None else float_array(pos_weight, "pos_weight", np.float64)

    def forward(self, logits, target) -> float:
        """logits: (*), target: (*) → scalar loss."""
        x = native_float_array(logits, "logits")
        y = float_array(target, "target", x.dtype)
        expect_shape(y, x.shape, "target", "the shape of logits")
        if y.size and (y.min() < 0 or y.max() > 1):
            raise ValueError(f"target: expected values in [0, 1], got range [{y.min()}, {y.max()}]")
        pw = 1
        if self.pos_weight is not None:
            try:
                fits = np.broadcast_shapes(self.pos_weight.shape, x.shape) == x.shape
            except ValueError:
                fits = False
            if not fits:
                raise ValueError(f"pos_weight: shape {self.pos_weight.shape} does not broadcast "
                                 f"to the shape of logits {x.shape}")
            pw = self.pos_weight.astype(x.dtype)
        n = max(x.size, 1) if self.reduction == "mean" else 1
        l = pw * y * _softplus(-x) + (1 - y) * _softplus(x)
        self._push_cache((x, y, pw, n))
        return float(l.sum() / n)

    def backward(self, grad=1.0) -> np.ndarray:
        """→ ∂L/∂logits: (*), times ``grad``."""
        g = _upstream(grad)
        x, y, pw, n = self._pop_cache()
        # σ(±x) = exp(−softplus(∓x)) never overflows and keeps σ(−x) accurate where σ(x) ≈ 1
        dx = (1 - y) * np.exp(-_softplus(-x)) - pw * y * np.exp(-_softplus(x))
        return dx * x.dtype.type(g / n)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}" + (", pos_weight=..." if self.pos_weight is not None else "")


class GaussianNLLLoss(Module):
    r"""Negative log-likelihood of a Gaussian, as ``torch.nn.GaussianNLLLoss`` (a mean and a variance
    per target: the probabilistic forecasts of DeepAR).

    Shapes: ``input: (*)`` the means μ, ``target: (*)``, ``var: (*)`` the variances σ² > 0, all the
    same shape. With v = max(var, eps) (torch clamps the same way, without telling autograd, so
    the gradient at a clamped entry is the one at v = eps):
        l = ½ (log v + (μ − y)² / v)   (+ ½ log 2π with ``full=True``)
    summed or averaged over every entry. Backward:
        ∂l/∂μ = (μ − y) / v,   ∂l/∂var = ½ (1/v − (μ − y)² / v²)
    """

    def __init__(self, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__()
        self.full, self.eps, self.reduction = bool(full), float(eps), _reduction(reduction)

    def forward(self, input, target, var) -> float:
        """input (μ), target, var: (*) → scalar loss."""
        mu = native_float_array(input, "input")
        y = float_array(target, "target", mu.dtype)
        v = float_array(var, "var", mu.dtype)
        expect_shape(y, mu.shape, "target", "the shape of input")
        expect_shape(v, mu.shape, "var", "the shape of input")
        if v.size and v.min() < 0:
            raise ValueError(f"var: expected variances >= 0, got a minimum of {v.min()}")
        v = np.maximum(v, self.eps)
        d = mu - y
        loss = 0.5 * (np.log(v) + d * d / v)
        if self.full:
            loss += 0.5 * math.log(2 * math.pi)
        n = max(loss.size, 1) if self.reduction == "mean" else 1
        self._push_cache((d, v, n))
        return float(loss.sum() / n)

    def backward(self, grad=1.0) -> tuple[np.ndarray, np.ndarray]:
        """→ (∂L/∂input, ∂L/∂var), each (*), times ``grad``."""
        g = _upstream(grad)
        d, v, n = self._pop_cache()
        scale = d.dtype.type(g / n)
        return d / v * scale, 0.5 * (1 / v - d * d / (v * v)) * scale

    def extra_repr(self) -> str:
        return f"full={self.full}, eps={self.eps}, reduction={self.reduction!r}"
