"""One step of a cell compiled, for streaming: the input and recurrent products, the biases and
the gates in one call, where the reference spends a dozen NumPy calls of a microsecond each.

Each ``*_cell_step`` returns what the kind's reference ``step`` returns — the new state, the
activated gates and the cache its ``step_backward`` reads — so a cell's backward is the reference's.
For few rows (streaming, a decoder's beam) a product is dot products with W's rows as PyTorch
stores them, four gate rows at a time so that they share each load of x or h (at batch 1, one
thread: an LSTM-128's products 8.9 → 6.6 µs, a GRU-128's 6.3 → 5.1, an RNN-256's 8.3 → 6.9;
the same beyond the cache, where memory sets the pace; eight at a time was slower again).
Summing in any order (``reassoc``) lets LLVM vectorise them, at a rounding difference the tests
bound (1e-12 in float64, 1e-5 in float32).

A step reads all its weights once, so beyond a core's cache it waits on memory: from
``SPLIT_BYTES`` of weights the gate rows are shared between the kernels' threads, each reading
its half from its own core's cache. The kernel alone at batch 1, serial against shared on two
threads (AVX-512 machine, 1 MB of L2 a core; medians of 9, two runs): GRU-192 (0.84 MB) 0.63–0.67
of the time, LSTM-192 (1.1 MB) 0.82–0.89, GRU-256 (1.5 MB) 0.55–0.70, LSTM-256 (2 MB) 0.53–0.85,
RNN-384 (1.1 MB) 0.62–0.71; at 0.5 MB and below (RNN-256, LSTM-128, GRU-128) 0.92–1.88: the
opening of a parallel region costs what the halved reading saves.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ..validation import non_finite_error
from .activations import sigmoid, tanh

STEP_FASTMATH = {"contract", "reassoc"}
SPLIT_BYTES = 768 * 1024  # W_ih and W_hh together: between the sizes that lose (0.5 MB) and win (0.84 MB)


@njit(inline="always", error_model="numpy", fastmath=STEP_FASTMATH)
def _dot4(W, g, v):
    """W[g:g+4] · v: four dot products sharing each load of v."""
    s0 = s1 = s2 = s3 = W.dtype.type(0)
    for k in range(v.shape[0]):
        vk = v[k]
        s0 += W[g, k] * vk
        s1 += W[g + 1, k] * vk
        s2 += W[g + 2, k] * vk
        s3 += W[g + 3, k] * vk
    return s0, s1, s2, s3


@njit(inline="always", error_model="numpy", fastmath=STEP_FASTMATH)
def _dot(a, b):
    s = a.dtype.type(0)
    for k in range(a.shape[0]):
        s += a[k] * b[k]
    return s


@njit(inline="always")
def _bias(b, g):
    """b[g], or 0 where the cell has no biases (b empty)."""
    return b[g] if b.shape[0] > 0 else 0


@njit(inline="always", error_model="numpy", fastmath=STEP_FASTMATH)
def _into(out, b, g, sums):
    """out[g:g+4] = sums + b[g:g+4]."""
    for q in range(4):
        out[g + q] = sums[q] + _bias(b, g + q)


@njit(inline="always", error_model="numpy", fastmath=STEP_FASTMATH)
def _gate_rows(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h, g):
    """Gate rows g … g+3 of every input row: X W_ihᵀ + b_ih into gates, h W_hhᵀ + b_hh into gates_h."""
    for r in range(X.shape[0]):
        _into(gates[r], b_ih, g, _dot4(W_ih, g, X[r]))
        _into(gates_h[r], b_hh, g, _dot4(W_hh, g, h[r]))


@njit(inline="always", error_model="numpy", fastmath=STEP_FASTMATH)
def _last_rows(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h):
    """The gate rows past the last whole block of four (G·H not a multiple of 4), one at a time."""
    for g in range(W_ih.shape[0] - W_ih.shape[0] % 4, W_ih.shape[0]):
        for r in range(X.shape[0]):
            gates[r, g] = _dot(X[r], W_ih[g]) + _bias(b_ih, g)
            gates_h[r, g] = _dot(h[r], W_hh[g]) + _bias(b_hh, g)


@njit(cache=True, error_model="numpy", fastmath=STEP_FASTMATH)
def _serial(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h):
    for block in range(W_ih.shape[0] // 4):
        _gate_rows(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h, 4 * block)
    _last_rows(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h)


@njit(cache=True, error_model="numpy", fastmath=STEP_FASTMATH, parallel=True)
def _split(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h):
    for block in prange(W_ih.shape[0] // 4):
        _gate_rows(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h, 4 * block)
    _last_rows(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h)


@njit(cache=True, error_model="numpy", fastmath=STEP_FASTMATH)
def _pre_activations(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h, split):
    """gates = X W_ihᵀ + b_ih, gates_h = h W_hhᵀ + b_hh (biases empty when the cell has none);
    split: the gate rows shared between the kernels' threads."""
    if split:
        _split(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h)
    else:
        _serial(X, h, W_ih, W_hh, b_ih, b_hh, gates, gates_h)


