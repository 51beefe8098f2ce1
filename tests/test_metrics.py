"""Metrics: hand-checked cases, then agreement with scikit-learn (labels) and seqeval (entities).

What is compared with seqeval:
- ``entities`` with ``seqeval.metrics.sequence_labeling.get_entities`` (its last index + 1 = our
  exclusive end) on random, mostly ill-formed, BIO and BIOES sequences;
- ``entity_scores`` with seqeval's default mode (conlleval's reading) — precision_score,
  recall_score, f1_score and per-type precision_recall_fscore_support — on random sequences of
  both schemes;
- on well-formed sequences only, also with seqeval's strict mode (IOB2 for BIO, IOBES for BIOES),
  which reads well-formed sequences as conlleval does but drops ill-formed entities instead.
"""

import numpy as np
import pytest

from rnnkit.metrics import accuracy, confusion_matrix, entities, entity_scores, macro_f1

SEEDS = list(range(6))
TYPES = ["PER", "LOC", "ORG", "MISC-X"]  # a type may itself contain '-'
PREFIXES = {"BIO": "BI", "BIOES": "BIES"}


# ---- hand-checked labels ------------------------------------------------------------------


def test_accuracy_counts_equal_labels():
    assert accuracy([0, 1, 2, 2], [0, 2, 2, 2]) == 0.75
    assert accuracy(["a", "b"], ["b", "a"]) == 0.0


def test_confusion_matrix_rows_are_true_columns_predicted():
    cm = confusion_matrix(["a", "b", "b", "c"], ["a", "a", "b", "a"], labels=["a", "b", "c"])
    assert cm.dtype == np.int64
    assert cm.tolist() == [[1, 0, 0], [1, 1, 0], [1, 0, 0]]
    # an unlisted label's examples are left out; a listed label with no example gets zeros
    assert confusion_matrix([0, 1, 2], [0, 2, 2], labels=[2, 0, 5]).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]
    assert confusion_matrix([1, 0], [1, 1]).tolist() == [[0, 1], [0, 1]]  # default: sorted union


def test_macro_f1_conventions():
    # class 0: TP 1, FP 0, FN 1 → 2/3; class 1: TP 1, FP 2, FN 0 → 1/2; class 2: never predicted → 0
    y_true, y_pred = [0, 0, 1, 2], [0, 1, 1, 1]
    assert macro_f1(y_true, y_pred) == pytest.approx((2 / 3 + 1 / 2 + 0) / 3)
    # a listed class with no true and no predicted example is skipped, not counted as 0
    assert macro_f1(y_true, y_pred, labels=[0, 1, 2, 7]) == macro_f1(y_true, y_pred)
    # leaving out classes still charges their confusions: 0 → 1 and 2 → 1 are false positives of 1
    assert macro_f1(y_true, y_pred, labels=[1]) == pytest.approx(1 / 2)
    assert macro_f1(["x"], ["x"]) == 1.0


def test_label_metric_errors():
    with pytest.raises(ValueError, match="y_pred: expected one label per example of y_true, 2 in all, got 3"):
        accuracy([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="y_true: expected at least one label"):
        macro_f1([], [])
    with pytest.raises(ValueError, match=r"y_true: expected a 1-D sequence of labels, got shape \(2, 2\)"):
        confusion_matrix([[1, 2], [3, 4]], [[1, 2], [3, 4]])
    with pytest.raises(TypeError, match="y_pred: expected labels of the same kind as y_true's"):
        accuracy([1, 2], ["1", "2"])
    with pytest.raises(ValueError, match="labels: expected each label once, got 1 2 times"):
        confusion_matrix([1, 2], [1, 2], labels=[1, 2, 1])
    with pytest.raises(ValueError, match="labels: expected at least one label"):
        confusion_matrix([1, 2], [1, 2], labels=[])
    with pytest.raises(ValueError, match=r"labels: none of \[7\] occurs"):
        macro_f1([1, 2], [1, 2], labels=[7])


# ---- labels against scikit-learn --------------------------------------------------------------


def _random_labels(seed):
    rng = np.random.default_rng(seed)
    n, C = int(rng.integers(1, 60)), int(rng.integers(1, 7))
    y_true = rng.integers(0, C, size=n)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, C + 1, size=n))  # C: a class never true
    if seed % 2:
        names = np.array([f"class-{k}" for k in range(C + 1)])
        return names[y_true], names[y_pred]
    return y_true, y_pred


