"""A recurrent language model: next-token logits from token ids, with an optional class condition.

    e_t = Dropout(Embedding(x_t))
    h_t = RNN(e_t, h_{t−1})                      (any registered kind, stacked; dropout between layers)
    z_t = Linear(Dropout(h_t))                   (z_t: logits over the vocabulary)

One input, many outputs: with ``num_conditions > 0`` a class label c chooses the initial state,
``h_0 = tanh(C[c])`` (and every other state part, ``c_0`` of an LSTM, likewise), so generation from a label alone writes
in that class's style. Weight tying (Press & Wolf 2017) shares the embedding with the output
layer; it needs ``hidden_size == embed_size``.

init (``sequence_model.INITS``): "rnnkit" draws the tied matrix U(±0.1), as AWD-LSTM, and the
condition embedding ×0.1; "torch" leaves every parameter as torch.nn's modules draw it (a tied
matrix is the embedding's N(0, 1), as ``head.weight = embedding.weight`` leaves it in torch).
"""

from __future__ import annotations

import numpy as np

from ..nn import Dropout, Embedding, Linear, Module, cells
from ..nn.module import as_rng
from .sequence_model import get_init, make_recurrent


class LanguageModel(Module):
    def __init__(
        self,
        vocab_size: int,
        embed_size: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.0,
        tie_weights: bool = False,
        num_conditions: int = 0,
        dtype=np.float32,
        rng=None,
        cell_settings=None,
        init: str = "rnnkit",
    ):
        super().__init__()
        self.kind = cells.get(cell)
        own = get_init(init).own
        if tie_weights and hidden_size != embed_size:
            raise ValueError(f"tie_weights: needs hidden_size == embed_size, got {hidden_size} and {embed_size}")
        # One generator for every random draw of the model (init, dropout masks), so a checkpoint
        # that saves its state resumes the exact same stream.
        self.rng = as_rng(rng)
        self.cell, self.num_conditions = cell, int(num_conditions)
        self.embedding = Embedding(vocab_size, embed_size, dtype=dtype, rng=self.rng)
        self.rnn = make_recurrent(cell, embed_size, hidden_size, num_layers, dropout=dropout, dtype=dtype, rng=self.rng,
                                  init=init, **(cell_settings or {}))
        self.drop_in = Dropout(dropout, rng=self.rng)
        self.drop_out = Dropout(dropout, rng=self.rng)
        self.head = Linear(hidden_size, vocab_size, dtype=dtype, rng=self.rng)
        if tie_weights:
            if own:  # small, as AWD-LSTM: the shared matrix now also scales the logits
                self.embedding.weight.data[...] = self.rng.uniform(-0.1, 0.1, self.embedding.weight.shape)
            self.head.weight = self.embedding.weight
        if self.num_conditions:
            parts = len(self.kind.states)
            self.condition = Embedding(self.num_conditions, parts * num_layers * hidden_size, dtype=dtype, rng=self.rng)
            if own:
                self.condition.weight.data *= 0.1  # start near the zero state

    def _condition_state(self, condition):
        """The state class labels give, and tanh(C[c]) for backward. condition: (B,) ints."""
        emb = np.tanh(self.condition(np.asarray(condition).reshape(-1)))  # (B, parts·L·H)
        L, H = self.rnn.num_layers, self.rnn.hidden_size
        states = emb.reshape(emb.shape[0], -1, L, H).transpose(1, 2, 0, 3)  # (parts, L, B, H)
        return (tuple(states) if len(states) > 1 else states[0]), emb

    def forward(self, ids, state=None, condition=None):
        """ids: (T, B) ints → logits (T, B, V) and the final state.

        state: carried from the previous window (truncated BPTT), or None; a conditional
        model given ``condition`` (B,) and no state starts from the condition's state.
        """
        tanh_states = None
        if state is None and condition is not None:
            if not self.num_conditions:
                raise ValueError("condition: this model was trained without conditions")
            state, tanh_states = self._condition_state(condition)
        out, state = self.rnn(self.drop_in(self.embedding(ids)), state)
        logits = self.head(self.drop_out(out))
        self._push_cache(tanh_states)
        return logits, state

    def backward(self, d_logits) -> None:
        """Gradients of the logits in; adds into every parameter's .grad.

        The gradient of a carried state stops here (truncated BPTT); that of a condition's
        state flows into the condition embedding.
        """
        tanh_states = self._pop_cache()
        d_out = self.drop_out.backward(self.head.backward(d_logits))
        dx, d_state = self.rnn.backward(d_out)
        self.embedding.backward(self.drop_in.backward(dx))
        if tanh_states is not None:
            parts = d_state if isinstance(d_state, tuple) else (d_state,)
            d_emb = np.stack(parts).transpose(2, 0, 1, 3).reshape(tanh_states.shape)  # back to (B, parts·L·H)
            self.condition.backward(d_emb * (1 - tanh_states * tanh_states))

    def extra_repr(self) -> str:
        return f"cell={self.cell!r}, conditions={self.num_conditions}"
