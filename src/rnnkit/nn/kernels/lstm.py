"""The LSTM's time loop compiled: one kernel call runs every step of one direction.

Equations, shapes and cache are those of ``functional.lstm_sequence`` (the reference), and the
two are tested equal. Each step is one parallel region: the hidden units are split into chunks
(``backend.chunks()``, one per core) run on the kernels' threads; a chunk computes its units'
rows of h_{t−1} W_hhᵀ (``matmul_into`` on its packed columns) and then, in the same pass, their
gates, c_t, tanh c_t and h_t; the units are independent within a step, so the threads meet once
per step. The backward mirrors ``functional.lstm_step_backward``: each chunk's gate gradients
and its share of dG W_hh, summed in chunk order at the next step. A projection (proj_size)
mixes the units: it runs between regions.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..functional import accumulate_projection_grad, buffers
from . import products
from .activations import sigmoid, tanh
from .common import absent, gradient_in, lengths, no_norms, sum_chunks, time_index
from .matmul import FASTMATH, chunk_width, gate_columns, gate_rows, matmul_into, panels


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def lstm_chunk(G, h, c, W, acc, h_full, TC, keep, t, b, u0, u1):
    """One chunk's units [u0, u1) at step t: acc = h W (its packed columns), then the gates,
    made activations in G, c_t in c, o ⊙ tanh c_t in h_full, tanh c_t in TC."""
    matmul_into(h, W, acc, b)
    H, Hk, n = c.shape[1], acc.shape[1] // 4, u1 - u0
    for r in range(b):
        gi, gf, gg, go = G[t, r, u0:u1], G[t, r, H + u0 : H + u1], G[t, r, 2 * H + u0 : 2 * H + u1], G[t, r, 3 * H + u0 : 3 * H + u1]
        ai, af, ag, ao = acc[r, :n], acc[r, Hk : Hk + n], acc[r, 2 * Hk : 2 * Hk + n], acc[r, 3 * Hk : 3 * Hk + n]
        cr, hr, tcr = c[r, u0:u1], h_full[r, u0:u1], TC[t if keep else 0, r, u0:u1]
        for j in range(n):
            i = sigmoid(gi[j] + ai[j])
            f = sigmoid(gf[j] + af[j])
            g = tanh(gg[j] + ag[j])
            o = sigmoid(go[j] + ao[j])
            gi[j], gf[j], gg[j], go[j] = i, f, g, o
            c_t = f * cr[j] + i * g
            tc = tanh(c_t)
            cr[j] = c_t
            tcr[j] = tc
            hr[j] = o * tc


@njit(cache=True, error_model="numpy", fastmath=FASTMATH, parallel=True)
def lstm_loop(G, h, c, W_packed, W_hrT, bs, reverse, keep, Y, H_prev, C_prev, TC):
    """G (T, B, 4H): the input projections, made the activated gates [i f g o] in place;
    h (B, P), c (B, H): the initial state, made the final one; W_packed: ``gate_columns(W_hh)``;
    W_hrT: ``panels(W_hrᵀ)``, or empty without a projection. Fills Y (T, B, P) and, with keep,
    H_prev, C_prev and TC = tanh c_t (without keep, TC is one step of scratch)."""
    T, B, H = G.shape[0], G.shape[1], c.shape[1]
    chunks = W_packed.shape[0]
    Hk = chunk_width(H, chunks)
    acc = np.empty((chunks, B, 4 * Hk), G.dtype)
    h_full = np.empty((B, H), G.dtype)  # o ⊙ tanh c_t, before the projection
    for s in range(T):
        t = time_index(s, T, reverse)
        b = bs[t]
        if keep:
            H_prev[t, :b] = h[:b]
            C_prev[t, :b] = c[:b]
        for k in prange(chunks):
            lstm_chunk(G, h, c, W_packed[k], acc[k], h_full, TC, keep, t, b, k * Hk, min(H, (k + 1) * Hk))
        if W_hrT.shape[0] > 0:
            matmul_into(h_full, W_hrT, h, b)
        else:
            h[:b] = h_full[:b]
        Y[t, :b] = h[:b]


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
    matmul_into(dG_chunk, W, d_partial, b)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH, parallel=True)
def lstm_loop_backward(dY, dh, dc, G, C_prev, TC, W_rows, W_hr, bs, reverse, dG, dH, norms):
    """The backward of ``lstm_loop``: dh (B, P), dc (B, H) hold the final state's gradients and
    become the initial state's; W_rows: ``gate_rows(W_hh)``; W_hr: ``panels(W_hr)``, or empty
    without a projection; fills dG (T, B, 4H) and, with a projection, dH (T, B, P) with ∂L/∂h_t;
    records ‖∂L/∂h_t‖ in norms (an entry per step, or empty)."""
    T, B, H, P = G.shape[0], G.shape[1], C_prev.shape[2], dh.shape[1]
    chunks = W_rows.shape[0]
    Hk = chunk_width(H, chunks)
    dG_chunks = np.zeros((chunks, B, 4 * Hk), G.dtype)  # padding units stay 0
    partial = np.zeros((chunks, B, P), G.dtype)  # each chunk's dG W_hh
    dh_full = np.empty((B, H), G.dtype)
    carried = dh.copy()  # ∂L/∂h_t from step t+1: the final state's at first
    for s in range(T):
        t = time_index(s, T, not reverse)
        b = bs[t]
        dh_t = gradient_in(carried, dY, t, b, norms)
        if W_hr.shape[0] > 0:
            dH[t, :b] = dh_t
            matmul_into(dh_t, W_hr, dh_full, b)
        else:
            dh_full[:b] = dh_t
        for k in prange(chunks):
            lstm_chunk_backward(dh_full, dc, G, C_prev, TC, W_rows[k], dG, dG_chunks[k], partial[k], t, b, k * Hk, min(H, (k + 1) * Hk))
        sum_chunks(carried, partial, b)
    dh[:] = carried


def lstm_sequence(X, states, w, reverse, bs, keep, chunks=1, threads=1):
    """``functional.lstm_sequence``, compiled."""
    T, B, _ = X.shape
    h, c = (s.copy() for s in states)
    G = products.affine(X, w.W_ih.data, w.bias_x, chunks, threads)
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    H = c.shape[1]
    H_prev, C_prev = (alloc(shape, X.dtype) if keep else absent(X.dtype, 3) for shape in (Y.shape, (T, B, H)))
    TC = alloc((T, B, H), X.dtype) if keep else np.empty((1, B, H), X.dtype)
    W_hrT = absent(X.dtype, 3) if w.W_hr is None else panels(w.W_hr.data.T)
    lstm_loop(G, h, c, gate_columns(w.W_hh.data, 4, chunks), W_hrT, lengths(bs), reverse, keep, Y, H_prev, C_prev, TC)
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
