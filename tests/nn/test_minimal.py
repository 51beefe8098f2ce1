"""minGRU / minLSTM: the log-space scan equals the step-by-step recurrence and a plain Python
reference, in both modes, at extreme scales and lengths; step-by-step inference. What every
layer must do (gradients, lengths, layouts, bad input) is the shared suite's, test_layers.py.

Every test runs on both backends: on the compiled one both modes run the compiled loop
(nn/kernels/minimal.py), which must then meet the same bounds against the references."""

import numpy as np
import pytest

from gradcheck import numerical_grad, rel_err
from rnnkit.nn import backend, minimal, no_grad
from rnnkit.nn.minimal import MinGRU, MinLSTM, linear_scan, reverse_linear_scan

CLASSES = {"minGRU": MinGRU, "minLSTM": MinLSTM}


@pytest.fixture(autouse=True, params=backend.available())
def on_each_backend(request):
    with backend.use_backend(request.param):
        yield


def sigmoid(k):
    return 1 / (1 + np.exp(-k))


def reference(layer, x, h0, lengths):
    """The recurrence h_t = a_t h_{t−1} + b_t written out step by step, one sequence at a time.

    x: (T, B, I) time-major; h0: (L·D, B, H). Returns out (T, B, D·H) and h_n (L·D, B, H).
    """
    T, B, _ = x.shape
    H, D = layer.hidden_size, 2 if layer.bidirectional else 1
    params = dict(layer.named_parameters())
    out = np.zeros((T, B, D * H))
    h_n = np.zeros((layer.num_layers * D, B, H))
    for row in range(B):
        n = T if lengths is None else lengths[row]
        inp = x[:n, row]
        for k in range(layer.num_layers):
            outs = []
            for d, sfx in enumerate(["", "_reverse"][:D]):
                W = params[f"weight_l{k}{sfx}"].data
                bias = params[f"bias_l{k}{sfx}"].data if layer.bias else 0.0
                h, ys = h0[k * D + d, row], np.zeros((n, H))
                for t in (reversed(range(n)) if d else range(n)):
                    pre = W @ inp[t] + bias
                    h_tilde = np.where(pre[-H:] >= 0, pre[-H:] + 0.5, sigmoid(pre[-H:]))  # the paper's g
                    if isinstance(layer, MinGRU):
                        z = sigmoid(pre[:H])
                        a, b = 1 - z, z * h_tilde
                    else:
                        f, i = sigmoid(pre[:H]), sigmoid(pre[H : 2 * H])
                        a, b = f / (f + i), i / (f + i) * h_tilde
                    h = a * h + b
                    ys[t] = h
                outs.append(ys)
                h_n[k * D + d, row] = h
            inp = np.concatenate(outs, axis=1)
        out[:n, row] = inp
    return out, h_n


def make(name, seed=0, **opts):
    return CLASSES[name](3, 4, dtype=np.float64, rng=seed, **opts)


def random_inputs(layer, T=6, B=3, seed=1):
    rng = np.random.default_rng(seed)
    D = 2 if layer.bidirectional else 1
    x = rng.standard_normal((T, B, layer.input_size))
    h0 = rng.standard_normal((layer.num_layers * D, B, layer.hidden_size))
    return x, h0


CONFIGS = [
    (name, dict(num_layers=L, bidirectional=bi), lengths)
    for name in CLASSES
    for L in (1, 2)
    for bi in (False, True)
    for lengths in (None, [6, 2, 4])
]


# ---- the scan ------------------------------------------------------------------------------

# (steps per block, elements per segment): the defaults; small values that make every test
# also pad the last block and join several segments; and blocks of 3 in one segment, whose
# block ends are joined in several rounds of doubling
SCAN_SETTINGS = [(minimal.CHUNK, minimal.SEGMENT), (3, 7), (3, 2**20)]


@pytest.fixture(params=SCAN_SETTINGS, ids=["default blocks", "blocks of 3, many segments", "blocks of 3, one segment"])
def scan_settings(request, monkeypatch):
    monkeypatch.setattr(minimal, "CHUNK", request.param[0])
    monkeypatch.setattr(minimal, "SEGMENT", request.param[1])


