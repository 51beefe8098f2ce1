r"""Linear-chain conditional random field: the tagging head of a BiLSTM-CRF.

Shapes (``batch_first=False``, the recurrent layers' default; with ``batch_first=True`` every
``(T, B, ...)`` below is ``(B, T, ...)``):

    emissions  (T, B, K)   per-position tag scores, e.g. a Linear on top of a BiLSTM
    tags       (T, B)      gold tags in [0, K); entries past each length are ignored
    lengths    (B,)        1 <= length <= T, or None for all T
    start (K,), end (K,), transitions (K, K)   with transitions[i, j] the score of tag i
                                               FOLLOWED BY tag j (i at step t−1, j at step t)

The score of a path y_0 … y_{L−1} of a sequence of length L is

    s(y) = start[y_0] + Σ_{t<L} e_t[y_t] + Σ_{1≤t<L} transitions[y_{t−1}, y_t] + end[y_{L−1}]

and p(y | e) = exp(s(y)) / Z with Z = Σ_y exp(s(y)). The loss is the negative log-likelihood
−log p(y | e) = log Z − s(y), averaged (or summed) over the batch.

log Z comes from the forward algorithm in log space:

    α_0 = start + e_0,    α_t[j] = logsumexp_i(α_{t−1}[i] + transitions[i, j]) + e_t[j],
    log Z = logsumexp_j(α_{L−1}[j] + end[j])

and backward from the backward algorithm:

    β_{L−1} = end,        β_t[i] = logsumexp_j(transitions[i, j] + e_{t+1}[j] + β_{t+1}[j])

The gradient of log Z is the marginals, minus the gold counts for the gradient of s(y):

    P(y_t = k)                 = exp(α_t[k] + β_t[k] − log Z)                       → e_t, start (t=0), end (t=L−1)
    P(y_{t−1} = i, y_t = j)    = exp(α_{t−1}[i] + transitions[i, j] + e_t[j] + β_t[j] − log Z)  → transitions

Every logsumexp subtracts its maximum first, so scores of any size (a forbidden transition
set to −10⁴, say) neither overflow nor produce NaN. Rows of the batch run together; only time
loops. A sequence shorter than T keeps its α past its end, and its padding positions get
zero gradient and −1 in a decoded path.
"""

from __future__ import annotations

import numpy as np

from .losses import _reduction, _upstream
from .module import Module, Parameter, as_dtype, as_rng
from .validation import expect_shape, float_array, int_array, positive_int, sequence_lengths


def _logsumexp(s: np.ndarray, axis: int) -> np.ndarray:
    """log Σ exp(s) along ``axis``, with the maximum taken out first (axis removed)."""
    m = s.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(s - m).sum(axis=axis))


