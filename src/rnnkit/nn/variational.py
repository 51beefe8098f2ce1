"""An LSTM with variational (locked) dropout (Gal & Ghahramani 2016) and a weight-dropped
recurrent matrix (DropConnect on W_hh, as AWD-LSTM, Merity et al. 2018).

In training, each layer and direction draws, once per sequence (the same at every step):

    m_x ~ Bernoulli(1 − p_x)/(1 − p_x)  (B, I)    on the layer's input x_t
    m_h ~ Bernoulli(1 − p_h)/(1 − p_h)  (B, H)    on the state h_{t−1} that W_hh sees
    m_y ~ Bernoulli(1 − p_y)/(1 − p_y)  (B, H)    on the output y_t = h_t ⊙ m_y
    M   ~ Bernoulli(1 − p_w)/(1 − p_w)  (4H, H)   on W_hh: W̃_hh = W_hh ⊙ M

and runs the LSTM step on x_t ⊙ m_x, h_{t−1} ⊙ m_h and W̃_hh; the state carried on (and h_n)
is h_t itself. In eval nothing is dropped: the layer is ``LSTM``, as it is with every p = 0.
The masks come from the layer's ``rng`` (the model's one generator: a checkpoint resumes the
same draws). Parameters, shapes and states as ``LSTM`` (no proj_size). There is no cell: a
mask per sequence needs the whole sequence.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import cells, onnx_forms
from .functional import accumulate_weight_grads, affine, buffers, lstm_step, lstm_step_backward, step_gradient, store_state, time_steps
from .module import Parameter
from .recurrent import LSTM, RNNBase
from .validation import probability


#: the kind's settings (--cell-option), each a keyword argument of the layer
SETTINGS = {
    "dropout_x": cells.Setting(0.2, "locked dropout on the layer's input x_t", probability),
    "dropout_h": cells.Setting(0.0, "locked dropout on the state h_{t-1} that W_hh sees", probability),
    "dropout_y": cells.Setting(0.2, "locked dropout on the output y_t", probability),
    "weight_drop": cells.Setting(0.5, "DropConnect on the entries of W_hh", probability),
}


def locked_mask(rng: np.random.Generator, p: float, shape: tuple[int, ...], dtype) -> np.ndarray | None:
    """Inverted dropout's mask, kept units scaled by 1/(1 − p); None when p = 0 (nothing dropped)."""
    if not p:
        return None
    return (rng.random(shape) >= p).astype(dtype) / dtype.type(1 - p)


def variational_masks(module, B: int, I: int, W_hh: np.ndarray):
    """(m_x, m_h, m_y, M) for one layer and direction, each None where nothing is dropped."""
    if not module.training:
        return None, None, None, None
    H, rng, dtype = W_hh.shape[1], module.rng, W_hh.dtype
    return (locked_mask(rng, module.dropout_x, (B, I), dtype), locked_mask(rng, module.dropout_h, (B, H), dtype),
            locked_mask(rng, module.dropout_y, (B, H), dtype), locked_mask(rng, module.weight_drop, W_hh.shape, dtype))


def variational_sequence(X, states, w, reverse, bs, keep):
    T, B, I = X.shape
    m_x, m_h, m_y, M = variational_masks(w.module, B, I, w.W_hh.data)
    X_in = X if m_x is None else X * m_x
    W_hh = w.W_hh.data if M is None else w.W_hh.data * M
    h, c = (s.copy() for s in states)
    G = affine(X_in, w.W_ih.data, w.bias_x)
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    if keep:
        H_prev, C_prev, TC = (alloc(Y.shape, X.dtype) for _ in range(3))
    for t in time_steps(T, reverse):
        b = bs[t]
        h_seen = h[:b] if m_h is None else h[:b] * m_h[:b]
        if keep:
            H_prev[t, :b] = h_seen  # what W̃_hh multiplied: its gradient's other factor
            C_prev[t, :b] = c[:b]
        h_new, c_new, tc = lstm_step(G[t, :b], h_seen, c[:b], W_hh)
        if keep:
            TC[t, :b] = tc
        Y[t, :b] = h_new if m_y is None else h_new * m_y[:b]
        h = store_state(h, h_new, b, B)
        c = store_state(c, c_new, b, B)
    return Y, (h, c), ((X_in, G, H_prev, C_prev, TC, W_hh, (m_x, m_h, m_y, M)) if keep else None)


def variational_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    X_in, G, H_prev, C_prev, TC, W_hh, (m_x, m_h, m_y, M) = cache
    T, B, _ = X_in.shape
    dG = buffers(bs, B)(G.shape, G.dtype)
    if m_y is not None:
        dY = dY * m_y
    dh, dc = (a.copy() for a in dstate)
    for t in time_steps(T, not reverse):
        b = bs[t]
        dh_t = step_gradient(dh, dY, t, b, norms)
        _, dh_seen, dc[:b] = lstm_step_backward(dh_t, dc[:b], G[t, :b], C_prev[t, :b], TC[t, :b], W_hh, out=dG[t, :b])
        dh[:b] = dh_seen if m_h is None else dh_seen * m_h[:b]
    # the steps used W̃_hh = W_hh ⊙ M: its gradient, masked, is W_hh's
    dropped = w.W_hh if M is None else Parameter(W_hh)
    dX = accumulate_weight_grads(SimpleNamespace(W_ih=w.W_ih, W_hh=dropped, b_ih=w.b_ih, b_hh=w.b_hh), X_in, H_prev, dG)
    if M is not None:
        w.W_hh.grad += dropped.grad * M
    return (dX if m_x is None else dX * m_x), (dh, dc)


class VariationalLSTM(RNNBase):
    """LSTM with locked dropout on its input, state and output and a weight-dropped W_hh (see
    the module docstring); arguments as ``LSTM`` but for proj_size, and the probabilities
    dropout_x, dropout_h, dropout_y (inputs, state, outputs) and weight_drop (W_hh's entries)."""

    def __init__(self, input_size, hidden_size, num_layers=1, dropout_x=SETTINGS["dropout_x"].default,
                 dropout_h=SETTINGS["dropout_h"].default, dropout_y=SETTINGS["dropout_y"].default,
                 weight_drop=SETTINGS["weight_drop"].default, **kwargs):
        self.dropout_x, self.dropout_h = probability(dropout_x, "dropout_x"), probability(dropout_h, "dropout_h")
        self.dropout_y, self.weight_drop = probability(dropout_y, "dropout_y"), probability(weight_drop, "weight_drop")
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def extra_repr(self) -> str:
        return (super().extra_repr() + f", dropout_x={self.dropout_x}, dropout_h={self.dropout_h}, "
                f"dropout_y={self.dropout_y}, weight_drop={self.weight_drop}")


VariationalLSTM.kind = cells.register(cells.CellKind(
    name="variational", about="LSTM with variational dropout on input, output and state, and a weight-dropped W_hh "
    "(Gal & Ghahramani 2016; Merity et al. 2018), forget-gate bias 1",
    states=("h", "c"), gates=LSTM.kind.gates, layer=VariationalLSTM, init=LSTM.kind.init,
    settings=SETTINGS, blocks=4,
    sequence=variational_sequence, sequence_backward=variational_sequence_backward,
    onnx=onnx_forms.LSTM))  # in eval nothing is dropped: an LSTM