@pytest.mark.parametrize("seed", range(12))
def test_label_metrics_match_scikit_learn(seed):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    y_true, y_pred = _random_labels(seed)
    labels = np.unique(np.concatenate((y_true, y_pred)))
    assert accuracy(y_true, y_pred) == pytest.approx(sklearn_metrics.accuracy_score(y_true, y_pred), abs=1e-15)
    assert macro_f1(y_true, y_pred) == pytest.approx(
        sklearn_metrics.f1_score(y_true, y_pred, average="macro", zero_division=0), abs=1e-12)
    order = np.random.default_rng(seed).permutation(labels)
    subset = order[: max(1, len(order) // 2)]
    subset = np.union1d(subset, y_true[:1])  # scikit-learn wants one listed label in y_true
    assert macro_f1(y_true, y_pred, labels=subset) == pytest.approx(
        sklearn_metrics.f1_score(y_true, y_pred, labels=subset, average="macro", zero_division=0), abs=1e-12)
    assert np.array_equal(confusion_matrix(y_true, y_pred),
                          sklearn_metrics.confusion_matrix(y_true, y_pred, labels=labels))
    assert np.array_equal(confusion_matrix(y_true, y_pred, labels=order),
                          sklearn_metrics.confusion_matrix(y_true, y_pred, labels=order))
    assert np.array_equal(confusion_matrix(y_true, y_pred, labels=subset),
                          sklearn_metrics.confusion_matrix(y_true, y_pred, labels=subset))


# ---- hand-checked entities --------------------------------------------------------------------


@pytest.mark.parametrize("tags, expected", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)]),  # I after O starts an entity
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),  # I of another type starts one
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
    (["I-ORG"], [("ORG", 0, 1)]),
    (["B-MISC-X", "I-MISC-X"], [("MISC-X", 0, 2)]),
    (["O", "O"], []),
    ([], []),
])
def test_bio_entities_follow_conlleval(tags, expected):
    assert entities(tags, "BIO") == expected


@pytest.mark.parametrize("tags, expected", [
    (["S-PER", "B-LOC", "I-LOC", "E-LOC", "O"], [("PER", 0, 1), ("LOC", 1, 4)]),
    (["B-PER", "E-PER", "S-PER"], [("PER", 0, 2), ("PER", 2, 3)]),
    (["B-PER", "O"], [("PER", 0, 1)]),  # a B without its E still ends at the O
    (["E-PER", "E-PER"], [("PER", 0, 1), ("PER", 1, 2)]),  # E after E starts a new one
    (["I-PER", "E-PER", "I-PER"], [("PER", 0, 2), ("PER", 2, 3)]),
    (["O", "I-PER", "B-LOC", "E-LOC"], [("PER", 1, 2), ("LOC", 2, 4)]),
])
def test_bioes_entities_follow_conlleval(tags, expected):
    assert entities(tags, "BIOES") == expected


