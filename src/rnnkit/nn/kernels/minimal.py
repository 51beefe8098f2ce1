"""The minimal layers' linear recurrence compiled (the kinds mingru and minlstm).

``h_t = a_t ⊙ h_{t−1} + b_t`` and its backward ``G_t = v_t + a_{t+1} ⊙ G_{t+1}`` are what
``nn.minimal``'s ``sequential_scan`` and ``sequential_reverse_scan`` compute; here each is one
compiled pass over the steps, the state carried in float64 as the reference's log-space scan
does, so that both modes of the NumPy layer (the parallel scan and the loop) agree with it to
about 1e-13. On a CPU the loop is the fast way: every element is visited once with one multiply-
add, where the parallel scan visits it about ten times; what the scan buys is depth log T on
parallel hardware. minLSTM's activations stay NumPy's, around these loops.

Shapes: a, b, v, out (T, lanes) and h0, init (lanes,), any dtype; the layer flattens (T, B, H).

minGRU's whole recurrence is fused (``mingru_forward``, ``mingru_backward``, which the layer
prefers where a kind has them): the activations, the coefficients and the loop in one pass over
the pre-activations of a single ``x Wᵀ + b`` product (T, B, 2H), with an exp that vectorises
(``activations.exp``; libm's, one element at a time, would cost more than NumPy's). At batch 1
and H = 64 the thirty-odd NumPy calls of a microsecond each around the loop were most of the
layer's time: its forward and backward at T = 128 took 197 µs, fused 142.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .activations import exp


@njit(cache=True, error_model="numpy")
def sequential_scan(a, b, h0, out):
    """h_t = a_t h_{t−1} + b_t for every t into ``out`` (T, lanes), from h0 (lanes,)."""
    h = h0.astype(np.float64)
    for t in range(b.shape[0]):
        for j in range(b.shape[1]):
            h[j] = a[t, j] * h[j] + b[t, j]
            out[t, j] = h[j]
    return out


@njit(cache=True, error_model="numpy")
def sequential_reverse_scan(a, v, carry, out):
    """G_t = v_t + a_{t+1} G_{t+1} backwards into ``out``, where ``carry`` = a_T G_T is what the
    last step receives from after the segment; returns a_0 G_0, what the step before receives."""
    g = carry.astype(np.float64)
    for t in range(v.shape[0] - 1, -1, -1):
        for j in range(v.shape[1]):
            g[j] += v[t, j]
            out[t, j] = g[j]
            g[j] *= a[t, j]
    return g.astype(out.dtype)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def mingru_forward(K, active, h0, states, A, Z):
    """K (T, B, 2H): the pre-activations [k_z | k_h]; active (T, B): whether each step is inside
    its sequence, or empty (all are); h0 (B, H). Fills Z (T, B, 2H) with the activations [z | h̃],
    states (T + 1, B, H) with h0 then every h_t, and A (T, B, H) with a_t = 1 − z_t (1 past a
    sequence's end, where b_t = 0 and the state passes through). The state is carried in float64,
    as in ``sequential_scan``. The equations and their exact forms are ``nn.minimal``'s: with
    u = e^{−|k|}, σ(k) = e^{min(k, 0)}/(1 + u) (exact in both tails) and 1 − σ(k) = σ(−k). (Z
    apart from K: written in place, LLVM could not tell k_h's reads from z's writes, and did not
    vectorise.)"""
    T, B, H = A.shape
    one, zero = K.dtype.type(1), K.dtype.type(0)
    h = h0.astype(np.float64)
    states[0] = h0
    for t in range(T):
        for r in range(B):
            k, a, z, h_tilde, hr = K[t, r], A[t, r], Z[t, r, :H], Z[t, r, H:], h[r]
            for j in range(H):  # the activations and a_t
                kz, kh = k[j], k[H + j]
                u = exp(-abs(kz))
                m = min(kh, zero)
                e = exp(m)
                z[j] = (one if kz >= 0 else u) / (u + one)  # σ(k_z)
                a[j] = (u if kz >= 0 else one) / (u + one)  # 1 − z = σ(−k_z)
                h_tilde[j] = e / (e + one) + (kh - m)  # g(k_h): σ(k_h) below 0, k_h + ½ from 0 on
            if active.shape[0] == 0 or active[t, r]:
                for j in range(H):
                    hr[j] = a[j] * hr[j] + z[j] * h_tilde[j]
            else:  # past the sequence's end: a = 1, b = 0
                a[:] = one
            states[t + 1, r] = hr


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def mingru_backward(dY, K, A, states, active, dh, G, dK):
    """The backward of ``mingru_forward``: dY (T, B, H) the gradients of the outputs (zero past
    each sequence's end), dh (B, H) that of the final state, made that of h0; fills G (T, B, H)
    with ∂L/∂h_t (carried in float64, as ``sequential_reverse_scan``) and dK (T, B, 2H) with the
    pre-activations' gradients [dk_z | dk_h] (zero past each sequence's end)."""
    T, B, H = A.shape
    one, half, zero = K.dtype.type(1), K.dtype.type(0.5), K.dtype.type(0)
    g = dh.astype(np.float64)
    for t in range(T - 1, -1, -1):
        for r in range(B):
            k, a, gr, Gt, dk, dy, h_prev = K[t, r], A[t, r], g[r], G[t, r], dK[t, r], dY[t, r], states[t, r]
            for j in range(H):  # ∂L/∂h_t, then what h_{t−1} receives through h_t
                gr[j] += dy[j]
                Gt[j] = gr[j]
                gr[j] *= a[j]
            if active.shape[0] == 0 or active[t, r]:
                for j in range(H):
                    z, h_tilde = k[j], k[H + j]
                    s = min(h_tilde, half)
                    slope = max(s * (one - s), one if h_tilde >= half else zero)  # g'(k) from h̃ = g(k)
                    # h = (1 − z) h_prev + z h̃:  ∂h/∂z = h̃ − h_prev,  ∂h/∂h̃ = z
                    dk[j] = (h_tilde - h_prev[j]) * Gt[j] * (z * (one - z))
                    dk[H + j] = Gt[j] * z * slope
            else:
                dk[:] = zero
    dh[:] = g


KERNELS = dict(sequential_scan=sequential_scan, sequential_reverse_scan=sequential_reverse_scan)
MINGRU_KERNELS = dict(KERNELS, fused_forward=mingru_forward, fused_backward=mingru_backward)
