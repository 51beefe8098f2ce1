"""Evaluation metrics: labels (accuracy, macro-F1, confusion matrix), entities in tag sequences,
forecast errors, and anomaly scores (ROC-AUC, average precision, point-wise and point-adjusted F1).

Labels are 1-D array-likes of numbers or of strings, one label per example (for tagging,
flatten the tags of every sequence, leaving out the padding). Entities follow CoNLL's
``conlleval`` script, which seqeval's default mode reproduces:

- an entity is a maximal run of tags of one type; ``B-`` (and ``S-``) always starts one, and
  ``E-`` / ``S-`` always end one;
- an ``I-`` (or ``E-``) tag that follows ``O``, an entity's end, or a tag of another type starts a
  new entity instead of being dropped: ``O I-PER I-PER`` holds one PER entity, ``B-PER I-LOC``
  a PER and a LOC;
- a span counts as found only when its type, start and end all match a true one.

Spans are ``(type, start, end)`` with ``end`` exclusive, as in a Python slice: the entity's
tags are ``tags[start:end]`` (seqeval and conlleval print the last index instead, ``end − 1``).
A ratio whose denominator is zero (no predicted entities for precision, no true ones for
recall) is 0, as seqeval gives with ``zero_division=0``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .data.series import anomaly_ranges

SCHEMES = {"BIO": ("B", "I"), "BIOES": ("B", "I", "E", "S")}


# ---- labels -------------------------------------------------------------------------------


def _label_array(values, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values)
    except Exception as exc:  # ragged nested lists and the like
        raise TypeError(f"{name}: expected a 1-D sequence of labels, got {type(values).__name__} ({exc})") from None
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of labels, got shape {arr.shape} "
                         "(flatten per-token labels first, without padding)")
    return arr


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays, checked: 1-D, equal lengths, not empty, labels of one kind."""
    yt, yp = _label_array(y_true, "y_true"), _label_array(y_pred, "y_pred")
    if yt.size != yp.size:
        raise ValueError(f"y_pred: expected one label per example of y_true, {yt.size} in all, got {yp.size}")
    if yt.size == 0:
        raise ValueError("y_true: expected at least one label, got none")
    if (yt.dtype.kind in "biuf") != (yp.dtype.kind in "biuf"):
        raise TypeError(f"y_pred: expected labels of the same kind as y_true's, got dtype {yp.dtype} "
                        f"against {yt.dtype}")
    return yt, yp


def _codes(yt: np.ndarray, yp: np.ndarray, labels) -> tuple[list, np.ndarray, np.ndarray]:
    """The label list (given, or the sorted union) and each example's index into it (−1: not listed)."""
    uniq, inverse = np.unique(np.concatenate((yt, yp)), return_inverse=True)
    if labels is None:
        label_list = uniq.tolist()
    else:
        label_list = _label_array(labels, "labels").tolist()
        if not label_list:
            raise ValueError("labels: expected at least one label, got none")
        repeated = [lab for lab, n in Counter(label_list).items() if n > 1]
        if repeated:
            raise ValueError(f"labels: expected each label once, got {repeated[0]!r} {label_list.count(repeated[0])} times")
    index = {lab: i for i, lab in enumerate(label_list)}
    codes = np.array([index.get(u, -1) for u in uniq.tolist()], dtype=np.int64)[inverse.reshape(-1)]
    return label_list, codes[:yt.size], codes[yt.size:]


def accuracy(y_true, y_pred) -> float:
    """The share of examples whose predicted label equals the true one. y_true, y_pred: (n,)."""
    yt, yp = _pair(y_true, y_pred)
    _, ct, cp = _codes(yt, yp, None)
    return float(np.mean(ct == cp))


def confusion_matrix(y_true, y_pred, labels=None) -> np.ndarray:
    """(n_labels, n_labels) int64 counts: row = true label, column = predicted label.

    ``labels`` fixes the rows' and columns' order (default: the sorted union of the labels in
    y_true and y_pred). As in scikit-learn, an example whose true or predicted label is not in
    ``labels`` is left out.
    """
    yt, yp = _pair(y_true, y_pred)
    label_list, ct, cp = _codes(yt, yp, labels)
    n = len(label_list)
    kept = (ct >= 0) & (cp >= 0)
    return np.bincount(ct[kept] * n + cp[kept], minlength=n * n).reshape(n, n)


