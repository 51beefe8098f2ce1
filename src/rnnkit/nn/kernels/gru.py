"""The GRU's time loop compiled (PyTorch's form: the reset gate multiplies W_hn h + b_hn).

Equations, shapes and cache are those of ``functional.gru_sequence`` (the reference), tested
equal. As the LSTM's kernel: a parallel region per step, a chunk of hidden units per core,
each computing its units' columns of the step's products, the input's included, and then r,
z, n and h_t; the backward mirrors ``functional.gru_step_backward``, each chunk adding its share
of dG_h W_hh.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..functional import buffers
from . import products
from .activations import sigmoid, tanh
from .common import (absent, bias_or_zeros, gradient_in_chunk, input_beside_state, lengths, loop_input, next_step_in,
                     next_time_index, no_norms, norm_of_chunks, sum_chunks, time_index)
from .matmul import FASTMATH, chunk_units, chunk_width, gate_columns, gate_rows, input_and_hidden_columns, matmul_into


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def gru_chunk(X, xh, bias, b_hn, W_rz, W_nx, W_nh, acc_rz, acc_nx, acc_nh, xh_next, G, Y, H_prev, HN, keep, t, t_next, b,
              u0, u1, k, chunks):
    """One chunk's units [u0, u1) at step t: their columns of [x_t | h_{t−1}] [W_i | W_h]ᵀ for r and
    z in one product, and for n x_t W_inᵀ and h_{t−1} W_hnᵀ apart (the reset gate multiplies the
    second); then the gates, h_t into xh_next and Y, and with keep the activated gates into G[t],
    h_{t−1} into H_prev and h W_hnᵀ + b_hn into HN; the inactive rows' state and the next x into
    xh_next (``next_step_in``)."""
    I, Hk, n = X.shape[2], acc_nx.shape[1], u1 - u0
    H = Y.shape[2]
    matmul_into(xh, W_rz, acc_rz, b, 0)
    matmul_into(xh, W_nx, acc_nx, b, 0)
    matmul_into(xh, W_nh, acc_nh, b, I)
    br, bz, bn = bias[u0:u1], bias[H + u0 : H + u1], bias[2 * H + u0 : 2 * H + u1]
    for r in range(b):
        ar, az, ax, ah = acc_rz[r, :n], acc_rz[r, Hk : Hk + n], acc_nx[r, :n], acc_nh[r, :n]
        hr, hnew, yr = xh[r, I + u0 : I + u1], xh_next[r, I + u0 : I + u1], Y[t, r, u0:u1]
        if b_hn.shape[0] > 0:  # ah becomes h W_hnᵀ + b_hn in place (the chunk's scratch)
            ah += b_hn[u0:u1]
        # no branch inside the loops (with them a layer's inference took 1.3–1.4× the time)
        if keep:
            gr, gz, gn = G[t, r, u0:u1], G[t, r, H + u0 : H + u1], G[t, r, 2 * H + u0 : 2 * H + u1]
            H_prev[t, r, u0:u1] = hr
            HN[t, r, u0:u1] = ah
            for j in range(n):
                reset = sigmoid(ar[j] + br[j])
                z = sigmoid(az[j] + bz[j])
                g = tanh(ax[j] + bn[j] + reset * ah[j])
                gr[j], gz[j], gn[j] = reset, z, g
                hnew[j] = yr[j] = (hr[j] - g) * z + g
        else:  # the same arithmetic, nothing kept
            for j in range(n):
                reset = sigmoid(ar[j] + br[j])
                z = sigmoid(az[j] + bz[j])
                g = tanh(ax[j] + bn[j] + reset * ah[j])
                hnew[j] = yr[j] = (hr[j] - g) * z + g
    next_step_in(X, xh, xh_next, t_next, b, u0, u1, True, k, chunks)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH, parallel=True)
def gru_loop(X, bias, b_hn, h, W_rz, W_nx, W_nh, bs, reverse, keep, G, Y, H_prev, HN):
    """X (T, B, I): the inputs; bias (3H): ``_gru_input_bias`` (b_ih + b_hh for r and z, b_in for n); b_hn
    (H,), or empty without biases; h (B, H): the initial state, made the final one; W_rz:
    ``input_and_hidden_columns`` of the r and z rows, W_nx and W_nh: ``gate_columns`` of W_in and
    W_hn. Fills Y (T, B, H) and, with keep, the cache: G (T, B, 3H) with the activated gates
    [r z n], H_prev and HN = h_{t−1} W_hnᵀ + b_hn (without keep, empty). The input enters the
    products beside the state, in two buffers that take turns (as ``lstm_loop``'s)."""
    T, B, H = X.shape[0], X.shape[1], h.shape[1]
    chunks = W_rz.shape[0]
    Hk = chunk_width(H, chunks)
    acc_rz = np.empty((chunks, B, 2 * Hk), X.dtype)
    acc_nx, acc_nh = np.empty((chunks, B, Hk), X.dtype), np.empty((chunks, B, Hk), X.dtype)
    states = input_beside_state(X, h, reverse)
    for s in range(T):
        t = time_index(s, T, reverse)
        t_next = next_time_index(s, T, reverse)
        b = bs[t]
        xh_in, xh_out = states[s % 2], states[1 - s % 2]
        for k in prange(chunks):
            u0, u1 = chunk_units(k, Hk, H)
            gru_chunk(X, xh_in, bias, b_hn, W_rz[k], W_nx[k], W_nh[k], acc_rz[k], acc_nx[k], acc_nh[k], xh_out, G, Y, H_prev, HN,
                      keep, t, t_next, b, u0, u1, k, chunks)
    h[:] = states[T % 2, :, X.shape[2]:]


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def gru_chunk_backward(dh_t, G, H_prev, HN, W, dG, dG_h, dG_chunk, d_partial, direct, t, b, u0, u1):
    """One chunk's units at step t: the gates' pre-activation gradients into dG and dG_h (packed
    into dG_chunk too); d_partial = the chunk's share of dG_h W_hh, and its units' dh ⊙ z (what
    reaches h_{t−1} directly) into direct."""
    H, Hk, n = H_prev.shape[2], dG_chunk.shape[1] // 3, u1 - u0
    for r in range(b):
        gr, gz, gn = G[t, r, u0:u1], G[t, r, H + u0 : H + u1], G[t, r, 2 * H + u0 : 2 * H + u1]
        dr, dz, dn = dG[t, r, u0:u1], dG[t, r, H + u0 : H + u1], dG[t, r, 2 * H + u0 : 2 * H + u1]
        hr, hz, hn_ = dG_h[t, r, u0:u1], dG_h[t, r, H + u0 : H + u1], dG_h[t, r, 2 * H + u0 : 2 * H + u1]
        pr, pz, pn = dG_chunk[r, :n], dG_chunk[r, Hk : Hk + n], dG_chunk[r, 2 * Hk : 2 * Hk + n]
        d_r, hp, hnr, dd = dh_t[r, u0:u1], H_prev[t, r, u0:u1], HN[t, r, u0:u1], direct[r, u0:u1]
        for j in range(n):
            reset, z, g, d = gr[j], gz[j], gn[j], d_r[j]
            d_n = d * (1 - z) * (1 - g * g)
            d_reset = d_n * hnr[j] * (reset * (1 - reset))
            d_z = (hp[j] - g) * d * (z * (1 - z))
            dr[j], dz[j], dn[j] = d_reset, d_z, d_n
            hr[j] = pr[j] = d_reset
            hz[j] = pz[j] = d_z
            hn_[j] = pn[j] = d_n * reset  # the hidden side of n sits behind the reset gate
            dd[j] = d * z  # h_t = … + z ⊙ h_{t−1}
    matmul_into(dG_chunk, W, d_partial, b, 0)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH, parallel=True)
