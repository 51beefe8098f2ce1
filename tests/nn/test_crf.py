"""CRF: log Z, NLL, Viterbi and marginals against brute-force enumeration; gradients by finite
differences; padding; batch_first; numerical stability; input errors."""

import itertools

import numpy as np
import pytest
from gradcheck import numerical_grad, rel_err

from rnnkit.nn import CRF, no_grad
from rnnkit.nn.validation import NonFiniteError

SEEDS = [0, 1, 2]


def _problem(seed, K=3, T=4, B=4, dtype=np.float64, scale=1.0):
    """A CRF with non-trivial parameters and random emissions, tags and unequal lengths."""
    rng = np.random.default_rng(seed)
    crf = CRF(K, dtype=dtype, rng=rng)
    for p in crf.parameters():
        p.data[...] = rng.standard_normal(p.shape) * scale
    e = (rng.standard_normal((T, B, K)) * 2 * scale).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[0] = T  # at least one full-length row
    tags = rng.integers(0, K, size=(T, B))
    return crf, e, tags, lengths


def _path_score(crf, e_b, path):
    """s(y) of one sequence, written straight from the definition."""
    s = crf.start.data[path[0]] + crf.end.data[path[-1]]
    s += sum(e_b[t, k] for t, k in enumerate(path))
    s += sum(crf.transitions.data[i, j] for i, j in zip(path[:-1], path[1:]))
    return float(s)


def _brute_force(crf, e, lengths):
    """For each row: log Z, the best path and its score, and the node marginals, over all K^L paths."""
    T, B, K = e.shape
    out = []
    for b in range(B):
        L = int(lengths[b])
        paths = list(itertools.product(range(K), repeat=L))
        scores = np.array([_path_score(crf, e[:L, b], p) for p in paths])
        log_z = np.logaddexp.reduce(scores)
        probs = np.exp(scores - log_z)
        marg = np.zeros((T, K))
        for p, q in zip(paths, probs):
            marg[np.arange(L), p] += q
        best = int(np.argmax(scores))
        out.append((log_z, paths[best], scores[best], marg))
    return out


