"""Many-to-many, aligned: one tag per token, from a (bi)directional recurrent network.

    e_t = Dropout(Embedding(x_t))
    h_t = [RNN→(e_1 … e_t); RNN←(e_t … e_len)]          (bidirectional by default)
    s_t = Linear(Dropout(h_t))                            (T, B, K): a score per tag

    softmax head:  L = −(1/N) Σ_t log softmax(s_t)[y_t]   over the N real tokens;  ŷ_t = argmax s_t
    CRF head:      L = −(1/B) Σ_b log p(y | s) under a linear-chain CRF; ŷ = Viterbi path

The CRF scores whole tag sequences (start, transitions, end), so it can learn that I-PER never
follows B-LOC, which a per-token softmax cannot (Lample et al. 2016, BiLSTM-CRF).
"""

from __future__ import annotations

import numpy as np

from ..nn import CRF, CrossEntropyLoss, Dropout, Embedding, Linear, Module, no_grad
from ..nn.module import as_rng
from ..nn.validation import sequence_lengths
from .sequence_model import make_recurrent

IGNORE = -100  # the target of padding steps for the softmax head


class SequenceTagger(Module):
    """x: (T, B) token ids, lengths: (B,) or None, tags: (T, B) ints in [0, num_tags)."""

    def __init__(self, num_tags: int, vocab_size: int, embed_size: int = 64, hidden_size: int = 128, cell: str = "lstm",
                 num_layers: int = 1, bidirectional: bool = True, dropout: float = 0.0, crf: bool = False,
                 dtype=np.float32, rng=None, cell_settings=None, init: str = "rnnkit"):
        super().__init__()
        self.rng = as_rng(rng)  # one generator for init and dropout, so a checkpoint resumes the same stream
        D = 2 if bidirectional else 1
        self.embedding = Embedding(vocab_size, embed_size, dtype=dtype, rng=self.rng)
        self.drop_in = Dropout(dropout, rng=self.rng)
        self.rnn = make_recurrent(cell, embed_size, hidden_size, num_layers, bidirectional, dropout, dtype=dtype, rng=self.rng,
                                  init=init, **(cell_settings or {}))
        self.drop_out = Dropout(dropout, rng=self.rng)
        self.head = Linear(D * hidden_size, num_tags, dtype=dtype, rng=self.rng)
        if crf:
            self.crf = CRF(num_tags, dtype=dtype, rng=self.rng)
        else:
            self.loss_fn = CrossEntropyLoss(ignore_index=IGNORE)

    @property
    def uses_crf(self) -> bool:
        return "crf" in self._modules

    def scores(self, x, lengths=None) -> np.ndarray:
        """s: (T, B, K), the per-token tag scores (the CRF's emissions)."""
        out, _ = self.rnn(self.drop_in(self.embedding(x)), lengths=lengths)
        return self.head(self.drop_out(out))

    def forward(self, x, tags, lengths=None) -> float:
        """The training loss (see the module docstring)."""
        s = self.scores(x, lengths)
        if self.uses_crf:
            return self.crf(s, tags, lengths)
        T, B = s.shape[:2]
        L = np.full(B, T) if lengths is None else sequence_lengths(lengths, T, B)
        targets = np.where(np.arange(T)[:, None] < L[None, :], tags, IGNORE)
        return self.loss_fn(s, targets)

    def backward(self) -> None:
        ds = self.crf.backward() if self.uses_crf else self.loss_fn.backward()
        dx, _ = self.rnn.backward(self.drop_out.backward(self.head.backward(ds)))
        self.embedding.backward(self.drop_in.backward(dx))

    def decode(self, x, lengths=None) -> np.ndarray:
        """The predicted tags (T, B); entries past each length are −1. Keeps nothing for backward."""
        with no_grad():
            s = self.scores(x, lengths)
        T, B = s.shape[:2]
        if self.uses_crf:
            paths, _ = self.crf.decode(s, lengths)
            return paths
        L = np.full(B, T) if lengths is None else sequence_lengths(lengths, T, B)
        return np.where(np.arange(T)[:, None] < L[None, :], s.argmax(axis=-1), -1)
