"""Linear, Embedding, Dropout: gradients by finite differences, equality with PyTorch, errors."""

import numpy as np
import pytest
from gradcheck import numerical_grad, rel_err

from rnnkit.nn.linear import Dropout, Embedding, Linear
from rnnkit.nn.module import no_grad

SEEDS = [0, 1, 2]
TOL = {np.float64: 1e-9, np.float32: 1e-4}


def _leading(rng):
    """Random leading dimensions, from none to three."""
    return tuple(rng.integers(1, 4, size=rng.integers(0, 4)))


def _torch_dtype(torch, dtype):
    return torch.float64 if dtype == np.float64 else torch.float32


# ---- Linear -----------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradients_match_finite_differences(seed, bias):
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(1, 5, size=2)
    lin = Linear(n_in, n_out, bias=bias, dtype=np.float64, rng=seed)
    x = rng.standard_normal(_leading(rng) + (n_in,))
    r = rng.standard_normal(x.shape[:-1] + (n_out,))  # loss = Σ r ⊙ y, so dy = r

    def loss():
        with no_grad():
            return float(np.sum(r * lin(x)))

    lin(x)
    dx = lin.backward(r)
    assert rel_err(dx, numerical_grad(loss, x)) <= 1e-6
    for p in lin.parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) <= 1e-6


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(seed, dtype, bias):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_in, n_out = rng.integers(1, 7, size=2)
    ref = torch.nn.Linear(n_in, n_out, bias=bias, dtype=_torch_dtype(torch, dtype))
    lin = Linear(n_in, n_out, bias=bias, dtype=dtype, rng=seed + 100)
    lin.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})

    x = rng.standard_normal(_leading(rng) + (n_in,)).astype(dtype)
    dy = rng.standard_normal(x.shape[:-1] + (n_out,)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(dy))

    y = lin(x)
    dx = lin.backward(dy)
    tol = TOL[dtype]
    assert y.dtype == dx.dtype == dtype
    assert rel_err(y, yt.detach().numpy()) <= tol
    assert rel_err(dx, xt.grad.numpy()) <= tol
    assert rel_err(lin.weight.grad, ref.weight.grad.numpy()) <= tol
    if bias:
        assert rel_err(lin.bias.grad, ref.bias.grad.numpy()) <= tol
    else:
        assert lin.bias is None and [n for n, _ in lin.named_parameters()] == ["weight"]


def test_linear_init_is_uniform_within_one_over_sqrt_fan_in():
    lin = Linear(64, 256, rng=0)
    k = 1 / np.sqrt(64)
    for p in (lin.weight.data, lin.bias.data):
        assert np.abs(p).max() <= k
        assert np.abs(p).max() > 0.9 * k  # fills the range rather than sitting inside it
    assert abs(lin.weight.data.std() - k / np.sqrt(3)) < 0.05 * k  # the std of U(-k, k)
    assert lin.weight.shape == (256, 64) and lin.bias.shape == (256,)
    assert lin.weight.data.dtype == np.float32


def test_linear_same_seed_same_weights():
    a, b = Linear(3, 4, rng=7), Linear(3, 4, rng=7)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)


def test_linear_backward_pops_newest_first_and_accumulates():
    rng = np.random.default_rng(0)
    lin = Linear(3, 2, dtype=np.float64, rng=0)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    dy1, dy2 = rng.standard_normal((4, 2)), rng.standard_normal((5, 2))
    lin(x1)
    lin(x2)
    dx2 = lin.backward(dy2)
    dx1 = lin.backward(dy1)
    W = lin.weight.data
    np.testing.assert_allclose(dx2, dy2 @ W)
    np.testing.assert_allclose(dx1, dy1 @ W)
    np.testing.assert_allclose(lin.weight.grad, dy1.T @ x1 + dy2.T @ x2)
    np.testing.assert_allclose(lin.bias.grad, dy1.sum(0) + dy2.sum(0))
    with pytest.raises(RuntimeError, match="more times than forward"):
        lin.backward(dy1)


