"""The Elman RNN's time loop compiled, tanh or ReLU (the kinds rnn and irnn).

Equations, shapes and cache are those of ``functional.rnn_sequence`` (the reference), tested
equal. As the LSTM's kernel: a parallel region per step, a chunk of hidden units per core, the
input projection made inside each step's product ([x_t | h_{t−1}] [W_ih | W_hh]ᵀ).
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from ..functional import buffers
from . import products
from .activations import tanh
from .common import (absent, bias_or_zeros, gradient_in_chunk, input_beside_state, lengths, loop_input, next_step_in,
                     next_time_index, no_norms, norm_of_chunks, sum_chunks, time_index)
from .matmul import FASTMATH, chunk_units, chunk_width, gate_rows, input_and_hidden_columns, matmul_into


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def rnn_chunk(X, xh, bias, W, relu, acc, xh_next, A, Y, H_prev, keep, t, t_next, b, u0, u1, k, chunks):
    """One chunk's units [u0, u1) at step t: h_t = f([x_t | h_{t−1}] [W_ih | W_hh]ᵀ + b) (xh; its
    packed columns of W) into xh_next and Y, with keep also into A (the cache) and h_{t−1} into
    H_prev; the inactive rows' state and the next x go into xh_next (``next_step_in``)."""
    matmul_into(xh, W, acc, b, 0)
    I, n = X.shape[2], u1 - u0
    zero = X.dtype.type(0)
    bias_u = bias[u0:u1]
    for r in range(b):
        ar, hnew, yr = acc[r, :n], xh_next[r, I + u0 : I + u1], Y[t, r, u0:u1]
        for j in range(n):
            s = ar[j] + bias_u[j]
            hnew[j] = yr[j] = max(s, zero) if relu else tanh(s)
        if keep:
            H_prev[t, r, u0:u1] = xh[r, I + u0 : I + u1]
            A[t, r, u0:u1] = hnew
    next_step_in(X, xh, xh_next, t_next, b, u0, u1, True, k, chunks)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH, parallel=True)
def rnn_loop(X, bias, h, W_packed, relu, bs, reverse, keep, A, Y, H_prev):
    """X (T, B, I): the inputs; bias (H): b_ih + b_hh; h (B, H): the initial state, made the final one;
    W_packed: ``input_and_hidden_columns(W_ih, W_hh)``. Fills Y (T, B, H) and, with keep, A (h_t
    again: the cache) and H_prev. The input enters the product beside the state, in two buffers
    that take turns (as ``lstm_loop``'s)."""
    T, B, H = X.shape[0], X.shape[1], h.shape[1]
    chunks = W_packed.shape[0]
    Hk = chunk_width(H, chunks)
    acc = np.empty((chunks, B, Hk), X.dtype)
    states = input_beside_state(X, h, reverse)
    for s in range(T):
        t = time_index(s, T, reverse)
        t_next = next_time_index(s, T, reverse)
        b = bs[t]
        xh_in, xh_out = states[s % 2], states[1 - s % 2]
        for k in prange(chunks):
            u0, u1 = chunk_units(k, Hk, H)
            rnn_chunk(X, xh_in, bias, W_packed[k], relu, acc[k], xh_out, A, Y, H_prev, keep, t, t_next, b, u0, u1, k, chunks)
    h[:] = states[T % 2, :, X.shape[2]:]


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
    matmul_into(dA_chunk, W, d_partial, b, 0)


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
            u0, u1 = chunk_units(k, Hk, H)
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
    H = h.shape[1]
    alloc = buffers(bs, B)
    Y = alloc((T, B, H), X.dtype)
    A, H_prev = (alloc(Y.shape, X.dtype) if keep else absent(X.dtype, 3) for _ in range(2))
    W = input_and_hidden_columns(w.W_ih.data, w.W_hh.data, 1, chunks)
    rnn_loop(loop_input(X), bias_or_zeros(w.bias_x, H, X.dtype), h, W, relu, lengths(bs), reverse, keep, A, Y, H_prev)
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
