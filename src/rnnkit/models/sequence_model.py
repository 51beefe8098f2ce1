"""A recurrent network with a linear head on its last step (many-to-one) or every step
(many-to-many, aligned): the model of the long-range experiments, and a base for classifiers
and taggers.

    x_t = Embedding(token_t)  or  the numeric input x_t
    h_t = cell(x_t, h_{t−1})            cell: tanh RNN, IRNN, LSTM, GRU, minGRU, minLSTM
    y   = Linear(h_T)  or  y_t = Linear(h_t)
"""

from __future__ import annotations

import numpy as np

from ..nn import GRU, LSTM, RNN, Embedding, Linear, MinGRU, MinLSTM, Module, init
from ..nn.module import as_rng

CELLS = ("rnn", "irnn", "lstm", "gru", "mingru", "minlstm")
# The largest numeric input a task's model reads, in standardised units: a value far outside what
# it learnt from (1e38 after a model trained on values near 1) is read as this, since saturating
# gates learn nothing more from a larger one and float32 products of larger ones overflow to inf.
INPUT_BOUND = 1e4


def make_recurrent(cell: str, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                   dropout: float = 0.0, dtype=np.float32, rng=None):
    """The recurrent layer a name stands for, with the initialisation that suits it: LSTM with
    forget-gate bias 1 (Jozefowicz et al. 2015), IRNN a ReLU RNN started at the identity with
    N(0, 0.001) input weights (Le et al. 2015). dropout acts between stacked layers."""
    rng = as_rng(rng)
    kw = dict(num_layers=num_layers, bidirectional=bidirectional, dtype=dtype, rng=rng)
    if cell in ("mingru", "minlstm"):
        if dropout and num_layers > 1:
            raise ValueError(f"dropout: {cell} layers have no dropout between layers, got dropout={dropout}")
        return (MinGRU if cell == "mingru" else MinLSTM)(input_size, hidden_size, **kw)
    kw["dropout"] = dropout if num_layers > 1 else 0.0
    if cell == "rnn":
        return RNN(input_size, hidden_size, **kw)
    if cell == "irnn":
        layer = init.identity_recurrent_(RNN(input_size, hidden_size, nonlinearity="relu", **kw))
        for name, p in layer.named_parameters():
            if name.startswith("weight_ih"):  # Le et al.: small Gaussian input weights
                p.data[...] = rng.normal(0.0, 0.001, p.shape)
        return layer
    if cell == "lstm":
        return init.forget_gate_bias_(LSTM(input_size, hidden_size, **kw), 1.0)
    if cell == "gru":
        return GRU(input_size, hidden_size, **kw)
    raise ValueError(f"cell: expected one of {', '.join(CELLS)}, got {cell!r}")


class SequenceModel(Module):
    """x: (T, B, input_size) floats, or (T, B) token ids when ``vocab_size`` is given.

    Output: (B, output_size) with ``many_to_one`` (the last step's state), else (T, B, output_size).
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, cell: str = "lstm", num_layers: int = 1,
                 many_to_one: bool = True, vocab_size: int = 0, dtype=np.float32, rng=None):
        super().__init__()
        rng = as_rng(rng)
        self.many_to_one, self.cell = many_to_one, cell
        if vocab_size:
            self.embedding = Embedding(vocab_size, input_size, dtype=dtype, rng=rng)
        self.rnn = make_recurrent(cell, input_size, hidden_size, num_layers, dtype=dtype, rng=rng)
        self.head = Linear(hidden_size, output_size, dtype=dtype, rng=rng)

    def forward(self, x):
        if "embedding" in self._modules:
            x = self.embedding(x)
        out, _ = self.rnn(x)
        self._push_cache(out.shape)
        return self.head(out[-1] if self.many_to_one else out)

    def backward(self, dy) -> None:
        shape = self._pop_cache()
        d_head = self.head.backward(dy)
        if self.many_to_one:
            d_out = np.zeros(shape, d_head.dtype)
            d_out[-1] = d_head
        else:
            d_out = d_head
        dx, _ = self.rnn.backward(d_out)
        if "embedding" in self._modules:
            self.embedding.backward(dx)