class CRF(Module):
    r"""Linear-chain CRF over ``num_tags`` tags; see the module docstring for the equations.

    ``forward(emissions, tags, lengths=None)`` → the negative log-likelihood, a float
    (mean over the batch, or sum with ``reduction="sum"``); ``backward(grad=1.0)`` → d_emissions
    in the emissions' shape, adding into ``start.grad``, ``end.grad`` and ``transitions.grad``.
    ``decode`` gives the Viterbi paths, ``marginals`` P(y_t = k), ``log_partition`` log Z.

    Parameters are initialised U(−0.1, 0.1), as in pytorch-crf, whose ``transitions[i, j]``
    has the same meaning (i followed by j).
    """

    def __init__(self, num_tags: int, batch_first: bool = False, reduction: str = "mean",
                 dtype=np.float32, rng=None):
        super().__init__()
        self.num_tags = positive_int(num_tags, "num_tags")
        self.batch_first = bool(batch_first)
        self.reduction = _reduction(reduction)
        self.dtype = as_dtype(dtype)
        rng = as_rng(rng)
        K = self.num_tags
        self.start = Parameter(rng.uniform(-0.1, 0.1, K).astype(self.dtype))
        self.end = Parameter(rng.uniform(-0.1, 0.1, K).astype(self.dtype))
        self.transitions = Parameter(rng.uniform(-0.1, 0.1, (K, K)).astype(self.dtype))

    def extra_repr(self) -> str:
        return f"num_tags={self.num_tags}, batch_first={self.batch_first}, reduction={self.reduction!r}"

    # ---- checks -------------------------------------------------------------------
    def _emissions(self, emissions, lengths):
        """→ time-major emissions (zero past each length), lengths (B,), mask (T, B)."""
        e = float_array(emissions, "emissions", self.dtype, ndims=(3,))
        layout = "(B, T, num_tags)" if self.batch_first else "(T, B, num_tags)"
        if e.shape[2] != self.num_tags:
            raise ValueError(f"emissions: expected shape {layout} with num_tags={self.num_tags}, got {e.shape}")
        if e.shape[0] == 0 or e.shape[1] == 0:
            raise ValueError(f"emissions: expected shape {layout} with at least one sequence "
                             f"and one time step, got {e.shape}")
        if self.batch_first:
            e = e.transpose(1, 0, 2)
        T, B, _ = e.shape
        lengths = sequence_lengths(lengths, T, B)
        if lengths is None:
            lengths = np.full(B, T, dtype=np.int64)
        mask = np.arange(T)[:, None] < lengths[None, :]
        # a copy, zero past the ends, so padding of any size cannot reach a sum
        e = np.where(mask[:, :, None], e, e.dtype.type(0))
        return e, lengths, mask

    def _tags(self, tags, shape, mask) -> np.ndarray:
        """→ time-major tags (T, B), 0 past each length, after checking the range of the rest."""
        y = int_array(tags, "tags", ndims=(2,))
        T, B = shape
        expected = (B, T) if self.batch_first else (T, B)
        expect_shape(y, expected, "tags", "the emissions' shape without num_tags")
        if self.batch_first:
            y = y.T
        bad = mask & ((y < 0) | (y >= self.num_tags))
        if bad.any():
            raise ValueError(f"tags: tag {int(y[bad][0])} is out of range; expected tags in "
                             f"[0, {self.num_tags}) within each sequence's length")
        return np.where(mask, y, 0)

    # ---- the two recursions ---------------------------------------------------------
    def _alpha(self, e: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward algorithm → α (T, B, K), carried unchanged past each end, and log Z (B,)."""
        trans = self.transitions.data
        alpha = np.empty_like(e)
        alpha[0] = self.start.data + e[0]
        for t in range(1, e.shape[0]):
            a = _logsumexp(alpha[t - 1][:, :, None] + trans, axis=1) + e[t]
            alpha[t] = np.where(mask[t][:, None], a, alpha[t - 1])
        return alpha, _logsumexp(alpha[-1] + self.end.data, axis=1)

    def _beta(self, e: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Backward algorithm → β (T, B, K); β_t = end at each sequence's last step (and past it)."""
        trans = self.transitions.data
        beta = np.empty_like(e)
        beta[-1] = self.end.data
        for t in range(e.shape[0] - 2, -1, -1):
            b = _logsumexp(trans + (e[t + 1] + beta[t + 1])[:, None, :], axis=2)
            beta[t] = np.where(mask[t + 1][:, None], b, self.end.data)
        return beta

    def _gold_score(self, e: np.ndarray, y: np.ndarray, lengths: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """s(y) for each sequence (B,)."""
        B = y.shape[1]
        rows = np.arange(B)
        score = self.start.data[y[0]] + np.take_along_axis(e, y[:, :, None], axis=2)[:, :, 0].sum(axis=0)
        score += (self.transitions.data[y[:-1], y[1:]] * mask[1:]).sum(axis=0)
        return score + self.end.data[y[lengths - 1, rows]]

    # ---- loss -----------------------------------------------------------------------
    def forward(self, emissions, tags, lengths=None) -> float:
        """emissions: (T, B, K), tags: (T, B), lengths: (B,) or None → NLL, mean or sum over B."""
        e, lengths, mask = self._emissions(emissions, lengths)
        y = self._tags(tags, e.shape[:2], mask)
        alpha, log_z = self._alpha(e, mask)
        nll = log_z - self._gold_score(e, y, lengths, mask)
        scale = 1.0 / e.shape[1] if self.reduction == "mean" else 1.0
        self._push_cache((e, y, lengths, mask, alpha, log_z, scale))
        return float(nll.sum() * scale)

    def backward(self, grad=1.0) -> np.ndarray:
        """→ ∂loss/∂emissions in the emissions' shape (zero past each length), times ``grad``.

        Adds into ``start.grad``, ``end.grad`` and ``transitions.grad``.
        """
        g = _upstream(grad)
        e, y, lengths, mask, alpha, log_z, scale = self._pop_cache()
        T, B, K = e.shape
        rows = np.arange(B)
        w = e.dtype.type(g * scale)
        beta = self._beta(e, mask)

        # node marginals − gold one-hots → emissions, start, end
        de = np.exp(alpha + beta - log_z[:, None])
        de *= mask[:, :, None]
        p_last = de[lengths - 1, rows]
        self.start.grad += w * (de[0].sum(axis=0) - np.bincount(y[0], minlength=K))
        self.end.grad += w * (p_last.sum(axis=0) - np.bincount(y[lengths - 1, rows], minlength=K))
        t_active, b_active = np.nonzero(mask)
        de[t_active, b_active, y[mask]] -= 1  # each (t, b) once, so plain fancy indexing will do
        de *= w

        # pairwise marginals − gold transition counts → transitions
        trans = self.transitions.data
        dtrans = np.zeros_like(trans)
        for t in range(1, T):
            s = alpha[t - 1][:, :, None] + trans + (e[t] + beta[t] - log_z[:, None])[:, None, :]
            dtrans += np.einsum("b,bij->ij", mask[t].astype(e.dtype), np.exp(s))
        gold = mask[1:]
        dtrans -= np.bincount(y[:-1][gold] * K + y[1:][gold], minlength=K * K).reshape(K, K)
        self.transitions.grad += w * dtrans
        return de.transpose(1, 0, 2) if self.batch_first else de

    # ---- inference ------------------------------------------------------------------
    def log_partition(self, emissions, lengths=None) -> np.ndarray:
        """emissions: (T, B, K), lengths: (B,) or None → log Z (B,). Keeps nothing for backward."""
        e, _, mask = self._emissions(emissions, lengths)
        return self._alpha(e, mask)[1]

    def marginals(self, emissions, lengths=None) -> np.ndarray:
        """emissions: (T, B, K), lengths → P(y_t = k | emissions): (T, B, K), zero past each length.

        Each row within its length sums to 1. Keeps nothing for backward.
        """
        e, _, mask = self._emissions(emissions, lengths)
        alpha, log_z = self._alpha(e, mask)
        p = np.exp(alpha + self._beta(e, mask) - log_z[:, None]) * mask[:, :, None]
        return p.transpose(1, 0, 2) if self.batch_first else p

    def decode(self, emissions, lengths=None) -> tuple[np.ndarray, np.ndarray]:
        """Viterbi: emissions: (T, B, K), lengths → (paths (T, B) int64, scores (B,)).

        ``paths`` holds the highest-scoring tag sequence of each row, −1 past its length;
        ``scores`` is s(path), the unnormalised score (log p(path) = score − log Z).
        Keeps nothing for backward.
        """
        e, lengths, mask = self._emissions(emissions, lengths)
        T, B, K = e.shape
        trans = self.transitions.data
        delta = self.start.data + e[0]
        backpointers = np.zeros((T, B, K), dtype=np.int64)
        for t in range(1, T):
            s = delta[:, :, None] + trans  # (B, i, j)
            backpointers[t] = s.argmax(axis=1)
            d = np.take_along_axis(s, backpointers[t][:, None, :], axis=1)[:, 0, :] + e[t]
            delta = np.where(mask[t][:, None], d, delta)
        final = delta + self.end.data
        cur = final.argmax(axis=1)
        scores = final[np.arange(B), cur]
        paths = np.full((T, B), -1, dtype=np.int64)
        for t in range(T - 1, -1, -1):
            active = mask[t]
            paths[t, active] = cur[active]
            if t > 0:
                cur = np.where(active, backpointers[t][np.arange(B), cur], cur)
        return (paths.T if self.batch_first else paths), scores
