r"""Connectionist temporal classification (Graves et al. 2006), as ``torch.nn.CTCLoss``.

A network emits, at each of T frames, log-probabilities over C classes, one of them the blank.
An alignment is a path π of T classes; collapsing it (merge repeats, then drop blanks) gives a
label sequence. CTC's loss is the negative log of the total probability of the paths that
collapse to the target l = (l_1 … l_S):

    p(l | x) = Σ_{π ∈ B⁻¹(l)} Π_t y_t(π_t)

summed by dynamic programming over the extended target l' = (blank, l_1, blank, l_2, …, l_S,
blank), of length 2S + 1 (log space throughout, y_t(c) = e^{log_probs[t, c]}):

    α_t(s) = (α_{t−1}(s) + α_{t−1}(s−1) + [l'_s ≠ blank, l'_s ≠ l'_{s−2}] α_{t−1}(s−2)) · y_t(l'_s)
    α_0(0) = y_0(blank),  α_0(1) = y_0(l_1);        p(l | x) = α_{T−1}(2S) + α_{T−1}(2S − 1)

and β, the same recurrence run from the last frame (β_{T−1}(2S) = y_{T−1}(blank), β_{T−1}(2S−1)
= y_{T−1}(l_S)), with transitions s → s, s+1 and s+2 where l'_{s+2} may be skipped to. Both
include frame t's own y_t(l'_s), so Σ_s α_t(s) β_t(s) / y_t(l'_s) = p(l | x) at every t, and

    ∂(−log p) / ∂ log y_t(c) = −(1 / p) Σ_{s : l'_s = c} α_t(s) β_t(s) / y_t(c)     (γ_t(c), the
                                                                          posterior of class c)

Reductions, as torch: "mean" divides each sequence's loss by its target length (at least 1)
and averages over the batch; "sum" adds them. ``zero_infinity`` makes the loss of a sequence
that no path can produce (T too short for its labels and repeats) 0, and its gradient 0.

The gradient returned is the one with respect to ``log_probs``, −γ (scaled by the reduction).
torch's ``ctc_loss`` returns e^{log_probs} − γ instead: the gradient for the logits when the
log-probabilities come from ``log_softmax``, whose backward (g − softmax · Σ_c g) gives the same
result from either, since Σ_c γ_t(c) = 1. Through log_softmax the two agree; tests check that.

Shapes, as torch: log_probs (T, N, C) or (T, C) unbatched; targets (N, S_max) padded, or the
N targets concatenated (Σ target_lengths,), or (S,) unbatched; input_lengths and
target_lengths (N,) (or scalars unbatched).
"""

from __future__ import annotations

import numpy as np

from .losses import _upstream
from .module import Module
from .validation import int_array, native_float_array

REDUCTIONS = ("mean", "sum")


def _logsumexp(*terms: np.ndarray) -> np.ndarray:
    """log Σ e^{term}, elementwise, with −inf for a sum of zeros."""
    m = np.maximum.reduce(terms)
    shift = np.where(np.isneginf(m), 0, m)
    with np.errstate(divide="ignore"):  # log 0 = −inf is the answer there
        return shift + np.log(sum(np.exp(t - shift) for t in terms))


def _shifted(a: np.ndarray, by: int) -> np.ndarray:
    """a moved ``by`` places along the last axis (right for by > 0), −inf where nothing comes in."""
    out = np.full_like(a, -np.inf)
    if by > 0:
        out[..., by:] = a[..., :-by]
    else:
        out[..., :by] = a[..., -by:]
    return out


def extended_targets(targets: np.ndarray, target_lengths: np.ndarray, blank: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, S_max) targets → l' (N, 2·S_max + 1), blanks between and around, blank past each
    target's end; and ``skip`` (N, 2·S_max + 1): True where s − 2 → s is allowed."""
    N, S = targets.shape
    labels = np.full((N, 2 * S + 1), blank, np.int64)
    inside = np.arange(S)[None, :] < target_lengths[:, None]
    labels[:, 1::2] = np.where(inside, targets, blank)
    skip = np.zeros(labels.shape, bool)
    skip[:, 2:] = (labels[:, 2:] != blank) & (labels[:, 2:] != labels[:, :-2])
    return labels, skip


