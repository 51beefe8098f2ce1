"""Sequence to sequence: an attentional encoder-decoder for translation.

Shapes are time-major: ``src (S, B)`` and ``tgt_in``, ``tgt_out (T, B)`` token ids; H is the
hidden size, D = 2 for a bidirectional encoder (else 1), L the number of layers.

Encoder (one pass over the source, with each source's own length):

    K = [h→_s; h←_s] = RNN(Dropout(Embedding_src(x_s)))       (S, B, D·H): the attention keys

Bridge, per layer l, from the encoder's final state to the decoder's first one:

    D = 1:  s_0 = h_n                      (and c_0 = c_n for a kind with a cell state)
    D = 2:  s_0 = tanh(W_b [h→_n; h←_n] + b_b)   (c_n, where the kind has one, the same way with its own W, b)

Decoder, one step at a time (y_{t−1} the previous token: gold under teacher forcing), with
e_t = Dropout(Embedding_tgt(y_{t−1})), s_t = cell(x_t, s_{t−1}) the stacked cells (dropout
between layers) and h_t their top layer:

    bahdanau     q = h_{t−1};  α_t = softmax_s(vᵀ tanh(W_q q + b_q + W_k k_s))
                 c_t = Σ_s α_{t,s} k_s;  x_t = [e_t; c_t];  o_t = [h_t; c_t]
    luong-dot    x_t = [e_t; h̃_{t−1}] (input feeding, h̃_0 = 0);  α_t = softmax_s(h_tᵀ k_s)
    luong-general                                                  α_t = softmax_s(h_tᵀ W k_s)
                 c_t = Σ_s α_{t,s} k_s;  h̃_t = tanh(W_c [c_t; h_t]);  o_t = h̃_t
    none         x_t = e_t;  o_t = h_t

    z_t = Linear(Dropout(o_t))              (B, V): logits over the target vocabulary

The softmax over s runs over each source's real positions only (α = 0 past its length).
Luong's dot score needs keys of the decoder's size, so it takes a unidirectional encoder.

Training loss: the mean cross-entropy of z_t against ``tgt_out`` over the real target tokens.
With ``sampling_prob`` p > 0 (scheduled sampling, Bengio et al. 2015), each row at each step
t ≥ 1 feeds, with probability p, the model's own arg max of z_{t−1} instead of the gold
``tgt_in[t]``; the draws come from the model's ``rng``. The chosen token is a constant for
the gradient.

Decoding (greedy, beam search) returns one ``Translation`` per source. Beam search ranks
finished hypotheses by log p(Y | X) / lp(Y) with GNMT's length penalty (Wu et al. 2016)
lp(Y) = ((5 + |Y|) / 6)^α, |Y| counting the end token when one was produced; α = 0 ranks by
log-probability alone.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ..nn import CrossEntropyLoss, Dropout, Embedding, Linear, Module, Parameter, cells, no_grad
from ..nn.functional import log_softmax
from ..nn.module import as_dtype, as_rng, is_grad_enabled
from ..nn.validation import int_array, positive_int, probability
from .sequence_model import cell_choices, get_init, make_recurrent

CELLS = cell_choices(step=True)  # the decoder runs a cell step by step
ATTENTIONS = ("bahdanau", "luong-dot", "luong-general", "none")
IGNORE = -100  # the target of padding steps


@dataclass
class Translation:
    """One decoded sequence.

    tokens     the output ids, without bos and eos
    log_prob   log p(tokens, eos | source) under the model (without eos when ``finished`` is False)
    score      log_prob / lp, the number beam search ranks by (= log_prob for greedy decoding)
    attention  (len(tokens), source length): the weights behind each output token; None without attention
    finished   whether eos was produced within max_len
    """

    tokens: list[int]
    log_prob: float
    score: float
    attention: np.ndarray | None
    finished: bool


def gnmt_length_penalty(length: int, alpha: float) -> float:
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^α."""
    return ((5.0 + length) / 6.0) ** alpha


def attention_matrix(rows: list, source_length: int | None) -> np.ndarray | None:
    """A translation's attention: its rows (one per output token, each (S,)) as
    (len(rows), S) float64; None for a decoder without attention (``source_length`` None)."""
    return None if source_length is None else np.array(rows, dtype=np.float64).reshape(len(rows), source_length)