@njit(inline="always")
def _finite(X):
    """Whether every value of X (B, I) is finite: a pass over a few hundred values that a
    streamed step makes in the kernel, where NumPy's check would cost a tenth of the step."""
    for r in range(X.shape[0]):
        for k in range(X.shape[1]):
            if not np.isfinite(X[r, k]):
                return False
    return True


@njit(cache=True, error_model="numpy", fastmath=STEP_FASTMATH)
def lstm_step(X, h, c, W_ih, W_hh, b_ih, b_hh, split, new, gates, tc):
    """new (2, B, H) ← h', c'; gates (B, 4H) ← the activated gates [i f g o], tc (B, H) ← tanh c'
    (both empty when nothing is kept: scratch is made here then). Returns whether X is finite."""
    B, H = c.shape
    if gates.shape[0] == 0:
        gates, tc = np.empty((B, 4 * H), X.dtype), np.empty((B, H), X.dtype)
    scratch = np.empty((B, 4 * H), X.dtype)
    _pre_activations(X, h, W_ih, W_hh, b_ih, b_hh, gates, scratch, split)
    for r in range(B):
        for j in range(H):
            i = sigmoid(gates[r, j] + scratch[r, j])
            f = sigmoid(gates[r, H + j] + scratch[r, H + j])
            g = tanh(gates[r, 2 * H + j] + scratch[r, 2 * H + j])
            o = sigmoid(gates[r, 3 * H + j] + scratch[r, 3 * H + j])
            gates[r, j], gates[r, H + j], gates[r, 2 * H + j], gates[r, 3 * H + j] = i, f, g, o
            c_new = f * c[r, j] + i * g
            tc[r, j] = tanh(c_new)
            new[1, r, j] = c_new
            new[0, r, j] = o * tc[r, j]
    return _finite(X)


@njit(cache=True, error_model="numpy", fastmath=STEP_FASTMATH)
def gru_step(X, h, W_ih, W_hh, b_ih, b_hh, split, new, gates, gh):
    """new (B, H) ← h'; gates (B, 3H) ← the activated gates [r z n], gh (B, 3H) ← h W_hhᵀ + b_hh
    (its n block, h W_hnᵀ + b_hn, is the cache; both empty when nothing is kept). Returns whether
    X is finite."""
    B, H = h.shape
    if gates.shape[0] == 0:
        gates, gh = np.empty((B, 3 * H), X.dtype), np.empty((B, 3 * H), X.dtype)
    _pre_activations(X, h, W_ih, W_hh, b_ih, b_hh, gates, gh, split)
    for r in range(B):
        for j in range(H):
            reset = sigmoid(gates[r, j] + gh[r, j])
            z = sigmoid(gates[r, H + j] + gh[r, H + j])
            n = tanh(gates[r, 2 * H + j] + reset * gh[r, 2 * H + j])  # gh's n block: h W_hnᵀ + b_hn
            gates[r, j], gates[r, H + j], gates[r, 2 * H + j] = reset, z, n
            new[r, j] = (h[r, j] - n) * z + n
    return _finite(X)


