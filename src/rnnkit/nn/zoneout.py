"""Zoneout (Krueger et al. 2017) on an LSTM's h and c: in training, each unit keeps its
previous value with probability p, a fresh mask at every step; in eval, the expectation.

    h̃_t, c̃_t = LSTM step (x_t, h_{t−1}, c_{t−1})                  (``functional.lstm_step``)
    c_t = d^c_t ⊙ c_{t−1} + (1 − d^c_t) ⊙ c̃_t,     d^c_t ~ Bernoulli(p_c)   (eval: d^c = p_c)
    h_t = d^h_t ⊙ h_{t−1} + (1 − d^h_t) ⊙ h̃_t,     d^h_t ~ Bernoulli(p_h)   (eval: d^h = p_h)

h̃_t = o ⊙ tanh(c̃_t) uses the cell before its zoneout, as the paper's equations (and
TensorFlow's ZoneoutWrapper) do. The masks come from the layer's ``rng`` (the model's one
generator, so a checkpoint resumes the same draws); rows past a sequence's end draw nothing
that matters, as their state is left alone. Parameters, shapes and states as ``LSTM`` (no
proj_size); with p_h = p_c = 0 it is ``LSTM`` exactly. The paper's rates for an LSTM are
p_c = 0.5 and p_h = 0.05, the defaults.
"""

from __future__ import annotations

import numpy as np

from . import cells, onnx_forms
from .functional import accumulate_weight_grads, affine, buffers, lstm_step, lstm_step_backward, step_gradient, store_state, time_steps
from .module import as_rng
from .recurrent import LSTM, RNNBase, RNNCellBase
from .validation import probability


#: the kind's settings (--cell-option), each a keyword argument of the layer and the cell; the
#: defaults are the paper's rates for an LSTM
SETTINGS = {
    "zoneout_h": cells.Setting(0.05, "probability p_h that a unit of h keeps its previous value", probability),
    "zoneout_c": cells.Setting(0.5, "probability p_c that a unit of c keeps its previous value", probability),
}
P_H, P_C = SETTINGS["zoneout_h"].default, SETTINGS["zoneout_c"].default


def zoneout_masks(module, shape: tuple[int, ...], dtype) -> tuple[np.ndarray, np.ndarray]:
    """(d^h, d^c): 1 where a unit keeps its previous value, drawn for ``shape`` in training;
    in eval the expectations p_h, p_c (0-d arrays, broadcast)."""
    if module.training:
        return tuple((module.rng.random(shape) < p).astype(dtype) for p in (module.zoneout_h, module.zoneout_c))
    return np.asarray(module.zoneout_h, dtype), np.asarray(module.zoneout_c, dtype)


def at(D: np.ndarray, t: int, b: int) -> np.ndarray:
    """Step t's mask for its b active rows (a drawn (T, B, H) mask), or the eval constant."""
    return D[t, :b] if D.ndim else D


def zone(new, prev, d):
    """d ⊙ prev + (1 − d) ⊙ new: with a drawn d ∈ {0, 1}, exactly prev or new."""
    out = d * prev
    out += (1 - d) * new
    return out


def zoneout_sequence(X, states, w, reverse, bs, keep):
    T, B, _ = X.shape
    h, c = (s.copy() for s in states)
    G = affine(X, w.W_ih.data, w.bias_x)
    Dh, Dc = zoneout_masks(w.module, (T, B, h.shape[1]), X.dtype)
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    if keep:
        H_prev, C_prev, TC = (alloc(Y.shape, X.dtype) for _ in range(3))
    for t in time_steps(T, reverse):
        b = bs[t]
        if keep:
            H_prev[t, :b] = h[:b]
            C_prev[t, :b] = c[:b]
        h_tilde, c_tilde, tc = lstm_step(G[t, :b], h[:b], c[:b], w.W_hh.data)
        if keep:
            TC[t, :b] = tc
        h_new = zone(h_tilde, h[:b], at(Dh, t, b))
        Y[t, :b] = h_new
        h = store_state(h, h_new, b, B)
        c = store_state(c, zone(c_tilde, c[:b], at(Dc, t, b)), b, B)
    return Y, (h, c), ((X, G, H_prev, C_prev, TC, Dh, Dc) if keep else None)


