"""The Elman RNN's time loop compiled, tanh or ReLU (the kinds rnn and irnn).

Equations, shapes and cache are those of ``functional.rnn_sequence`` (the reference), tested
equal. As the LSTM's kernel: a parallel region per step, a chunk of hidden units per core.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from ..functional import buffers
from . import products
from .activations import tanh
from .common import absent, gradient_in_chunk, lengths, no_norms, norm_of_chunks, sum_chunks, time_index
from .matmul import FASTMATH, chunk_width, gate_columns, gate_rows, matmul_into


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def rnn_chunk(A, h, W, relu, acc, h_new, Y, H_prev, keep, t, b, u0, u1):
    """One chunk's units [u0, u1) at step t: h_t = f(A_t + h W) into h_new, Y and A (the cache),
    and with keep h_{t−1} into H_prev; the inactive rows' state carried into h_new."""
    matmul_into(h, W, acc, b)
    n = u1 - u0
    zero = A.dtype.type(0)
    for r in range(b):
        a, ar, hnew = A[t, r, u0:u1], acc[r, :n], h_new[r, u0:u1]
        if keep:
            H_prev[t, r, u0:u1] = h[r, u0:u1]
        for j in range(n):
            s = a[j] + ar[j]
            a[j] = hnew[j] = max(s, zero) if relu else tanh(s)
        Y[t, r, u0:u1] = hnew
    for r in range(b, h.shape[0]):
        h_new[r, u0:u1] = h[r, u0:u1]


@njit(cache=True, error_model="numpy", fastmath=FASTMATH, parallel=True)
def rnn_loop(A, h, W_packed, relu, bs, reverse, keep, Y, H_prev):
    """A (T, B, H): the input projections with both biases, made h_t in place (the cache); h (B, H):
    the initial state, made the final one; W_packed: ``gate_columns(W_hh)``. Fills Y (T, B, H)
    and, with keep, H_prev. The state goes back and forth between two buffers (as ``lstm_loop``'s)."""
    T, B, H = A.shape[0], A.shape[1], h.shape[1]
    chunks = W_packed.shape[0]
    Hk = chunk_width(H, chunks)
    acc = np.empty((chunks, B, Hk), A.dtype)
    states = np.empty((2, B, H), A.dtype)
    states[0] = h
    for s in range(T):
        t = time_index(s, T, reverse)
        b = bs[t]
        h_in, h_out = states[s % 2], states[1 - s % 2]
        for k in prange(chunks):
            rnn_chunk(A, h_in, W_packed[k], relu, acc[k], h_out, Y, H_prev, keep, t, b, k * Hk, min(H, (k + 1) * Hk))
    h[:] = states[T % 2]


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def rnn_chunk_backward(dh_t, Hs, W, relu, dA, dA_chunk, d_partial, t, b, u0, u1):
    """One chunk's units at step t: the pre-activation gradients into dA (and dA_chunk), and the
    chunk's share of dA W_hh into d_partial."""
    n = u1 - u0
    for r in range(b):
        y, d, da, p = Hs[t, r, u0:u1], dh_t[r, u0:u1], dA[t, r, u0:u1], dA_chunk[r, :n]
        for j in range(n):
            if relu:
                da[j] = p[j] = d[j] if y[j] > 0 else 0
            else:
                da[j] = p[j] = (1 - y[j] * y[j]) * d[j]
    matmul_into(dA_chunk, W, d_partial, b)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH, parallel=True)
def rnn_loop_backward(dY, dh, Hs, W_rows, relu, bs, reverse, dA, norms):
    """The backward of ``rnn_loop``: dh (B, H) holds the final state's gradient and becomes the
    initial state's; W_rows: ``gate_rows(W_hh)``; fills dA (T, B, H); records ‖∂L/∂h_t‖. Each
    chunk gathers its units of ∂L/∂h_t in the parallel region (as ``lstm_loop_backward``)."""
    T, B, H = Hs.shape[0], Hs.shape[1], Hs.shape[2]
    chunks = W_rows.shape[0]
    Hk = chunk_width(H, chunks)
    dA_chunks = np.zeros((chunks, B, Hk), Hs.dtype)
    partial = np.zeros((2, chunks, B, H), Hs.dtype)
    squares = np.zeros((chunks, 1))
    dh_t = np.empty((B, H), Hs.dtype)
    carried = dh.copy()
    b_last = 0
    for s in range(T):
        t = time_index(s, T, not reverse)
        b = bs[t]
        now, last = partial[s % 2], partial[1 - s % 2]
        for k in prange(chunks):
            u0, u1 = k * Hk, min(H, (k + 1) * Hk)
            gradient_in_chunk(dh_t, carried, last, carried[:0], dY, t, b, b_last, u0, u1, squares[k], norms.shape[0] > 0)
            rnn_chunk_backward(dh_t, Hs, W_rows[k], relu, dA, dA_chunks[k], now[k], t, b, u0, u1)
        if norms.shape[0] > 0:
            norms[t] = norm_of_chunks(squares)
        b_last = b
    sum_chunks(carried, partial[(T - 1) % 2], carried[:0], b_last, 0, H)
    dh[:] = carried


def rnn_sequence(X, states, w, reverse, bs, keep, chunks=1, threads=1, relu=False):
    """``functional.rnn_sequence``, compiled."""
    T, B, _ = X.shape
    h = states[0].copy()
    A = products.affine(X, w.W_ih.data, w.bias_x, chunks, threads)
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    H_prev = alloc(Y.shape, X.dtype) if keep else absent(X.dtype, 3)
    rnn_loop(A, h, gate_columns(w.W_hh.data, 1, chunks), relu, lengths(bs), reverse, keep, Y, H_prev)
    return Y, (h,), ((X, A, H_prev) if keep else None)


def rnn_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None, chunks=1, threads=1, relu=False):
    """``functional.rnn_sequence_backward``, compiled."""
    X, Hs, H_prev = cache
    dA = buffers(bs, X.shape[1])(Hs.shape, Hs.dtype)
    dh = np.ascontiguousarray(dstate[0], Hs.dtype).copy()
    rnn_loop_backward(np.ascontiguousarray(dY), dh, Hs, gate_rows(w.W_hh.data, 1, chunks), relu, lengths(bs), reverse, dA,
                      no_norms() if norms is None else norms)
    return products.accumulate_weight_grads(w, X, H_prev, dA, parts=chunks, threads=threads), (dh,)


def equations(relu: bool) -> dict:
    return dict(sequence=functools.partial(rnn_sequence, relu=relu), sequence_backward=functools.partial(rnn_sequence_backward, relu=relu))
