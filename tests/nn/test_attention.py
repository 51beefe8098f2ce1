"""MultiheadSelfAttention: equal to torch.nn.MultiheadAttention, gradients by finite differences,
causality, key padding, the cache stack and the input checks."""

import numpy as np
import pytest
from gradcheck import numerical_grad, rel_err

from rnnkit.nn import MultiheadSelfAttention, no_grad

TOL = {np.float64: 1e-9, np.float32: 1e-4}


def _torch():
    return pytest.importorskip("torch")


def random_config(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    num_heads = 1 + seed % 3
    return dict(
        embed_dim=num_heads * int(rng.integers(1, 4)),
        num_heads=num_heads,
        bias=bool(rng.random() < 0.8),
        causal=bool(rng.random() < 0.5),
        batch_first=bool(rng.random() < 0.5),
    )


def make_pair(cfg, dtype, seed=0):
    """Ours and torch's, with torch's initial weights loaded into ours."""
    torch = _torch()
    torch.manual_seed(seed)
    ref = torch.nn.MultiheadAttention(cfg["embed_dim"], cfg["num_heads"], bias=cfg["bias"], batch_first=cfg["batch_first"],
                                      dtype=torch.float64 if dtype == np.float64 else torch.float32)
    ours = MultiheadSelfAttention(**cfg, dtype=dtype, rng=seed)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return ours, ref


def valid_queries(lengths, T, B, unbatched):
    """(B, T) bool, or (T,) unbatched: which query positions lie inside their sequence."""
    if lengths is None:
        mask = np.ones((B, T), bool)
    else:
        mask = np.arange(T)[None, :] < np.asarray(lengths).reshape(-1)[:, None]
    return mask[0] if unbatched else mask


def to_layout(mask_bt, batch_first, unbatched):
    """A (B, T) (or (T,)) mask in the layout of x, with a trailing axis for features."""
    if unbatched or batch_first:
        return mask_bt[..., None]
    return mask_bt.T[..., None]


# ---- equality with PyTorch --------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", range(10))
def test_matches_torch_on_random_configurations(seed, dtype):
    torch = _torch()
    cfg = random_config(seed)
    ours, ref = make_pair(cfg, dtype, seed)
    rng = np.random.default_rng(100 + seed)
    T, B, E = int(rng.integers(1, 7)), int(rng.integers(1, 5)), cfg["embed_dim"]
    unbatched = rng.random() < 0.25
    if unbatched:
        B = 1
        shape = (T, E)
    else:
        shape = (B, T, E) if cfg["batch_first"] else (T, B, E)
    x = rng.standard_normal(shape).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B) if rng.random() < 0.6 else None
    if unbatched and lengths is not None:
        lengths = int(lengths[0])

    valid = valid_queries(lengths, T, B, unbatched)
    valid_x = to_layout(valid, cfg["batch_first"], unbatched)
    dy = rng.standard_normal(shape).astype(dtype) * valid_x  # no gradient from padded queries

    xt = torch.tensor(x, requires_grad=True)
    attn_mask = torch.triu(torch.ones(T, T), 1).bool() if cfg["causal"] else None
    key_padding_mask = None if lengths is None else torch.tensor(~valid)
    out_t, w_t = ref(xt, xt, xt, key_padding_mask=key_padding_mask, need_weights=True, attn_mask=attn_mask,
                     average_attn_weights=True)
    (out_t * torch.tensor(dy)).sum().backward()

    out, weights = ours(x, lengths=lengths)
    dx = ours.backward(dy)
    tol = TOL[dtype]
    assert out.shape == x.shape and out.dtype == dtype
    assert weights.shape == ((T, T) if unbatched else (B, T, T))
    assert rel_err(out * valid_x, out_t.detach().numpy() * valid_x) <= tol
    assert np.all(out[~np.broadcast_to(valid_x, out.shape)] == 0)
    assert rel_err(weights * valid[..., None], w_t.detach().numpy() * valid[..., None]) <= tol
    assert rel_err(dx, xt.grad.numpy()) <= tol
    ref_params = dict(ref.named_parameters())
    names = [name for name, _ in ours.named_parameters()]
    assert sorted(names) == sorted(ref_params)
    for name, p in ours.named_parameters():
        assert rel_err(p.grad, ref_params[name].grad.numpy()) <= tol, name


# ---- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_moves_both_ways_with_torch(bias):
    torch = _torch()
    ours = MultiheadSelfAttention(6, num_heads=3, bias=bias, dtype=np.float64, rng=0)
    ref = torch.nn.MultiheadAttention(6, 3, bias=bias, dtype=torch.float64)

    ref.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})  # strict: same names
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), ours.state_dict()[k])

    torch.manual_seed(1)
    ref = torch.nn.MultiheadAttention(6, 3, bias=bias, dtype=torch.float64)
    ours.load_state_dict({k: v.numpy() for k, v in ref.state_dict().items()})
    assert set(ours.state_dict()) == set(ref.state_dict())
    for k, v in ref.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k], v.numpy())