def search_beam(step, state, take, *, bos: int, eos: int, beam: int, max_len: int,
                length_penalty: float = 0.0, source_length: int | None = None) -> Translation:
    """Beam search for one source over any decoder step (``Decoder.beam_search`` explains the
    search): rnnkit's decoder runs it on its own step, and the same function on an exported
    decoder's onnxruntime calls.

    step(y, state) → (logits (k, V), next state, attention weights (k, ≥S) or None): one step of
    the k live hypotheses whose last tokens are y (k,); take(state, rows) → the state of those rows
    (in order, a row may repeat). ``source_length`` S: the attention rows kept per output token
    (None: a decoder without attention).
    """
    live = [([], [])]  # (tokens, attention rows) of each live hypothesis
    live_logp = np.zeros(1)
    finished = []  # Translation
    y = np.array([bos])

    def finish(tokens, rows, logp, ended):
        n = len(tokens) + ended
        finished.append(Translation(list(tokens), float(logp), float(logp / gnmt_length_penalty(n, length_penalty)),
                                    attention_matrix(rows, source_length), ended))

    for _ in range(max_len):
        logits, state, alpha = step(y, state)
        total = (live_logp[:, None] + log_softmax(np.asarray(logits, np.float64))).ravel()  # (k·V,)
        n = min(2 * beam, total.size)
        top = np.argpartition(-total, n - 1)[:n]
        top = top[np.lexsort((top, -total[top]))]  # best first; ties by index, as argmax
        rows, next_live, next_logp = [], [], []
        for rank, i in enumerate(top):
            r, token = divmod(int(i), logits.shape[1])
            tokens, att = live[r]
            if token == eos:
                if rank < beam:
                    finish(tokens, att, total[i], True)
                continue
            rows.append(r)
            next_live.append((tokens + [token], att + ([alpha[r, :source_length]] if source_length is not None else [])))
            next_logp.append(total[i])
            if len(rows) == beam:
                break
        live, live_logp = next_live, np.array(next_logp)
        best = max((h.score for h in finished), default=-np.inf)
        if not live or best >= live_logp.max() / gnmt_length_penalty(max_len, length_penalty):
            break
        y = np.array([tokens[-1] for tokens, _ in live])
        state = take(state, rows)
    else:  # max_len reached: the live hypotheses end here
        for (tokens, att), logp in zip(live, live_logp):
            finish(tokens, att, logp, False)
    return max(finished, key=lambda h: h.score)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _masked_softmax(e: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Softmax over the last axis where ``mask`` is True; exactly 0 elsewhere. e, mask: (B, S)."""
    e = np.where(mask, e, -np.inf)
    a = np.exp(e - e.max(axis=-1, keepdims=True))
    a /= a.sum(axis=-1, keepdims=True)
    return a


@contextlib.contextmanager
def _evaluating(model: Module):
    """Eval mode (no dropout) for the duration, then every module's own mode back."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)


class _Memory:
    """What the decoder attends to, batch-major: keys K (B, S, D·H), their projection P (B, S, ·)
    as the score reads it (P is K itself for the dot score), the mask of real positions (B, S),
    and, while training, the gradients of K and P summed over the decoder's steps."""

    __slots__ = ("keys", "proj", "mask", "d_keys", "d_proj")

    def __init__(self, keys, proj, mask, keep_grads: bool):
        self.keys, self.proj, self.mask = keys, proj, mask
        self.d_keys = self.d_proj = None
        if keep_grads:
            self.d_keys = np.zeros_like(keys)
            self.d_proj = self.d_keys if proj is keys else np.zeros_like(proj)

    def take(self, rows) -> _Memory:
        """The memory of the given batch rows (decoding only: no gradients)."""
        keys = self.keys[rows]
        return _Memory(keys, keys if self.proj is self.keys else self.proj[rows], self.mask[rows], keep_grads=False)


class _Attention(Module):
    """The score functions of the module docstring; one ``forward`` per decoder step.

    ``memory`` runs once per source batch (it projects the keys); ``forward(q, memory)`` →
    (c (B, D·H), α (B, S)); ``backward(d_c)`` → dq, adding the keys' gradients into the memory;
    ``keys_backward(memory)`` → dK (S, B, D·H) once after the decoder's loop.
    """

    def __init__(self, kind: str, query_size: int, key_size: int, dtype, rng):
        super().__init__()
        self.kind = kind
        if kind == "bahdanau":
            self.query = Linear(query_size, query_size, dtype=dtype, rng=rng)  # W_q, b_q
            self.key = Linear(key_size, query_size, bias=False, dtype=dtype, rng=rng)  # W_k
            bound = 1.0 / np.sqrt(query_size)
            self.v = Parameter(rng.uniform(-bound, bound, query_size).astype(dtype))
        elif kind == "luong-general":
            self.key = Linear(key_size, query_size, bias=False, dtype=dtype, rng=rng)  # W: qᵀ W k = qᵀ (W k)

    def extra_repr(self) -> str:
        return repr(self.kind)

    def memory(self, out: np.ndarray, lengths: np.ndarray) -> _Memory:
        """out: (S, B, D·H) the encoder's outputs, lengths (B,) → the memory every step reads."""
        keys = np.ascontiguousarray(out.transpose(1, 0, 2))
        proj = self.key(keys) if "key" in self._modules else keys
        mask = np.arange(keys.shape[1])[None, :] < lengths[:, None]
        return _Memory(keys, proj, mask, keep_grads=is_grad_enabled())

    def forward(self, q: np.ndarray, mem: _Memory):
        """q: (B, H) → context c (B, D·H), weights α (B, S)."""
        if self.kind == "bahdanau":
            z = np.tanh(mem.proj + self.query(q)[:, None, :])  # (B, S, A)
            e = z @ self.v.data
        else:
            z = None
            e = (mem.proj @ q[:, :, None])[..., 0]
        alpha = _masked_softmax(e, mem.mask)
        c = (alpha[:, None, :] @ mem.keys)[:, 0]
        self._push_cache((q, mem, alpha, z))
        return c, alpha

    def backward(self, d_c: np.ndarray) -> np.ndarray:
        """d_c: (B, D·H) → dq (B, H); the keys' gradients go into the step's memory."""
        q, mem, alpha, z = self._pop_cache()
        d_alpha = (mem.keys @ d_c[:, :, None])[..., 0]  # (B, S)
        mem.d_keys += alpha[:, :, None] * d_c[:, None, :]
        de = alpha * (d_alpha - (alpha * d_alpha).sum(axis=1, keepdims=True))  # softmax backward; 0 where masked
        if self.kind == "bahdanau":
            self.v.grad += np.einsum("bs,bsa->a", de, z)
            dz = de[:, :, None] * self.v.data * (1 - z * z)
            mem.d_proj += dz
            return self.query.backward(dz.sum(axis=1))
        mem.d_proj += de[:, :, None] * q[:, None, :]
        return (de[:, None, :] @ mem.proj)[:, 0]

    def keys_backward(self, mem: _Memory) -> np.ndarray:
        """→ dK (S, B, D·H), the gradient of the encoder's outputs, from every step at once."""
        d = mem.d_keys
        if "key" in self._modules:
            d = d + self.key.backward(mem.d_proj)
        return np.ascontiguousarray(d.transpose(1, 0, 2))


class Decoder(Module):
    """The decoder of the module docstring with its loss, greedy decoding and beam search, for a
    model that supplies what it is conditioned on: ``Seq2Seq`` an encoded source sentence,
    ``models.captioner.Captioner`` an image's features. A subclass calls ``_init_decoder`` (checks
    and sizes), builds its own source side, then ``_build_decoder`` (in that order, the order its
    generator draws the parameters), and gives ``_check_source``, ``_encode``, ``_encode_backward``
    and ``_default_max_len``.
    """

    def _init_decoder(self, tgt_vocab: int, embed_size: int, hidden_size: int, cell: str, num_layers: int, attention: str,
                      dropout: float, dtype, rng) -> None:
        """The decoder's checks and sizes; no parameter yet."""
        self.kind = cells.get(cell, step=True)
        if len(self.kind.states) > 2:
            raise ValueError(f"cell: the decoder carries h or (h, c); {cell} has the state parts {self.kind.states}")
        self._has_c = len(self.kind.states) == 2  # the decoder's state: (hs, cs, feed), cs None without a c
        if attention not in ATTENTIONS:
            raise ValueError(f"attention: expected one of {', '.join(ATTENTIONS)}, got {attention!r}")
        self.tgt_vocab = positive_int(tgt_vocab, "tgt_vocab")
        self.embed_size = positive_int(embed_size, "embed_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.cell, self.attention = cell, attention
        self._luong = attention.startswith("luong")
        self.dropout = probability(dropout, "dropout")
        self.dtype = as_dtype(dtype)
        # One generator for init, dropout masks and scheduled-sampling draws, so a checkpoint
        # that saves its state resumes the exact same stream.
        self.rng = as_rng(rng)

    def _build_decoder(self, key_size: int, init: str, settings: dict) -> None:
        """The decoder's parameters; ``key_size`` K: the size of an attention key (unused without attention)."""
        E, H, L, K, dtype = self.embed_size, self.hidden_size, self.num_layers, key_size, self.dtype
        attention = self.attention
        self.tgt_embedding = Embedding(self.tgt_vocab, E, dtype=dtype, rng=self.rng)
        self.drop_tgt = Dropout(self.dropout, rng=self.rng)
        extra = {"bahdanau": K, "luong-dot": H, "luong-general": H, "none": 0}[attention]
        for k in range(L):
            setattr(self, f"decoder_l{k}", self.kind.make_cell(E + extra if k == 0 else H, H, dtype=dtype, rng=self.rng,
                                                                        kind_init=get_init(init).own, **settings))
        self._cells = [getattr(self, f"decoder_l{k}") for k in range(L)]
        self.drop_between = Dropout(self.dropout, rng=self.rng)
        if attention != "none":
            self.attn = _Attention(attention, H, K, self.dtype, self.rng)
        if self._luong:
            self.combine = Linear(K + H, H, bias=False, dtype=dtype, rng=self.rng)  # W_c
        self.drop_out = Dropout(self.dropout, rng=self.rng)
        self.head = Linear(H + K if attention == "bahdanau" else H, self.tgt_vocab, dtype=dtype, rng=self.rng)
        self.loss_fn = CrossEntropyLoss(ignore_index=IGNORE)

    # ---- what a subclass gives ----------------------------------------------------------------
    def _check_source(self, src, src_lengths):
        """The checked source and its lengths (B,)."""
        raise NotImplementedError

    def _encode(self, src, src_lengths):
        """→ the attention memory (None without attention) and the decoder's first state
        (hs, cs, feed): per-layer lists of (B, H) arrays (cs None for a GRU) and h̃_0 (Luong only)."""
        raise NotImplementedError

    def _encode_backward(self, mem, d_state, state):
        """The gradient of the decoder's first state (and of the memory) back through ``_encode``;
        returns the source's gradient where it has one."""
        raise NotImplementedError

    def _default_max_len(self, src_lengths) -> int:
        raise NotImplementedError

    # ---- tanh bridges: a decoder's first state from what it is conditioned on -----------------
    def _tanh_bridge(self, name: str, inputs: list) -> list:
        """s_0 of layer k = tanh(W x_k + b), by the Linear ``{name}_l{k}``; inputs: one (B, ·) per layer."""
        return [np.tanh(getattr(self, f"{name}_l{k}")(x)) for k, x in enumerate(inputs)]

    def _tanh_bridge_backward(self, name: str, d: list, s: list) -> list:
        """The gradients of s_0 (d) and s_0 itself (s), per layer → the gradients of the inputs."""
        return [getattr(self, f"{name}_l{k}").backward(d[k] * (1 - s[k] * s[k])) for k in reversed(range(len(d)))][::-1]

    # ---- input checks ---------------------------------------------------------------------
    @staticmethod
    def _lengths(value, name: str, T: int, B: int) -> np.ndarray:
        if value is None:
            return np.full(B, T, dtype=np.int64)
        lengths = int_array(value, name, ndims=(1,))
        if lengths.shape != (B,):
            raise ValueError(f"{name}: expected one length per sequence, {B} in all, got shape {lengths.shape}")
        if lengths.min() < 1 or lengths.max() > T:
            raise ValueError(f"{name}: expected lengths in [1, {T}] (the padded number of steps), "
                             f"got range [{lengths.min()}, {lengths.max()}]")
        return lengths

    @staticmethod
    def _ids(value, name: str, vocab: int, lengths_name: str, lengths, B: int | None = None):
        """Checked (T, B) ids with the padding past each length set to 0, and the lengths."""
        ids = int_array(value, name, ndims=(2,))
        T, B_ids = ids.shape
        if T == 0 or B_ids == 0 or (B is not None and B_ids != B):
            raise ValueError(f"{name}: expected shape (steps >= 1, batch{'' if B is None else f'={B}'}), got {ids.shape}")
        lengths = Decoder._lengths(lengths, lengths_name, T, B_ids)
        inside = np.arange(T)[:, None] < lengths[None, :]
        bad = inside & ((ids < 0) | (ids >= vocab))
        if bad.any():
            t, b = np.argwhere(bad)[0]
            raise ValueError(f"{name}: id {ids[t, b]} at step {t} of sequence {b} is out of range; "
                             f"expected ids in [0, {vocab})")
        return np.where(inside, ids, 0), lengths, inside

    def _check_token(self, value, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < self.tgt_vocab:
            raise ValueError(f"{name}: expected a target id in [0, {self.tgt_vocab}), got {value!r}")
        return int(value)

    # ---- one decoder step ----------------------------------------------------------------------
    def _step(self, y_prev, state, mem):
        """ids y_{t−1} (B,) and the state s_{t−1} → logits (B, V), s_t, α (B, S) or None, and o_t."""
        hs, cs, feed = state
        e = self.drop_tgt(self.tgt_embedding(y_prev))
        c = alpha = None
        if self.attention == "bahdanau":
            c, alpha = self.attn(hs[-1], mem)
            x = np.concatenate([e, c], axis=1)
        elif self._luong:
            x = np.concatenate([e, feed], axis=1)
        else:
            x = e
        new_hs, new_cs = [], []
        for k, cell in enumerate(self._cells):
            if k:
                x = self.drop_between(x)
            if cs is not None:
                h, c_k = cell(x, (hs[k], cs[k]))
                new_cs.append(c_k)
            else:
                h = cell(x, hs[k])
            new_hs.append(h)
            x = h
        if self._luong:
            c, alpha = self.attn(h, mem)
            o = feed = np.tanh(self.combine(np.concatenate([c, h], axis=1)))
        elif self.attention == "bahdanau":
            o = np.concatenate([h, c], axis=1)
        else:
            o = h
        logits = self.head(self.drop_out(o))
        return logits, (new_hs, new_cs if cs is not None else None, feed), alpha, o

    def _step_backward(self, d_logits, d_state, o):
        """∂L/∂z_t and ∂L/∂s_t (from step t+1) → ∂L/∂s_{t−1}; the same order as ``_step``, reversed."""
        dhs, dcs, d_feed = d_state
        H, E = self.hidden_size, self.embed_size
        dhs = list(dhs)
        d_o = self.drop_out.backward(self.head.backward(d_logits))
        d_c = None
        if self._luong:  # h̃_t feeds the head and the next step's input
            d_cat = self.combine.backward((d_o + d_feed) * (1 - o * o))
            K = d_cat.shape[1] - H
            dhs[-1] = dhs[-1] + d_cat[:, K:] + self.attn.backward(d_cat[:, :K])
        elif self.attention == "bahdanau":
            dhs[-1] = dhs[-1] + d_o[:, :H]
            d_c = d_o[:, H:]
        else:
            dhs[-1] = dhs[-1] + d_o
        prev_hs, prev_cs = [None] * self.num_layers, [None] * self.num_layers
        d_x = None
        for k in reversed(range(self.num_layers)):
            cell = self._cells[k]
            dh = dhs[k] if d_x is None else dhs[k] + d_x
            if dcs is not None:
                d_x, (prev_hs[k], prev_cs[k]) = cell.backward(dh, dcs[k])
            else:
                d_x, prev_hs[k] = cell.backward(dh)
            if k:
                d_x = self.drop_between.backward(d_x)
        prev_feed = None
        if self.attention == "bahdanau":  # c_t fed both the input and the head; q was h_{t−1}
            prev_hs[-1] = prev_hs[-1] + self.attn.backward(d_c + d_x[:, E:])
        elif self._luong:
            prev_feed = d_x[:, E:]
        self.tgt_embedding.backward(self.drop_tgt.backward(d_x[:, :E]))
        return prev_hs, (prev_cs if dcs is not None else None), prev_feed

    # ---- training ------------------------------------------------------------------------------
    def _check_pair(self, src, src_lengths, tgt_in, tgt_lengths):
        src, src_len = self._check_source(src, src_lengths)
        tgt_in, _, inside = self._ids(tgt_in, "tgt_in", self.tgt_vocab, "tgt_lengths", tgt_lengths, len(src_len))
        return src, src_len, tgt_in, inside

    def _run(self, src, src_len, tgt_in, inside, sampling_prob: float):
        """The decoder over every target step (checked inputs, ``inside`` (T, B) the real target
        steps): logits (T, B, V), α (T, B, S) or None, and what backward needs."""
        B, T = len(src_len), tgt_in.shape[0]
        mem, state = self._encode(src, src_len)
        state0 = state
        logits = np.empty((T, B, self.tgt_vocab), self.dtype)
        alphas = np.zeros((T, B, mem.keys.shape[1]), self.dtype) if mem is not None else None
        outputs = []
        for t in range(T):
            y = tgt_in[t]
            if t and sampling_prob:
                own = self.rng.random(B) < sampling_prob
                y = np.where(own, logits[t - 1].argmax(axis=1), y)
            logits[t], state, alpha, o = self._step(y, state, mem)
            outputs.append(o)
            if alphas is not None:
                alphas[t] = alpha
        if alphas is not None:
            alphas *= inside[:, :, None]
        return logits, alphas, (mem, state0, outputs)

    def forward(self, src, src_lengths, tgt_in, tgt_out, tgt_lengths=None, sampling_prob: float = 0.0) -> float:
        """The mean cross-entropy over the real target tokens (teacher forcing, or scheduled
        sampling with ``sampling_prob`` > 0); keeps what ``backward`` needs."""
        if not _is_number(sampling_prob) or not 0 <= sampling_prob <= 1:
            raise ValueError(f"sampling_prob: expected a number in [0, 1], got {sampling_prob!r}")
        src, src_len, tgt_in, inside = self._check_pair(src, src_lengths, tgt_in, tgt_lengths)
        if np.shape(tgt_out) != inside.shape:
            raise ValueError(f"tgt_out: expected the shape of tgt_in {inside.shape}, got {np.shape(tgt_out)}")
        tgt_out, _, _ = self._ids(tgt_out, "tgt_out", self.tgt_vocab, "tgt_lengths", inside.sum(axis=0))
        logits, _, cache = self._run(src, src_len, tgt_in, inside, sampling_prob)
        loss = self.loss_fn(logits, np.where(inside, tgt_out, IGNORE))
        self._push_cache(cache)
        return loss

    def backward(self):
        """Gradients of the most recent forward's loss into every parameter's ``.grad``; returns what
        ``_encode_backward`` does (Seq2Seq: None, its source being token ids)."""
        mem, state0, outputs = self._pop_cache()
        d_logits = self.loss_fn.backward()
        hs, cs, feed = state0
        d_state = ([np.zeros_like(h) for h in hs], None if cs is None else [np.zeros_like(c) for c in cs],
                   None if feed is None else np.zeros_like(feed))
        for t in reversed(range(len(outputs))):
            d_state = self._step_backward(d_logits[t], d_state, outputs[t])
        return self._encode_backward(mem, d_state, state0)

    def scores(self, src, src_lengths, tgt_in, tgt_lengths=None):
        """Teacher-forced logits (T, B, V) and attention weights α (T, B, S) (None without
        attention; rows past a target's length are 0), in eval mode, keeping nothing."""
        checked = self._check_pair(src, src_lengths, tgt_in, tgt_lengths)
        with no_grad(), _evaluating(self):
            logits, alphas, _ = self._run(*checked, 0.0)
        return logits, alphas

    # ---- decoding ------------------------------------------------------------------------------
    def _decoding_inputs(self, src, src_lengths, bos, eos, max_len):
        src, src_len = self._check_source(src, src_lengths)
        bos, eos = self._check_token(bos, "bos"), self._check_token(eos, "eos")
        max_len = self._default_max_len(src_len) if max_len is None else positive_int(max_len, "max_len")
        return src, src_len, bos, eos, max_len

    def greedy(self, src, src_lengths=None, *, bos: int, eos: int, max_len: int | None = None) -> list[Translation]:
        """The arg max at every step, for all sources at once (eval mode, keeps nothing).

        src (S, B) → B translations; max_len (default 2·longest source + 10) bounds the steps,
        eos included.
        """
        src, src_len, bos, eos, max_len = self._decoding_inputs(src, src_lengths, bos, eos, max_len)
        B = len(src_len)
        tokens, attention = [[] for _ in range(B)], [[] for _ in range(B)]
        log_prob, done = np.zeros(B), np.zeros(B, bool)
        with no_grad(), _evaluating(self):
            mem, state = self._encode(src, src_len)
            y = np.full(B, bos)
            for _ in range(max_len):
                logits, state, alpha, _ = self._step(y, state, mem)
                logp = log_softmax(logits.astype(np.float64))
                y = logp.argmax(axis=1)
                for b in np.flatnonzero(~done):
                    log_prob[b] += logp[b, y[b]]
                    if y[b] == eos:
                        done[b] = True
                    else:
                        tokens[b].append(int(y[b]))
                        if alpha is not None:
                            attention[b].append(alpha[b, : src_len[b]])
                if done.all():
                    break
        return [Translation(tokens[b], float(log_prob[b]), float(log_prob[b]),
                            attention_matrix(attention[b], src_len[b] if self.attention != "none" else None), bool(done[b]))
                for b in range(B)]

    def beam_search(self, src, src_lengths=None, *, bos: int, eos: int, beam: int = 5, max_len: int | None = None,
                    length_penalty: float = 0.0) -> list[Translation]:
        """The best hypothesis by log p / lp(|Y|) (GNMT's length penalty, α = ``length_penalty``).

        Sources are encoded together and searched one at a time, the ``beam`` live hypotheses
        of a source forming the batch. Each step ranks the 2·beam best extensions: an eos among
        the first ``beam`` of them finishes its hypothesis, and the best ``beam`` others stay
        live. The search stops when no live hypothesis can beat the best finished one any more
        (log p only falls as a hypothesis grows, so log p / lp(max_len) bounds what it can still
        reach), or at ``max_len``, where the live ones count as finished. With
        ``length_penalty=0``, beam=1 is greedy decoding.
        """
        src, src_len, bos, eos, max_len = self._decoding_inputs(src, src_lengths, bos, eos, max_len)
        beam = positive_int(beam, "beam")
        if not _is_number(length_penalty) or not length_penalty >= 0:
            raise ValueError(f"length_penalty: expected a number >= 0, got {length_penalty!r}")
        with no_grad(), _evaluating(self):
            mem, state = self._encode(src, src_len)
            return [self._beam_one(self._take(mem, state, [b]), src_len[b], bos, eos, beam, max_len, float(length_penalty))
                    for b in range(len(src_len))]

    @staticmethod
    def _take(mem, state, rows):
        hs, cs, feed = state
        state = ([h[rows] for h in hs], None if cs is None else [c[rows] for c in cs], None if feed is None else feed[rows])
        return (None if mem is None else mem.take(rows)), state

    def _beam_one(self, mem_state, S, bos, eos, beam, max_len, alpha_lp) -> Translation:
        def step(y, mem_state):
            mem, state = mem_state
            logits, state, alpha, _ = self._step(y, state, mem)
            return logits, (mem, state), alpha

        take = lambda mem_state, rows: self._take(*mem_state, rows)  # noqa: E731
        return search_beam(step, mem_state, take, bos=bos, eos=eos, beam=beam, max_len=max_len, length_penalty=alpha_lp,
                           source_length=S if self.attention != "none" else None)


class Seq2Seq(Decoder):
    """The encoder-decoder of the module docstring.

    Shapes: src (S, B) ids in [0, src_vocab); src_lengths (B,) in [1, S] or None (all S);
    tgt_in, tgt_out (T, B) ids in [0, tgt_vocab) (bos y_0 … y_{n−1} and y_1 … y_n eos);
    tgt_lengths (B,) in [1, T] or None. Ids past a length are padding and may be anything.

    Parameters: ``src_embedding``, ``encoder`` (PyTorch's LSTM/GRU names), ``bridge_h_l{k}`` and
    ``bridge_c_l{k}`` (bidirectional encoder only), ``tgt_embedding``, ``decoder_l{k}`` (cells),
    ``attn.query``, ``attn.key``, ``attn.v`` (as the score needs), ``combine`` (Luong's W_c), ``head``.
    """

    def __init__(self, src_vocab: int, tgt_vocab: int, embed_size: int = 64, hidden_size: int = 128, cell: str = "lstm",
                 num_layers: int = 1, bidirectional_encoder: bool = True, attention: str = "bahdanau",
                 dropout: float = 0.0, dtype=np.float32, rng=None, cell_settings=None, init: str = "rnnkit"):
        super().__init__()
        settings = cell_settings or {}
        self._init_decoder(tgt_vocab, embed_size, hidden_size, cell, num_layers, attention, dropout, dtype, rng)
        if attention == "luong-dot" and bidirectional_encoder:
            raise ValueError("attention: 'luong-dot' scores h_tᵀ k_s and needs keys of the decoder's size; a bidirectional "
                             "encoder's keys are twice that: use bidirectional_encoder=False or attention='luong-general'")
        self.src_vocab = positive_int(src_vocab, "src_vocab")
        self.bidirectional_encoder = bool(bidirectional_encoder)
        E, H, L = self.embed_size, self.hidden_size, self.num_layers
        D = 2 if self.bidirectional_encoder else 1

        self.src_embedding = Embedding(self.src_vocab, E, dtype=dtype, rng=self.rng)
        self.drop_src = Dropout(dropout, rng=self.rng)
        self.encoder = make_recurrent(cell, E, H, L, self.bidirectional_encoder, dropout, dtype=dtype, rng=self.rng, init=init,
                                      **settings)
        if D == 2:
            for k in range(L):
                setattr(self, f"bridge_h_l{k}", Linear(2 * H, H, dtype=dtype, rng=self.rng))
                if self._has_c:
                    setattr(self, f"bridge_c_l{k}", Linear(2 * H, H, dtype=dtype, rng=self.rng))
        self._build_decoder(D * H, init, settings)

    def extra_repr(self) -> str:
        return (f"{self.src_vocab} → {self.tgt_vocab}, cell={self.cell!r}, attention={self.attention!r}, "
                f"bidirectional_encoder={self.bidirectional_encoder}, dropout={self.dropout}")

    # ---- encoder and bridge ------------------------------------------------------------------
    def _check_source(self, src, src_lengths):
        src, src_len, _ = self._ids(src, "src", self.src_vocab, "src_lengths", src_lengths)
        return src, src_len

    def _default_max_len(self, src_lengths) -> int:
        return 2 * int(src_lengths.max()) + 10

    def _encode(self, src, src_lengths):
        out, final = self.encoder(self.drop_src(self.src_embedding(src)), lengths=src_lengths)
        mem = self.attn.memory(out, src_lengths) if self.attention != "none" else None
        parts = final if self._has_c else (final,)  # (h_n,) or (h_n, c_n), each (L·D, B, H)
        L = self.num_layers
        if self.bidirectional_encoder:
            names = ("bridge_h", "bridge_c")
            parts = [self._tanh_bridge(n, [np.concatenate([p[2 * k], p[2 * k + 1]], axis=1) for k in range(L)])
                     for n, p in zip(names, parts)]
        else:
            parts = [[p[k] for k in range(L)] for p in parts]
        hs, cs = parts[0], (parts[1] if self._has_c else None)
        feed = np.zeros_like(hs[0]) if self._luong else None
        return mem, (hs, cs, feed)

    def _bridge_backward(self, d_state, state):
        """d of the decoder's first state → d of the encoder's final state (d_h_n or (d_h_n, d_c_n))."""
        dhs, dcs, _ = d_state
        hs, cs, _ = state
        grads = []
        for name, d, s in zip(("bridge_h", "bridge_c"), (dhs, dcs), (hs, cs)):
            if d is None:
                continue
            if self.bidirectional_encoder:
                H = self.hidden_size
                g = np.stack([half for d_cat in self._tanh_bridge_backward(name, d, s) for half in (d_cat[:, :H], d_cat[:, H:])])
            else:
                g = np.stack(d)
            grads.append(g)
        return tuple(grads) if self._has_c else grads[0]

    def _encode_backward(self, mem, d_state, state):
        d_keys = self.attn.keys_backward(mem) if mem is not None else None
        dx, _ = self.encoder.backward(d_keys, self._bridge_backward(d_state, state))
        self.src_embedding.backward(self.drop_src.backward(dx))
