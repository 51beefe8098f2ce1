"""Losses: gradients by finite differences, equality with PyTorch, reductions, errors."""

import numpy as np
import pytest
from gradcheck import numerical_grad, rel_err

from rnnkit.nn.losses import BCEWithLogitsLoss, CrossEntropyLoss, GaussianNLLLoss, MSELoss
from rnnkit.nn.module import no_grad

SEEDS = [0, 1, 2]
TOL = {np.float64: 1e-9, np.float32: 1e-4}


def _leading(rng, min_dims=0):
    """Random leading dimensions, from ``min_dims`` to three."""
    return tuple(rng.integers(1, 5, size=rng.integers(min_dims, 4)))


def _targets(rng, shape, C, ignore_index):
    """Random classes with about a quarter of the positions set to ignore_index."""
    t = rng.integers(0, C, size=shape)
    t[rng.random(shape) < 0.25] = ignore_index
    return t


def _value_and_grad(loss, pred, *args, grad=1.0):
    value = loss(pred, *args)
    return value, loss.backward(grad)


# ---- CrossEntropyLoss --------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_gradient_matches_finite_differences(seed, label_smoothing, reduction):
    rng = np.random.default_rng(seed)
    C = int(rng.integers(2, 5))
    z = rng.standard_normal(_leading(rng) + (C,)) * 2
    t = _targets(rng, z.shape[:-1], C, ignore_index=-100)
    m = rng.random(t.shape)
    ce = CrossEntropyLoss(label_smoothing=label_smoothing, reduction=reduction)

    def loss():
        with no_grad():
            return ce(z, t, m)

    _, dz = _value_and_grad(ce, z, t, m)
    assert rel_err(dz, numerical_grad(loss, z)) <= 1e-6


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_matches_torch(seed, dtype, label_smoothing, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    C = int(rng.integers(1, 6))
    ignore_index = int(rng.choice([-100, 0, C - 1]))  # the default, and ids that are real classes
    z = (rng.standard_normal(_leading(rng, min_dims=1) + (C,)) * 3).astype(dtype)
    t = _targets(rng, z.shape[:-1], C, ignore_index)
    t.flat[0] = 0 if ignore_index != 0 else C - 1  # at least one counted position
    if C == 1:
        t[...] = 0  # a single class leaves no ignore_index to set but 0 = the class itself
        ignore_index = -100

    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(
        torch.movedim(zt, -1, 1), torch.tensor(t), ignore_index=ignore_index,
        label_smoothing=label_smoothing, reduction=reduction,
    )
    ref.backward(torch.tensor(2.5, dtype=zt.dtype))

    ce = CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction)
    value, dz = _value_and_grad(ce, z, t, grad=2.5)
    assert isinstance(value, float)
    assert dz.dtype == dtype and dz.shape == z.shape
    assert rel_err(value, ref.item()) <= TOL[dtype]
    assert rel_err(dz, zt.grad.numpy()) <= TOL[dtype]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_mask_weights_match_manual_torch(seed, label_smoothing, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    C = int(rng.integers(2, 6))
    z = rng.standard_normal((3, int(rng.integers(1, 5)), C))
    t = _targets(rng, z.shape[:-1], C, ignore_index=-100)
    t[0, 0] = 1
    w = rng.random(t.shape)
    w[0, 0] = 1

    zt = torch.tensor(z, requires_grad=True)
    per_position = torch.nn.functional.cross_entropy(
        torch.movedim(zt, -1, 1), torch.tensor(t), label_smoothing=label_smoothing, reduction="none",
    )  # already 0 at ignored positions
    weighted = (torch.tensor(w) * per_position).sum()
    if reduction == "mean":
        weighted = weighted / torch.tensor(w * (t != -100)).sum()
    weighted.backward()

    ce = CrossEntropyLoss(label_smoothing=label_smoothing, reduction=reduction)
    value, dz = _value_and_grad(ce, z, t, w)
    assert rel_err(value, weighted.item()) <= 1e-9
    assert rel_err(dz, zt.grad.numpy()) <= 1e-9


def test_cross_entropy_bool_mask_equals_ignoring_the_masked_positions():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 6, 5))
    t = rng.integers(0, 5, size=(4, 6))
    lengths = np.array([6, 3, 1, 4])
    mask = np.arange(6) < lengths[:, None]
    ce = CrossEntropyLoss()
    masked, dz_masked = _value_and_grad(ce, z, t, mask)
    ignored, dz_ignored = _value_and_grad(ce, z, np.where(mask, t, -100))
    assert masked == pytest.approx(ignored, rel=1e-12)
    np.testing.assert_allclose(dz_masked, dz_ignored, rtol=1e-12)