def test_initialisation_follows_torch():
    E = 8
    layer = MultiheadSelfAttention(E, num_heads=2, rng=0)
    shapes = {name: p.shape for name, p in layer.named_parameters()}
    assert shapes == {"in_proj_weight": (3 * E, E), "in_proj_bias": (3 * E,), "out_proj.weight": (E, E), "out_proj.bias": (E,)}
    assert np.abs(layer.in_proj_weight.data).max() <= np.sqrt(6 / (4 * E))
    assert np.abs(layer.out_proj.weight.data).max() <= 1 / np.sqrt(E)
    assert not layer.in_proj_bias.data.any() and not layer.out_proj.bias.data.any()
    assert all(p.data.dtype == np.float32 for p in layer.parameters())
    np.testing.assert_array_equal(MultiheadSelfAttention(E, rng=3).in_proj_weight.data, MultiheadSelfAttention(E, rng=3).in_proj_weight.data)


# ---- gradients ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cfg, lengths, unbatched",
    [
        (dict(embed_dim=4, num_heads=2), None, False),
        (dict(embed_dim=4, num_heads=2, causal=True, batch_first=True), [3, 1], False),
        (dict(embed_dim=3, num_heads=1, bias=False), [2, 3], False),
        (dict(embed_dim=4, num_heads=4, causal=True), None, True),
    ],
)
def test_gradients_match_finite_differences(cfg, lengths, unbatched):
    rng = np.random.default_rng(0)
    layer = MultiheadSelfAttention(**cfg, dtype=np.float64, rng=1)
    for p in layer.parameters():  # non-zero biases, so their gradients are exercised through every path
        p.data[...] = rng.standard_normal(p.shape) * 0.5
    T, B, E = 3, 2, cfg["embed_dim"]
    shape = (T, E) if unbatched else ((B, T, E) if cfg.get("batch_first") else (T, B, E))
    x = rng.standard_normal(shape)
    r = rng.standard_normal(shape)  # loss = Σ r ⊙ out, so d_out = r

    def loss():
        with no_grad():
            return float(np.sum(r * layer(x, lengths=lengths)[0]))

    layer(x, lengths=lengths)
    dx = layer.backward(r)
    assert rel_err(dx, numerical_grad(loss, x)) <= 1e-6
    for name, p in layer.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) <= 1e-6, name


# ---- masking ------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_first", [False, True])
def test_causal_output_does_not_see_the_future(batch_first):
    rng = np.random.default_rng(0)
    T, B, E = 5, 2, 4
    layer = MultiheadSelfAttention(E, num_heads=2, causal=True, batch_first=batch_first, dtype=np.float64, rng=0)
    x = rng.standard_normal((B, T, E) if batch_first else (T, B, E))
    with no_grad():
        out, weights = layer(x)
        for t in range(T - 1):
            x2 = x.copy()
            if batch_first:
                x2[:, t + 1 :] += rng.standard_normal(x2[:, t + 1 :].shape)
                changed = layer(x2)[0]
                np.testing.assert_allclose(changed[:, : t + 1], out[:, : t + 1], rtol=0, atol=1e-12)
                assert not np.allclose(changed[:, t + 1 :], out[:, t + 1 :])
            else:
                x2[t + 1 :] += rng.standard_normal(x2[t + 1 :].shape)
                changed = layer(x2)[0]
                np.testing.assert_allclose(changed[: t + 1], out[: t + 1], rtol=0, atol=1e-12)
                assert not np.allclose(changed[t + 1 :], out[t + 1 :])
    assert np.all(np.triu(weights, 1) == 0)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0)


def test_padding_is_invisible_and_padded_queries_are_zero():
    rng = np.random.default_rng(0)
    T, B, E = 4, 3, 6
    lengths = [4, 2, 1]
    layer = MultiheadSelfAttention(E, num_heads=3, batch_first=True, dtype=np.float64, rng=0)
    x = rng.standard_normal((B, T, E))
    out, weights = layer(x, lengths=lengths)
    x2 = x.copy()
    for b, n in enumerate(lengths):
        x2[b, n:] = rng.standard_normal((T - n, E))
        # each row alone, cut to its length, gives the same outputs
        with no_grad():
            alone, w_alone = layer(x[b : b + 1, :n])
        np.testing.assert_allclose(out[b, :n], alone[0], rtol=0, atol=1e-12)
        np.testing.assert_allclose(weights[b, :n, :n], w_alone[0], rtol=0, atol=1e-12)
        assert np.all(out[b, n:] == 0) and np.all(weights[b, n:] == 0) and np.all(weights[b, :, n:] == 0)
    with no_grad():
        np.testing.assert_array_equal(layer(x2, lengths=lengths)[0], out)
    dx = layer.backward(rng.standard_normal(out.shape))  # gradient at padded queries is ignored
    for b, n in enumerate(lengths):
        assert np.all(dx[b, n:] == 0)


