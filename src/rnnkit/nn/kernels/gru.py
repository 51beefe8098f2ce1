"""The GRU's time loop compiled (PyTorch's form: the reset gate multiplies W_hn h + b_hn).

Equations, shapes and cache are those of ``functional.gru_sequence`` (the reference), tested
equal: per step one BLAS call for h_{t−1} W_hhᵀ, then one compiled pass for r, z, n and h_t.
The backward mirrors ``functional.gru_step_backward``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..functional import accumulate_weight_grads, affine, buffers
from .activations import sigmoid, tanh
from .common import absent, gradient_in, lengths, no_norms, time_index


@njit(cache=True, error_model="numpy")
def gru_loop(G, h, W_hh, b_hn, bs, reverse, keep, Y, H_prev, HN):
    """G (T, B, 3H): the input projections (with b_hr, b_hz), made the activated gates [r z n]
    in place; h (B, H): the initial state, made the final one; b_hn (H,), or empty without biases.
    Fills Y (T, B, H) and, with keep, H_prev and HN = h_{t−1} W_hnᵀ + b_hn."""
    T, B, H = G.shape[0], G.shape[1], h.shape[1]
    biased = b_hn.shape[0] > 0
    gh = np.empty((B, 3 * H), G.dtype)
    for s in range(T):
        t = time_index(s, T, reverse)
        b = bs[t]
        if keep:
            H_prev[t, :b] = h[:b]
        np.dot(h[:b], W_hh.T, gh[:b])
        for r in range(b):
            for j in range(H):
                hn = gh[r, 2 * H + j] + b_hn[j] if biased else gh[r, 2 * H + j]
                reset = sigmoid(G[t, r, j] + gh[r, j])
                z = sigmoid(G[t, r, H + j] + gh[r, H + j])
                n = tanh(G[t, r, 2 * H + j] + reset * hn)
                G[t, r, j], G[t, r, H + j], G[t, r, 2 * H + j] = reset, z, n
                if keep:
                    HN[t, r, j] = hn
                h[r, j] = (h[r, j] - n) * z + n
        Y[t, :b] = h[:b]


@njit(cache=True, error_model="numpy")
def gru_loop_backward(dY, dh, G, H_prev, HN, W_hh, bs, reverse, dG, dG_h, norms):
    """The backward of ``gru_loop``: dh (B, H) holds the final state's gradient and becomes the
    initial state's; fills dG (T, B, 3H), the input side's pre-activation gradients, and dG_h, the
    hidden side's (the n block times r); records ‖∂L/∂h_t‖ in norms when it has an entry per step."""
    T, B, H = G.shape[0], G.shape[1], H_prev.shape[2]
    for s in range(T):
        t = time_index(s, T, not reverse)
        b = bs[t]
        dh_t = gradient_in(dh, dY, t, b, norms)
        for r in range(b):
            for j in range(H):
                reset, z, n = G[t, r, j], G[t, r, H + j], G[t, r, 2 * H + j]
                d = dh_t[r, j]
                dn = d * (1 - z) * (1 - n * n)
                dr = dn * HN[t, r, j] * (reset * (1 - reset))
                dz = (H_prev[t, r, j] - n) * d * (z * (1 - z))
                dG[t, r, j], dG[t, r, H + j], dG[t, r, 2 * H + j] = dr, dz, dn
                dG_h[t, r, j], dG_h[t, r, H + j], dG_h[t, r, 2 * H + j] = dr, dz, dn * reset
        np.dot(dG_h[t, :b], W_hh, dh[:b])
        for r in range(b):
            for j in range(H):
                dh[r, j] += dh_t[r, j] * G[t, r, H + j]  # h_t = … + z ⊙ h_{t−1}


def gru_sequence(X, states, w, reverse, bs, keep):
    """``functional.gru_sequence``, compiled."""
    T, B, _ = X.shape
    h = states[0].copy()
    G = affine(X, w.W_ih.data, w.bias_x)
    b_hn = absent(X.dtype, 1) if w.b_hh is None else w.b_hh.data[2 * h.shape[1] :]
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    kept = [alloc(Y.shape, X.dtype) if keep else absent(X.dtype, 3) for _ in range(2)]
    gru_loop(G, h, w.W_hh.data, b_hn, lengths(bs), reverse, keep, Y, *kept)
    return Y, (h,), ((X, G, *kept) if keep else None)


def gru_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    """``functional.gru_sequence_backward``, compiled."""
    X, G, H_prev, HN = cache
    T, B, _ = X.shape
    alloc = buffers(bs, B)
    dG, dG_h = alloc(G.shape, G.dtype), alloc(G.shape, G.dtype)
    dh = np.ascontiguousarray(dstate[0], G.dtype).copy()
    gru_loop_backward(np.ascontiguousarray(dY), dh, G, H_prev, HN, w.W_hh.data, lengths(bs), reverse, dG, dG_h,
                      no_norms() if norms is None else norms)
    return accumulate_weight_grads(w, X, H_prev, dG, dG_h), (dh,)