def test_cross_entropy_is_stable_for_huge_logits():
    torch = pytest.importorskip("torch")
    z = np.array([[1e4, 0.0, -1e4], [-3e4, 3e4, 0.0]], dtype=np.float32)
    t = np.array([1, 1])
    zt = torch.tensor(z, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(zt, torch.tensor(t), label_smoothing=0.1)
    ref.backward()
    value, dz = _value_and_grad(CrossEntropyLoss(label_smoothing=0.1), z, t)
    assert np.isfinite(value) and np.isfinite(dz).all()
    assert rel_err(value, ref.item()) <= 1e-6
    assert rel_err(dz, zt.grad.numpy()) <= 1e-6


def test_cross_entropy_with_everything_ignored_is_zero_not_nan():
    ce = CrossEntropyLoss()
    value, dz = _value_and_grad(ce, np.ones((2, 3)), np.array([-100, -100]))
    assert value == 0.0
    np.testing.assert_array_equal(dz, 0)


def test_cross_entropy_backward_pops_newest_first():
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    t1, t2 = np.array([0, 2]), np.array([1, 1, 0, 2])
    ce = CrossEntropyLoss()
    ce(z1, t1)
    ce(z2, t2)
    dz2, dz1 = ce.backward(), ce.backward()
    p1 = np.exp(z1) / np.exp(z1).sum(1, keepdims=True)
    np.testing.assert_allclose(dz1, (p1 - np.eye(3)[t1]) / 2, rtol=1e-12)
    assert dz2.shape == (4, 3)
    with pytest.raises(RuntimeError, match="more times than forward"):
        ce.backward()


@pytest.mark.parametrize(
    "args, exc, match",
    [
        ((np.zeros((2, 3)), np.array([0, 3])), ValueError, r"target: class 3 is out of range for 3 classes"),
        ((np.zeros((2, 3)), np.array([-1, 0])), ValueError, r"target: class -1 is out of range for 3 classes"),
        ((np.zeros((2, 3)), np.array([0, 1, 2])), ValueError, r"target: expected shape \(2,\).*got \(3,\)"),
        ((np.zeros((2, 3)), np.array([0.5, 1])), TypeError, "target: expected integers"),
        ((np.array([[0.0, np.nan, 1.0]]), np.array([0])), ValueError, "logits: contains 1 NaN"),
        ((np.float64(1.0), np.int64(0)), ValueError, r"logits: expected shape \(\*, C\)"),
        ((np.zeros((2, 3)), np.array([0, 1]), np.ones(3)), ValueError, r"mask: expected shape \(2,\)"),
        ((np.zeros((2, 3)), np.array([0, 1]), np.array([1.0, -1.0])), ValueError, "mask: expected non-negative"),
    ],
    ids=["class-too-large", "class-negative", "target-shape", "target-float", "logits-nan", "logits-0d",
         "mask-shape", "mask-negative"],
)
def test_cross_entropy_rejects_bad_input(args, exc, match):
    with pytest.raises(exc, match=match):
        CrossEntropyLoss()(*args)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"reduction": "none"}, ValueError, "reduction: expected one of"),
        ({"label_smoothing": 1.0}, ValueError, r"label_smoothing: expected a number in \[0, 1\)"),
        ({"ignore_index": None}, TypeError, "ignore_index: expected an integer"),
    ],
)
def test_cross_entropy_rejects_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        CrossEntropyLoss(**kwargs)


@pytest.mark.parametrize("grad, exc", [(float("nan"), ValueError), ("1", TypeError), (None, TypeError)])
def test_backward_rejects_a_bad_upstream_grad(grad, exc):
    ce = CrossEntropyLoss()
    ce(np.zeros((1, 2)), np.array([0]))
    with pytest.raises(exc, match="grad: expected"):
        ce.backward(grad)


# ---- MSELoss and BCEWithLogitsLoss ----------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_and_bce_gradients_match_finite_differences(seed, reduction):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(_leading(rng) + (3,)) * 3
    y = rng.random(x.shape)
    for loss in (MSELoss(reduction), BCEWithLogitsLoss(reduction, pos_weight=rng.random(3) * 3)):

        def f():
            with no_grad():
                return loss(x, y)

        _, dx = _value_and_grad(loss, x, y)
        assert rel_err(dx, numerical_grad(f, x)) <= 1e-6


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_matches_torch(seed, dtype, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(_leading(rng, min_dims=1)).astype(dtype)
    y = rng.standard_normal(x.shape).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.mse_loss(xt, torch.tensor(y), reduction=reduction)
    ref.backward(torch.tensor(0.5, dtype=xt.dtype))
    value, dx = _value_and_grad(MSELoss(reduction), x, y, grad=0.5)
    assert dx.dtype == dtype
    assert rel_err(value, ref.item()) <= TOL[dtype]
    assert rel_err(dx, xt.grad.numpy()) <= TOL[dtype]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("with_pos_weight", [False, True])
def test_bce_with_logits_matches_torch(seed, dtype, reduction, with_pos_weight):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    C = int(rng.integers(1, 5))
    x = (rng.standard_normal(_leading(rng) + (C,)) * 4).astype(dtype)
    y = (rng.random(x.shape) < 0.5).astype(dtype)
    y.flat[0] = 0.3  # soft labels are allowed
    pos_weight = rng.random(C) * 3 if with_pos_weight else None

    xt = torch.tensor(x, requires_grad=True)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(y), reduction=reduction,
        pos_weight=None if pos_weight is None else torch.tensor(pos_weight, dtype=xt.dtype),
    )
    ref.backward()
    value, dx = _value_and_grad(BCEWithLogitsLoss(reduction, pos_weight=pos_weight), x, y)
    assert dx.dtype == dtype
    assert rel_err(value, ref.item()) <= TOL[dtype]
    assert rel_err(dx, xt.grad.numpy()) <= TOL[dtype]


