"""The minimal layers' whole recurrence compiled (the kinds mingru and minlstm), one kernel each way.

Forward: the activations, the coefficients a_t, b_t and the loop h_t = a_t ⊙ h_{t−1} + b_t in
one pass over the pre-activations of a single ``x Wᵀ + b`` product (T, B, G·H); backward: the
loop G_t = ∂L/∂h_t = dY_t + a_{t+1} ⊙ G_{t+1} and the pre-activations' gradients in one pass.
The equations and their exact forms are ``nn.minimal``'s, the state and G carried in float64 as
the reference's log-space scan does, so that both modes of the NumPy layer (the parallel scan
and the loop) agree with these to about 1e-13. On a CPU the loop is the fast way: every element
is visited once, where the parallel scan visits it about ten times; what the scan buys is depth
log T on parallel hardware. exp is written to vectorise (``activations.exp``; libm's, one
element at a time, would cost more than NumPy's). At batch 1 and H = 64 the thirty-odd NumPy
calls of a microsecond each around a compiled loop were most of the layer's time: minGRU's
forward and backward at T = 128 took 197 µs, fused 142.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .activations import exp


def mingru_forward(K, active, h0, states, Z):
    """K (T, B, 2H): the pre-activations [k_z | k_h]; active (T, B): whether each step is inside
    its sequence, or empty (all are); h0 (B, H). Fills Z (T, B, 2H) with the activations [z | h̃]
    and states (T + 1, B, H) with h0 then every h_t; returns A (T, B, H), a_t = 1 − z_t (1 past a
    sequence's end, where b_t = 0 and the state passes through). The state is carried in float64,
    as the reference's scan does. The equations and their exact forms are ``nn.minimal``'s: with
    u = e^{−|k|}, σ(k) = e^{min(k, 0)}/(1 + u) (exact in both tails) and 1 − σ(k) = σ(−k)."""
    A = np.empty(states[1:].shape, K.dtype)  # made here, not in the kernel: see _mingru_loop
    _mingru_loop(K, active, h0, states, Z, A)
    return A


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _mingru_loop(K, active, h0, states, Z, A):
    """``mingru_forward``'s loop, A given. (A made inside this kernel made it 4× slower from two
    rows on, 236 µs against 59 at T = 128, B = 4, H = 64; Z apart from K: written in place, LLVM
    could not tell k_h's reads from z's writes, and did not vectorise.)"""
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
    with ∂L/∂h_t (carried in float64) and dK (T, B, 2H) with the
    pre-activations' gradients [dk_z | dk_h] (zero past each sequence's end)."""
    T, B, H = G.shape
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


def minlstm_forward(K, active, h0, states, Z):
    """``mingru_forward`` for minLSTM: K (T, B, 3H) the pre-activations [k_f | k_i | k_h]; fills Z
    with [1 − f | 1 − i | h̃] (what the reference's layer keeps) and states; returns C (2, T, B, H),
    f' and i' (1 and 0 past a sequence's end). f' = f/(f + i) and i' = i/(f + i) from the ratio
    i/f = e^{min(k_i, 0) − min(k_f, 0)}·(1 + u_f)/(1 + u_i), u = e^{−|k|}, taken from whichever
    side keeps its exponent ≤ 0: exact in both tails without a logarithm, also where f and i both
    underflow (the reference's d = log i − log f)."""
    C = np.empty((2,) + states[1:].shape, K.dtype)  # made here, not in the kernel (as mingru_forward)
    _minlstm_loop(K, active, h0, states, Z, C)
    return C


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _minlstm_loop(K, active, h0, states, Z, C):
    """``minlstm_forward``'s loop, C given."""
    T, B, H = C.shape[1:]
    one, zero = K.dtype.type(1), K.dtype.type(0)
    h = h0.astype(np.float64)
    states[0] = h0
    for t in range(T):
        for r in range(B):
            k, f_, i_, not_f, not_i, h_tilde, hr = K[t, r], C[0, t, r], C[1, t, r], Z[t, r, :H], Z[t, r, H : 2 * H], Z[t, r, 2 * H :], h[r]
            for j in range(H):
                kf, ki, kh = k[j], k[H + j], k[2 * H + j]
                uf, ui = exp(-abs(kf)), exp(-abs(ki))
                not_f[j] = (uf if kf >= 0 else one) / (uf + one)  # 1 − σ(k_f) = σ(−k_f)
                not_i[j] = (ui if ki >= 0 else one) / (ui + one)
                e = min(ki, zero) - min(kf, zero)  # log(i/f) less log((1 + u_f)/(1 + u_i))
                q = (uf + one) / (ui + one)
                if e <= 0:
                    ratio = exp(e) * q  # i/f ≤ 2
                    f_[j] = one / (one + ratio)
                    i_[j] = ratio / (one + ratio)
                else:
                    inverse = exp(-e) / q  # f/i < 2
                    f_[j] = inverse / (one + inverse)
                    i_[j] = one / (one + inverse)
                m = min(kh, zero)
                em = exp(m)
                h_tilde[j] = em / (em + one) + (kh - m)  # g(k_h)
            if active.shape[0] == 0 or active[t, r]:
                for j in range(H):
                    hr[j] = f_[j] * hr[j] + i_[j] * h_tilde[j]
            else:  # past the sequence's end: f' = 1, i' = 0
                f_[:] = one
                i_[:] = zero
            states[t + 1, r] = hr


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def minlstm_backward(dY, K, C, states, active, dh, G, dK):
    """The backward of ``minlstm_forward`` (K: its Z, C: what it returned), as ``mingru_backward``:
    with d = log i − log f, f' = σ(−d) and i' = σ(d), ∂h/∂d = f' i' (h̃ − h_prev), ∂d/∂k_f = −(1 − f)
    and ∂d/∂k_i = 1 − i."""
    T, B, H = G.shape
    one, half, zero = K.dtype.type(1), K.dtype.type(0.5), K.dtype.type(0)
    g = dh.astype(np.float64)
    for t in range(T - 1, -1, -1):
        for r in range(B):
            k, f_, i_, gr, Gt, dk, dy, h_prev = K[t, r], C[0, t, r], C[1, t, r], g[r], G[t, r], dK[t, r], dY[t, r], states[t, r]
            for j in range(H):
                gr[j] += dy[j]
                Gt[j] = gr[j]
                gr[j] *= f_[j]
            if active.shape[0] == 0 or active[t, r]:
                for j in range(H):
                    not_f, not_i, h_tilde = k[j], k[H + j], k[2 * H + j]
                    dd = (h_tilde - h_prev[j]) * Gt[j] * (f_[j] * i_[j])
                    s = min(h_tilde, half)
                    slope = max(s * (one - s), one if h_tilde >= half else zero)  # g'(k) from h̃ = g(k)
                    dk[j] = -(dd * not_f)
                    dk[H + j] = dd * not_i
                    dk[2 * H + j] = Gt[j] * i_[j] * slope
            else:
                dk[:] = zero
    dh[:] = g


MINGRU_KERNELS = dict(fused_forward=mingru_forward, fused_backward=mingru_backward)
MINLSTM_KERNELS = dict(fused_forward=minlstm_forward, fused_backward=minlstm_backward)