def test_entity_scores_hand_checked():
    # seqeval's documented example: one MISC span misses by one token, PER is found
    y_true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    y_pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    s = entity_scores(y_true, y_pred)
    assert (s["precision"], s["recall"], s["f1"]) == (0.5, 0.5, 0.5)
    assert (s["true_entities"], s["pred_entities"], s["correct"]) == (2, 2, 1)
    assert s["per_type"] == {
        "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 1, "correct": 0},
        "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1, "predicted": 1, "correct": 1},
    }
    # spans are matched within their own sentence only
    s = entity_scores([["B-PER"], ["O"]], [["O"], ["B-PER"]])
    assert (s["precision"], s["recall"], s["f1"]) == (0.0, 0.0, 0.0)
    # nothing predicted and nothing true: every ratio is 0, not NaN
    s = entity_scores([["O"]], [["O"]], "BIOES")
    assert (s["precision"], s["recall"], s["f1"], s["per_type"]) == (0.0, 0.0, 0.0, {})
    # 2 of 3 predicted are right, 2 of 4 true found
    s = entity_scores([["S-A", "S-B", "B-A", "E-A", "S-C"]], [["S-A", "S-B", "B-A", "E-B", "O"]], "BIOES")
    assert s["precision"] == pytest.approx(2 / 4) and s["recall"] == pytest.approx(2 / 4)
    s = entity_scores([["B-A", "B-B", "B-C", "O"]], [["B-A", "B-B", "O", "B-D"]])
    assert (s["precision"], s["recall"]) == (2 / 3, 2 / 3)


def test_entity_errors():
    with pytest.raises(ValueError, match=r"scheme: expected one of \('BIO', 'BIOES'\), got 'IOB1'"):
        entities(["O"], "IOB1")
    with pytest.raises(ValueError, match=r"tags: 'E-PER' at position 1 is not a BIO tag; expected 'O' or B-TYPE / I-TYPE"):
        entities(["B-PER", "E-PER"], "BIO")
    for bad in ["X-PER", "B-", "B_PER", "PER", "o", 3]:
        with pytest.raises(ValueError, match="is not a BIOES tag"):
            entities([bad], "BIOES")
    with pytest.raises(TypeError, match="tags: expected a sequence of tag strings, got one string"):
        entities("B-PER", "BIO")
    with pytest.raises(TypeError, match="true_sequences: expected a list of tag sequences, got a list of strings"):
        entity_scores(["B-PER", "O"], ["B-PER", "O"])
    with pytest.raises(ValueError, match="pred_sequences: expected one sequence per true sequence, 2 in all, got 1"):
        entity_scores([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="pred_sequences: sequence 1 has 2 tags, its true sequence 1"):
        entity_scores([["O"], ["O"]], [["O"], ["O", "O"]])


# ---- entities against seqeval -----------------------------------------------------------------


def _random_tags(rng, scheme, n):
    """Any tag of the scheme at each position: mostly ill-formed sequences."""
    vocab = ["O"] * 3 + [f"{p}-{t}" for p in PREFIXES[scheme] for t in TYPES[:3]] + ["B-MISC-X", "I-MISC-X"]
    return [str(vocab[k]) for k in rng.integers(0, len(vocab), size=n)]


def _well_formed(rng, scheme, n):
    """Well-formed tags: random entities of random types and lengths between O runs."""
    tags = []
    while len(tags) < n:
        if rng.random() < 0.4:
            tags.append("O")
            continue
        t, size = TYPES[rng.integers(0, len(TYPES))], int(rng.integers(1, 4))
        if scheme == "BIO":
            tags += [f"B-{t}"] + [f"I-{t}"] * (size - 1)
        elif size == 1:
            tags.append(f"S-{t}")
        else:
            tags += [f"B-{t}"] + [f"I-{t}"] * (size - 2) + [f"E-{t}"]
    return tags[:n] if scheme == "BIO" or len(tags) == n else _well_formed(rng, scheme, n)


def _corpus(seed, scheme, make):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 15, size=int(rng.integers(1, 8)))
    true = [make(rng, scheme, int(n)) for n in lengths]
    # predictions: the truth with some tags replaced, so that some entities match
    pred = [[tag if rng.random() < 0.7 else _random_tags(rng, scheme, 1)[0] for tag in seq] for seq in true]
    if make is _well_formed:
        pred = [make(rng, scheme, len(seq)) if rng.random() < 0.3 else seq for seq in true]
    return true, pred


