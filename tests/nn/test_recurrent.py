"""RNN / LSTM / GRU layers: equal to torch.nn on random configurations, gradients by finite differences."""

import numpy as np
import pytest

from gradcheck import numerical_grad, rel_err
from rnnkit.nn import GRU, LSTM, RNN, no_grad

torch = pytest.importorskip("torch")

CLASSES = {"RNN": (RNN, torch.nn.RNN), "LSTM": (LSTM, torch.nn.LSTM), "GRU": (GRU, torch.nn.GRU)}
TOL = {np.float64: 1e-9, np.float32: 1e-4}


def random_config(mode: str, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    cfg = dict(
        input_size=int(rng.integers(1, 6)),
        hidden_size=int(rng.integers(2, 7)),
        num_layers=int(rng.integers(1, 4)),
        bias=bool(rng.random() < 0.8),
        batch_first=bool(rng.random() < 0.5),
        bidirectional=bool(rng.random() < 0.5),
    )
    if mode == "RNN":
        cfg["nonlinearity"] = str(rng.choice(["tanh", "relu"]))
    if mode == "LSTM" and rng.random() < 0.4:
        cfg["proj_size"] = int(rng.integers(1, cfg["hidden_size"]))
    return cfg


def make_pair(mode, cfg, dtype, seed=0):
    ours_cls, torch_cls = CLASSES[mode]
    torch.manual_seed(seed)
    ref = torch_cls(**cfg).to(torch.float64 if dtype == np.float64 else torch.float32)
    ours = ours_cls(**cfg, dtype=dtype)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    return ours, ref


def state_shapes(mode, cfg, B):
    LD = cfg["num_layers"] * (2 if cfg["bidirectional"] else 1)
    P = cfg.get("proj_size", 0) or cfg["hidden_size"]
    shapes = [(LD, B, P)]
    if mode == "LSTM":
        shapes.append((LD, B, cfg["hidden_size"]))
    return shapes


def run_torch(ref, x, states, lengths, cfg, mode):
    """Forward with torch (packed when lengths are given), padded back to the full length."""
    xt = torch.tensor(x, requires_grad=True)
    st = [torch.tensor(s, requires_grad=True) for s in states] if states is not None else None
    hx = None if st is None else (tuple(st) if mode == "LSTM" else st[0])
    if lengths is None:
        out, hn = ref(xt, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=cfg["batch_first"], enforce_sorted=False)
        out, hn = ref(packed, hx)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=cfg["batch_first"], total_length=x.shape[1 if cfg["batch_first"] else 0])
    hn = list(hn) if mode == "LSTM" else [hn]
    return xt, st, out, hn


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("seed", range(8))
def test_matches_torch_on_random_configurations(mode, seed, dtype):
    cfg = random_config(mode, seed)
    ours, ref = make_pair(mode, cfg, dtype, seed)
    rng = np.random.default_rng(100 + seed)
    T, B = int(rng.integers(1, 7)), int(rng.integers(1, 5))
    x = rng.standard_normal((B, T, cfg["input_size"]) if cfg["batch_first"] else (T, B, cfg["input_size"])).astype(dtype)
    lengths = rng.integers(1, T + 1, size=B) if rng.random() < 0.5 else None
    states = [rng.standard_normal(s).astype(dtype) for s in state_shapes(mode, cfg, B)] if rng.random() < 0.5 else None

    xt, st, out_t, hn_t = run_torch(ref, x, states, lengths, cfg, mode)
    hx = None if states is None else (tuple(states) if mode == "LSTM" else states[0])
    out, hn = ours(x, hx, lengths=lengths)
    hn = list(hn) if mode == "LSTM" else [hn]

    tol = TOL[dtype]
    assert rel_err(out, out_t.detach().numpy()) < tol
    for a, b in zip(hn, hn_t):
        assert rel_err(a, b.detach().numpy()) < tol

    d_out = rng.standard_normal(out.shape).astype(dtype)
    d_hn = [rng.standard_normal(a.shape).astype(dtype) for a in hn]
    loss = (out_t * torch.tensor(d_out)).sum() + sum((a * torch.tensor(g)).sum() for a, g in zip(hn_t, d_hn))
    loss.backward()
    dx, d_init = ours.backward(d_out, tuple(d_hn) if mode == "LSTM" else d_hn[0])
    d_init = list(d_init) if mode == "LSTM" else [d_init]

    assert rel_err(dx, xt.grad.numpy()) < tol
    if st is not None:
        for a, b in zip(d_init, st):
            assert rel_err(a, b.grad.numpy()) < tol
    params = dict(ours.named_parameters())
    assert set(params) == {n for n, _ in ref.named_parameters()}
    for name, p in ref.named_parameters():
        assert rel_err(params[name].grad, p.grad.numpy()) < tol, name


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_unbatched_input_matches_torch(mode):
    cfg = dict(input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    ours, ref = make_pair(mode, cfg, np.float64)
    x = np.random.default_rng(0).standard_normal((5, 3))
    out_t, hn_t = ref(torch.tensor(x))
    out, hn = ours(x)
    assert out.shape == (5, 8)
    assert rel_err(out, out_t.detach().numpy()) < 1e-12
    first = lambda s: s[0] if mode == "LSTM" else s  # noqa: E731
    assert first(hn).shape == (4, 4)
    assert rel_err(first(hn), first(hn_t).detach().numpy()) < 1e-12


# ---- finite differences --------------------------------------------------------------------

GRAD_CASES = [
    # mode, layer options, use lengths, give h0, gradient through ("out", "state" or both)
    ("RNN", dict(num_layers=1), False, False, ("out",)),
    ("RNN", dict(num_layers=3, bidirectional=True), True, True, ("out", "state")),
    ("RNN", dict(num_layers=2, nonlinearity="relu"), True, True, ("state",)),
    ("LSTM", dict(num_layers=1), False, True, ("out", "state")),
    ("LSTM", dict(num_layers=3, bidirectional=True), True, False, ("out",)),
    ("LSTM", dict(num_layers=2, proj_size=2, bidirectional=True), True, True, ("out", "state")),
    ("LSTM", dict(num_layers=1, proj_size=2), False, False, ("state",)),
    ("GRU", dict(num_layers=1, bidirectional=True), False, False, ("state",)),
    ("GRU", dict(num_layers=3), True, True, ("out", "state")),
    ("GRU", dict(num_layers=2, bidirectional=True, batch_first=True), True, True, ("out",)),
]


@pytest.mark.parametrize("mode,opts,use_lengths,give_h0,through", GRAD_CASES)
def test_gradients_match_finite_differences(mode, opts, use_lengths, give_h0, through):
    rng = np.random.default_rng(7)
    T, B, I, H = 4, 3, 2, 3
    layer = CLASSES[mode][0](I, H, dtype=np.float64, rng=1, **opts)
    x = rng.standard_normal((B, T, I) if opts.get("batch_first") else (T, B, I))
    if mode == "RNN" and opts.get("nonlinearity") == "relu":
        x += 0.5  # keep pre-activations away from relu's kink, where differences are meaningless
    lengths = np.array([4, 2, 3]) if use_lengths else None
    shapes = [(s[0], B, s[2]) for s in state_shapes(mode, dict(opts, hidden_size=H, bidirectional=opts.get("bidirectional", False)), B)]
    states = [rng.standard_normal(s) for s in shapes] if give_h0 else None
    pack = lambda s: None if s is None else (tuple(s) if mode == "LSTM" else s[0])  # noqa: E731

    out, hn = layer(x, pack(states), lengths=lengths)
    hn_list = list(hn) if mode == "LSTM" else [hn]
    w_out = rng.standard_normal(out.shape) if "out" in through else None
    w_hn = [rng.standard_normal(h.shape) for h in hn_list] if "state" in through else None

    def loss():
        with no_grad():
            o, s = layer(x, pack(states), lengths=lengths)
        s = list(s) if mode == "LSTM" else [s]
        total = np.sum(o * w_out) if w_out is not None else 0.0
        if w_hn is not None:
            total += sum(np.sum(a * w) for a, w in zip(s, w_hn))
        return total

    layer.zero_grad()
    dx, d_init = layer.backward(w_out, pack(w_hn))
    d_init = list(d_init) if mode == "LSTM" else [d_init]
    assert rel_err(dx, numerical_grad(loss, x)) < 1e-6
    if states is not None:
        for s, d in zip(states, d_init):
            assert rel_err(d, numerical_grad(loss, s)) < 1e-6
    for name, p in layer.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-6, name
    if use_lengths and w_out is not None:
        # outputs past a sequence's end are zero and their upstream gradients are ignored
        assert np.all(out[2:, 1] == 0) if not opts.get("batch_first") else np.all(out[1, 2:] == 0)


def test_initial_state_gradient_is_that_of_the_zeros_used():
    layer = LSTM(2, 3, num_layers=2, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    out, _ = layer(x)
    _, (dh0, dc0) = layer.backward(np.ones_like(out))
    zeros_h, zeros_c = np.zeros((2, 2, 3)), np.zeros((2, 2, 3))

    def loss():
        with no_grad():
            return layer(x, (zeros_h, zeros_c))[0].sum()

    assert dh0.shape == dc0.shape == (2, 2, 3)
    assert rel_err(dh0, numerical_grad(loss, zeros_h)) < 1e-6
    assert rel_err(dc0, numerical_grad(loss, zeros_c)) < 1e-6


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_learned_initial_state_is_trained_by_backpropagation(mode):
    layer = CLASSES[mode][0](2, 3, num_layers=2, bidirectional=True, learn_init=True, dtype=np.float64, rng=0)
    rng = np.random.default_rng(1)
    for p in ("h0", "c0"):
        if hasattr(layer, p):
            getattr(layer, p).data[...] = rng.standard_normal(getattr(layer, p).shape)
    x = rng.standard_normal((4, 3, 2))
    w = rng.standard_normal((4, 3, 6))
    out, _ = layer(x, lengths=[4, 1, 3])
    layer.zero_grad()
    layer.backward(w)

    def loss():
        with no_grad():
            return np.sum(layer(x, lengths=[4, 1, 3])[0] * w)

    names = ["h0", "c0"] if mode == "LSTM" else ["h0"]
    assert {n for n, _ in layer.named_parameters()} >= set(names)
    for n in names:
        p = getattr(layer, n)
        assert np.linalg.norm(p.grad) > 0
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-6


def test_dropout_between_layers_is_differentiated_with_its_mask():
    layer = GRU(2, 3, num_layers=3, dropout=0.4, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 2))
    w = np.random.default_rng(1).standard_normal((5, 2, 3))

    def loss():
        layer.rng = np.random.default_rng(42)  # the same masks in every evaluation
        with no_grad():
            return np.sum(layer(x)[0] * w)

    layer.rng = np.random.default_rng(42)
    out_train, _ = layer(x)
    dx, _ = layer.backward(w)
    assert rel_err(dx, numerical_grad(loss, x)) < 1e-6
    layer.eval()
    with no_grad():
        out_eval, _ = layer(x)
    assert not np.allclose(out_train, out_eval)
    # eval mode is deterministic and equals torch's eval mode
    ref = torch.nn.GRU(2, 3, num_layers=3, dropout=0.4).double().eval()
    layer.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    with no_grad():
        ours, _ = layer(x)
    assert rel_err(ours, ref(torch.tensor(x))[0].detach().numpy()) < 1e-12


def test_truncated_bptt_chains_chunks_exactly():
    """Two chunks with the state carried (and dh0 passed back) equal one pass over the whole."""
    layer = LSTM(2, 3, dtype=np.float64, rng=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 2, 2))
    w = rng.standard_normal((6, 2, 3))
    out_full, _ = layer(x)
    layer.zero_grad()
    dx_full, _ = layer.backward(w)
    grads_full = {n: p.grad.copy() for n, p in layer.named_parameters()}

    out1, state1 = layer(x[:3])
    out2, _ = layer(x[3:], state1)
    assert rel_err(np.concatenate([out1, out2]), out_full) < 1e-14
    layer.zero_grad()
    dx2, (dh, dc) = layer.backward(w[3:])  # newest forward first
    dx1, _ = layer.backward(w[:3], (dh, dc))
    assert rel_err(np.concatenate([dx1, dx2]), dx_full) < 1e-14
    for n, p in layer.named_parameters():
        assert rel_err(p.grad, grads_full[n]) < 1e-14