def test_candidate_activation_and_its_slope_on_both_sides_and_at_the_extremes():
    k = np.array([-800.0, -30.0, -1.0, -1e-9, 0.0, 1e-9, 1.0, 30.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # σ(−800) may underflow to 0
        h = minimal.g(k)
        slope = minimal.g_slope(h)
    with np.errstate(over="ignore"):
        sig = 1 / (1 + np.exp(-k))  # e^{800} = inf: σ(−800) = 0
    expected = np.where(k >= 0, k + 0.5, sig)
    assert rel_err(h, expected) < 1e-15
    assert np.all(h[1:] > 0)
    assert np.allclose(slope, np.where(k >= 0, 1.0, sig * (1 - sig)), rtol=1e-12, atol=0)
    out = np.empty_like(k)
    assert minimal.g(k, out=out) is out and np.array_equal(out, h)


def step_by_step(a, b, h0):
    prev, expected = h0, []
    for t in range(len(a)):
        prev = a[t] * prev + b[t]
        expected.append(prev)
    return np.array(expected)


def test_scan_solves_the_linear_recurrence_for_any_initial_state_and_either_sign(scan_settings):
    rng = np.random.default_rng(0)
    a, b, h0 = rng.uniform(0.01, 1, (50, 2, 3)), rng.standard_normal((50, 2, 3)), rng.standard_normal((2, 3))
    assert rel_err(linear_scan(np.log(a), b, h0), step_by_step(a, b, h0)) < 1e-12
    assert rel_err(linear_scan(np.log(a), b), step_by_step(a, b, np.zeros((2, 3)))) < 1e-12


def test_scan_takes_vanishing_coefficients_as_the_floor_without_overflow(scan_settings):
    """a_t = e^{−60} for 40 steps: e^{−a*} would overflow float64 without the floor, and the
    state must still follow b exactly (a·h_{t−1} is below the resolution of h_t)."""
    rng = np.random.default_rng(4)
    log_a = np.full((40, 5), -60.0)
    log_a[::7] = np.log(rng.uniform(0.5, 1, (6, 5)))  # some steps that do carry the state
    b = rng.uniform(0.1, 2, (40, 5))
    h = linear_scan(log_a, b, np.ones(5))
    assert np.all(np.isfinite(h))
    assert rel_err(h, step_by_step(np.exp(log_a), b, np.ones(5))) < 1e-14


@pytest.mark.parametrize("scale", [1e-25, 1.0, 1e25])
def test_reverse_scan_takes_vanishing_coefficients_and_tiny_or_huge_gradients(scale, scan_settings):
    """The backward scan multiplies by e^{a*} ≥ e^{−640} where the forward divides: with a_t =
    e^{−60} at most steps and gradients of any scale it must still equal the loop, without
    underflow or overflow (the products are ≥ 1e-25·e^{−640} ≈ 1e-303)."""
    rng = np.random.default_rng(5)
    log_a = np.full((40, 4), -60.0)
    log_a[::5] = np.log(rng.uniform(0.5, 1, (8, 4)))
    v, init = rng.standard_normal((40, 4)) * scale, rng.standard_normal(4) * scale
    G = reverse_linear_scan(log_a, v, init)
    a, g, expected = np.exp(log_a), init, np.empty_like(v)
    for t in reversed(range(40)):
        g = v[t] + (a[t + 1] * g if t + 1 < 40 else g)
        expected[t] = g
    assert np.all(np.isfinite(G))
    assert rel_err(G, expected) < 1e-14


def test_reverse_scan_is_the_transposed_recurrence_for_values_of_either_sign(scan_settings):
    rng = np.random.default_rng(1)
    a, v, init = rng.uniform(0.01, 1, (40, 3)), rng.standard_normal((40, 3)), rng.standard_normal(3)
    G = reverse_linear_scan(np.log(a), v, init)
    g, expected = init, np.empty_like(v)
    for t in reversed(range(40)):
        g = v[t] + (a[t + 1] * g if t + 1 < 40 else g)
        expected[t] = g
    assert rel_err(G, expected) < 1e-12


# ---- forward: modes, reference, lengths ---------------------------------------------------------


@pytest.mark.parametrize("name,opts,lengths", CONFIGS)
def test_parallel_and_sequential_modes_agree(name, opts, lengths, scan_settings):
    layer = make(name, **opts)
    x, h0 = random_inputs(layer)
    out_p, hn_p = layer(x, h0, lengths=lengths)
    out_s, hn_s = layer(x, h0, lengths=lengths, mode="sequential")
    assert rel_err(out_p, out_s) < 1e-6
    assert rel_err(hn_p, hn_s) < 1e-6


@pytest.mark.parametrize("scale", [1e-60, 1.0, 1e60])
@pytest.mark.parametrize("name", CLASSES)
def test_saturated_gates_and_gradients_of_any_scale_give_the_sequential_gradients(name, scale):
    """Gates near 1 (log a ≈ −45 each step: a block's a* reaches −720, beyond e^{−745}'s
    underflow) and upstream gradients from 1e-60 to 1e60: the parallel backward must neither
    underflow nor overflow, and agree with the step-by-step one."""
    layer = make(name)
    layer.bias_l0.data[:4] = 45.0 if name == "minGRU" else -45.0  # z ≈ 1 − e^{−45}; f' ≈ 2e^{−45}
    x = np.random.default_rng(3).standard_normal((40, 2, 3))
    d_out = np.random.default_rng(4).standard_normal((40, 2, 4)) * scale
    grads = {}
    for mode in ("parallel", "sequential"):
        layer.zero_grad()
        out, _ = layer(x, mode=mode)
        dx, dh0 = layer.backward(d_out)
        grads[mode] = [dx, dh0] + [p.grad.copy() for p in layer.parameters()]
    for p, s in zip(grads["parallel"], grads["sequential"]):
        assert np.all(np.isfinite(p))
        assert rel_err(p, s) < 1e-10


@pytest.mark.parametrize("name,opts,lengths", CONFIGS)
def test_matches_a_step_by_step_python_reference(name, opts, lengths):
    layer = make(name, **opts)
    x, h0 = random_inputs(layer, seed=2)
    out_ref, hn_ref = reference(layer, x, h0, lengths)
    out, hn = layer(x, h0, lengths=lengths)
    assert rel_err(out, out_ref) < 1e-12
    assert rel_err(hn, hn_ref) < 1e-12
    out0, hn0 = layer(x, lengths=lengths)  # no h0: zeros, as for GRU
    out0_ref, hn0_ref = reference(layer, x, np.zeros_like(h0), lengths)
    assert rel_err(out0, out0_ref) < 1e-12 and rel_err(hn0, hn0_ref) < 1e-12


@pytest.mark.parametrize("name", CLASSES)
def test_step_with_a_carried_state_gives_the_outputs_of_forward(name):
    layer = make(name, num_layers=2)
    x, h0 = random_inputs(layer)
    with no_grad():
        out, hn = layer(x, h0)
    h, ys = h0, []
    for t in range(x.shape[0]):
        y, h = layer.step(x[t], h)
        ys.append(y)
    assert layer._caches == []  # inference keeps nothing for backward
    assert rel_err(np.array(ys), out) < 1e-12
    assert rel_err(h, hn) < 1e-12
    y, h1 = layer.step(x[0, 0])  # unbatched, from zeros
    assert y.shape == (4,) and h1.shape == (2, 4)


@pytest.mark.parametrize("name", CLASSES)
def test_modes_agree_on_long_sequences_with_saturated_gates(name):
    """|log a| summed over 2000 steps reaches thousands: the log-space scan must not overflow."""
    layer = make(name, num_layers=2)
    for p in layer.parameters():
        p.data *= 8  # pre-activations of ±10 and more: z, f, i at 1e-5 of 0 or 1
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 2, 3))
    out_p, hn_p = layer(x)
    out_s, hn_s = layer(x, mode="sequential")
    assert np.isfinite(out_p).all()
    assert rel_err(out_p, out_s) < 1e-6 and rel_err(hn_p, hn_s) < 1e-6
    w = rng.standard_normal(out_p.shape)
    dx_s, dh0_s = layer.backward(w)  # newest forward (the sequential one) first
    dx_p, dh0_p = layer.backward(w)
    assert np.isfinite(dx_p).all() and np.isfinite(dh0_p).all()
    assert rel_err(dx_p, dx_s) < 1e-6 and rel_err(dh0_p, dh0_s) < 1e-6