def _seqeval_scores(true, pred, **kwargs):
    sl = pytest.importorskip("seqeval.metrics.sequence_labeling")
    figures = {name: getattr(sl, f"{name}_score")(true, pred, zero_division=0, **kwargs)
               for name in ("precision", "recall", "f1")}
    per = sl.classification_report(true, pred, output_dict=True, zero_division=0, **kwargs)
    return figures, per


def _compare(ours, figures, per):
    for name, value in figures.items():
        assert ours[name] == pytest.approx(value, abs=1e-12), name
    for type_, row in ours["per_type"].items():
        assert row["precision"] == pytest.approx(per[type_]["precision"], abs=1e-12)
        assert row["recall"] == pytest.approx(per[type_]["recall"], abs=1e-12)
        assert row["f1"] == pytest.approx(per[type_]["f1-score"], abs=1e-12)
        assert row["support"] == per[type_]["support"]
    assert set(ours["per_type"]) == {k for k in per if k not in ("micro avg", "macro avg", "weighted avg")}


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
@pytest.mark.parametrize("seed", SEEDS)
def test_entities_match_seqeval_get_entities(seed, scheme):
    sl = pytest.importorskip("seqeval.metrics.sequence_labeling")
    rng = np.random.default_rng(seed)
    for _ in range(20):
        tags = _random_tags(rng, scheme, int(rng.integers(0, 12)))
        assert entities(tags, scheme) == [(t, s, e + 1) for t, s, e in sl.get_entities(tags)]


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
@pytest.mark.parametrize("seed", SEEDS)
def test_entity_scores_match_seqeval_default_mode(seed, scheme):
    true, pred = _corpus(seed, scheme, _random_tags)
    figures, per = _seqeval_scores(true, pred)
    _compare(entity_scores(true, pred, scheme), figures, per)


@pytest.mark.parametrize("scheme", ["BIO", "BIOES"])
@pytest.mark.parametrize("seed", SEEDS)
def test_entity_scores_match_seqeval_strict_mode_on_well_formed_tags(seed, scheme):
    seqeval_scheme = pytest.importorskip("seqeval.scheme")
    true, pred = _corpus(seed, scheme, _well_formed)
    strict = seqeval_scheme.IOB2 if scheme == "BIO" else seqeval_scheme.IOBES
    figures, per = _seqeval_scores(true, pred, mode="strict", scheme=strict)
    _compare(entity_scores(true, pred, scheme), figures, per)


# ---- forecasts and anomalies ---------------------------------------------------------------------


def test_forecast_errors_on_a_hand_checked_case():
    from rnnkit import metrics as M

    y, f = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 2.0])
    assert M.mae(y, f) == pytest.approx(1.0)
    assert M.rmse(y, f) == pytest.approx(np.sqrt(5 / 3))
    assert M.smape(y, f) == pytest.approx(200 / 3 * (1 / 3 + 0 + 2 / 6))
    assert M.smape([0.0], [0.0]) == 0.0
    history = np.array([1.0, 2.0, 1.0, 2.0, 1.0])  # season 2: the seasonal naive is perfect in sample
    assert M.seasonal_naive_scale(history, 1) == pytest.approx(1.0)
    assert M.seasonal_naive_scale(history, 2) == 0.0
    assert M.mase(y, f, 0.5) == pytest.approx(2.0)
    assert M.coverage(y, [0, 0, 0], [1.5, 3, 3]) == pytest.approx(2 / 3)


def test_point_adjustment_credits_a_whole_range_for_one_hit():
    from rnnkit import metrics as M

    labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0], bool)
    flags = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 1], bool)
    s = M.point_adjusted_scores(labels, flags)
    assert s["recall"] == pytest.approx(3 / 5) and s["precision"] == pytest.approx(3 / 4)
    assert s["f1"] == pytest.approx(2 * 0.75 * 0.6 / 1.35)


