"""The recurrent equations, forward and backward, as pure functions on NumPy arrays.

Shapes: B batch rows, H hidden size, P output size of a step (P = H except for a projected
LSTM), T time steps. Gate blocks are stacked in PyTorch's order: RNN [a], LSTM [i f g o],
GRU [r z n].

A *step* takes ``gates``, this step's slice of the input projection ``x_t W_ihᵀ + b``
(computed for all steps before the loop, with one matrix product), and turns it in place
into the step's activations: that array is the cache its backward reads. Cells call the
steps directly; layers call the *sequence* functions below, which loop the same steps over
time and form the weight gradients after the loop with one matrix product each.

Variable lengths follow PyTorch's packed sequences: rows are sorted by length (longest
first), so at step t the active rows are a prefix ``[:bs[t]]`` and a finished row's state
is simply left alone. That gives the final state of every row at its own last step, and the
reverse direction starts each row at its own last real step, with no masking arithmetic.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

# ---- constants and sums -----------------------------------------------------------


FILLED_MAX = 2**20  # elements: larger constant arrays are not kept


@lru_cache(maxsize=8)
def _filled(value: float, dtype: np.dtype, size: int) -> np.ndarray:
    out = np.full(size, value, dtype)
    out.flags.writeable = False
    return out


def filled(value: float, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A read-only array of ``value``, from a cache (a few sizes, powers of 2, serve every shape).

    For np.maximum and np.minimum, which against a scalar take a slow path (three times an
    add) and against an array of the same shape a vectorised one; and for ``sum_rows``. Above
    FILLED_MAX elements it is a broadcast scalar: correct, slower, and nothing kept."""
    size = math.prod(shape)
    if size > FILLED_MAX:
        return np.broadcast_to(np.array(value, dtype), shape)
    return _filled(value, np.dtype(dtype), 1 << max(size - 1, 0).bit_length())[:size].reshape(shape)


def filled_like(x: np.ndarray, value: float) -> np.ndarray:
    return filled(value, x.shape, x.dtype)


def sum_rows(a: np.ndarray) -> np.ndarray:
    """Σ over axis −2: (N, C) → (C,), (G, N, C) → (G, C); a bias gradient.

    A product with a vector of ones: one BLAS call, 3–6× faster than ``a.sum(axis=−2)``, which
    adds the rows one by one just the same."""
    return np.matmul(filled(1.0, (a.shape[-2],), a.dtype), a)


# ---- activations ------------------------------------------------------------------


