"""CTCLoss: every path summed by brute force, torch.nn.CTCLoss's losses and logit gradients on
random batches, finite differences in float64, impossible targets, and bad input."""

import itertools

import numpy as np
import pytest

from gradcheck import numerical_grad, rel_err
from rnnkit.nn import CTCLoss
from rnnkit.nn.ctc import ctc_nll, greedy_decode, prefix_beam_search

torch = pytest.importorskip("torch")


def log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def random_batch(seed: int, blank: int = 0):
    """log_probs (T, N, C), padded targets with repeats, lengths (some targets empty, some inputs short)."""
    rng = np.random.default_rng(seed)
    T, N, C = int(rng.integers(1, 15)), int(rng.integers(1, 5)), int(rng.integers(blank + 2, 7))
    logits = rng.standard_normal((T, N, C)) * rng.uniform(0.5, 3)
    input_lengths = rng.integers(1, T + 1, size=N)
    input_lengths[0] = T
    target_lengths = np.minimum(rng.integers(0, 6, size=N), (input_lengths + 1) // 2)
    S = max(int(target_lengths.max()), 1)
    labels = [c for c in range(C) if c != blank]
    targets = rng.choice(labels, size=(N, S))
    if S > 1 and rng.random() < 0.5:
        targets[:, 1] = targets[:, 0]  # a repeat: needs a blank between, the skip is not allowed
    return logits, targets, input_lengths, target_lengths


def collapse(path, blank):
    merged = [c for i, c in enumerate(path) if i == 0 or c != path[i - 1]]
    return [c for c in merged if c != blank]


@pytest.mark.parametrize("ruled_out", [False, True], ids=["", "a class ruled out at one frame"])
@pytest.mark.parametrize("target", [[], [1], [1, 1], [2, 1, 2], [1, 2, 2]], ids=str)
def test_the_loss_sums_every_path_that_collapses_to_the_target(target, ruled_out):
    rng = np.random.default_rng(len(target))
    T, C = 5, 3
    lp = log_softmax(rng.standard_normal((T, C)))
    if ruled_out:
        lp[2, 1] = -np.inf  # log 0: no path through class 1 at frame 2
    total = sum(np.exp(sum(lp[t, c] for t, c in enumerate(path)))
                for path in itertools.product(range(C), repeat=T) if collapse(path, 0) == target)
    with np.errstate(divide="ignore"):
        expected = -np.log(total)
    nll = ctc_nll(lp[:, None], np.array([target or [1]]), [T], [len(target)])[0]
    assert nll == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("blank", [0, 2])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("seed", range(8))
def test_equals_torch_loss_and_logit_gradients(seed, reduction, dtype, blank):
    logits, targets, input_lengths, target_lengths = random_batch(seed, blank)
    lp = log_softmax(logits).astype(dtype)
    zero_infinity = seed % 2 == 1
    ours = CTCLoss(blank=blank, reduction=reduction, zero_infinity=zero_infinity)
    loss = ours(lp, targets, input_lengths, target_lengths)
    d_lp = ours.backward(0.7)
    assert d_lp.dtype == dtype and d_lp.shape == lp.shape
    d_logits = d_lp - np.exp(lp) * d_lp.sum(-1, keepdims=True)  # log_softmax's backward
    z = torch.tensor(logits.astype(dtype), requires_grad=True)
    ref = torch.nn.CTCLoss(blank=blank, reduction=reduction, zero_infinity=zero_infinity)(
        torch.log_softmax(z, -1), torch.tensor(targets), torch.tensor(input_lengths), torch.tensor(target_lengths))
    (0.7 * ref).backward()
    bound = 1e-12 if dtype == np.float64 else 1e-5
    assert loss == pytest.approx(ref.item(), rel=bound)
    assert rel_err(d_logits, z.grad.numpy()) <= bound


def test_concatenated_and_padded_targets_and_unbatched_input_agree():
    logits, targets, input_lengths, target_lengths = random_batch(3)
    lp = log_softmax(logits)
    loss = CTCLoss(reduction="sum")
    padded = loss(lp, targets, input_lengths, target_lengths)
    d_padded = loss.backward()
    flat = np.concatenate([t[:n] for t, n in zip(targets, target_lengths)])
    assert loss(lp, flat, input_lengths, target_lengths) == padded
    np.testing.assert_array_equal(loss.backward(), d_padded)
    one = [loss(lp[:, n], targets[n, : target_lengths[n]], input_lengths[n], target_lengths[n]) for n in range(lp.shape[1])]
    assert sum(one) == pytest.approx(padded, rel=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_equals_finite_differences(reduction):
    """The gradient with respect to log_probs as free variables (not through a softmax)."""
    logits, targets, input_lengths, target_lengths = random_batch(5)
    lp = log_softmax(logits)
    loss = CTCLoss(reduction=reduction)
    loss(lp, targets, input_lengths, target_lengths)
    analytic = loss.backward()
    numeric = numerical_grad(lambda: CTCLoss(reduction=reduction)(lp, targets, input_lengths, target_lengths), lp)
    assert rel_err(analytic, numeric) < 1e-7
    assert np.all(analytic[input_lengths[1]:, 1] == 0)  # frames past a sequence's end get nothing


def test_an_impossible_target_is_infinite_or_zero_with_zero_infinity_and_never_nan():
    lp = log_softmax(np.random.default_rng(0).standard_normal((3, 2, 4)))
    targets, input_lengths, target_lengths = np.array([[1, 1, 2], [1, 2, 3]]), [3, 3], [3, 2]  # 1 1 2 needs 4 frames
    for zero_infinity in (False, True):
        loss = CTCLoss(reduction="sum", zero_infinity=zero_infinity)
        value = loss(lp, targets, input_lengths, target_lengths)
        d = loss.backward()
        possible = ctc_nll(lp[:, 1:], targets[1:], [3], [2])[0]
        assert value == (possible if zero_infinity else np.inf)
        assert np.all(d[:, 0] == 0) and np.all(np.isfinite(d))


@pytest.mark.parametrize("args,match", [
    (dict(log_probs=np.zeros((4, 3))), r"targets: expected a 1-D"),  # unbatched log_probs, batched targets
    (dict(log_probs=np.zeros((4, 2, 3, 1))), r"log_probs: expected \(T, N, C\)"),
    (dict(log_probs=np.full((4, 2, 3), np.nan)), r"log_probs: contains NaN"),
    (dict(input_lengths=[5, 4]), r"input_lengths: expected lengths in \[1, 4\]"),
    (dict(input_lengths=[4]), r"input_lengths: expected one length per sequence, 2"),
    (dict(target_lengths=[3, 1]), r"targets: expected \(N=2, S_max >= every target length 3\)"),
    (dict(targets=[[1, 0], [2, 2]]), r"targets: label 0 is not a class other than the blank"),
    (dict(targets=[[1, 7], [2, 2]]), r"targets: label 7"),
    (dict(targets=[1, 2]), r"concatenated targets need sum\(target_lengths\) = 4"),
    (dict(blank=3), r"blank: expected a class in \[0, 3\)"),
])
def test_bad_input_is_a_one_line_error_naming_the_argument(args, match):
    given = dict(log_probs=np.log(np.full((4, 2, 3), 1 / 3)), targets=[[1, 2], [2, 2]], input_lengths=[4, 4],
                 target_lengths=[2, 2], blank=0)
    given.update(args)
    loss = CTCLoss(blank=given.pop("blank"))
    with pytest.raises(ValueError, match=match):
        loss(**given)
    with pytest.raises(ValueError, match="reduction"):
        CTCLoss(reduction="none")


# ---- decoding ---------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_a_wide_prefix_beam_finds_the_most_probable_labels_and_their_probability(seed):
    """Every path of 6 frames over 3 classes summed by its collapsed labels: the beam's best is
    the argmax, scored log p(labels | x), and the beam's scores are the sums it keeps."""
    rng = np.random.default_rng(seed)
    T, C = 6, 3
    lp = log_softmax(rng.standard_normal((T, C)) * 2)
    totals = {}
    for path in itertools.product(range(C), repeat=T):
        key = tuple(collapse(path, 0))
        totals[key] = totals.get(key, 0.0) + np.exp(sum(lp[t, c] for t, c in enumerate(path)))
    found = prefix_beam_search(lp, beam=200)
    best = max(totals, key=totals.get)
    assert tuple(found[0][0]) == best
    for labels, score in found[:5]:
        assert score == pytest.approx(np.log(totals[tuple(labels)]), rel=1e-10)
    assert score == pytest.approx(-ctc_nll(lp[:, None], [labels or [1]], [T], [len(labels)])[0], rel=1e-10)


def test_greedy_decoding_merges_repeats_drops_blanks_and_stops_at_each_length():
    classes = np.array([[1, 1, 0, 1, 2, 2, 0], [2, 0, 2, 2, 1, 1, 1]]).T  # (T, N)
    lp = np.log(np.full((7, 2, 3), 0.1))
    np.put_along_axis(lp, classes[:, :, None], np.log(0.8), axis=2)
    assert greedy_decode(lp) == [[1, 1, 2], [2, 2, 1]]
    assert greedy_decode(lp, [3, 4]) == [[1], [2, 2]]


def test_a_language_model_in_the_beam_changes_the_choice_between_close_labels():
    lp = np.log(np.array([[0.1, 0.46, 0.44], [0.9, 0.05, 0.05]]))  # label 1 slightly ahead of 2
    assert prefix_beam_search(lp, beam=4)[0][0] == [1]
    prefers_2 = lambda prefix: np.log(np.array([0.1, 0.1, 0.8]))  # noqa: E731
    assert prefix_beam_search(lp, beam=4, lm=prefers_2, lm_weight=1.0)[0][0] == [2]
    with pytest.raises(ValueError, match="beam: expected an integer >= 1"):
        prefix_beam_search(lp, beam=0)