def test_roc_auc_and_average_precision_hand_checked():
    from rnnkit import metrics as M

    # anomalies score 0.9 and 0.5; normal points 0.5, 0.3, 0.1. Pairs (anomaly above normal):
    # 0.9 beats all 3, 0.5 beats 2 and ties 1 → (3 + 2.5) / 6
    labels, scores = [1, 1, 0, 0, 0], [0.9, 0.5, 0.5, 0.3, 0.1]
    assert M.roc_auc(labels, scores) == pytest.approx(5.5 / 6)
    # thresholds 0.9: P 1, R ½; 0.5 (the tie, two points): P 2/3, R 1 → ½·1 + ½·⅔
    assert M.average_precision(labels, scores) == pytest.approx(0.5 + 1 / 3)
    assert M.roc_auc([0, 1], [0.2, 0.8]) == 1.0 and M.roc_auc([1, 0], [0.2, 0.8]) == 0.0
    assert M.roc_auc([0, 1, 0, 1], [3, 3, 3, 3]) == 0.5  # one big tie: chance
    assert M.average_precision([0, 1, 0, 1], [3, 3, 3, 3]) == 0.5  # the share of anomalies


def test_pointwise_scores_hand_checked():
    from rnnkit import metrics as M

    labels = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0])
    flags = np.array([0, 0, 1, 0, 0, 0, 0, 0, 0, 1], bool)  # one of 5 anomalous points, one false alarm
    s = M.pointwise_scores(labels, flags)
    assert s["precision"] == pytest.approx(1 / 2) and s["recall"] == pytest.approx(1 / 5)
    assert s["f1"] == pytest.approx(2 * 0.5 * 0.2 / 0.7)
    assert M.pointwise_scores(labels, np.zeros(10, bool)) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


def _random_anomalies(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < rng.uniform(0.02, 0.5)).astype(int)
    labels[rng.integers(n)], labels[rng.integers(n)] = 0, 1  # both classes, whatever the draw
    labels[0], labels[1] = 0, 1
    # coarse scores: many ties, within and across the classes; anomalies a little higher
    scores = np.round(rng.normal(size=n) + labels * rng.uniform(0, 2), int(rng.integers(0, 2)))
    return labels, scores


@pytest.mark.parametrize("seed", range(10))
def test_anomaly_scores_match_scikit_learn(seed):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    from rnnkit import metrics as M

    labels, scores = _random_anomalies(seed)
    assert len(np.unique(scores)) < len(scores)  # the ties are there
    assert M.roc_auc(labels, scores) == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)
    assert M.average_precision(labels, scores) == pytest.approx(
        sklearn_metrics.average_precision_score(labels, scores), abs=1e-12)
    flags = scores > np.quantile(scores, 0.8)
    p, r, f, _ = sklearn_metrics.precision_recall_fscore_support(labels, flags, average="binary", zero_division=0)
    ours = M.pointwise_scores(labels, flags)
    assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((p, r, f), abs=1e-12)


def test_anomaly_score_errors():
    from rnnkit import metrics as M

    for metric in (M.roc_auc, M.average_precision):
        with pytest.raises(ValueError, match=r"^labels: .* needs both normal \(0\) and anomalous \(1\) points, got only 0s"):
            metric([0, 0, 0], [0.1, 0.2, 0.3])
        with pytest.raises(ValueError, match="got only 1s"):
            metric([1, 1], [0.1, 0.2])
        with pytest.raises(ValueError, match="^scores: expected one value per label, 3 in all, got 2"):
            metric([0, 1, 0], [0.1, 0.2])
        with pytest.raises(ValueError, match="^scores: expected finite numbers"):
            metric([0, 1], [0.1, np.nan])
        with pytest.raises(ValueError, match=r"^labels: expected 0 \(normal\) or 1 \(anomaly\), got \[0, 2\]"):
            metric([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="^flags: expected one value per label"):
        M.pointwise_scores([0, 1], [True])