@pytest.mark.parametrize(
    "make, call",
    [
        (lambda: Linear(3, 2), lambda m: m.backward(np.ones(2))),
        (lambda: Embedding(5, 2), lambda m: m.backward(np.ones((1, 2)))),
        (lambda: Dropout(0.5, rng=0), lambda m: m.backward(np.ones(3))),
    ],
    ids=["Linear", "Embedding", "Dropout"],
)
def test_backward_after_no_grad_forward_raises(make, call):
    m = make()
    with no_grad():
        m(np.ones(3) if not isinstance(m, Embedding) else np.array([1]))
    with pytest.raises(RuntimeError, match="no_grad"):
        call(m)


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((0, 2), ValueError, "in_features"),
        ((2, -1), ValueError, "out_features"),
        ((2, 2.5), ValueError, "out_features"),
    ],
)
def test_linear_rejects_bad_sizes(args, exc, match):
    with pytest.raises(exc, match=match):
        Linear(*args)


def test_linear_rejects_bad_dtype():
    with pytest.raises(TypeError, match="dtype"):
        Linear(2, 2, dtype=np.int32)


@pytest.mark.parametrize(
    "x, exc, match",
    [
        (np.ones((2, 4)), ValueError, r"x: expected shape \(\*, 3\).*got \(2, 4\)"),
        (np.float64(1.0), ValueError, r"x: expected shape \(\*, 3\).*got \(\)"),
        (np.array([[1.0, np.nan, 0.0]]), ValueError, "x: contains 1 NaN"),
        (np.array([["a", "b", "c"]]), TypeError, "x: expected a numeric array"),
    ],
    ids=["last-dim", "0-D", "nan", "strings"],
)
def test_linear_rejects_bad_input(x, exc, match):
    with pytest.raises(exc, match=match):
        Linear(3, 2)(x)


def test_linear_rejects_dy_of_wrong_shape():
    lin = Linear(3, 2)
    lin(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(4, 2\)"):
        lin.backward(np.ones((4, 3)))


# ---- Embedding ----------------------------------------------------------------------


def test_embedding_init_is_standard_normal_with_zero_padding_row():
    emb = Embedding(400, 50, padding_idx=3, rng=0)
    w = np.delete(emb.weight.data, 3, axis=0)
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    np.testing.assert_array_equal(emb.weight.data[3], 0)
    assert emb.weight.data.dtype == np.float32


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("padding_idx", [None, 1, -1])
def test_embedding_matches_torch(seed, dtype, padding_idx):
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    V, D = 6, int(rng.integers(1, 5))
    ref = torch.nn.Embedding(V, D, padding_idx=padding_idx, dtype=_torch_dtype(torch, dtype))
    emb = Embedding(V, D, padding_idx=padding_idx, dtype=dtype, rng=seed)
    emb.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})

    ids = rng.integers(0, V, size=_leading(rng) + (5,))  # with 5+ reads of 6 ids, some repeat
    dy = rng.standard_normal(ids.shape + (D,)).astype(dtype)
    yt = ref(torch.tensor(ids))
    yt.backward(torch.tensor(dy))

    y = emb(ids)
    assert emb.backward(dy) is None
    tol = TOL[dtype]
    assert y.dtype == dtype
    assert rel_err(y, yt.detach().numpy()) <= tol
    assert rel_err(emb.weight.grad, ref.weight.grad.numpy()) <= tol


def test_embedding_padding_row_gets_no_gradient():
    emb = Embedding(4, 3, padding_idx=0, dtype=np.float64, rng=0)
    ids = np.array([[0, 2, 0], [2, 3, 0]])
    y = emb(ids)
    np.testing.assert_array_equal(y[ids == 0], 0)
    emb.backward(np.ones(ids.shape + (3,)))
    np.testing.assert_array_equal(emb.weight.grad[0], 0)
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [0, 0, 2, 1])  # rows read 0, 0, 2, 1 times


def test_embedding_gradient_accumulates_over_backward_calls_and_ignores_reads_of_padding_only():
    emb = Embedding(4, 2, padding_idx=0, dtype=np.float64, rng=0)
    ids = np.array([3, 1, 3, 3])
    dy = np.arange(8.0).reshape(4, 2)
    for _ in range(2):
        emb(ids)
        emb.backward(dy)
    np.testing.assert_array_equal(emb.weight.grad, 2 * np.array([[0, 0], [2, 3], [0, 0], [0 + 4 + 6, 1 + 5 + 7]]))
    emb(np.array([0, 0]))
    emb.backward(np.ones((2, 2)))  # every read is of the padding row: nothing to add
    emb(np.zeros((0,), int))
    emb.backward(np.zeros((0, 2)))  # no reads at all
    np.testing.assert_array_equal(emb.weight.grad[[0, 2]], 0)