def test_layouts_agree():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 4))  # (T, B, E)
    time_major = MultiheadSelfAttention(4, num_heads=2, causal=True, dtype=np.float64, rng=0)
    batch_major = MultiheadSelfAttention(4, num_heads=2, causal=True, batch_first=True, dtype=np.float64, rng=0)
    out_t, w_t = time_major(x, lengths=[5, 2, 3])
    out_b, w_b = batch_major(x.transpose(1, 0, 2), lengths=[5, 2, 3])
    np.testing.assert_allclose(out_b, out_t.transpose(1, 0, 2), rtol=0, atol=1e-12)
    np.testing.assert_allclose(w_b, w_t, rtol=0, atol=1e-12)
    d = rng.standard_normal(x.shape)
    np.testing.assert_allclose(batch_major.backward(d.transpose(1, 0, 2)), time_major.backward(d).transpose(1, 0, 2), rtol=0, atol=1e-12)
    out_1, w_1 = time_major(x[:, 1], lengths=2)  # unbatched
    np.testing.assert_allclose(out_1, out_t[:, 1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(w_1, w_t[1], rtol=0, atol=1e-12)


# ---- the cache stack -------------------------------------------------------------------------------


def test_backward_undoes_the_newest_forward_first():
    rng = np.random.default_rng(0)
    layer = MultiheadSelfAttention(4, num_heads=2, dtype=np.float64, rng=0)
    x1, x2 = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 1, 4))
    d1, d2 = rng.standard_normal(x1.shape), rng.standard_normal(x2.shape)
    layer(x1)
    expected_dx1 = layer.backward(d1)
    g1 = [p.grad.copy() for p in layer.parameters()]
    layer.zero_grad()
    layer(x2)
    expected_dx2 = layer.backward(d2)
    layer.zero_grad()

    layer(x1)
    layer(x2)
    np.testing.assert_allclose(layer.backward(d2), expected_dx2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer.backward(d1), expected_dx1, rtol=0, atol=1e-12)
    layer.zero_grad()
    layer(x1)
    layer.backward(d1)
    for p, g in zip(layer.parameters(), g1):
        np.testing.assert_allclose(p.grad, g, rtol=0, atol=1e-12)
    with pytest.raises(RuntimeError, match="MultiheadSelfAttention.backward called more times than forward"):
        layer.backward(d1)


def test_no_grad_keeps_nothing():
    layer = MultiheadSelfAttention(4, rng=0)
    with no_grad():
        layer(np.ones((3, 2, 4)))
    assert all(not m._caches for m in layer.modules())
    with pytest.raises(RuntimeError, match="backward called more times than forward"):
        layer.backward(np.ones((3, 2, 4)))


def test_speed_experiment_usage():
    # how experiments/speed.py drives it: float32, causal, one head, out = layer(x)[0]
    rng = np.random.default_rng(0)
    layer = MultiheadSelfAttention(8, num_heads=1, causal=True, rng=rng)
    x = rng.standard_normal((16, 2, 8)).astype(np.float32)
    out = layer(x)[0]
    dx = layer.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == np.float32 and dx.shape == x.shape
    assert all(p.grad.any() for p in layer.parameters())


# ---- input checks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(embed_dim=6, num_heads=4), r"num_heads: expected a divisor of embed_dim=6, got 4"),
        (dict(embed_dim=0), r"embed_dim: expected an integer >= 1, got 0"),
        (dict(embed_dim=4, num_heads=0), r"num_heads: expected an integer >= 1, got 0"),
    ],
)
def test_bad_construction_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiheadSelfAttention(**kwargs)


@pytest.mark.parametrize(
    "x, lengths, match",
    [
        (np.ones((3, 2, 5)), None, r"x: expected embed_dim=4 features in the last dimension, got 5"),
        (np.ones(4), None, r"x: expected a 2-D or 3-D array, got 1-D"),
        (np.ones((1, 3, 2, 4)), None, r"x: expected a 2-D or 3-D array, got 4-D"),
        (np.full((3, 2, 4), np.nan), None, r"x: contains 24 NaN"),
        (np.ones((0, 2, 4)), None, r"x: expected at least one time step"),
        (np.ones((3, 2, 4)), [3], r"lengths: expected one length per sequence, 2 in all, got 1"),
        (np.ones((3, 2, 4)), [3, 0], r"lengths: every length must be >= 1, got 0"),
        (np.ones((3, 2, 4)), [3, 4], r"lengths: a length of 4 exceeds the sequence's 3 time steps"),
        (np.ones((3, 2, 4)), np.ones((2, 1), int), r"lengths: expected a 0-D or 1-D integer array"),
    ],
)
def test_bad_input(x, lengths, match):
    layer = MultiheadSelfAttention(4, num_heads=2, rng=0)
    with pytest.raises(ValueError, match=match):
        layer(x, lengths=lengths)
    assert not layer._caches


def test_bad_d_out():
    layer = MultiheadSelfAttention(4, num_heads=2, batch_first=True, rng=0)
    layer(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"d_out: expected shape \(2, 3, 4\) \(the shape of out\), got \(3, 2, 4\)"):
        layer.backward(np.ones((3, 2, 4)))