def log_softmax(z: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, with the maximum taken out first (z's dtype kept)."""
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def sigmoid(x: np.ndarray) -> np.ndarray:
    # σ(x) = ½ + ½·tanh(x/2): one tanh is cheaper than exp + add + divide, and never overflows.
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def sigmoid_(x: np.ndarray) -> np.ndarray:
    """In-place sigmoid."""
    x *= 0.5
    np.tanh(x, out=x)
    x *= 0.5
    x += 0.5
    return x


@lru_cache(maxsize=64)
def lstm_gate_affine(H: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    # i, f, o are sigmoids and g a tanh; with σ(x) = ½ + ½·tanh(x/2) all four gates are
    # scale · tanh(scale · x) + shift, one pass of each operation over the whole (B, 4H) block.
    scale = np.array([0.5] * (2 * H) + [1.0] * H + [0.5] * H, dtype=dtype)
    shift = np.array([0.5] * (2 * H) + [0.0] * H + [0.5] * H, dtype=dtype)
    return scale, shift


# ---- steps ----------------------------------------------------------------------------


def rnn_step(a: np.ndarray, h_prev: np.ndarray, W_hh: np.ndarray, relu: bool) -> np.ndarray:
    """h_t = f(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh), f = tanh or relu.

    a: (B, H), the input projection with both biases; becomes h_t, which is also the cache.
    """
    a += h_prev @ W_hh.T
    if relu:
        np.maximum(a, 0, out=a)
    else:
        np.tanh(a, out=a)
    return a


def rnn_step_backward(dh: np.ndarray, h: np.ndarray, W_hh: np.ndarray, relu: bool, out=None):
    """dh: (B, H) ∂L/∂h_t. Returns da (B, H), the gradient of the pre-activation, and dh_prev."""
    da = out if out is not None else np.empty_like(dh)
    if relu:
        np.multiply(dh, h > 0, out=da)
    else:
        np.multiply(h, h, out=da)
        np.subtract(1, da, out=da)
        da *= dh  # (1 − h²) · dh
    return da, da @ W_hh


def lstm_cell_update(gates, c_prev):
    """Activate an LSTM's gates in place, [i f g o] = σ, σ, tanh, σ of the pre-activations in
    ``gates`` (B, 4H), and return c_t = f ⊙ c_{t−1} + i ⊙ g (B, H). Every LSTM kind's step."""
    H = c_prev.shape[1]
    scale, shift = lstm_gate_affine(H, gates.dtype.type)  # all four gates in one tanh pass
    gates *= scale
    np.tanh(gates, out=gates)
    gates *= scale
    gates += shift
    c = gates[:, H : 2 * H] * c_prev
    c += gates[:, :H] * gates[:, 2 * H : 3 * H]
    return c


def lstm_step(gates, h_prev, c_prev, W_hh, W_hr=None):
    """One LSTM step.

        i, f, g, o = σ(·), σ(·), tanh(·), σ(·) of (x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh)
        c_t = f ⊙ c_{t−1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)            (then h_t W_hrᵀ with a projection)

    gates: (B, 4H), becomes [i f g o]; h_prev: (B, P); c_prev: (B, H).
    Returns h (B, P), c (B, H), tc = tanh(c) (B, H).
    """
    gates += h_prev @ W_hh.T
    c = lstm_cell_update(gates, c_prev)
    tc = np.tanh(c)
    h = gates[:, 3 * c.shape[1] :] * tc  # o ⊙ tanh(c_t)
    if W_hr is not None:
        h = h @ W_hr.T
    return h, c, tc


def lstm_step_backward(dh, dc, gates, c_prev, tc, W_hh, W_hr=None, out=None):
    """Backward of ``lstm_step``.

    dh: (B, P) ∂L/∂h_t; dc: (B, H) ∂L/∂c_t from step t+1; gates, c_prev, tc: the step's cache.
    Returns dgates (B, 4H) (pre-activation gradients), dh_prev (B, P), dc_prev (B, H).
    """
    H = c_prev.shape[1]
    if W_hr is not None:
        dh = dh @ W_hr
    # ∂L/∂c_t = dc + dh ⊙ o ⊙ (1 − tanh² c_t)
    dct = tc * tc
    np.subtract(1, dct, out=dct)
    dct *= gates[:, 3 * H :]
    dct *= dh
    dct += dc
    dgates = lstm_gate_gradients(dct, dh, gates, c_prev, tc, out)
    return dgates, dgates @ W_hh, dct * gates[:, H : 2 * H]


def lstm_gate_gradients(dct, dh, gates, c_prev, tanh_c, out=None):
    """The backward of ``lstm_cell_update`` and of h_t = o ⊙ tanh_c: the gates' pre-activation
    gradients (B, 4H) from dct = ∂L/∂c_t and dh = ∂L/∂h_t. Every LSTM kind's step backward."""
    H = c_prev.shape[1]
    i, g = gates[:, :H], gates[:, 2 * H : 3 * H]
    # ∂L/∂ of each activation: i ← dc·g, f ← dc·c_{t−1}, g ← dc·i, o ← dh·tanh c_t
    dgates = out if out is not None else np.empty_like(gates)
    np.multiply(dct, g, out=dgates[:, :H])
    np.multiply(dct, c_prev, out=dgates[:, H : 2 * H])
    np.multiply(dct, i, out=dgates[:, 2 * H : 3 * H])
    np.multiply(dh, tanh_c, out=dgates[:, 3 * H :])
    # through the activations, all four blocks at once: σ' = σ(1 − σ), and tanh' = 1 − g² for g
    slope = 1 - gates
    slope *= gates
    np.multiply(g, g, out=slope[:, 2 * H : 3 * H])
    np.subtract(1, slope[:, 2 * H : 3 * H], out=slope[:, 2 * H : 3 * H])
    dgates *= slope
    return dgates


def gru_step(gates, h_prev, W_hh, b_hn=None):
    """One GRU step (PyTorch's form: the reset gate multiplies W_hn h + b_hn).

        r = σ(x_t W_irᵀ + b_ir + h W_hrᵀ + b_hr)
        z = σ(x_t W_izᵀ + b_iz + h W_hzᵀ + b_hz)
        n = tanh(x_t W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn))
        h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

    gates: (B, 3H) holding the input projection plus b_hr, b_hz; becomes [r z n].
    Returns h (B, H) and hn = h_{t−1} W_hnᵀ + b_hn (B, H), which backward needs.
    """
    H = h_prev.shape[1]
    gh = h_prev @ W_hh.T
    hn = gh[:, 2 * H :]
    if b_hn is not None:
        hn += b_hn
    rz = gates[:, : 2 * H]
    rz += gh[:, : 2 * H]
    sigmoid_(rz)
    r, z, n = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
    n += r * hn
    np.tanh(n, out=n)
    h = h_prev - n
    h *= z
    h += n
    return h, hn


def gru_gate_gradients(dh, gates, hn, h_prev, out=None, out_h=None):
    """The gate part of ``gru_step``'s backward, which the layer-normalised GRU shares.

    Returns dgates (B, 3H), the gradient of the input-side pre-activations [r z n], and
    dgates_h (B, 3H), that of the hidden side (the same but for the n block, times r).
    """
    H = h_prev.shape[1]
    r, z, n = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
    dgates = out if out is not None else np.empty_like(gates)
    dr, dz, dn = dgates[:, :H], dgates[:, H : 2 * H], dgates[:, 2 * H :]
    np.multiply(dh, 1 - z, out=dn)
    dn *= 1 - n * n
    np.multiply(dn, hn, out=dr)
    dr *= r * (1 - r)
    np.subtract(h_prev, n, out=dz)
    dz *= dh
    dz *= z * (1 - z)
    dgates_h = out_h if out_h is not None else np.empty_like(gates)
    dgates_h[...] = dgates
    dgates_h[:, 2 * H :] *= r  # the hidden side of n sits behind the reset gate
    return dgates, dgates_h


def gru_step_backward(dh, gates, hn, h_prev, W_hh, out=None, out_h=None):
    """Backward of ``gru_step``: (dgates, dgates_h) as ``gru_gate_gradients``, and dh_prev."""
    H = h_prev.shape[1]
    dgates, dgates_h = gru_gate_gradients(dh, gates, hn, h_prev, out, out_h)
    dh_prev = dgates_h @ W_hh
    dh_prev += dh * gates[:, H : 2 * H]  # h_t = … + z ⊙ h_{t−1}
    return dgates, dgates_h, dh_prev


# ---- sequences (one direction of one layer) ---------------------------------------------
#
# The contract of ``cells.CellKind.sequence``: each forward takes the initial state as a tuple
# (h,) or (h, c) and returns (Y, state, cache): Y (T, B, P) the outputs, zero past each row's
# end; state the final (h,) or (h, c); cache None when keep is False (inference), else a tuple
# whose second entry is the activated gates (T, B, G·H), which diagnostics read.
# Each backward takes dY and the gradients of the final state and returns dX and those of the
# initial state, adding the weight gradients into the Parameters' .grad. Given ``norms`` (T,),
# it also records ‖∂L/∂h_t‖ at every step: the gradient flow over time that diagnostics plot.


def step_gradient(dh, dY, t: int, b: int, norms=None):
    """∂L/∂h_t of the active rows: what comes back from step t+1 plus what the output at t
    receives, (b, P); with ``norms``, its norm is recorded at ``norms[t]``."""
    dh_t = dh[:b] + dY[t, :b]
    if norms is not None:
        norms[t] = np.linalg.norm(dh_t.astype(np.float64))  # float32 squares underflow below ~1e-22
    return dh_t


def time_steps(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def affine(X, W, bias):
    """``X Wᵀ + bias`` on the last axis, (*, I) → (*, O), as one 2-D matrix product: a layer's
    input projection for all steps at once. (NumPy's matmul of a stacked (T, B, I) array makes
    one small product per leading index, 2–3× slower.)"""
    Y = X.reshape(-1, X.shape[-1]) @ W.T
    if bias is not None:
        Y += bias
    return Y.reshape(*X.shape[:-1], W.shape[0])


def affine_backward(dY, X, W, dW, db):
    """The backward of ``affine`` over the rows: dW += dYᵀ X, db += Σ_rows dY (db None: no bias);
    returns dX = dY W. dY (N, O), X (N, I), W and dW (O, I) → dX (N, I)."""
    dW += dY.T @ X
    if db is not None:
        db += sum_rows(dY)
    return dY @ W


def accumulate_weight_grads(w, X, H_prev, dG_x, dG_h=None):
    """One matrix product each for W_ih, W_hh and the biases; returns dX (T, B, I).

    dG_x: (T, B, G·H) gradients of the input-side pre-activations; dG_h those of the
    hidden side where they differ (GRU), else the same array.
    """
    T, B, I = X.shape
    dG_x2 = dG_x.reshape(T * B, -1)
    dG_h2 = dG_x2 if dG_h is None else dG_h.reshape(T * B, -1)
    w.W_ih.grad += dG_x2.T @ X.reshape(T * B, I)
    w.W_hh.grad += dG_h2.T @ H_prev.reshape(T * B, -1)
    if w.b_ih is not None:
        db_x = sum_rows(dG_x2)
        w.b_ih.grad += db_x
        w.b_hh.grad += db_x if dG_h is None else sum_rows(dG_h2)
    return (dG_x2 @ w.W_ih.data).reshape(T, B, I)


def accumulate_projection_grad(w, dH, G, TC):
    """W_hr's gradient: dH (T, B, P), ∂L/∂h_t, against the projection's input o ⊙ tanh c_t,
    from the activated gates G (T, B, 4H) and TC (T, B, H)."""
    T, B, H = TC.shape
    h_full = G[:, :, 3 * H :] * TC
    w.W_hr.grad += dH.reshape(T * B, -1).T @ h_full.reshape(T * B, H)


def buffers(bs, B):
    """Allocator for per-step buffers: rows past a sequence's end must read as zeros (they are
    multiplied by zero gradients, and 0·garbage can be NaN); without such rows, skip the fill."""
    return np.empty if bs[-1] == B else np.zeros


def store_state(state, new, b, B):
    """Write the active rows' new state; a full batch just takes the new array."""
    if b == B:
        return new
    state[:b] = new
    return state


def rnn_sequence(X, states, w, reverse, bs, keep, relu=False):
    T, B, _ = X.shape
    (h,) = states
    G = affine(X, w.W_ih.data, w.bias_x)
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    H_prev = alloc(Y.shape, X.dtype) if keep else None
    h = h.copy()
    for t in time_steps(T, reverse):
        b = bs[t]
        if keep:
            H_prev[t, :b] = h[:b]
        h_new = rnn_step(G[t, :b], h[:b], w.W_hh.data, relu)
        Y[t, :b] = h_new
        h = store_state(h, h_new.copy() if b == B else h_new, b, B)
    return Y, (h,), ((X, G, H_prev) if keep else None)


def rnn_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None, relu=False):
    X, Hs, H_prev = cache  # Hs: the outputs h_t, the steps' cache
    T, B, _ = X.shape
    dA = buffers(bs, B)(Hs.shape, Hs.dtype)
    (dh,) = dstate
    dh = dh.copy()
    for t in time_steps(T, not reverse):
        b = bs[t]
        dh_t = step_gradient(dh, dY, t, b, norms)
        _, dh[:b] = rnn_step_backward(dh_t, Hs[t, :b], w.W_hh.data, relu, out=dA[t, :b])
    return accumulate_weight_grads(w, X, H_prev, dA), (dh,)


def lstm_sequence(X, states, w, reverse, bs, keep):
    T, B, _ = X.shape
    h, c = states
    G = affine(X, w.W_ih.data, w.bias_x)
    W_hr = None if w.W_hr is None else w.W_hr.data
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    if keep:
        H_prev, C_prev, TC = alloc(Y.shape, X.dtype), alloc((T, B, c.shape[1]), X.dtype), alloc((T, B, c.shape[1]), X.dtype)
    h, c = h.copy(), c.copy()
    for t in time_steps(T, reverse):
        b = bs[t]
        if keep:
            H_prev[t, :b] = h[:b]
            C_prev[t, :b] = c[:b]
        h_new, c_new, tc = lstm_step(G[t, :b], h[:b], c[:b], w.W_hh.data, W_hr)
        if keep:
            TC[t, :b] = tc
        Y[t, :b] = h_new
        h = store_state(h, h_new, b, B)
        c = store_state(c, c_new, b, B)
    return Y, (h, c), ((X, G, H_prev, C_prev, TC) if keep else None)


def lstm_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    X, G, H_prev, C_prev, TC = cache
    T, B, _ = X.shape
    W_hr = None if w.W_hr is None else w.W_hr.data
    alloc = buffers(bs, B)
    dG = alloc(G.shape, G.dtype)
    dH = alloc(H_prev.shape, G.dtype) if W_hr is not None else None
    dh, dc = (a.copy() for a in dstate)
    for t in time_steps(T, not reverse):
        b = bs[t]
        dh_t = step_gradient(dh, dY, t, b, norms)
        if dH is not None:
            dH[t, :b] = dh_t
        _, dh[:b], dc[:b] = lstm_step_backward(
            dh_t, dc[:b], G[t, :b], C_prev[t, :b], TC[t, :b], w.W_hh.data, W_hr, out=dG[t, :b]
        )
    if dH is not None:
        accumulate_projection_grad(w, dH, G, TC)
    return accumulate_weight_grads(w, X, H_prev, dG), (dh, dc)


def gru_sequence(X, states, w, reverse, bs, keep):
    T, B, _ = X.shape
    (h,) = states
    G = affine(X, w.W_ih.data, w.bias_x)
    b_hn = None if w.b_hh is None else w.b_hh.data[2 * h.shape[1] :]
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    if keep:
        H_prev, HN = alloc(Y.shape, X.dtype), alloc(Y.shape, X.dtype)
    h = h.copy()
    for t in time_steps(T, reverse):
        b = bs[t]
        if keep:
            H_prev[t, :b] = h[:b]
        h_new, hn = gru_step(G[t, :b], h[:b], w.W_hh.data, b_hn)
        if keep:
            HN[t, :b] = hn
        Y[t, :b] = h_new
        h = store_state(h, h_new, b, B)
    return Y, (h,), ((X, G, H_prev, HN) if keep else None)


def gru_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    X, G, H_prev, HN = cache
    T, B, _ = X.shape
    alloc = buffers(bs, B)
    dG, dG_h = alloc(G.shape, G.dtype), alloc(G.shape, G.dtype)
    (dh,) = dstate
    dh = dh.copy()
    for t in time_steps(T, not reverse):
        b = bs[t]
        dh_t = step_gradient(dh, dY, t, b, norms)
        _, _, dh[:b] = gru_step_backward(dh_t, G[t, :b], HN[t, :b], H_prev[t, :b], w.W_hh.data, out=dG[t, :b], out_h=dG_h[t, :b])
    return accumulate_weight_grads(w, X, H_prev, dG, dG_h), (dh,)