@pytest.mark.parametrize("name", CLASSES)
def test_float32_scan_stays_accurate_over_long_sequences(name):
    """Blocks keep |a*| small: the float32 scan matches float64 to ~1e-5 at T = 4096."""
    layer32 = CLASSES[name](2, 8, rng=0)
    layer64 = CLASSES[name](2, 8, dtype=np.float64)
    layer64.load_state_dict(layer32.state_dict())
    x = np.random.default_rng(0).standard_normal((4096, 1, 2))
    with no_grad():
        out32, _ = layer32(x)
        out64, _ = layer64(x)
    assert np.max(np.abs(out32 - out64) / np.abs(out64)) < 1e-4


@pytest.mark.parametrize("name", CLASSES)
def test_float32_modes_agree_and_keep_the_dtype(name):
    layer = CLASSES[name](3, 8, bidirectional=True, rng=0)
    x = np.random.default_rng(0).standard_normal((64, 4, 3))
    out_p, hn_p = layer(x, lengths=[64, 10, 33, 1])
    out_s, _ = layer(x, lengths=[64, 10, 33, 1], mode="sequential")
    assert out_p.dtype == hn_p.dtype == np.float32
    assert rel_err(out_p, out_s) < 1e-5
    dx, dh0 = layer.backward(np.ones_like(out_p))
    assert dx.dtype == dh0.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())