def ctc_alignments(log_probs, labels, skip, input_lengths, target_lengths):
    """log α, log β and log y_t(l'_s), each (T, N, 2S+1), and log p(l | x) (N,), for the
    extended targets. α runs on past each sequence's end (unread); β is −inf there."""
    T, N, _ = log_probs.shape
    L = labels.shape[1]
    y = np.take_along_axis(log_probs, np.broadcast_to(labels[None], (T, N, L)), axis=2)  # log y_t(l'_s)
    rows = np.arange(N)
    no_skip = np.where(skip, 0.0, -np.inf)
    alpha = np.full((T, N, L), -np.inf)
    alpha[0, :, 0] = y[0, :, 0]
    has_label = target_lengths > 0
    alpha[0, has_label, 1] = y[0, has_label, 1]
    for t in range(1, T):
        a = alpha[t - 1]
        alpha[t] = _logsumexp(a, _shifted(a, 1), _shifted(a, 2) + no_skip) + y[t]
    beta = np.full((T, N, L), -np.inf)
    last, end = input_lengths - 1, 2 * target_lengths
    may_end = np.full((N, L), -np.inf)
    may_end[rows, end] = 0.0
    may_end[rows[has_label], end[has_label] - 1] = 0.0
    skip_to = _shifted(no_skip, -2)  # s → s + 2 allowed where s + 2 may be skipped to
    for t in range(T - 1, -1, -1):
        if t == T - 1:
            after = np.full((N, L), -np.inf)
        else:
            b = beta[t + 1]
            after = _logsumexp(b, _shifted(b, -1), _shifted(b, -2) + skip_to)
        ending = (t == last)[:, None]
        beta[t] = np.where(ending, may_end, np.where((t < last)[:, None], after, -np.inf)) + y[t]
    final = alpha[last, rows]
    ends = [final[rows, end], np.where(has_label, final[rows, np.maximum(end - 1, 0)], -np.inf)]
    return alpha, beta, y, _logsumexp(*ends)


def ctc_nll(log_probs, targets, input_lengths, target_lengths, blank: int = 0):
    """−log p(target | x) for each sequence, (N,) (+inf where no alignment exists); the arguments
    as ``CTCLoss.forward`` (batched)."""
    lp, tg, il, tl, _ = _check(log_probs, targets, input_lengths, target_lengths, blank)
    labels, skip = extended_targets(tg, tl, blank)
    return -ctc_alignments(lp.astype(np.float64), labels, skip, il, tl)[3]


