"""The Elman RNN's time loop compiled, tanh or ReLU (the kinds rnn and irnn).

Equations, shapes and cache are those of ``functional.rnn_sequence`` (the reference), tested
equal: per step one BLAS call for h_{t−1} W_hhᵀ and one compiled pass for the activation.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit

from ..functional import accumulate_weight_grads, affine, buffers
from .activations import tanh
from .common import absent, gradient_in, lengths, no_norms, time_index


@njit(cache=True, error_model="numpy")
def rnn_loop(A, h, W_hh, relu, bs, reverse, keep, Y, H_prev):
    """A (T, B, H): the input projections with both biases, made h_t in place (the cache); h (B, H):
    the initial state, made the final one. Fills Y (T, B, H) and, with keep, H_prev."""
    T, B, H = A.shape[0], A.shape[1], h.shape[1]
    zero = A.dtype.type(0)
    acc = np.empty((B, H), A.dtype)
    for s in range(T):
        t = time_index(s, T, reverse)
        b = bs[t]
        if keep:
            H_prev[t, :b] = h[:b]
        np.dot(h[:b], W_hh.T, acc[:b])
        for r in range(b):
            for j in range(H):
                a = A[t, r, j] + acc[r, j]
                h[r, j] = max(a, zero) if relu else tanh(a)
                A[t, r, j] = h[r, j]
        Y[t, :b] = h[:b]


@njit(cache=True, error_model="numpy")
def rnn_loop_backward(dY, dh, Hs, W_hh, relu, bs, reverse, dA, norms):
    """The backward of ``rnn_loop``: dh (B, H) holds the final state's gradient and becomes the
    initial state's; fills dA (T, B, H), the pre-activation gradients; records ‖∂L/∂h_t‖."""
    T, B, H = Hs.shape[0], Hs.shape[1], Hs.shape[2]
    for s in range(T):
        t = time_index(s, T, not reverse)
        b = bs[t]
        dh_t = gradient_in(dh, dY, t, b, norms)
        for r in range(b):
            for j in range(H):
                y = Hs[t, r, j]
                if relu:
                    dA[t, r, j] = dh_t[r, j] if y > 0 else 0
                else:
                    dA[t, r, j] = (1 - y * y) * dh_t[r, j]
        np.dot(dA[t, :b], W_hh, dh[:b])


def rnn_sequence(X, states, w, reverse, bs, keep, relu=False):
    """``functional.rnn_sequence``, compiled."""
    T, B, _ = X.shape
    h = states[0].copy()
    A = affine(X, w.W_ih.data, w.bias_x)
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    H_prev = alloc(Y.shape, X.dtype) if keep else absent(X.dtype, 3)
    rnn_loop(A, h, w.W_hh.data, relu, lengths(bs), reverse, keep, Y, H_prev)
    return Y, (h,), ((X, A, H_prev) if keep else None)


def rnn_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None, relu=False):
    """``functional.rnn_sequence_backward``, compiled."""
    X, Hs, H_prev = cache
    dA = buffers(bs, X.shape[1])(Hs.shape, Hs.dtype)
    dh = np.ascontiguousarray(dstate[0], Hs.dtype).copy()
    rnn_loop_backward(np.ascontiguousarray(dY), dh, Hs, w.W_hh.data, relu, lengths(bs), reverse, dA,
                      no_norms() if norms is None else norms)
    return accumulate_weight_grads(w, X, H_prev, dA), (dh,)


def equations(relu: bool) -> dict:
    return dict(sequence=functools.partial(rnn_sequence, relu=relu), sequence_backward=functools.partial(rnn_sequence_backward, relu=relu))