def test_parameters_are_named_like_the_other_layers():
    layer = MinLSTM(3, 4, num_layers=2, bidirectional=True)
    shapes = {n: p.shape for n, p in layer.named_parameters()}
    assert shapes == {
        "weight_l0": (12, 3), "bias_l0": (12,), "weight_l0_reverse": (12, 3), "bias_l0_reverse": (12,),
        "weight_l1": (12, 8), "bias_l1": (12,), "weight_l1_reverse": (12, 8), "bias_l1_reverse": (12,),
    }
    assert MinGRU(3, 4, bias=False).state_dict().keys() == {"weight_l0"}
    assert layer.weight_l0.data.dtype == np.float32
    assert np.abs(layer.weight_l1.data).max() <= 0.5  # U(−1/√H, 1/√H)


# ---- backward ---------------------------------------------------------------------------------------

GRAD_CASES = [
    # layer, options, use lengths, give h0, gradient through ("out", "state" or both)
    ("minGRU", dict(), False, False, ("out",)),
    ("minGRU", dict(num_layers=2, bidirectional=True), True, True, ("out", "state")),
    ("minGRU", dict(num_layers=2), True, True, ("state",)),
    ("minGRU", dict(bidirectional=True, batch_first=True), True, False, ("out",)),
    ("minLSTM", dict(), False, True, ("out", "state")),
    ("minLSTM", dict(num_layers=2, bidirectional=True), True, True, ("out", "state")),
    ("minLSTM", dict(num_layers=2, bias=False), False, True, ("state",)),
    ("minLSTM", dict(bidirectional=True), True, True, ("out",)),
]


@pytest.mark.parametrize("name,opts,use_lengths,give_h0,through", GRAD_CASES)
def test_scan_in_blocks_of_3_gives_the_gradients_of_finite_differences(name, opts, use_lengths, give_h0, through, monkeypatch):
    """The shared suite (test_layers.py) checks both modes with the default blocks; here T = 4
    spans two blocks and several segments: the block carry, forward and backward."""
    monkeypatch.setattr(minimal, "CHUNK", 3)
    monkeypatch.setattr(minimal, "SEGMENT", 7)
    mode = "parallel"
    rng = np.random.default_rng(7)
    T, B, I, H = 4, 3, 2, 3
    layer = CLASSES[name](I, H, dtype=np.float64, rng=1, **opts)
    D = 2 if layer.bidirectional else 1
    x = rng.standard_normal((B, T, I) if layer.batch_first else (T, B, I))
    lengths = np.array([4, 2, 3]) if use_lengths else None
    h0 = rng.standard_normal((layer.num_layers * D, B, H)) if give_h0 else None

    out, hn = layer(x, h0, lengths=lengths, mode=mode)
    w_out = rng.standard_normal(out.shape) if "out" in through else None
    w_hn = rng.standard_normal(hn.shape) if "state" in through else None

    def loss():
        with no_grad():
            o, s = layer(x, h0, lengths=lengths)
        return (np.sum(o * w_out) if w_out is not None else 0.0) + (np.sum(s * w_hn) if w_hn is not None else 0.0)

    layer.zero_grad()
    dx, dh0 = layer.backward(w_out, w_hn)
    assert dx.shape == x.shape and dh0.shape == hn.shape
    assert rel_err(dx, numerical_grad(loss, x)) < 1e-6
    if h0 is not None:
        assert rel_err(dh0, numerical_grad(loss, h0)) < 1e-6
    for pname, p in layer.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-6, pname


