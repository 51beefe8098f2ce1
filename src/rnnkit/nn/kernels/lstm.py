"""The LSTM's time loop compiled: one kernel call runs every step of one direction.

Equations, shapes and cache are those of ``functional.lstm_sequence`` (the reference), and the
two are tested equal. Each step is one parallel region: the hidden units are split into chunks
(``backend.chunks()``, one per core) run on the kernels' threads; a chunk computes its units'
columns of [x_t | h_{t−1}] [W_ih | W_hh]ᵀ (``matmul_into`` on its packed columns: the input
projection made step by step where it is used, not for every step first) and then, in the same
pass, their gates, c_t, tanh c_t and h_t, and writes its units of the output and the cache; the
units are independent within a step, so the threads meet once per step. The backward mirrors
``functional.lstm_step_backward``: each chunk's gate gradients and its share of dG W_hh, summed
in chunk order at the next step. A projection (proj_size) mixes the units: it runs between regions.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..functional import accumulate_projection_grad, buffers
from . import products
from .activations import sigmoid, tanh
from .common import (absent, bias_or_zeros, gradient_in, gradient_in_chunk, input_beside_state, lengths, loop_input, next_step_in,
                     next_time_index, no_norms, norm_of_chunks, sum_chunks, time_index)
from .matmul import FASTMATH, chunk_units, chunk_width, gate_rows, input_and_hidden_columns, matmul_into, panels


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def lstm_chunk(X, xh, bias, G, c, W, acc, xh_next, h_dest, h_offset, Y, TC, H_prev, C_prev, keep, projected, t, t_next, b,
               u0, u1, k, chunks):
    """One chunk's units [u0, u1) at step t: acc = [x_t | h_{t−1}] [W_ih | W_hh]ᵀ (xh; its packed
    columns of W), then with the biases the gates, c_t in c, o ⊙ tanh c_t in h_dest[:, h_offset + u]
    (the next state, or the projection's input); with keep, the activated gates in G[t], tanh c_t in
    TC[t], c_{t−1} in C_prev. Without a projection the units are the state's own: h_t also into Y,
    h_{t−1} into H_prev (with keep), and the inactive rows' state carried into xh_next
    (``next_step_in``, which also puts its share of the next x there)."""
    matmul_into(xh, W, acc, b, 0)
    H, I, Hk, n = c.shape[1], X.shape[2], acc.shape[1] // 4, u1 - u0
    bi, bf, bg, bo = bias[u0:u1], bias[H + u0 : H + u1], bias[2 * H + u0 : 2 * H + u1], bias[3 * H + u0 : 3 * H + u1]
    for r in range(b):
        ai, af, ag, ao = acc[r, :n], acc[r, Hk : Hk + n], acc[r, 2 * Hk : 2 * Hk + n], acc[r, 3 * Hk : 3 * Hk + n]
        cr, hr = c[r, u0:u1], h_dest[r, h_offset + u0 : h_offset + u1]
        yr = hr if projected else Y[t, r, u0:u1]  # h_t's second home (a projection's output is written after)
        if keep:
            gi, gf = G[t, r, u0:u1], G[t, r, H + u0 : H + u1]
            gg, go = G[t, r, 2 * H + u0 : 2 * H + u1], G[t, r, 3 * H + u0 : 3 * H + u1]
            tcr = TC[t, r, u0:u1]
            C_prev[t, r, u0:u1] = cr
            if not projected:
                H_prev[t, r, u0:u1] = xh[r, I + u0 : I + u1]
            for j in range(n):
                i = sigmoid(ai[j] + bi[j])
                f = sigmoid(af[j] + bf[j])
                g = tanh(ag[j] + bg[j])
                o = sigmoid(ao[j] + bo[j])
                gi[j], gf[j], gg[j], go[j] = i, f, g, o
                c_t = f * cr[j] + i * g
                tc = tanh(c_t)
                cr[j] = c_t
                tcr[j] = tc
                hr[j] = yr[j] = o * tc
        else:  # the same arithmetic, nothing kept: without the five stores the gates take 0.6–0.75 of the time
            for j in range(n):
                i = sigmoid(ai[j] + bi[j])
                f = sigmoid(af[j] + bf[j])
                g = tanh(ag[j] + bg[j])
                o = sigmoid(ao[j] + bo[j])
                c_t = f * cr[j] + i * g
                cr[j] = c_t
                hr[j] = yr[j] = o * tanh(c_t)
    next_step_in(X, xh, xh_next, t_next, b, u0, u1, not projected, k, chunks)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH, parallel=True)
def lstm_loop(X, bias, h, c, W_packed, W_hrT, bs, reverse, keep, G, Y, H_prev, C_prev, TC):
    """X (T, B, I): the inputs; bias (4H): b_ih + b_hh; h (B, P), c (B, H): the initial state, made the
    final one; W_packed: ``input_and_hidden_columns(W_ih, W_hh)``; W_hrT: ``panels(W_hrᵀ)``, or
    empty without a projection. Fills Y (T, B, P) and, with keep, the cache: G (T, B, 4H) with the
    activated gates [i f g o], H_prev, C_prev and TC = tanh c_t (without keep, empty). The input
    enters the product beside the state: x_t W_ihᵀ is made where it is used, and no (T, B, 4H)
    projection is written first and read back. [x_t | h] goes back and forth between two buffers
    (each step reads one and writes the other), so that the chunks write theirs in the parallel
    region and nothing is copied between regions but a projection's work."""
    T, B, I = X.shape
    H, P = c.shape[1], h.shape[1]
    chunks = W_packed.shape[0]
    Hk = chunk_width(H, chunks)
    acc = np.empty((chunks, B, 4 * Hk), X.dtype)
    projected = W_hrT.shape[0] > 0
    h_full = np.empty((B, H), X.dtype)  # o ⊙ tanh c_t, the projection's input
    h_proj = np.empty((B, P), X.dtype)
    states = input_beside_state(X, h, reverse)
    for s in range(T):
        t = time_index(s, T, reverse)
        t_next = next_time_index(s, T, reverse)
        b = bs[t]
        xh_in, xh_out = states[s % 2], states[1 - s % 2]
        for k in prange(chunks):
            u0, u1 = chunk_units(k, Hk, H)
            lstm_chunk(X, xh_in, bias, G, c, W_packed[k], acc[k], xh_out, h_full if projected else xh_out, 0 if projected else I,
                       Y, TC, H_prev, C_prev, keep, projected, t, t_next, b, u0, u1, k, chunks)
        if projected:
            if keep:
                H_prev[t, :b] = xh_in[:b, I:]
            matmul_into(h_full, W_hrT, h_proj, b, 0)
            xh_out[:b, I:] = h_proj[:b]
            xh_out[b:, I:] = xh_in[b:, I:]
            Y[t, :b] = h_proj[:b]
    h[:] = states[T % 2, :, I:]


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def lstm_chunk_backward(dh_full, dc, G, C_prev, TC, W, dG, dG_chunk, d_partial, t, b, u0, u1):
    """One chunk's units at step t: their gates' pre-activation gradients into dG (and packed
    into dG_chunk), ∂L/∂c_{t−1} into dc, and the chunk's share of dG W_hh into d_partial."""
    H, Hk, n = C_prev.shape[2], dG_chunk.shape[1] // 4, u1 - u0
    for r in range(b):
        i, f, g, o = G[t, r, u0:u1], G[t, r, H + u0 : H + u1], G[t, r, 2 * H + u0 : 2 * H + u1], G[t, r, 3 * H + u0 : 3 * H + u1]
        di, df, dg, do = dG[t, r, u0:u1], dG[t, r, H + u0 : H + u1], dG[t, r, 2 * H + u0 : 2 * H + u1], dG[t, r, 3 * H + u0 : 3 * H + u1]
        pi, pf, pg, po = dG_chunk[r, :n], dG_chunk[r, Hk : Hk + n], dG_chunk[r, 2 * Hk : 2 * Hk + n], dG_chunk[r, 3 * Hk : 3 * Hk + n]
        tcr, cpr, dhr, dcr = TC[t, r, u0:u1], C_prev[t, r, u0:u1], dh_full[r, u0:u1], dc[r, u0:u1]
        for j in range(n):
            tc, d = tcr[j], dhr[j]
            dct = (1 - tc * tc) * o[j] * d + dcr[j]  # ∂L/∂c_t
            di[j] = pi[j] = dct * g[j] * ((1 - i[j]) * i[j])
            df[j] = pf[j] = dct * cpr[j] * ((1 - f[j]) * f[j])
            dg[j] = pg[j] = dct * i[j] * (1 - g[j] * g[j])
            do[j] = po[j] = d * tc * ((1 - o[j]) * o[j])
            dcr[j] = dct * f[j]
    matmul_into(dG_chunk, W, d_partial, b, 0)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH, parallel=True)