def test_bce_with_logits_is_stable_for_huge_logits():
    x = np.array([1e4, -1e4, 800.0, -800.0])
    y = np.array([1.0, 0.0, 0.0, 1.0])
    bce = BCEWithLogitsLoss("sum")
    value, dx = _value_and_grad(bce, x, y)
    assert value == pytest.approx(1600.0)  # the two confident mistakes cost |x| each
    np.testing.assert_allclose(dx, [0.0, 0.0, 1.0, -1.0])


@pytest.mark.parametrize(
    "make, args, exc, match",
    [
        (MSELoss, (np.zeros((2, 3)), np.zeros((3, 2))), ValueError, r"target: expected shape \(2, 3\)"),
        (MSELoss, (np.array([np.inf]), np.zeros(1)), ValueError, "input: contains 1 NaN or infinite"),
        (MSELoss, (np.zeros(1), np.array([np.nan])), ValueError, "target: contains 1 NaN"),
        (BCEWithLogitsLoss, (np.zeros(2), np.zeros(3)), ValueError, r"target: expected shape \(2,\)"),
        (BCEWithLogitsLoss, (np.array([np.nan]), np.zeros(1)), ValueError, "logits: contains 1 NaN"),
        (BCEWithLogitsLoss, (np.zeros(2), np.array([0.0, 1.5])), ValueError, r"target: expected values in \[0, 1\]"),
        (lambda: BCEWithLogitsLoss(pos_weight=np.ones(3)), (np.zeros((2, 2)), np.zeros((2, 2))), ValueError,
         r"pos_weight: shape \(3,\) does not broadcast"),
        (lambda: MSELoss("mena"), (), ValueError, "reduction: expected one of"),
    ],
    ids=["mse-shape", "mse-input-inf", "mse-target-nan", "bce-shape", "bce-nan", "bce-target-range",
         "bce-pos-weight", "mse-reduction"],
)
def test_mse_and_bce_reject_bad_input(make, args, exc, match):
    with pytest.raises(exc, match=match):
        make()(*args)


@pytest.mark.parametrize(
    "loss, args",
    [
        (CrossEntropyLoss(), (np.zeros((2, 3)), np.array([0, 1]))),
        (MSELoss(), (np.zeros(3), np.ones(3))),
        (BCEWithLogitsLoss(), (np.zeros(3), np.ones(3))),
    ],
    ids=["CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss"],
)
def test_backward_after_no_grad_forward_raises(loss, args):
    with no_grad():
        loss(*args)
    with pytest.raises(RuntimeError, match="no_grad"):
        loss.backward()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("full", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gaussian_nll_matches_torch_values_and_gradients(seed, full, reduction):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(1, 5, size=rng.integers(1, 4)))
    mu, y = rng.standard_normal(shape), rng.standard_normal(shape)
    var = rng.uniform(0.05, 2.0, shape)
    var.flat[0] = 1e-9  # below eps: clamped to it, as torch does
    loss_fn = GaussianNLLLoss(full=full, reduction=reduction)
    loss = loss_fn(mu, y, var)
    d_mu, d_var = loss_fn.backward(2.0)
    t_mu, t_var = torch.tensor(mu, requires_grad=True), torch.tensor(var, requires_grad=True)
    t_loss = torch.nn.GaussianNLLLoss(full=full, reduction=reduction)(t_mu, torch.tensor(y), t_var)
    (2.0 * t_loss).backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-12)
    assert rel_err(d_mu, t_mu.grad.numpy()) < 1e-12 and rel_err(d_var, t_var.grad.numpy()) < 1e-12


def test_gaussian_nll_rejects_negative_variances_and_mismatched_shapes():
    with pytest.raises(ValueError, match="var: expected variances >= 0"):
        GaussianNLLLoss()(np.zeros(3), np.zeros(3), np.array([1.0, -1.0, 1.0]))
    with pytest.raises(ValueError, match="var"):
        GaussianNLLLoss()(np.zeros(3), np.zeros(3), np.ones(4))
