"""Many-to-one: a recurrent network read into one vector per sequence, and a linear head.

    e_t = Dropout(Embedding(x_t))   (token ids)   or   x_t   (numeric features)
    h_t = RNN(e_t, h_{t−1})               stacked, optionally bidirectional: D·H features
    v   = pool(h_1 … h_len)               last | mean | max | attention, over each sequence's own steps
    y   = Linear(Dropout(v))              (B, num_outputs): class logits, or the values of a regressor

Pooling (F = D·H features, len = the sequence's length):

    last       the forward direction at step len − 1 and the backward direction at step 0: what
               each direction read last
    mean       (1/len) Σ_t h_t
    max        max_t h_t, feature by feature
    attention  s_t = u · tanh(W h_t + b),  α = softmax_t(s),  v = Σ_t α_t h_t   (Yang et al. 2016)
"""

from __future__ import annotations

import numpy as np

from ..nn import Dropout, Embedding, Linear, Module, Parameter
from ..nn.module import as_rng
from ..nn.validation import sequence_lengths
from .sequence_model import make_recurrent

POOLINGS = ("last", "mean", "max", "attention")


class Pooling(Module):
    """One vector per sequence from the outputs of a recurrent layer: (T, B, F) → (B, F).

    ``weights``: with attention pooling, α (T, B) of the most recent forward (0 past each length),
    what a reader shades the tokens by; None otherwise."""

    def __init__(self, kind: str, features: int, directions: int = 1, attention_size: int = 64, dtype=np.float32, rng=None):
        super().__init__()
        if kind not in POOLINGS:
            raise ValueError(f"pooling: expected one of {', '.join(POOLINGS)}, got {kind!r}")
        self.kind, self.features, self.directions = kind, features, directions
        self.weights = None
        if kind == "attention":
            rng = as_rng(rng)
            self.score = Linear(features, attention_size, dtype=dtype, rng=rng)
            bound = 1.0 / np.sqrt(attention_size)
            self.u = Parameter(rng.uniform(-bound, bound, attention_size).astype(dtype))

    def extra_repr(self) -> str:
        return repr(self.kind)

    def forward(self, out: np.ndarray, lengths=None) -> np.ndarray:
        """out: (T, B, F), zero past each length; lengths: (B,) or None (all T) → (B, F)."""
        T, B, F = out.shape
        L = np.full(B, T) if lengths is None else sequence_lengths(lengths, T, B)
        rows = np.arange(B)
        inside = np.arange(T)[:, None] < L[None, :]  # (T, B)
        extra = None
        if self.kind == "last":
            H = F // self.directions
            pooled = out[L - 1, rows].copy()
            if self.directions == 2:
                pooled[:, H:] = out[0, :, H:]
        elif self.kind == "mean":
            pooled = (out * inside[:, :, None]).sum(axis=0) / L[:, None].astype(out.dtype)
        elif self.kind == "max":
            extra = np.where(inside[:, :, None], out, -np.inf).argmax(axis=0)  # (B, F): the step of each maximum
            pooled = np.take_along_axis(out, extra[None], axis=0)[0]
        else:
            a = np.tanh(self.score(out))  # (T, B, A)
            s = np.where(inside, a @ self.u.data, -np.inf)
            alpha = np.exp(s - s.max(axis=0))
            alpha /= alpha.sum(axis=0)
            pooled = np.einsum("tb,tbf->bf", alpha, out)
            extra = (a, alpha)
            self.weights = alpha
        self._push_cache((out, L, inside, extra))
        return pooled

    def backward(self, d: np.ndarray) -> np.ndarray:
        """d: (B, F) → d_out: (T, B, F)."""
        out, L, inside, extra = self._pop_cache()
        T, B, F = out.shape
        rows = np.arange(B)
        d_out = np.zeros_like(out)
        if self.kind == "last":
            H = F // self.directions
            d_out[L - 1, rows, :H] = d[:, :H]
            if self.directions == 2:
                d_out[0, :, H:] += d[:, H:]
        elif self.kind == "mean":
            d_out[...] = inside[:, :, None] * (d / L[:, None].astype(d.dtype))[None]
        elif self.kind == "max":
            np.put_along_axis(d_out, extra[None], d[None], axis=0)
        else:
            a, alpha = extra
            d_out[...] = alpha[:, :, None] * d[None]  # through v = Σ α_t h_t, holding α
            d_alpha = np.einsum("tbf,bf->tb", out, d)
            ds = alpha * (d_alpha - (alpha * d_alpha).sum(axis=0))  # softmax backward; 0 at hidden steps
            self.u.grad += np.einsum("tba,tb->a", a, ds)
            dz = ds[:, :, None] * self.u.data * (1 - a * a)
            d_out += self.score.backward(dz)
        return d_out


class SequenceClassifier(Module):
    """Token ids (T, B) with ``vocab_size`` > 0, or numeric features (T, B, input_size) otherwise;
    ``lengths`` (B,) marks each sequence's end. Output: (B, num_outputs)."""

    def __init__(self, num_outputs: int, hidden_size: int = 128, cell: str = "lstm", num_layers: int = 1,
                 bidirectional: bool = False, pooling: str = "last", vocab_size: int = 0, embed_size: int = 64,
                 input_size: int = 0, dropout: float = 0.0, attention_size: int = 64, dtype=np.float32, rng=None,
                 cell_settings=None, init: str = "rnnkit"):
        super().__init__()
        if bool(vocab_size) == bool(input_size):
            raise ValueError(f"give vocab_size (token input) or input_size (numeric input), got {vocab_size} and {input_size}")
        self.rng = as_rng(rng)  # one generator for init and dropout, so a checkpoint resumes the same stream
        if vocab_size:
            self.embedding = Embedding(vocab_size, embed_size, dtype=dtype, rng=self.rng)
            self.drop_in = Dropout(dropout, rng=self.rng)
        D = 2 if bidirectional else 1
        self.rnn = make_recurrent(cell, embed_size if vocab_size else input_size, hidden_size, num_layers, bidirectional,
                                  dropout, dtype=dtype, rng=self.rng, init=init, **(cell_settings or {}))
        self.pool = Pooling(pooling, D * hidden_size, D, attention_size, dtype=dtype, rng=self.rng)
        self.drop = Dropout(dropout, rng=self.rng)
        self.head = Linear(D * hidden_size, num_outputs, dtype=dtype, rng=self.rng)

    def forward(self, x, lengths=None) -> np.ndarray:
        tokens = "embedding" in self._modules
        out, _ = self.rnn(self.drop_in(self.embedding(x)) if tokens else x, lengths=lengths)
        return self.head(self.drop(self.pool(out, lengths)))

    def backward(self, d_logits) -> None:
        d_out = self.pool.backward(self.drop.backward(self.head.backward(d_logits)))
        dx, _ = self.rnn.backward(d_out)
        if "embedding" in self._modules:
            self.embedding.backward(self.drop_in.backward(dx))