def test_no_grad_keeps_nothing_and_gives_the_same_outputs():
    layer = LSTM(3, 4, num_layers=2, bidirectional=True, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    out, _ = layer(x)
    layer.backward(np.ones_like(out))
    with no_grad():
        out2, _ = layer(x)
    np.testing.assert_array_equal(out, out2)
    with pytest.raises(RuntimeError, match="backward called more times than forward"):
        layer.backward(np.ones_like(out))


def test_default_initialisation_is_pytorchs_uniform():
    layer = LSTM(10, 100, rng=0)
    w = layer.weight_hh_l0.data
    bound = 1 / np.sqrt(100)
    assert np.abs(w).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound  # the std of U(−b, b)
    assert layer.weight_hh_l0.data.dtype == np.float32
    np.testing.assert_array_equal(LSTM(10, 100, rng=0).weight_hh_l0.data, w)  # the same seed, the same weights


# ---- bad input ---------------------------------------------------------------------------------


@pytest.fixture
def lstm():
    return LSTM(3, 4, num_layers=2, rng=0)


def test_wrong_number_of_dimensions_is_named(lstm):
    with pytest.raises(ValueError, match=r"x: expected a 2-D or 3-D array, got 4-D"):
        lstm(np.zeros((2, 2, 2, 3)))


def test_wrong_feature_size_is_named(lstm):
    with pytest.raises(ValueError, match=r"x: expected input_size=3 .* got 5"):
        lstm(np.zeros((4, 2, 5)))


def test_batch_mismatch_between_x_and_h0_is_named(lstm):
    with pytest.raises(ValueError, match=r"h0: expected shape \(2, 2, 4\).*got \(2, 3, 4\)"):
        lstm(np.zeros((4, 2, 3)), (np.zeros((2, 3, 4)), np.zeros((2, 2, 4))))


def test_lstm_state_must_be_a_pair(lstm):
    with pytest.raises(TypeError, match=r"hx: expected a tuple \(h0, c0\)"):
        lstm(np.zeros((4, 2, 3)), np.zeros((2, 2, 4)))


def test_lengths_longer_than_the_sequence_are_rejected(lstm):
    with pytest.raises(ValueError, match=r"lengths: a length of 9 exceeds the sequence's 4 time steps"):
        lstm(np.zeros((4, 2, 3)), lengths=[9, 2])


@pytest.mark.parametrize("bad", [[0, 2], [-1, 3]])
def test_zero_or_negative_lengths_are_rejected(lstm, bad):
    with pytest.raises(ValueError, match=r"lengths: every length must be >= 1"):
        lstm(np.zeros((4, 2, 3)), lengths=bad)


def test_lengths_count_must_match_the_batch(lstm):
    with pytest.raises(ValueError, match=r"lengths: expected one length per sequence, 2 in all, got 3"):
        lstm(np.zeros((4, 2, 3)), lengths=[1, 2, 3])


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_rejected(lstm, bad):
    x = np.zeros((4, 2, 3))
    x[1, 1, 2] = bad
    with pytest.raises(ValueError, match=r"x: contains 1 NaN or infinite"):
        lstm(x)


def test_non_finite_initial_state_is_rejected():
    gru = GRU(3, 4)
    h0 = np.zeros((1, 2, 4))
    h0[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"hx: contains 1 NaN"):
        gru(np.zeros((4, 2, 3)), h0)


def test_upstream_gradient_of_the_wrong_shape_is_named(lstm):
    out, _ = lstm(np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match=r"d_out: expected shape \(4, 2, 4\)"):
        lstm.backward(np.zeros((4, 2, 5)))


def test_backward_without_forward_is_an_error(lstm):
    with pytest.raises(RuntimeError, match="LSTM.backward called more times than forward"):
        lstm.backward(np.zeros((4, 2, 4)))


def test_state_dict_mismatches_are_all_reported(lstm):
    state = lstm.state_dict()
    del state["weight_ih_l0"]
    state["weight_hh_l1"] = np.zeros((3, 3))
    state["weight_xx"] = np.zeros(1)
    with pytest.raises(ValueError) as info:
        lstm.load_state_dict(state)
    msg = str(info.value)
    assert "missing keys ['weight_ih_l0']" in msg
    assert "unexpected keys ['weight_xx']" in msg
    assert "weight_hh_l1: expected shape (16, 4), got (3, 3)" in msg


def test_state_dict_is_cast_to_the_layers_dtype(lstm):
    state = {k: v.astype(np.float64) for k, v in lstm.state_dict().items()}
    lstm.load_state_dict(state)
    assert all(p.data.dtype == np.float32 for p in lstm.parameters())


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: RNN(3, 4, nonlinearity="sigmoid"), "nonlinearity: expected 'tanh' or 'relu'"),
        (lambda: GRU(3, 4, proj_size=2), "proj_size: only LSTM"),
        (lambda: LSTM(3, 4, proj_size=4), "proj_size: expected 0 <= proj_size < hidden_size=4"),
        (lambda: LSTM(0, 4), "input_size: expected an integer >= 1, got 0"),
        (lambda: LSTM(3, 4, dropout=1.0), r"dropout: expected a number in \[0, 1\)"),
        (lambda: LSTM(3, 4, dtype=np.int32), "dtype: expected np.float32 or np.float64"),
    ],
)
def test_bad_constructor_arguments_are_named(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()
