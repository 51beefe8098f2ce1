"""A recurrent model of piano rolls: the next frame's notes as independent Bernoulli variables.

    h_t = RNN(x_t, h_{t−1})              x_t: frame t, (P,) in {0, 1}; any registered kind, stacked
    z_t = Linear(Dropout(h_t))           z_t: (P,) logits
    p(x_{t+1, k} = 1 | x_{≤t}) = σ(z_{t,k})    each pitch k on its own (Boulanger-Lewandowski et al. 2012's RNN-NADE
                                               models their dependence; this model, as Chung et al. 2014's, does not)

Trained with binary cross-entropy on logits (``nn.BCEWithLogitsLoss``) summed over pitches: the
negative log-likelihood of a frame in nats.
"""

from __future__ import annotations

import numpy as np

from ..nn import Dropout, Linear, Module, no_grad
from ..nn.module import as_rng
from .sequence_model import make_recurrent


class PianoRollModel(Module):
    """frames x: (T, B, P) → logits (T, B, P) of frames 2 … T + 1, and the final state."""

    def __init__(self, pitches: int, hidden_size: int = 128, num_layers: int = 1, cell: str = "lstm",
                 dropout: float = 0.0, dtype=np.float32, rng=None, cell_settings=None, init: str = "rnnkit"):
        super().__init__()
        self.rng = as_rng(rng)  # every random draw (init, dropout masks): a checkpoint resumes it exactly
        self.pitches, self.cell = int(pitches), cell
        self.rnn = make_recurrent(cell, pitches, hidden_size, num_layers, dropout=dropout, dtype=dtype, rng=self.rng,
                                  init=init, **(cell_settings or {}))
        self.drop = Dropout(dropout, rng=self.rng)
        self.head = Linear(hidden_size, pitches, dtype=dtype, rng=self.rng)

    def forward(self, x, state=None):
        out, state = self.rnn(x, state)
        return self.head(self.drop(out)), state

    def backward(self, d_logits) -> None:
        """Gradients of the logits in; adds into every parameter's .grad (the state's stops here)."""
        self.rnn.backward(self.drop.backward(self.head.backward(d_logits)))

    def sample(self, steps: int, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """(steps, P) bool frames drawn one after another from an all-silent start frame, each pitch
        with probability σ(z / temperature)."""
        with no_grad():
            self.eval()
            frame, state = np.zeros((1, 1, self.pitches), np.float32), None
            frames = np.zeros((steps, self.pitches), dtype=bool)
            for t in range(steps):
                logits, state = self(frame, state)
                p = 0.5 * (1 + np.tanh(0.5 * logits[0, 0].astype(np.float64) / temperature))  # σ without overflow
                frames[t] = rng.random(self.pitches) < p
                frame = frames[t][None, None].astype(np.float32)
        return frames

    def extra_repr(self) -> str:
        return f"cell={self.cell!r}, pitches={self.pitches}"