def zoneout_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    X, G, H_prev, C_prev, TC, Dh, Dc = cache
    T, B, _ = X.shape
    dG = buffers(bs, B)(G.shape, G.dtype)
    dh, dc = (a.copy() for a in dstate)
    for t in time_steps(T, not reverse):
        b = bs[t]
        dh_t = step_gradient(dh, dY, t, b, norms)
        d_h, d_c = at(Dh, t, b), at(Dc, t, b)
        dc_t = dc[:b]
        # the kept part goes straight to the previous state, the rest through the LSTM step
        _, dh_prev, dc_prev = lstm_step_backward(dh_t * (1 - d_h), dc_t * (1 - d_c), G[t, :b], C_prev[t, :b], TC[t, :b],
                                                 w.W_hh.data, out=dG[t, :b])
        dh_prev += d_h * dh_t
        dc_prev += d_c * dc_t
        dh[:b], dc[:b] = dh_prev, dc_prev
    return accumulate_weight_grads(w, X, H_prev, dG), (dh, dc)


def _step(gates, states, w):
    h_prev, c_prev = states
    d_h, d_c = zoneout_masks(w.module, h_prev.shape, gates.dtype)
    h_tilde, c_tilde, tc = lstm_step(gates, h_prev, c_prev, w.W_hh.data)
    return (zone(h_tilde, h_prev, d_h), zone(c_tilde, c_prev, d_c)), (tc, d_h, d_c)


def _step_backward(d, gates, states, cache, w):
    tc, d_h, d_c = cache
    dgates, dh_prev, dc_prev = lstm_step_backward(d[0] * (1 - d_h), d[1] * (1 - d_c), gates, states[1], tc, w.W_hh.data)
    dh_prev += d_h * d[0]
    dc_prev += d_c * d[1]
    return dgates, None, (dh_prev, dc_prev)


class ZoneoutLSTM(RNNBase):
    """LSTM with zoneout on h and c (see the module docstring); arguments as ``LSTM`` but for
    proj_size, and zoneout_h, zoneout_c: the probabilities p_h, p_c that a unit keeps its value."""

    def __init__(self, input_size, hidden_size, num_layers=1, zoneout_h=P_H, zoneout_c=P_C, **kwargs):
        self.zoneout_h, self.zoneout_c = probability(zoneout_h, "zoneout_h"), probability(zoneout_c, "zoneout_c")
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", zoneout_h={self.zoneout_h}, zoneout_c={self.zoneout_c}"


class ZoneoutLSTMCell(RNNCellBase):
    """One zoneout-LSTM step, ``h', c' = cell(x, (h, c))``; the masks come from ``rng``."""

    def __init__(self, input_size, hidden_size, bias=True, zoneout_h=P_H, zoneout_c=P_C, dtype=np.float32, rng=None):
        self.zoneout_h, self.zoneout_c = probability(zoneout_h, "zoneout_h"), probability(zoneout_c, "zoneout_c")
        self.rng = as_rng(rng)
        super().__init__(input_size, hidden_size, bias, dtype, self.rng)


ZoneoutLSTM.kind = ZoneoutLSTMCell.kind = cells.register(cells.CellKind(
    name="zoneout", about="LSTM with zoneout on h and c (Krueger et al. 2017), forget-gate bias 1",
    states=("h", "c"), gates=LSTM.kind.gates, layer=ZoneoutLSTM, cell=ZoneoutLSTMCell, init=LSTM.kind.init, settings=SETTINGS,
    blocks=4, sequence=zoneout_sequence, sequence_backward=zoneout_sequence_backward, step=_step, step_backward=_step_backward,
    onnx=onnx_forms.scanned(onnx_forms.zoneout_lstm_step)))
