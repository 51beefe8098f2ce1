"""The LSTM's time loop compiled: one kernel call runs every step of one direction.

Equations, shapes and cache are those of ``functional.lstm_sequence`` (the reference), and the
two are tested equal. Per step, h_{t−1} W_hhᵀ is one BLAS call (numba's ``np.dot``), and all
that is elementwise — the four gates, c_t, tanh c_t, h_t — is one compiled pass over the
(b, H) units instead of a dozen NumPy calls, each a pass over memory. The backward mirrors
``functional.lstm_step_backward`` operation for operation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..functional import accumulate_projection_grad, accumulate_weight_grads, affine, buffers
from .activations import sigmoid, tanh
from .common import absent, gradient_in, lengths, no_norms, time_index


@njit(cache=True, error_model="numpy")
def lstm_loop(G, h, c, W_hh, W_hr, bs, reverse, keep, Y, H_prev, C_prev, TC):
    """G (T, B, 4H): the input projections, made the activated gates [i f g o] in place;
    h (B, P), c (B, H): the initial state, made the final one; W_hr (P, H), or empty without a
    projection. Fills Y (T, B, P) and, with keep, H_prev, C_prev and TC = tanh c_t."""
    T, B, H = G.shape[0], G.shape[1], c.shape[1]
    projected = W_hr.shape[0] > 0
    acc = np.empty((B, 4 * H), G.dtype)
    h_full = np.empty((B, H), G.dtype)  # o ⊙ tanh c_t, before the projection
    for s in range(T):
        t = time_index(s, T, reverse)
        b = bs[t]
        if keep:
            H_prev[t, :b] = h[:b]
            C_prev[t, :b] = c[:b]
        np.dot(h[:b], W_hh.T, acc[:b])
        for r in range(b):
            for j in range(H):
                i = sigmoid(G[t, r, j] + acc[r, j])
                f = sigmoid(G[t, r, H + j] + acc[r, H + j])
                g = tanh(G[t, r, 2 * H + j] + acc[r, 2 * H + j])
                o = sigmoid(G[t, r, 3 * H + j] + acc[r, 3 * H + j])
                G[t, r, j], G[t, r, H + j], G[t, r, 2 * H + j], G[t, r, 3 * H + j] = i, f, g, o
                c_t = f * c[r, j] + i * g
                tc = tanh(c_t)
                c[r, j] = c_t
                if keep:
                    TC[t, r, j] = tc
                h_full[r, j] = o * tc
        if projected:
            np.dot(h_full[:b], W_hr.T, h[:b])
        else:
            h[:b] = h_full[:b]
        Y[t, :b] = h[:b]


@njit(cache=True, error_model="numpy")
def lstm_loop_backward(dY, dh, dc, G, C_prev, TC, W_hh, W_hr, bs, reverse, dG, dH, norms):
    """The backward of ``lstm_loop``: dh (B, P), dc (B, H) hold the final state's gradients and
    become the initial state's; fills dG (T, B, 4H) and, with a projection, dH (T, B, P) with
    ∂L/∂h_t; records ‖∂L/∂h_t‖ in norms when it has an entry per step."""
    T, B, H = G.shape[0], G.shape[1], C_prev.shape[2]
    projected = W_hr.shape[0] > 0
    dh_full = np.empty((B, H), G.dtype)
    for s in range(T):
        t = time_index(s, T, not reverse)
        b = bs[t]
        dh_t = gradient_in(dh, dY, t, b, norms)
        if projected:
            dH[t, :b] = dh_t
            np.dot(dh_t, W_hr, dh_full[:b])
        else:
            dh_full[:b] = dh_t
        for r in range(b):
            for j in range(H):
                i, f, g, o = G[t, r, j], G[t, r, H + j], G[t, r, 2 * H + j], G[t, r, 3 * H + j]
                tc, d = TC[t, r, j], dh_full[r, j]
                dct = (1 - tc * tc) * o * d + dc[r, j]  # ∂L/∂c_t
                dG[t, r, j] = dct * g * ((1 - i) * i)
                dG[t, r, H + j] = dct * C_prev[t, r, j] * ((1 - f) * f)
                dG[t, r, 2 * H + j] = dct * i * (1 - g * g)
                dG[t, r, 3 * H + j] = d * tc * ((1 - o) * o)
                dc[r, j] = dct * f
        np.dot(dG[t, :b], W_hh, dh[:b])


def lstm_sequence(X, states, w, reverse, bs, keep):
    """``functional.lstm_sequence``, compiled."""
    T, B, _ = X.shape
    h, c = (s.copy() for s in states)
    G = affine(X, w.W_ih.data, w.bias_x)
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    kept = [alloc(shape, X.dtype) if keep else absent(X.dtype, 3) for shape in (Y.shape, (T, B, c.shape[1]), (T, B, c.shape[1]))]
    W_hr = absent(X.dtype, 2) if w.W_hr is None else w.W_hr.data
    lstm_loop(G, h, c, w.W_hh.data, W_hr, lengths(bs), reverse, keep, Y, *kept)
    return Y, (h, c), ((X, G, *kept) if keep else None)


def lstm_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    """``functional.lstm_sequence_backward``, compiled."""
    X, G, H_prev, C_prev, TC = cache
    T, B, _ = X.shape
    alloc = buffers(bs, B)
    dG = alloc(G.shape, G.dtype)
    dH = absent(G.dtype, 3) if w.W_hr is None else alloc(H_prev.shape, G.dtype)
    W_hr = absent(G.dtype, 2) if w.W_hr is None else w.W_hr.data
    dh, dc = (np.ascontiguousarray(a, G.dtype).copy() for a in dstate)
    lstm_loop_backward(np.ascontiguousarray(dY), dh, dc, G, C_prev, TC, w.W_hh.data, W_hr, lengths(bs), reverse, dG, dH,
                       no_norms() if norms is None else norms)
    if w.W_hr is not None:
        accumulate_projection_grad(w, dH, G, TC)
    return accumulate_weight_grads(w, X, H_prev, dG), (dh, dc)