def format_confusion(matrix: np.ndarray, labels: Sequence[str]) -> str:
    """A confusion matrix as a text table: rows true, columns predicted."""
    names = [str(x) for x in labels]
    width = max(6, *(len(n) for n in names), len(str(int(matrix.max(initial=0)))))
    lines = [" " * width + " │ " + " ".join(f"{n:>{width}}" for n in names) + "   ← predicted"]
    lines.append("─" * width + "─┼─" + "─" * ((width + 1) * len(names)))
    lines += [f"{n:>{width}} │ " + " ".join(f"{int(v):>{width}}" for v in row) for n, row in zip(names, matrix)]
    return "\n".join(lines)


def macro_f1(y_true, y_pred, labels=None) -> float:
    """The unweighted mean over classes of F1 = 2·TP / (2·TP + FP + FN).

    ``labels``: the classes to average over (default: every class in y_true or y_pred); TP, FP
    and FN are counted over all examples, so leaving out a majority class (``O``) still charges
    its confusions to the classes that remain. Conventions:
    - a class with no true and no predicted example is skipped (its F1 is 0/0);
    - a class never predicted, or never true, gets F1 = 0 (its TP is 0).
    With the default ``labels`` this equals scikit-learn's ``f1_score(average="macro")``.
    """
    yt, yp = _pair(y_true, y_pred)
    label_list, ct, cp = _codes(yt, yp, labels)
    n = len(label_list)
    tp = np.bincount(ct[(ct == cp) & (ct >= 0)], minlength=n)
    true = np.bincount(ct[ct >= 0], minlength=n)
    pred = np.bincount(cp[cp >= 0], minlength=n)
    seen = true + pred > 0
    if not seen.any():
        raise ValueError(f"labels: none of {label_list} occurs in y_true or y_pred")
    return float(np.mean(2 * tp[seen] / (true + pred)[seen]))


# ---- entities -------------------------------------------------------------------------------


def _scheme(scheme) -> tuple[str, ...]:
    if scheme not in SCHEMES:
        raise ValueError(f"scheme: expected one of {tuple(SCHEMES)}, got {scheme!r}")
    return SCHEMES[scheme]


def _parse(tag, position: int, scheme: str, prefixes: tuple[str, ...]) -> tuple[str, str]:
    """'B-PER' → ('B', 'PER'); 'O' → ('O', '')."""
    if tag == "O":
        return "O", ""
    if isinstance(tag, str) and len(tag) > 2 and tag[1] == "-" and tag[0] in prefixes:
        return tag[0], tag[2:]
    shapes = " / ".join(f"{p}-TYPE" for p in prefixes)
    raise ValueError(f"tags: {tag!r} at position {position} is not a {scheme} tag; expected 'O' or {shapes}")


def entities(tags: Sequence[str], scheme: str = "BIO") -> list[tuple[str, int, int]]:
    """The entities of one tag sequence as ``(type, start, end)`` spans, ``end`` exclusive.

    tags: a sequence of strings, each ``'O'`` or ``PREFIX-TYPE`` with PREFIX in B, I (``"BIO"``,
    also called IOB2) or B, I, E, S (``"BIOES"``). Ill-formed sequences are read as conlleval
    reads them (see the module docstring): ``['O', 'I-PER', 'B-LOC', 'E-LOC']`` (BIOES) →
    ``[('PER', 1, 2), ('LOC', 2, 4)]``.
    """
    prefixes = _scheme(scheme)
    if isinstance(tags, str):
        raise TypeError("tags: expected a sequence of tag strings, got one string")
    spans = []
    prev, prev_type, begin = "O", "", 0
    parsed = [_parse(tag, i, scheme, prefixes) for i, tag in enumerate(tags)]
    for i, (tag, type_) in enumerate(parsed + [("O", "")]):
        # conlleval's endOfChunk and startOfChunk
        ends = prev in "ES" or (prev in "BI" and tag in "BSO") or (prev != "O" and type_ != prev_type)
        starts = tag in "BS" or (tag in "IE" and prev in "ESO") or (tag != "O" and type_ != prev_type)
        if ends:
            spans.append((prev_type, begin, i))
        if starts:
            begin = i
        prev, prev_type = tag, type_
    return spans


def _ratios(correct: int, n_pred: int, n_true: int) -> dict[str, float]:
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _sequences(values, name: str) -> list:
    if isinstance(values, str) or (len(values) and isinstance(values[0], str)):
        raise TypeError(f"{name}: expected a list of tag sequences, got a list of strings "
                        "(wrap a single sequence in a list)")
    return list(values)


