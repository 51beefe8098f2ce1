"""Speech to characters: a bidirectional recurrent acoustic model trained with CTC.

    z_τ = [x_{kτ}; x_{kτ+1}; …; x_{kτ+k−1}]     k log-mel frames stacked: 10 ms frames become
                                                 10k ms ones, k times fewer steps (Sak et al. 2015)
    h_τ = [RNN→(z_1 … z_τ); RNN←(z_τ … z_len)]   (stacked layers, dropout between)
    log p_τ = log_softmax(Linear(Dropout(h_τ)))  over the blank (class 0) and the characters
    L = CTC(log p, characters)                   (mean over utterances of loss / characters, torch's)

A clip's last partial group of frames is padded with zeros. Decoding: the best path (greedy) or
a prefix beam search, optionally with a character language model (``nn.ctc``).
"""

from __future__ import annotations

import numpy as np

from ..nn import CTCLoss, Dropout, Linear, Module, no_grad
from ..nn.functional import log_softmax
from ..nn.module import as_rng
from .sequence_model import make_recurrent

BLANK = 0


def stack_frames(features: np.ndarray, lengths: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, B, F) frames and lengths → (⌈T/k⌉, B, k·F) and ⌈length/k⌉ (zeros complete a group)."""
    T, B, F = features.shape
    steps = -(-T // k)
    padded = np.zeros((steps * k, B, F), features.dtype)
    padded[:T] = features
    stacked = padded.reshape(steps, k, B, F).transpose(0, 2, 1, 3).reshape(steps, B, k * F)
    return stacked, -(-np.asarray(lengths) // k)


class Transcriber(Module):
    """features: (T, B, n_mels) standardised log-mel frames; lengths (B,); targets (B, S) padded
    character ids in [1, V) with their lengths (B,)."""

    def __init__(self, vocab_size: int, n_mels: int, hidden_size: int = 128, cell: str = "gru", num_layers: int = 2,
                 stack: int = 3, bidirectional: bool = True, dropout: float = 0.1, dtype=np.float32, rng=None,
                 cell_settings=None):
        super().__init__()
        self.rng = as_rng(rng)  # one generator for init and dropout, so a checkpoint resumes the same stream
        self.stack = stack
        D = 2 if bidirectional else 1
        self.drop_in = Dropout(dropout, rng=self.rng)
        self.rnn = make_recurrent(cell, stack * n_mels, hidden_size, num_layers, bidirectional, dropout, dtype=dtype,
                                  rng=self.rng, **(cell_settings or {}))
        self.drop_out = Dropout(dropout, rng=self.rng)
        self.head = Linear(D * hidden_size, vocab_size, dtype=dtype, rng=self.rng)
        self.loss_fn = CTCLoss(blank=BLANK)

    def log_probs(self, features, lengths) -> tuple[np.ndarray, np.ndarray]:
        """(log-probabilities (T', B, V), their lengths T'_b)."""
        z, steps = stack_frames(features, lengths, self.stack)
        out, _ = self.rnn(self.drop_in(z), lengths=steps)
        lp = log_softmax(self.head(self.drop_out(out)))
        self._push_cache(lp)
        return lp, steps

    def forward(self, features, lengths, targets, target_lengths) -> float:
        """The training loss (the data keeps only clips with steps enough for their characters)."""
        lp, steps = self.log_probs(features, lengths)
        return self.loss_fn(lp, targets, steps, target_lengths)

    def backward(self) -> None:
        d_lp = self.loss_fn.backward()
        lp = self._pop_cache()
        d_logits = d_lp - np.exp(lp) * d_lp.sum(axis=-1, keepdims=True)  # log_softmax's backward
        dz, _ = self.rnn.backward(self.drop_out.backward(self.head.backward(d_logits)))
        self.drop_in.backward(dz)  # pairs the dropout's forward (the features themselves need no gradient)

    def predict_log_probs(self, features, lengths) -> tuple[np.ndarray, np.ndarray]:
        """log_probs without keeping anything for backward."""
        with no_grad():
            return self.log_probs(features, lengths)