def _check(log_probs, targets, input_lengths, target_lengths, blank):
    """Validated (log_probs (T, N, C), targets (N, S), input_lengths, target_lengths, unbatched)."""
    lp = native_float_array(log_probs, "log_probs", finite=False)  # −inf is log 0, a class ruled out
    if lp.ndim not in (2, 3) or lp.shape[0] == 0 or lp.shape[-1] == 0:
        raise ValueError(f"log_probs: expected (T, N, C) or unbatched (T, C) with T, C >= 1, got shape {lp.shape}")
    if np.isnan(lp).any() or np.isposinf(lp).any():
        raise ValueError("log_probs: contains NaN or +inf (log-probabilities are <= 0; -inf is allowed)")
    unbatched = lp.ndim == 2
    T, C = lp.shape[0], lp.shape[-1]
    if not 0 <= blank < C:
        raise ValueError(f"blank: expected a class in [0, {C}), got {blank}")
    tg = int_array(targets, "targets", ndims=(1,) if unbatched else (1, 2))
    il = int_array(input_lengths, "input_lengths", ndims=(0,) if unbatched else (1,))
    tl = int_array(target_lengths, "target_lengths", ndims=(0,) if unbatched else (1,))
    if unbatched:
        lp, tg, il, tl = lp[:, None], tg[None], il[None], tl[None]
    N = lp.shape[1]
    for name, lengths in (("input_lengths", il), ("target_lengths", tl)):
        if lengths.shape != (N,):
            raise ValueError(f"{name}: expected one length per sequence, {N}, got shape {lengths.shape}")
    if ((il < 1) | (il > T)).any():
        raise ValueError(f"input_lengths: expected lengths in [1, {T}] (T of log_probs), got {il[(il < 1) | (il > T)][0]}")
    if (tl < 0).any():
        raise ValueError(f"target_lengths: expected lengths >= 0, got {tl[tl < 0][0]}")
    if tg.ndim == 1:  # the targets concatenated
        if tg.size != tl.sum():
            raise ValueError(f"targets: concatenated targets need sum(target_lengths) = {tl.sum()} labels, got {tg.size}")
        padded = np.full((N, max(int(tl.max(initial=0)), 1)), blank, np.int64)
        for n, (start, length) in enumerate(zip(np.cumsum(tl) - tl, tl)):
            padded[n, :length] = tg[start : start + length]
        tg = padded
    elif tg.shape[0] != N or (tl > tg.shape[1]).any():
        raise ValueError(f"targets: expected (N={N}, S_max >= every target length {tl.max(initial=0)}), got shape {tg.shape}")
    used = np.arange(tg.shape[1])[None, :] < tl[:, None]
    labels = tg[used]
    if ((labels < 0) | (labels >= C) | (labels == blank)).any():
        bad = labels[(labels < 0) | (labels >= C) | (labels == blank)][0]
        raise ValueError(f"targets: label {bad} is not a class other than the blank ({blank}) in [0, {C})")
    return lp, tg, il, tl, unbatched