# ---- values against enumeration ---------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("T", [1, 2, 4])
def test_log_partition_and_nll_equal_brute_force(seed, T):
    crf, e, tags, lengths = _problem(seed, T=T)
    brute = _brute_force(crf, e, lengths)
    log_z = np.array([r[0] for r in brute])
    assert np.allclose(crf.log_partition(e, lengths), log_z, rtol=1e-12, atol=1e-12)

    gold = np.array([_path_score(crf, e[:L, b], tags[:L, b]) for b, L in enumerate(lengths)])
    with no_grad():
        mean = crf(e, tags, lengths)
        total = CRF(3, reduction="sum", dtype=np.float64)
        total.load_state_dict(crf.state_dict())
        summed = total(e, tags, lengths)
    assert isinstance(mean, float)
    assert mean == pytest.approx(np.mean(log_z - gold), rel=1e-12)
    assert summed == pytest.approx(np.sum(log_z - gold), rel=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("T", [1, 3, 4])
def test_viterbi_equals_brute_force_argmax(seed, T):
    crf, e, _, lengths = _problem(seed, T=T, B=6)
    paths, scores = crf.decode(e, lengths)
    assert paths.shape == (T, 6) and paths.dtype == np.int64
    for b, (_, best, best_score, _) in enumerate(_brute_force(crf, e, lengths)):
        L = lengths[b]
        assert tuple(paths[:L, b]) == best
        assert np.all(paths[L:, b] == -1)
        assert scores[b] == pytest.approx(best_score, rel=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_marginals_equal_brute_force_and_sum_to_one(seed):
    crf, e, _, lengths = _problem(seed)
    p = crf.marginals(e, lengths)
    brute = np.stack([r[3] for r in _brute_force(crf, e, lengths)], axis=1)
    assert np.allclose(p, brute, atol=1e-12)
    mask = np.arange(e.shape[0])[:, None] < lengths[None, :]
    assert np.allclose(p.sum(axis=2), mask)  # 1 within each length, 0 past it


# ---- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradients_match_finite_differences(seed, reduction):
    crf, e, tags, lengths = _problem(seed, T=5, B=4)
    crf.reduction = reduction
    assert len(set(lengths.tolist())) > 1  # unequal lengths

    def loss():
        with no_grad():
            return crf(e, tags, lengths)

    crf.zero_grad()
    crf(e, tags, lengths)
    de = crf.backward(2.5)
    assert de.shape == e.shape and de.dtype == np.float64
    assert rel_err(de, 2.5 * numerical_grad(loss, e)) <= 1e-6
    for name, p in crf.named_parameters():
        assert rel_err(p.grad, 2.5 * numerical_grad(loss, p.data)) <= 1e-6, name


def test_gradient_is_zero_past_each_length():
    crf, e, tags, lengths = _problem(3, T=5, B=4)
    crf(e, tags, lengths)
    de = crf.backward()
    mask = np.arange(5)[:, None] < lengths[None, :]
    assert np.all(de[~mask] == 0)
    # within a length, each position's gradient sums to zero (marginals and a one-hot both sum to 1)
    assert np.allclose(de.sum(axis=2), 0)


def test_backward_pops_newest_forward_first():
    crf, e, tags, lengths = _problem(4)
    crf(e, tags, lengths)
    crf(2 * e, tags, None)
    second = crf.backward()
    first = crf.backward()
    crf(2 * e, tags, None)
    assert np.array_equal(second, crf.backward())
    crf(e, tags, lengths)
    assert np.array_equal(first, crf.backward())
    with pytest.raises(RuntimeError, match="backward called more times than forward"):
        crf.backward()


def test_no_grad_keeps_nothing_for_backward():
    crf, e, tags, lengths = _problem(5)
    with no_grad():
        crf(e, tags, lengths)
    with pytest.raises(RuntimeError, match="more times than forward"):
        crf.backward()


# ---- padding, layout, precision, stability --------------------------------------------------


def test_padding_does_not_affect_loss_gradients_or_decode():
    crf, e, tags, lengths = _problem(6, T=5, B=4)
    rng = np.random.default_rng(60)
    mask = np.arange(5)[:, None] < lengths[None, :]
    assert (~mask).any()
    e2, tags2 = e.copy(), tags.copy()
    e2[~mask] = rng.standard_normal(((~mask).sum(), 3)) * 1e3
    tags2[~mask] = -100  # out-of-range tags are fine where they are ignored

    value = crf(e, tags, lengths)
    de = crf.backward()
    grads = [p.grad.copy() for p in crf.parameters()]
    crf.zero_grad()
    assert crf(e2, tags2, lengths) == value
    assert np.array_equal(crf.backward(), de)
    assert all(np.array_equal(p.grad, g) for p, g in zip(crf.parameters(), grads))
    paths, scores = crf.decode(e, lengths)
    paths2, scores2 = crf.decode(e2, lengths)
    assert np.array_equal(paths, paths2) and np.array_equal(scores, scores2)

    # and each row alone, cut to its length, gives the same numbers
    for b, L in enumerate(lengths):
        alone_paths, alone_score = crf.decode(e[:L, b:b + 1])
        assert np.array_equal(alone_paths[:, 0], paths[:L, b])
        assert alone_score[0] == scores[b]
        assert crf.log_partition(e[:L, b:b + 1])[0] == pytest.approx(crf.log_partition(e, lengths)[b], rel=1e-14)


def test_lengths_none_means_every_step():
    crf, e, tags, _ = _problem(7)
    full = np.full(e.shape[1], e.shape[0])
    with no_grad():
        assert crf(e, tags) == crf(e, tags, full)
    assert np.array_equal(crf.decode(e)[0], crf.decode(e, full)[0])


def test_batch_first_is_the_transpose_of_time_major():
    crf, e, tags, lengths = _problem(8)
    bf = CRF(3, batch_first=True, dtype=np.float64)
    bf.load_state_dict(crf.state_dict())
    eb, tb = e.transpose(1, 0, 2).copy(), tags.T.copy()
    assert bf(eb, tb, lengths) == pytest.approx(crf(e, tags, lengths), rel=1e-14)
    assert np.allclose(bf.backward(), crf.backward().transpose(1, 0, 2), atol=1e-15)
    for p, q in zip(bf.parameters(), crf.parameters()):
        assert np.allclose(p.grad, q.grad, atol=1e-15)
    assert np.array_equal(bf.decode(eb, lengths)[0], crf.decode(e, lengths)[0].T)
    assert np.allclose(bf.marginals(eb, lengths), crf.marginals(e, lengths).transpose(1, 0, 2))


def test_float32_agrees_with_float64():
    crf64, e, tags, lengths = _problem(9, T=6, B=5)
    crf32 = CRF(3, dtype=np.float32)
    crf32.load_state_dict(crf64.state_dict())
    v32, v64 = crf32(e, tags, lengths), crf64(e, tags, lengths)
    d32, d64 = crf32.backward(), crf64.backward()
    assert d32.dtype == np.float32 and crf32.transitions.grad.dtype == np.float32
    assert v32 == pytest.approx(v64, rel=1e-5)
    assert rel_err(d32, d64) <= 1e-5
    assert rel_err(crf32.transitions.grad, crf64.transitions.grad) <= 1e-5


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_scores_and_forbidden_transitions_stay_finite(dtype):
    crf, e, tags, lengths = _problem(10, T=6, B=3, dtype=dtype)
    crf.transitions.data[:, 2] = -1e4  # tag 2 can only start a sequence
    e *= 300
    tags[1:] = np.where(tags[1:] == 2, 0, tags[1:])
    value = crf(e, tags, lengths)
    de = crf.backward()
    assert np.isfinite(value) and value >= 0
    assert np.isfinite(de).all() and all(np.isfinite(p.grad).all() for p in crf.parameters())
    paths, scores = crf.decode(e, lengths)
    assert not np.any(paths[1:] == 2)
    assert np.all(crf.log_partition(e, lengths) >= scores - 1e-3 * np.abs(scores))
    p = crf.marginals(e, lengths)
    # float32 keeps ~7 digits of scores in the thousands: α + β − log Z is good to ~1e-4 there
    atol = 1e-3 if dtype == np.float32 else 1e-9
    assert np.allclose(p.sum(axis=2), np.arange(6)[:, None] < lengths[None, :], atol=atol)


def test_loss_decreases_under_gradient_descent():
    crf, e, tags, lengths = _problem(11, T=5, B=6)
    first = crf(e, tags, lengths)
    crf.backward()
    for _ in range(50):
        for p in crf.parameters():
            p.data -= 0.5 * p.grad
        crf.zero_grad()
        crf(e, tags, lengths)
        crf.backward()
    with no_grad():
        assert crf(e, tags, lengths) < first


# ---- errors ---------------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    crf = CRF(3, dtype=np.float64)
    e = np.zeros((4, 2, 3))
    tags = np.zeros((4, 2), dtype=int)
    with pytest.raises(ValueError, match=r"emissions: expected a 3-D array, got 2-D"):
        crf(e[:, 0], tags)
    with pytest.raises(ValueError, match=r"emissions: expected shape \(T, B, num_tags\) with num_tags=3"):
        crf(np.zeros((4, 2, 5)), tags)
    with pytest.raises(ValueError, match="at least one sequence and one time step"):
        crf(np.zeros((0, 2, 3)), tags[:0])
    nan = e.copy()
    nan[1, 1, 2] = np.nan
    with pytest.raises(NonFiniteError, match="emissions: contains 1 NaN or infinite"):
        crf(nan, tags)
    with pytest.raises(NonFiniteError, match="emissions: contains"):
        crf.decode(nan)
    with pytest.raises(ValueError, match=r"tags: expected shape \(4, 2\)"):
        crf(e, tags[:3])
    with pytest.raises(ValueError, match="tags: expected a 2-D integer array"):
        crf(e, tags[:, 0])
    with pytest.raises(TypeError, match="tags: expected integers"):
        crf(e, tags + 0.5)
    bad = tags.copy()
    bad[2, 1] = 3
    with pytest.raises(ValueError, match=r"tags: tag 3 is out of range; expected tags in \[0, 3\)"):
        crf(e, bad)
    bad[2, 1] = -1
    with pytest.raises(ValueError, match="tags: tag -1 is out of range"):
        crf(e, bad)
    crf(e, bad, lengths=[4, 2])  # the same -1 past the second row's length is ignored
    with pytest.raises(ValueError, match="lengths: every length must be >= 1"):
        crf(e, tags, lengths=[4, 0])
    with pytest.raises(ValueError, match="lengths: a length of 5 exceeds"):
        crf.decode(e, lengths=[5, 1])
    with pytest.raises(ValueError, match="lengths: expected one length per sequence, 2 in all, got 3"):
        crf.marginals(e, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match="num_tags: expected an integer >= 1"):
        CRF(0)
    with pytest.raises(ValueError, match="reduction: expected one of"):
        CRF(3, reduction="none")
    with pytest.raises(TypeError, match="grad: expected a number"):
        crf.backward(np.ones(2))