def lstm_loop_backward(dY, dh, dc, G, C_prev, TC, W_rows, W_hr, bs, reverse, dG, dH, norms):
    """The backward of ``lstm_loop``: dh (B, P), dc (B, H) hold the final state's gradients and
    become the initial state's; W_rows: ``gate_rows(W_hh)``; W_hr: ``panels(W_hr)``, or empty
    without a projection; fills dG (T, B, 4H) and, with a projection, dH (T, B, P) with ∂L/∂h_t;
    records ‖∂L/∂h_t‖ in norms (an entry per step, or empty). Without a projection each chunk
    gathers its own units of ∂L/∂h_t in the parallel region (``gradient_in_chunk``); the chunks'
    shares of dG W_hh go back and forth between two buffers, so that a step's are written while
    the last step's are read."""
    T, B, H, P = G.shape[0], G.shape[1], C_prev.shape[2], dh.shape[1]
    chunks = W_rows.shape[0]
    Hk = chunk_width(H, chunks)
    projected = W_hr.shape[0] > 0
    dG_chunks = np.zeros((chunks, B, 4 * Hk), G.dtype)  # padding units stay 0
    partial = np.zeros((2, chunks, B, P), G.dtype)  # each chunk's dG W_hh, this step's and the last one's
    squares = np.zeros((chunks, 1))  # each chunk's share of ‖∂L/∂h_t‖²
    dh_full = np.empty((B, H), G.dtype)
    carried = dh.copy()  # ∂L/∂h_t from step t+1: the final state's at first
    b_last = 0  # the rows active at the step before (none before the first)
    for s in range(T):
        t = time_index(s, T, not reverse)
        b = bs[t]
        now, last = partial[s % 2], partial[1 - s % 2]
        if projected:
            sum_chunks(carried, last, carried[:0], b_last, 0, P)
            dh_t = gradient_in(carried, dY, t, b, norms)
            dH[t, :b] = dh_t
            matmul_into(dh_t, W_hr, dh_full, b, 0)
        for k in prange(chunks):
            u0, u1 = chunk_units(k, Hk, H)
            if not projected:
                gradient_in_chunk(dh_full, carried, last, carried[:0], dY, t, b, b_last, u0, u1, squares[k], norms.shape[0] > 0)
            lstm_chunk_backward(dh_full, dc, G, C_prev, TC, W_rows[k], dG, dG_chunks[k], now[k], t, b, u0, u1)
        if not projected and norms.shape[0] > 0:
            norms[t] = norm_of_chunks(squares)
        b_last = b
    sum_chunks(carried, partial[(T - 1) % 2], carried[:0], b_last, 0, P)
    dh[:] = carried