def gru_loop_backward(dY, dh, G, H_prev, HN, W_rows, bs, reverse, dG, dG_h, norms):
    """The backward of ``gru_loop``: dh (B, H) holds the final state's gradient and becomes the
    initial state's; W_rows: ``gate_rows(W_hh)``; fills dG (T, B, 3H), the input side's
    pre-activation gradients, and dG_h, the hidden side's; records ‖∂L/∂h_t‖ in norms. Each
    chunk gathers its units of ∂L/∂h_t in the parallel region (``gradient_in_chunk``), from the
    chunks' shares of dG_h W_hh of the step before (two buffers, as ``lstm_loop_backward``'s)."""
    T, B, H = G.shape[0], G.shape[1], H_prev.shape[2]
    chunks = W_rows.shape[0]
    Hk = chunk_width(H, chunks)
    dG_chunks = np.zeros((chunks, B, 3 * Hk), G.dtype)
    partial = np.zeros((2, chunks, B, H), G.dtype)
    direct = np.zeros((B, H), G.dtype)  # dh ⊙ z of the step before
    squares = np.zeros((chunks, 1))
    dh_t = np.empty((B, H), G.dtype)
    carried = dh.copy()
    b_last = 0
    for s in range(T):
        t = time_index(s, T, not reverse)
        b = bs[t]
        now, last = partial[s % 2], partial[1 - s % 2]
        for k in prange(chunks):
            u0, u1 = chunk_units(k, Hk, H)
            gradient_in_chunk(dh_t, carried, last, direct, dY, t, b, b_last, u0, u1, squares[k], norms.shape[0] > 0)
            gru_chunk_backward(dh_t, G, H_prev, HN, W_rows[k], dG, dG_h, dG_chunks[k], now[k], direct, t, b, u0, u1)
        if norms.shape[0] > 0:
            norms[t] = norm_of_chunks(squares)
        b_last = b
    sum_chunks(carried, partial[(T - 1) % 2], direct, b_last, 0, H)
    dh[:] = carried