@njit(cache=True, error_model="numpy", fastmath=STEP_FASTMATH)
def rnn_step(X, h, relu, W_ih, W_hh, b_ih, b_hh, split, new):
    """new (B, H) ← h'. Returns whether X is finite."""
    scratch = np.empty_like(h)
    _pre_activations(X, h, W_ih, W_hh, b_ih, b_hh, new, scratch, split)
    zero = new.dtype.type(0)
    for r in range(X.shape[0]):
        for j in range(h.shape[1]):
            s = new[r, j] + scratch[r, j]
            new[r, j] = max(s, zero) if relu else tanh(s)
    return _finite(X)


_NONE = {np.dtype(t): np.empty(0, t) for t in (np.float32, np.float64)}  # the biases of a cell without them
_NOTHING = {np.dtype(t): np.empty((0, 0), t) for t in (np.float32, np.float64)}  # a cache not kept


def _arrays(weights, dtype, threads):
    """(W_ih, W_hh, b_ih, b_hh) Parameters, the biases None without them → the arrays the step
    kernels take (empty biases), and whether the step shares its gate rows between the kernels'
    threads (``threads()``, asked only from SPLIT_BYTES of weights; see the module's docstring)."""
    W_ih, W_hh, b_ih, b_hh = weights
    W_ih, W_hh = W_ih.data, W_hh.data
    b_ih, b_hh = (_NONE[dtype], _NONE[dtype]) if b_ih is None else (b_ih.data, b_hh.data)
    count = 1 if W_ih.nbytes + W_hh.nbytes < SPLIT_BYTES else threads()
    if count < 2:
        return W_ih, W_hh, b_ih, b_hh, False
    numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))
    return W_ih, W_hh, b_ih, b_hh, True


# The arrays a step fills are made here and passed in: the kernel then returns only a flag, where
# each array it returned would cost about 0.7 µs to hand to Python (at batch 1, a tenth of a step).
# Without ``keep`` (no gradient to come) the gates are not handed back at all.


def lstm_cell_step(X, states, weights, threads, check_x=None, keep=True):
    """(h', c'), the activated gates (B, 4H) and tanh c' (the cache), as ``LSTM_KIND.step`` (the
    last two None without ``keep``); ``weights``: (W_ih, W_hh, b_ih, b_hh), a cell's or one
    direction of a layer's; ``threads``: a function giving the kernels' thread count now
    (``backend.threads``); ``check_x``: the name under which NaN or infinite values in X are
    reported (a ``NonFiniteError``), or None where X was checked before."""
    B, H = states[1].shape
    new = np.empty((2, B, H), X.dtype)
    if keep:
        gates, tc = np.empty((B, 4 * H), X.dtype), np.empty((B, H), X.dtype)
    else:
        gates = tc = _NOTHING[X.dtype]
    if not lstm_step(X, *states, *_arrays(weights, X.dtype, threads), new, gates, tc) and check_x is not None:
        raise non_finite_error(X, check_x)
    return (new[0], new[1]), (gates if keep else None), (tc if keep else None)


def gru_cell_step(X, states, weights, threads, check_x=None, keep=True):
    """(h',), the activated gates (B, 3H) and h W_hnᵀ + b_hn (the cache), as ``GRU_KIND.step``."""
    B, H = states[0].shape
    new = np.empty((B, H), X.dtype)
    if keep:
        gates, gh = np.empty((B, 3 * H), X.dtype), np.empty((B, 3 * H), X.dtype)
    else:
        gates = gh = _NOTHING[X.dtype]
    if not gru_step(X, states[0], *_arrays(weights, X.dtype, threads), new, gates, gh) and check_x is not None:
        raise non_finite_error(X, check_x)
    return (new,), (gates if keep else None), (gh[:, 2 * H :] if keep else None)


def rnn_cell_step(X, states, weights, threads, check_x=None, keep=True, relu=False):
    """(h',), h' again as the gates (the reference's cache is the activation itself), None; with
    or without ``keep`` alike, since handing back h' twice costs nothing."""
    new = np.empty(states[0].shape, X.dtype)
    if not rnn_step(X, states[0], relu, *_arrays(weights, X.dtype, threads), new) and check_x is not None:
        raise non_finite_error(X, check_x)
    return (new,), new, None


def relu_rnn_cell_step(X, states, weights, threads, check_x=None, keep=True):
    """``rnn_cell_step`` with h' = relu(…) (the IRNN)."""
    return rnn_cell_step(X, states, weights, threads, check_x, keep, relu=True)
