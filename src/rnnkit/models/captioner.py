"""Image captioning: an image's features start the decoder that writes its caption (Vinyals et al. 2015).

The decoder is seq2seq's (``models.seq2seq.Decoder``, without attention: a caption conditions
on one vector, not on a sequence); only what it starts from differs. For an image's features f
(B, F) (``data.images``, standardised), per decoder layer l:

    s_0^l = tanh(W_l Dropout(f) + b_l)      (and c_0^l the same way with its own W, b, for an LSTM)

then, with the caption's tokens y (bos y_1 … y_n eos) and teacher forcing, as in seq2seq:
s_t = cell(Dropout(Embedding(y_{t−1})), s_{t−1}), z_t = Linear(Dropout(h_t)). Vinyals et al. feed
the image as the input before the first word; setting the first state instead is the variant
Karpathy and Fei-Fei (2015) use, and needs no input of the image's size at every step.

Parameters: ``bridge_h_l{k}``, ``bridge_c_l{k}`` (Linear F → H), ``tgt_embedding``,
``decoder_l{k}`` (cells), ``head``: seq2seq's names for the same parts.
"""

from __future__ import annotations

import numpy as np

from ..nn import Dropout, Linear
from ..nn.validation import positive_int
from .seq2seq import Decoder, Translation

MAX_TOKENS = 60  # the longest caption decoding writes unless told: Tux Paint's longest is 40 words


class Captioner(Decoder):
    """features (B, F) → captions. ``forward(features, tgt_in, tgt_out, tgt_lengths)`` → the mean
    cross-entropy per real token (``tgt_in``, ``tgt_out`` (T, B) ids, lengths (B,)); ``backward()``
    → the features' gradient (B, F); ``greedy`` and ``beam_search`` → one ``Translation`` per image."""

    def __init__(self, feature_size: int, vocab: int, embed_size: int = 64, hidden_size: int = 128, cell: str = "lstm",
                 num_layers: int = 1, dropout: float = 0.0, dtype=np.float32, rng=None, cell_settings=None, init: str = "rnnkit"):
        super().__init__()
        self._init_decoder(vocab, embed_size, hidden_size, cell, num_layers, "none", dropout, dtype, rng)
        self.feature_size = positive_int(feature_size, "feature_size")
        self.drop_image = Dropout(dropout, rng=self.rng)
        for k in range(self.num_layers):
            setattr(self, f"bridge_h_l{k}", Linear(self.feature_size, self.hidden_size, dtype=dtype, rng=self.rng))
            if self._has_c:
                setattr(self, f"bridge_c_l{k}", Linear(self.feature_size, self.hidden_size, dtype=dtype, rng=self.rng))
        self._build_decoder(0, init, cell_settings or {})

    def extra_repr(self) -> str:
        return f"{self.feature_size} features → {self.tgt_vocab}, cell={self.cell!r}, dropout={self.dropout}"

    # ---- the decoder's source: the image's features -------------------------------------------
    def _check_source(self, features, lengths):
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] != self.feature_size or x.shape[0] == 0 or not np.issubdtype(x.dtype, np.number):
            raise ValueError(f"features: expected shape (batch >= 1, {self.feature_size}) of numbers, got "
                             f"{x.shape} of {x.dtype}")
        if not np.isfinite(x).all():
            raise ValueError("features: expected finite numbers, got NaN or infinity")
        return x.astype(self.dtype, copy=False), np.ones(len(x), np.int64)

    def _default_max_len(self, lengths) -> int:
        return MAX_TOKENS

    def _encode(self, features, lengths):
        x = self.drop_image(features)
        L = self.num_layers
        hs = self._tanh_bridge("bridge_h", [x] * L)
        cs = self._tanh_bridge("bridge_c", [x] * L) if self._has_c else None
        return None, (hs, cs, None)

    def _encode_backward(self, mem, d_state, state):
        dhs, dcs, _ = d_state
        hs, cs, _ = state
        dx = sum(self._tanh_bridge_backward("bridge_h", dhs, hs))
        if dcs is not None:
            dx = dx + sum(self._tanh_bridge_backward("bridge_c", dcs, cs))
        return self.drop_image.backward(dx)

    # ---- the public calls, without seq2seq's source lengths -------------------------------------
    def forward(self, features, tgt_in, tgt_out, tgt_lengths=None, sampling_prob: float = 0.0) -> float:
        """features (B, F); tgt_in, tgt_out (T, B) → the mean cross-entropy over the real tokens."""
        return super().forward(features, None, tgt_in, tgt_out, tgt_lengths, sampling_prob)

    def backward(self) -> np.ndarray:
        """Gradients into every parameter's ``.grad``; returns ∂loss/∂features (B, F)."""
        return super().backward()

    def greedy(self, features, *, bos: int, eos: int, max_len: int | None = None) -> list[Translation]:
        return super().greedy(features, None, bos=bos, eos=eos, max_len=max_len)

    def beam_search(self, features, *, bos: int, eos: int, beam: int = 5, max_len: int | None = None,
                    length_penalty: float = 0.0) -> list[Translation]:
        return super().beam_search(features, None, bos=bos, eos=eos, beam=beam, max_len=max_len, length_penalty=length_penalty)