class CTCLoss(Module):
    """CTC loss, as ``torch.nn.CTCLoss(blank, reduction, zero_infinity)`` (see the module docstring).

    forward(log_probs, targets, input_lengths, target_lengths) → the loss as a float;
    backward(grad=1.0) → ∂loss/∂log_probs in log_probs' shape and dtype."""

    def __init__(self, blank: int = 0, reduction: str = "mean", zero_infinity: bool = False):
        super().__init__()
        if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or blank < 0:
            raise ValueError(f"blank: expected a class index >= 0, got {blank!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
        self.blank, self.reduction, self.zero_infinity = int(blank), reduction, bool(zero_infinity)

    def forward(self, log_probs, targets, input_lengths, target_lengths) -> float:
        lp, tg, il, tl, unbatched = _check(log_probs, targets, input_lengths, target_lengths, self.blank)
        labels, skip = extended_targets(tg, tl, self.blank)
        alpha, beta, y, log_p = ctc_alignments(lp.astype(np.float64), labels, skip, il, tl)
        nll = -log_p
        impossible = np.isinf(nll)
        if self.zero_infinity:
            nll = np.where(impossible, 0.0, nll)
        weights = 1.0 / np.maximum(tl, 1) / len(nll) if self.reduction == "mean" else np.ones(len(nll))
        self._push_cache((alpha, beta, y, log_p, labels, impossible, weights, lp.shape[-1], lp.dtype, unbatched))
        return float(weights @ nll)

    def backward(self, grad=1.0) -> np.ndarray:
        """→ ∂L/∂log_probs, (T, N, C) (or (T, C)), times ``grad``."""
        g = _upstream(grad)
        alpha, beta, y, log_p, labels, impossible, weights, C, dtype, unbatched = self._pop_cache()
        # γ_t(s) = α_t(s) β_t(s) / (y_t(l'_s) p), the posterior of extended position s at frame t
        # (both α and β include y_t(l'_s)); 0 where no path passes, past the end included
        passes = ~(np.isneginf(alpha) | np.isneginf(beta))
        with np.errstate(invalid="ignore"):
            gamma = np.where(passes, np.exp(alpha + beta - y - np.where(impossible, 0.0, log_p)[None, :, None]), 0.0)
        gamma[:, impossible] = 0.0  # no path at all: no gradient (zero_infinity's; torch gives NaN without it)
        one_hot = labels[:, :, None] == np.arange(C)  # (N, 2S+1, C): position s holds class l'_s
        d = np.matmul(gamma.transpose(1, 0, 2), one_hot.astype(np.float64)).transpose(1, 0, 2)  # Σ_{s: l'_s = c} γ_t(s)
        d *= -(g * weights)[None, :, None]
        d = d.astype(dtype)
        return d[:, 0] if unbatched else d

    def extra_repr(self) -> str:
        return f"blank={self.blank}, reduction={self.reduction!r}, zero_infinity={self.zero_infinity}"


# ---- decoding ---------------------------------------------------------------------------------


def greedy_decode(log_probs, input_lengths=None, blank: int = 0) -> list[list[int]]:
    """The best path's labels: each frame's most likely class, repeats merged, blanks dropped.

    log_probs: (T, N, C); input_lengths: (N,) or None for T each. Returns N label lists."""
    lp = native_float_array(log_probs, "log_probs", ndims=(3,), finite=False)
    T, N, _ = lp.shape
    lengths = np.full(N, T) if input_lengths is None else int_array(input_lengths, "input_lengths", ndims=(1,))
    best = lp.argmax(axis=2)
    out = []
    for n in range(N):
        path = best[: lengths[n], n]
        keep = np.ones(len(path), bool)
        keep[1:] = path[1:] != path[:-1]
        out.append([int(c) for c in path[keep] if c != blank])
    return out


def prefix_beam_search(log_probs, beam: int = 8, blank: int = 0, lm=None, lm_weight: float = 0.0,
                       length_bonus: float = 0.0) -> list[tuple[list[int], float]]:
    """CTC prefix beam search (Hannun et al. 2014) over one sequence's frames, log_probs (T, C).

    Each prefix keeps the log-probability of the paths that produce it ending in a blank and
    ending in its last label (a repeat of that label extends the prefix only after a blank).
    ``lm(prefix) → log-probabilities of the next label, (C,)``, optional, scores each extension
    with ``lm_weight``; ``length_bonus`` is added per label (the usual β, balancing the LM's
    cost per word). Returns the ``beam`` best (labels, score), best first; the score is
    log p(labels | x) plus the LM's and the bonus's terms."""
    lp = native_float_array(log_probs, "log_probs", ndims=(2,), finite=False)
    if isinstance(beam, bool) or not isinstance(beam, (int, np.integer)) or beam < 1:
        raise ValueError(f"beam: expected an integer >= 1, got {beam!r}")
    T, C = lp.shape
    # prefix → [log p(ending in blank), log p(ending in its last label), the LM's and bonus's sum]
    beams: dict[tuple, list] = {(): [0.0, -np.inf, 0.0]}

    def total(entry):
        return np.logaddexp(entry[0], entry[1]) + entry[2]

    for t in range(T):
        y = lp[t]
        grown: dict[tuple, list] = {}

        def add(prefix, blank_part, label_part, extra):
            entry = grown.setdefault(prefix, [-np.inf, -np.inf, extra])
            entry[0] = np.logaddexp(entry[0], blank_part)
            entry[1] = np.logaddexp(entry[1], label_part)

        for prefix, (p_b, p_l, extra) in beams.items():
            p = np.logaddexp(p_b, p_l)
            add(prefix, p + y[blank], -np.inf, extra)  # a blank: the prefix stays
            if prefix:
                add(prefix, -np.inf, p_l + y[prefix[-1]], extra)  # the last label again, merged
            next_lm = lm(prefix) if lm is not None and lm_weight else None
            for c in range(C):
                if c == blank:
                    continue
                # after a label c, another c starts a new label only through a blank
                came = p_b if prefix and c == prefix[-1] else p
                bonus = extra + length_bonus + (lm_weight * next_lm[c] if next_lm is not None else 0.0)
                add(prefix + (c,), -np.inf, came + y[c], bonus)
        beams = dict(sorted(grown.items(), key=lambda item: -total(item[1]))[:beam])
    ranked = sorted(beams.items(), key=lambda item: -total(item[1]))
    return [(list(prefix), float(total(entry))) for prefix, entry in ranked]
