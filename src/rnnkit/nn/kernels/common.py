"""What every kernel's time loop shares: the walk over time, ∂L/∂h_t, the absent arrays."""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(inline="always")
def time_index(s, T, reverse):
    """The s-th step walked: t = s forwards, T − 1 − s in reverse."""
    return T - 1 - s if reverse else s


@njit(inline="always")
def next_time_index(s, T, reverse):
    """The step walked after the s-th (``time_index``), or −1 after the last."""
    return time_index(s + 1, T, reverse) if s + 1 < T else -1


@njit(inline="always")
def input_beside_state(X, h, reverse):
    """(2, B, I + P): two buffers of [x_t | h], the product's input at a step (``matmul_into``
    of it with [W_ih | W_hh]'s packed columns makes the input and recurrent sums at once); the
    first holds the first step's x and the initial state h (B, P). A step reads one buffer and
    its chunks write the other (``next_step_in``)."""
    T, B, I = X.shape
    states = np.empty((2, B, I + h.shape[1]), X.dtype)
    if T > 0:
        states[0, :, :I] = X[time_index(0, T, reverse)]
    states[0, :, I:] = h
    return states


@njit(inline="always")
def next_step_in(X, xh, xh_next, t_next, b, u0, u1, carry, k, chunks):
    """Chunk k's part of the next step's buffer beyond its units' new state: with ``carry``, the
    inactive rows' state (rows b…) of its units; its share of the columns of x at t_next (−1:
    none), so that no chunk waits at the step's end for another's copy."""
    I = X.shape[2]
    if carry:
        for r in range(b, xh.shape[0]):
            xh_next[r, I + u0 : I + u1] = xh[r, I + u0 : I + u1]
    if t_next >= 0:
        lo, hi = I * k // chunks, I * (k + 1) // chunks
        xh_next[:, lo:hi] = X[t_next, :, lo:hi]


def loop_input(X) -> np.ndarray:
    """X as the forward loops take it: C-contiguous and writeable (numba compiles a read-only
    array, as from a memory map, as another type: seconds of compiling for the same loop)."""
    X = np.ascontiguousarray(X)
    return X if X.flags.writeable else X.copy()


def bias_or_zeros(bias, size: int, dtype) -> np.ndarray:
    """The folded biases, or zeros for a layer without them."""
    return np.zeros(size, dtype) if bias is None else bias


@njit(inline="always", error_model="numpy")
def gradient_in(dh, dY, t, b, norms):
    """∂L/∂h_t of the b active rows: dh (from step t+1) + dY[t] (what the output at t receives),
    (b, P); its norm is recorded at norms[t] when norms has an entry per step (as
    ``functional.step_gradient``, summed in float64)."""
    dh_t = dh[:b] + dY[t, :b]
    if norms.shape[0] > 0:
        total = 0.0
        for r in range(b):
            for j in range(dh_t.shape[1]):
                total += float(dh_t[r, j]) ** 2
        norms[t] = math.sqrt(total)
    return dh_t


@njit(inline="always")
def norm_of_chunks(squares):
    """‖∂L/∂h_t‖ from the chunks' sums of squares (``gradient_in_chunk``), added in chunk order."""
    total = 0.0
    for k in range(squares.shape[0]):
        total += squares[k, 0]
    return math.sqrt(total)


@njit(inline="always")
def sum_chunks(out, partial, direct, b, u0, u1):
    """out[:b, u0:u1] = Σ_k partial[k, :b, u0:u1] (+ direct[:b, u0:u1]): the chunks' shares of
    dG W_hh, added in chunk order whatever thread computed each, plus the part of ∂L/∂h that
    bypasses W_hh (a GRU's dh ⊙ z; ``direct`` without rows for none)."""
    for r in range(b):
        o = out[r, u0:u1]
        o[:] = partial[0, r, u0:u1]
        for k in range(1, partial.shape[0]):
            o += partial[k, r, u0:u1]
        if direct.shape[0] > 0:
            o += direct[r, u0:u1]


@njit(error_model="numpy")
def gradient_in_chunk(dh_t, carried, last, direct, dY, t, b, b_last, u0, u1, squares, want_norms):
    """A chunk's units [u0, u1) of ∂L/∂h_t, in its parallel region (``gradient_in`` for those
    units alone, same sums in the same order): carried (B, H) takes the step before's sums
    (``sum_chunks`` of ``last`` and ``direct``) for the rows active then; the other rows keep what
    they had (the final state's gradient, or their last). dh_t = carried + dY[t] on the b active
    rows; the sum of its squares, in float64, into squares[0] when wanted (``norm_of_chunks``)."""
    sum_chunks(carried, last, direct, b_last, u0, u1)
    total = 0.0
    for r in range(b):
        out, c, y = dh_t[r, u0:u1], carried[r, u0:u1], dY[t, r, u0:u1]
        for j in range(u1 - u0):  # over rows of their own and without a branch: 0.7 ns an element, not 1.9
            out[j] = c[j] + y[j]
        if want_norms:
            for j in range(u1 - u0):
                total += float(out[j]) ** 2
    squares[0] = total


def absent(dtype, ndim: int) -> np.ndarray:
    """An empty array standing for one a kernel does not need (no projection, nothing kept),
    so that every call has the same types and compiles once."""
    return np.empty((0,) * ndim, dtype)


def no_norms() -> np.ndarray:
    return np.empty(0)


def lengths(bs) -> np.ndarray:
    """The active rows per step as the kernels take them."""
    return np.asarray(bs, np.int64)