def gru_sequence(X, states, w, reverse, bs, keep, chunks=1, threads=1):
    """``functional.gru_sequence``, compiled."""
    T, B, _ = X.shape
    h = states[0].copy()
    H = h.shape[1]
    b_hn = absent(X.dtype, 1) if w.b_hh is None else w.b_hh.data[2 * H :]
    alloc = buffers(bs, B)
    Y = alloc((T, B, H), X.dtype)
    G = alloc((T, B, 3 * H), X.dtype) if keep else absent(X.dtype, 3)
    H_prev, HN = (alloc(Y.shape, X.dtype) if keep else absent(X.dtype, 3) for _ in range(2))
    W_ih, W_hh = w.W_ih.data, w.W_hh.data
    W_rz = input_and_hidden_columns(W_ih[: 2 * H], W_hh[: 2 * H], 2, chunks)
    W_nx, W_nh = gate_columns(W_ih[2 * H :], 1, chunks), gate_columns(W_hh[2 * H :], 1, chunks)
    gru_loop(loop_input(X), bias_or_zeros(w.bias_x, 3 * H, X.dtype), b_hn, h, W_rz, W_nx, W_nh, lengths(bs), reverse, keep, G, Y,
             H_prev, HN)
    return Y, (h,), ((X, G, H_prev, HN) if keep else None)


def gru_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None, chunks=1, threads=1):
    """``functional.gru_sequence_backward``, compiled."""
    X, G, H_prev, HN = cache
    alloc = buffers(bs, X.shape[1])
    dG, dG_h = alloc(G.shape, G.dtype), alloc(G.shape, G.dtype)
    dh = np.ascontiguousarray(dstate[0], G.dtype).copy()
    gru_loop_backward(np.ascontiguousarray(dY), dh, G, H_prev, HN, gate_rows(w.W_hh.data, 3, chunks), lengths(bs), reverse, dG, dG_h,
                      no_norms() if norms is None else norms)
    return products.accumulate_weight_grads(w, X, H_prev, dG, dG_h, parts=chunks, threads=threads), (dh,)
