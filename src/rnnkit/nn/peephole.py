"""The peephole LSTM (Gers, Schraudolph & Schmidhuber 2002): the gates also see the cell state.

    i = σ(x W_iiᵀ + b_ii + h_{t−1} W_hiᵀ + b_hi + p_i ⊙ c_{t−1})
    f = σ(x W_ifᵀ + b_if + h_{t−1} W_hfᵀ + b_hf + p_f ⊙ c_{t−1})
    g = tanh(x W_igᵀ + b_ig + h_{t−1} W_hgᵀ + b_hg)
    c_t = f ⊙ c_{t−1} + i ⊙ g
    o = σ(x W_ioᵀ + b_io + h_{t−1} W_hoᵀ + b_ho + p_o ⊙ c_t)      (o peeks at the new cell)
    h_t = o ⊙ tanh(c_t)

Parameters as ``LSTM`` (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``,
gate rows [i f g o]) and ``weight_peephole_l{k}`` (3H,) = [p_i, p_o, p_f]: the order of ONNX's
LSTM input ``P`` (shape (num_directions, 3H), "iof"), so an export stacks the directions' vectors
as they are. With zero peepholes the layer is ``LSTM`` exactly (the same operations in the same
order). Shapes, lengths and states as ``LSTM`` (no proj_size).
"""

from __future__ import annotations

import numpy as np

from . import cells, onnx_forms
from .functional import accumulate_weight_grads, affine, buffers, lstm_gate_affine, sigmoid_, step_gradient, store_state, sum_rows, time_steps
from .recurrent import LSTM, RNNBase, RNNCellBase


def peepholes(w):
    """(p_i, p_f, p_o), each (H,), from the ONNX-ordered (3H,) [p_i, p_o, p_f]."""
    P = w.extra["weight_peephole"].data
    H = P.shape[0] // 3
    return P[:H], P[2 * H :], P[H : 2 * H]


def peephole_step(gates, h_prev, c_prev, W_hh, p_i, p_f, p_o):
    """One step. gates: (B, 4H) the input projection, becomes [i f g o]; h_prev, c_prev: (B, H).
    Returns h, c, tc = tanh(c), each (B, H)."""
    H = c_prev.shape[1]
    gates += h_prev @ W_hh.T
    gates[:, :H] += c_prev * p_i
    gates[:, H : 2 * H] += c_prev * p_f
    # i, f, g in one tanh pass as in lstm_step; o must wait for c_t
    scale, shift = lstm_gate_affine(H, gates.dtype.type)
    ifg = gates[:, : 3 * H]
    ifg *= scale[: 3 * H]
    np.tanh(ifg, out=ifg)
    ifg *= scale[: 3 * H]
    ifg += shift[: 3 * H]
    i, f, g, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
    c = f * c_prev
    c += i * g
    o += c * p_o
    sigmoid_(o)
    tc = np.tanh(c)
    return o * tc, c, tc


def peephole_step_backward(dh, dc, gates, c_prev, c, tc, W_hh, p_i, p_f, p_o, out=None):
    """Backward of ``peephole_step``: dh, dc (B, H) the gradients of h_t and c_t (from step t+1).
    Returns dgates (B, 4H) (pre-activations), dh_prev, dc_prev."""
    H = c_prev.shape[1]
    i, f, g, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
    dgates = out if out is not None else np.empty_like(gates)
    da_i, da_f, da_g, da_o = dgates[:, :H], dgates[:, H : 2 * H], dgates[:, 2 * H : 3 * H], dgates[:, 3 * H :]
    # o = σ(a_o): ∂L/∂a_o = dh ⊙ tanh c_t ⊙ o(1 − o)
    np.multiply(dh, tc, out=da_o)
    da_o *= o * (1 - o)
    # ∂L/∂c_t = dc + dh ⊙ o ⊙ (1 − tanh² c_t) + ∂L/∂a_o ⊙ p_o   (o peeks at c_t)
    dct = 1 - tc * tc
    dct *= o
    dct *= dh
    dct += dc
    dct += da_o * p_o
    # c_t = f c_{t−1} + i g
    np.multiply(dct, g, out=da_i)
    da_i *= i * (1 - i)
    np.multiply(dct, c_prev, out=da_f)
    da_f *= f * (1 - f)
    np.multiply(dct, i, out=da_g)
    da_g *= 1 - g * g
    # c_{t−1} feeds c_t through f, and i and f through the peepholes
    dc_prev = dct * f
    dc_prev += da_i * p_i
    dc_prev += da_f * p_f
    return dgates, dgates @ W_hh, dc_prev