@pytest.mark.parametrize("seed", SEEDS)
def test_embedding_gradient_matches_finite_differences(seed):
    rng = np.random.default_rng(seed)
    emb = Embedding(5, 3, padding_idx=2, dtype=np.float64, rng=seed)
    ids = rng.integers(0, 5, size=(3, 4))
    r = rng.standard_normal(ids.shape + (3,))

    def loss():
        with no_grad():
            return float(np.sum(r * emb(ids)))

    emb(ids)
    emb.backward(r)
    expected = numerical_grad(loss, emb.weight.data)
    expected[2] = 0  # the padding row is frozen even though the output reads it
    assert rel_err(emb.weight.grad, expected) <= 1e-6


@pytest.mark.parametrize(
    "ids, exc, match",
    [
        (np.array([[0, 5]]), ValueError, r"input: id 5 is out of range.*\[0, 5\)"),
        (np.array([-1, 2]), ValueError, r"input: id -1 is out of range.*\[0, 5\)"),
        (np.array([0.5, 1.0]), TypeError, "input: expected integers"),
    ],
    ids=["too-large", "negative", "fractional"],
)
def test_embedding_rejects_bad_ids(ids, exc, match):
    with pytest.raises(exc, match=match):
        Embedding(5, 2)(ids)


@pytest.mark.parametrize("padding_idx", [5, -6, 1.0, True])
def test_embedding_rejects_bad_padding_idx(padding_idx):
    with pytest.raises(ValueError, match=r"padding_idx: expected None or an integer in \[-5, 5\)"):
        Embedding(5, 2, padding_idx=padding_idx)


def test_embedding_rejects_dy_of_wrong_shape():
    emb = Embedding(5, 2)
    emb(np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"dy: expected shape \(3, 2\)"):
        emb.backward(np.ones((3, 3)))


# ---- Dropout --------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_drops_a_fraction_p_and_scales_the_rest(p):
    drop = Dropout(p, rng=0)
    x = np.random.default_rng(1).uniform(1, 2, size=(400, 500))  # no zeros, so zeros mean dropped
    y = drop(x)
    kept = y != 0
    assert abs((1 - kept.mean()) - p) < 0.005  # 200,000 draws: the std of the fraction is ≤ 0.0011
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-15)
    assert y.dtype == np.float64


def test_dropout_backward_applies_the_same_mask():
    drop = Dropout(0.3, rng=0)
    x = np.random.default_rng(1).uniform(1, 2, size=(50, 40)).astype(np.float32)
    y = drop(x)
    dy = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    dx = drop.backward(dy)
    np.testing.assert_allclose(dx, dy * (y / x), rtol=1e-6)  # y / x is the scaled mask
    assert dx.dtype == np.float32


def test_dropout_is_reproducible_with_a_seed():
    x = np.ones((20, 30))
    a, b, c = Dropout(0.5, rng=3), Dropout(0.5, rng=3), Dropout(0.5, rng=4)
    ya, yb, yc = a(x), b(x), c(x)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(ya, yc)
    assert not np.array_equal(a(x), ya)  # the next call draws a fresh mask


@pytest.mark.parametrize("p, training", [(0.5, False), (0.0, True)], ids=["eval", "p=0"])
def test_dropout_is_the_identity_in_eval_and_for_p_zero(p, training):
    drop = Dropout(p, rng=0).train(training)
    x = np.random.default_rng(0).standard_normal((10, 10))
    dy = np.random.default_rng(1).standard_normal((10, 10))
    np.testing.assert_array_equal(drop(x), x)
    np.testing.assert_array_equal(drop.backward(dy), dy)


@pytest.mark.parametrize("p", [-0.1, 1.0, "0.5"])
def test_dropout_rejects_bad_p(p):
    with pytest.raises(ValueError, match=r"p: expected a number in \[0, 1\)"):
        Dropout(p)


def test_dropout_rejects_non_finite_input():
    with pytest.raises(ValueError, match="x: contains 1 NaN"):
        Dropout(0.5)(np.array([1.0, np.inf]))