def entity_scores(true_sequences, pred_sequences, scheme: str = "BIO") -> dict:
    """Entity-level precision, recall and F1, micro-averaged over all entities, and per type.

    true_sequences, pred_sequences: lists of tag sequences, pairwise of equal length. A
    predicted entity is correct when a true entity of the same sequence has the same type,
    start and end (CoNLL's exact match). Returns::

        {"precision", "recall", "f1": floats over all entities,
         "true_entities", "pred_entities", "correct": counts,
         "per_type": {type: {"precision", "recall", "f1", "support" (true count),
                             "predicted", "correct"}}}   (types sorted)

    With ``scheme="BIO"`` or ``"BIOES"`` the figures equal seqeval's default mode
    (``precision_score`` etc. with ``zero_division=0``).
    """
    _scheme(scheme)
    true_sequences = _sequences(true_sequences, "true_sequences")
    pred_sequences = _sequences(pred_sequences, "pred_sequences")
    if len(true_sequences) != len(pred_sequences):
        raise ValueError(f"pred_sequences: expected one sequence per true sequence, "
                         f"{len(true_sequences)} in all, got {len(pred_sequences)}")
    true_set, pred_set = set(), set()
    for n, (t, p) in enumerate(zip(true_sequences, pred_sequences)):
        if len(t) != len(p):
            raise ValueError(f"pred_sequences: sequence {n} has {len(p)} tags, its true sequence {len(t)}")
        true_set.update((n,) + span for span in entities(t, scheme))
        pred_set.update((n,) + span for span in entities(p, scheme))
    correct = true_set & pred_set
    by_type = [Counter(span[1] for span in spans) for spans in (true_set, pred_set, correct)]
    per_type = {}
    for type_ in sorted(by_type[0].keys() | by_type[1].keys()):
        n_true, n_pred, n_correct = (c[type_] for c in by_type)
        per_type[type_] = _ratios(n_correct, n_pred, n_true) | {
            "support": n_true, "predicted": n_pred, "correct": n_correct}
    return _ratios(len(correct), len(pred_set), len(true_set)) | {
        "true_entities": len(true_set), "pred_entities": len(pred_set), "correct": len(correct),
        "per_type": per_type}


# ---- forecasts --------------------------------------------------------------------------------
# y, f: arrays of actual and forecast values of the same shape (any number of points).


def mae(y, f) -> float:
    return float(np.mean(np.abs(np.asarray(f) - np.asarray(y))))


def rmse(y, f) -> float:
    return float(np.sqrt(np.mean((np.asarray(f) - np.asarray(y)) ** 2)))


def smape(y, f) -> float:
    """Symmetric MAPE in percent: 200 · mean(|f − y| / (|y| + |f|)), a point where both are 0 counting 0."""
    y, f = np.asarray(y, np.float64), np.asarray(f, np.float64)
    denom = np.abs(y) + np.abs(f)
    return float(200 * np.mean(np.where(denom > 0, np.abs(f - y) / np.where(denom > 0, denom, 1), 0.0)))


def seasonal_naive_scale(history, season: int) -> float:
    """MASE's denominator: the in-sample MAE of the seasonal naive forecast y_t = y_{t−m} (m = 1: naive)."""
    h = np.asarray(history, np.float64)
    if len(h) <= season:
        raise ValueError(f"history: MASE needs more than season={season} points, got {len(h)}")
    return float(np.mean(np.abs(h[season:] - h[:-season])))


def mase(y, f, scale: float) -> float:
    """Mean absolute scaled error: MAE divided by ``seasonal_naive_scale`` of the training part."""
    return mae(y, f) / scale


def coverage(y, lower, upper) -> float:
    """The share of actual values inside [lower, upper]."""
    y = np.asarray(y)
    return float(np.mean((y >= np.asarray(lower)) & (y <= np.asarray(upper))))