def lstm_sequence(X, states, w, reverse, bs, keep, chunks=1, threads=1):
    """``functional.lstm_sequence``, compiled."""
    T, B, _ = X.shape
    h, c = (s.copy() for s in states)
    H = c.shape[1]
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    G, TC, H_prev, C_prev = (alloc(shape, X.dtype) if keep else absent(X.dtype, 3)
                             for shape in ((T, B, 4 * H), (T, B, H), Y.shape, (T, B, H)))
    W_hrT = absent(X.dtype, 3) if w.W_hr is None else panels(w.W_hr.data.T)
    W = input_and_hidden_columns(w.W_ih.data, w.W_hh.data, 4, chunks)
    lstm_loop(loop_input(X), bias_or_zeros(w.bias_x, 4 * H, X.dtype), h, c, W, W_hrT, lengths(bs), reverse, keep, G, Y, H_prev,
              C_prev, TC)
    return Y, (h, c), ((X, G, H_prev, C_prev, TC) if keep else None)


def lstm_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None, chunks=1, threads=1):
    """``functional.lstm_sequence_backward``, compiled."""
    X, G, H_prev, C_prev, TC = cache
    B = X.shape[1]
    alloc = buffers(bs, B)
    dG = alloc(G.shape, G.dtype)
    dH = absent(G.dtype, 3) if w.W_hr is None else alloc(H_prev.shape, G.dtype)
    W_hr = absent(G.dtype, 3) if w.W_hr is None else panels(w.W_hr.data)
    dh, dc = (np.ascontiguousarray(a, G.dtype).copy() for a in dstate)
    lstm_loop_backward(np.ascontiguousarray(dY), dh, dc, G, C_prev, TC, gate_rows(w.W_hh.data, 4, chunks), W_hr, lengths(bs), reverse,
                       dG, dH, no_norms() if norms is None else norms)
    if w.W_hr is not None:
        accumulate_projection_grad(w, dH, G, TC)
    return products.accumulate_weight_grads(w, X, H_prev, dG, parts=chunks, threads=threads), (dh, dc)