# ---- the minimal layers' own options -----------------------------------------------------------


@pytest.fixture
def mingru():
    return MinGRU(3, 4, num_layers=2, rng=0)


def test_negative_initial_states_are_allowed(mingru):
    """The initial state stays outside the logarithms, so it needs no sign."""
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    h0 = -np.ones((2, 2, 4))
    out_p, _ = mingru(x, h0)
    out_s, _ = mingru(x, h0, mode="sequential")
    assert rel_err(out_p, out_s) < 1e-5


@pytest.mark.parametrize("name", CLASSES)
def test_a_layer_built_sequential_runs_sequential_with_the_same_numbers_and_gradients(name):
    parallel, sequential = make(name, seed=5), make(name, seed=5, mode="sequential")
    assert "mode='sequential'" in repr(sequential)
    x, h0 = random_inputs(parallel, seed=6)
    d = np.random.default_rng(7).standard_normal((x.shape[0], x.shape[1], 4))
    grads = []
    for layer in (parallel, sequential):
        out, _ = layer(x, h0)
        dx, dh0 = layer.backward(d)
        grads.append((out, dx, dh0, *(p.grad.copy() for p in layer.parameters())))
        assert layer._caches == []
    for g_p, g_s in zip(*grads):
        assert rel_err(g_p, g_s) < 1e-12


def test_unknown_mode_is_named(mingru):
    with pytest.raises(ValueError, match=r"mode: expected 'parallel' or 'sequential', got 'fast'"):
        mingru(np.zeros((4, 2, 3)), mode="fast")


def test_step_needs_a_unidirectional_layer_and_names_its_arguments():
    with pytest.raises(ValueError, match=r"step: a bidirectional layer needs the whole sequence"):
        MinLSTM(3, 4, bidirectional=True).step(np.zeros((2, 3)))
    layer = MinLSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"x: expected input_size=3"):
        layer.step(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"h: expected shape \(2, 2, 4\)"):
        layer.step(np.zeros((2, 3)), np.zeros((1, 2, 4)))


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: MinGRU(0, 4), "input_size: expected an integer >= 1, got 0"),
        (lambda: MinLSTM(3, 4, num_layers=0), "num_layers: expected an integer >= 1, got 0"),
        (lambda: MinGRU(3, 4, dtype=np.int32), "dtype: expected np.float32 or np.float64"),
        (lambda: MinLSTM(3, 4, mode="scan"), "mode: expected 'parallel' or 'sequential', got 'scan'"),
    ],
)
def test_bad_constructor_arguments_are_named(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_activations_are_within_a_few_ulp_of_exact_over_the_whole_range(dtype):
    """log σ, σ and log(1 + u) are written with exp and log only (NumPy's float32 log1p and expm1
    run one element at a time); held here to a few ulp of a long-double reference, in both tails."""
    k = np.concatenate([np.linspace(-80, 80, 40001), [-1e-30, -1e-8, 0.0, 1e-8, 1e-30]]).astype(dtype)
    exact_k = k.astype(np.longdouble)
    exact_sigmoid = 1 / (1 + np.exp(-exact_k))
    u = np.concatenate([np.geomspace(1e-30, 1, 20001), [0.0]]).astype(dtype)
    eps = np.finfo(dtype).eps
    for got, exact in [(minimal.log_sigmoid(k), -np.log1p(np.exp(-exact_k))), (minimal.sigmoid(k), exact_sigmoid),
                       (minimal.sigmoid(-k, minimal.exp_neg_abs(k)), 1 / (1 + np.exp(exact_k))),
                       (minimal.log1p_unit(u), np.log1p(u.astype(np.longdouble)))]:
        assert got.dtype == dtype
        scale = np.maximum(np.abs(exact), np.finfo(dtype).tiny)
        assert np.max(np.abs(got - exact) / scale) < 4 * eps