def peephole_grads(w, dA, C_prev, C):
    """The peepholes' gradient from all steps at once: Σ over steps and rows of the gate's
    pre-activation gradient times the cell state it saw; dA (N, 4H), C_prev, C (N, H)."""
    H = C.shape[1]
    dP = w.extra["weight_peephole"].grad
    dP[:H] += sum_rows(dA[:, :H] * C_prev)
    dP[H : 2 * H] += sum_rows(dA[:, 3 * H :] * C)
    dP[2 * H :] += sum_rows(dA[:, H : 2 * H] * C_prev)


def peephole_sequence(X, states, w, reverse, bs, keep):
    T, B, _ = X.shape
    h, c = (s.copy() for s in states)
    G = affine(X, w.W_ih.data, w.bias_x)
    p = peepholes(w)
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    if keep:
        H_prev, C_prev, C, TC = (alloc(Y.shape, X.dtype) for _ in range(4))
    for t in time_steps(T, reverse):
        b = bs[t]
        if keep:
            H_prev[t, :b] = h[:b]
            C_prev[t, :b] = c[:b]
        h_new, c_new, tc = peephole_step(G[t, :b], h[:b], c[:b], w.W_hh.data, *p)
        if keep:
            C[t, :b], TC[t, :b] = c_new, tc
        Y[t, :b] = h_new
        h = store_state(h, h_new, b, B)
        c = store_state(c, c_new, b, B)
    return Y, (h, c), ((X, G, H_prev, C_prev, C, TC) if keep else None)


def peephole_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    X, G, H_prev, C_prev, C, TC = cache
    T, B, _ = X.shape
    p = peepholes(w)
    dG = buffers(bs, B)(G.shape, G.dtype)
    dh, dc = (a.copy() for a in dstate)
    for t in time_steps(T, not reverse):
        b = bs[t]
        dh_t = step_gradient(dh, dY, t, b, norms)
        _, dh[:b], dc[:b] = peephole_step_backward(dh_t, dc[:b], G[t, :b], C_prev[t, :b], C[t, :b], TC[t, :b], w.W_hh.data, *p,
                                                   out=dG[t, :b])
    flat = lambda a: a.reshape(T * B, -1)  # noqa: E731
    peephole_grads(w, flat(dG), flat(C_prev), flat(C))
    return accumulate_weight_grads(w, X, H_prev, dG), (dh, dc)


def _step(gates, states, w):
    h, c, tc = peephole_step(gates, states[0], states[1], w.W_hh.data, *peepholes(w))
    return (h, c), (c, tc)


def _step_backward(d, gates, states, cache, w):
    c, tc = cache
    dgates, dh_prev, dc_prev = peephole_step_backward(d[0], d[1], gates, states[1], c, tc, w.W_hh.data, *peepholes(w))
    peephole_grads(w, dgates, states[1], c)
    return dgates, None, (dh_prev, dc_prev)


class PeepholeLSTM(RNNBase):
    """LSTM whose gates see the cell state (see the module docstring); arguments as ``LSTM``
    but for proj_size."""


class PeepholeLSTMCell(RNNCellBase):
    """One peephole-LSTM step: ``h', c' = cell(x, (h, c))``; parameters as ``LSTMCell`` and
    ``weight_peephole`` (3H,) in ONNX's order [p_i, p_o, p_f]."""


PeepholeLSTM.kind = PeepholeLSTMCell.kind = cells.register(cells.CellKind(
    name="peephole", about="LSTM with peepholes from the cell state to the gates (Gers et al. 2002), forget-gate bias 1",
    states=("h", "c"), gates=LSTM.kind.gates, layer=PeepholeLSTM, cell=PeepholeLSTMCell, init=LSTM.kind.init,
    blocks=4, extra_parameters=lambda module: {"weight_peephole": (3 * module.hidden_size,)},
    sequence=peephole_sequence, sequence_backward=peephole_sequence_backward, step=_step, step_backward=_step_backward,
    onnx=onnx_forms.LSTM))  # ONNX's LSTM with its P input