def point_adjusted_scores(labels, flags) -> dict:
    """Precision, recall and F1 of anomaly flags after point adjustment (Xu et al. 2018): when any
    point of a labelled anomaly range is flagged, the whole range counts as detected."""
    labels, flags = np.asarray(labels, bool), np.asarray(flags, bool).copy()
    for start, end in anomaly_ranges(labels):
        if flags[start:end].any():
            flags[start:end] = True
    tp = int(np.sum(flags & labels))
    precision = tp / max(int(flags.sum()), 1)
    recall = tp / max(int(labels.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def _anomaly_pair(labels, values, name: str) -> tuple[np.ndarray, np.ndarray]:
    """0/1 labels (n,) as bool, and ``values`` (n,) as float64, checked: 1-D, equal lengths, not empty, finite."""
    y = _label_array(labels, "labels")
    if y.size == 0:
        raise ValueError("labels: expected at least one label, got none")
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise ValueError(f"labels: expected 0 (normal) or 1 (anomaly), got {np.unique(y)[:5].tolist()}")
    v = _label_array(values, name)
    if v.size != y.size:
        raise ValueError(f"{name}: expected one value per label, {y.size} in all, got {v.size}")
    if v.dtype.kind not in "biuf" or not np.isfinite(v).all():
        raise ValueError(f"{name}: expected finite numbers, got dtype {v.dtype}" + (
            "" if v.dtype.kind not in "biuf" else f" with {int(np.sum(~np.isfinite(v)))} non-finite value(s)"))
    return y.astype(bool), v.astype(np.float64)


def _both_classes(y: np.ndarray, what: str) -> None:
    positives = int(y.sum())
    if positives in (0, y.size):
        raise ValueError(f"labels: {what} needs both normal (0) and anomalous (1) points, got only "
                         f"{'1s' if positives else '0s'} ({y.size} point(s))")


def roc_auc(labels, scores) -> float:
    """The area under the ROC curve: the probability that a random anomaly scores above a random
    normal point, a tie counting ½. labels: (n,) 0/1; scores: (n,), higher = more anomalous.

    Computed by the rank statistic (Mann–Whitney U): AUC = (R₁ − n₁(n₁+1)/2) / (n₁ n₀), R₁ the sum
    of the anomalies' ranks, tied scores taking their average rank; equals scikit-learn's
    ``roc_auc_score``. Labels of one class only: a ValueError (the AUC is 0/0).
    """
    y, s = _anomaly_pair(labels, scores, "scores")
    _both_classes(y, "ROC-AUC")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    # each run of equal scores gets the mean of the ranks it spans (1-based): (first + last) / 2
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], s.size]
    ranks = np.empty(s.size)
    ranks[order] = np.repeat((starts + 1 + ends) / 2, ends - starts)
    n1 = int(y.sum())
    n0 = y.size - n1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def average_precision(labels, scores) -> float:
    """The area under the precision-recall curve as scikit-learn's ``average_precision_score``
    defines it: AP = Σₖ (Rₖ − Rₖ₋₁) Pₖ over the distinct scores, highest first, where Pₖ and Rₖ
    are the precision and recall of flagging every point scoring at least the k-th (no
    interpolation; R₀ = 0). labels: (n,) 0/1; scores: (n,). Labels of one class only: a ValueError
    (scikit-learn warns and returns 0 for no anomaly, 1 for no normal point; neither ranks anything).
    """
    y, s = _anomaly_pair(labels, scores, "scores")
    _both_classes(y, "average precision")
    order = np.argsort(-s, kind="mergesort")
    sorted_s, hits = s[order], y[order]
    last = np.r_[np.flatnonzero(sorted_s[1:] != sorted_s[:-1]), s.size - 1]  # the end of each run of a score
    tp = np.cumsum(hits)[last]
    precision = tp / (last + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def pointwise_scores(labels, flags) -> dict:
    """Precision, recall and F1 of anomaly flags point by point: TP counts flagged anomalous
    points. A ratio whose denominator is zero (nothing flagged, nothing labelled) is 0, as
    scikit-learn's ``precision_recall_fscore_support(average="binary", zero_division=0)``."""
    y, f = _anomaly_pair(labels, flags, "flags")
    f = f.astype(bool)
    return _ratios(int(np.sum(f & y)), int(f.sum()), int(y.sum()))


# ---- transcription ------------------------------------------------------------------------------


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance: the fewest substitutions, insertions and deletions that turn the
    hypothesis into the reference (one row of the table at a time)."""
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        current = [i]
        for j, h in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1]


def error_rate(references: Sequence[str], hypotheses: Sequence[str], unit: str = "char") -> float:
    """Character (unit "char") or word ("word") error rate: the edit distances summed over the
    pairs, divided by the references' total length (1.0 for empty hypotheses)."""
    if unit not in ("char", "word"):
        raise ValueError(f"unit: expected 'char' or 'word', got {unit!r}")
    if len(references) != len(hypotheses):
        raise ValueError(f"hypotheses: expected one per reference ({len(references)}), got {len(hypotheses)}")
    split = (lambda s: s.split()) if unit == "word" else list
    pairs = [(split(r), split(h)) for r, h in zip(references, hypotheses)]
    total = sum(len(r) for r, _ in pairs)
    if total == 0:
        raise ValueError("references: all empty, so no error rate is defined")
    return sum(edit_distance(r, h) for r, h in pairs) / total


def bleu_chrf(hypotheses: list[str], references: list[str]) -> dict:
    """sacrebleu's corpus BLEU and chrF (0-100) of detokenised hypotheses against one reference each."""
    import sacrebleu  # imported where it is used: `import rnnkit` stays light

    return {"bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
            "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score}
