"""RNNCell / LSTMCell / GRUCell: equal to torch.nn cells; a loop of steps runs backward in reverse."""

import numpy as np
import pytest

from gradcheck import numerical_grad, rel_err
from rnnkit.nn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell, no_grad

torch = pytest.importorskip("torch")

CELLS = {
    "RNN": (RNNCell, torch.nn.RNNCell, RNN),
    "RNN_relu": (RNNCell, torch.nn.RNNCell, RNN),
    "LSTM": (LSTMCell, torch.nn.LSTMCell, LSTM),
    "GRU": (GRUCell, torch.nn.GRUCell, GRU),
}


def options(kind):
    return {"nonlinearity": "relu"} if kind == "RNN_relu" else {}


def run_loop(cell, xs, state, lstm):
    """T forward steps, the state carried; returns the list of outputs (h, or (h, c))."""
    outs = []
    for x in xs:
        state = cell(x, state)
        outs.append(state)
    return outs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind", list(CELLS))
@pytest.mark.parametrize("seed", range(3))
def test_cell_loop_matches_torch(kind, seed, dtype):
    ours_cls, torch_cls, _ = CELLS[kind]
    rng = np.random.default_rng(seed)
    I, H, B, T = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 4)), 3
    bias = bool(seed != 1)
    torch.manual_seed(seed)
    ref = torch_cls(I, H, bias=bias, **options(kind)).to(torch.float64 if dtype == np.float64 else torch.float32)
    cell = ours_cls(I, H, bias=bias, dtype=dtype, **options(kind))
    cell.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    lstm = kind == "LSTM"
    xs = rng.standard_normal((T, B, I)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    c0 = rng.standard_normal((B, H)).astype(dtype)

    xts = [torch.tensor(x, requires_grad=True) for x in xs]
    h0t, c0t = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
    outs_t = run_loop(ref, xts, (h0t, c0t) if lstm else h0t, lstm)
    outs = run_loop(cell, xs, (h0, c0) if lstm else h0, lstm)
    tol = 1e-9 if dtype == np.float64 else 1e-4
    for o, ot in zip(outs, outs_t):
        for a, b in zip(o if lstm else [o], ot if lstm else [ot]):
            assert rel_err(a, b.detach().numpy()) < tol

    ws = [rng.standard_normal((B, H)).astype(dtype) for _ in range(T)]
    loss = sum(((ot[0] if lstm else ot) * torch.tensor(w)).sum() for ot, w in zip(outs_t, ws))
    loss.backward()

    dh, dc = np.zeros((B, H), dtype), np.zeros((B, H), dtype)
    dxs = [None] * T
    for t in reversed(range(T)):  # each backward undoes the most recent unprocessed step
        if lstm:
            dxs[t], (dh, dc) = cell.backward(dh + ws[t], dc)
        else:
            dxs[t], dh = cell.backward(dh + ws[t])
    for dx, xt in zip(dxs, xts):
        assert rel_err(dx, xt.grad.numpy()) < tol
    assert rel_err(dh, h0t.grad.numpy()) < tol
    if lstm:
        assert rel_err(dc, c0t.grad.numpy()) < tol
    params = dict(cell.named_parameters())
    for name, p in ref.named_parameters():
        assert rel_err(params[name].grad, p.grad.numpy()) < tol, name


@pytest.mark.parametrize("kind", list(CELLS))
def test_cell_gradients_match_finite_differences(kind):
    cell = CELLS[kind][0](3, 4, dtype=np.float64, rng=0, **options(kind))
    lstm = kind == "LSTM"
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3)) + (0.5 if kind == "RNN_relu" else 0.0)
    h = rng.standard_normal((2, 4))
    c = rng.standard_normal((2, 4))
    wh, wc = rng.standard_normal((2, 4)), rng.standard_normal((2, 4))

    def loss():
        with no_grad():
            out = cell(x, (h, c) if lstm else h)
        return np.sum(out[0] * wh) + np.sum(out[1] * wc) if lstm else np.sum(out * wh)

    cell(x, (h, c) if lstm else h)
    cell.zero_grad()
    if lstm:
        dx, (dh, dc) = cell.backward(wh, wc)
        assert rel_err(dc, numerical_grad(loss, c)) < 1e-6
    else:
        dx, dh = cell.backward(wh)
    assert rel_err(dx, numerical_grad(loss, x)) < 1e-6
    assert rel_err(dh, numerical_grad(loss, h)) < 1e-6
    for name, p in cell.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-6, name


@pytest.mark.parametrize("kind", ["RNN", "LSTM", "GRU"])
def test_cell_unrolled_equals_layer(kind):
    """One implementation of the equations: a cell stepped T times equals the layer."""
    cell_cls, _, layer_cls = CELLS[kind]
    layer = layer_cls(3, 5, dtype=np.float64, rng=0)
    cell = cell_cls(3, 5, dtype=np.float64)
    cell.load_state_dict({k.removesuffix("_l0"): v for k, v in layer.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    out, _ = layer(x)
    lstm = kind == "LSTM"
    outs = run_loop(cell, x, None, lstm)
    np.testing.assert_allclose(np.stack([o[0] if lstm else o for o in outs]), out, rtol=0, atol=1e-14)


def test_unbatched_cell_step():
    cell = GRUCell(3, 4, dtype=np.float64, rng=0)
    h = cell(np.ones(3))
    assert h.shape == (4,)
    dx, dh = cell.backward(np.ones(4))
    assert dx.shape == (3,) and dh.shape == (4,)


def test_more_backward_calls_than_steps_is_an_error():
    cell = LSTMCell(2, 3)
    state = None
    for _ in range(2):
        state = cell(np.zeros((1, 2)), state)
    cell.backward(np.ones((1, 3)))
    cell.backward(np.ones((1, 3)))
    with pytest.raises(RuntimeError, match="LSTMCell.backward called more times than forward"):
        cell.backward(np.ones((1, 3)))


def test_no_grad_steps_keep_nothing():
    cell = RNNCell(2, 3)
    with no_grad():
        cell(np.zeros((1, 2)))
    assert cell._caches == []


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda c: c(np.zeros((2, 5))), r"x: expected input_size=3"),
        (lambda c: c(np.zeros((2, 3)), (np.zeros((3, 4)), np.zeros((2, 4)))), r"h: expected shape \(2, 4\)"),
        (lambda c: c(np.zeros((2, 3)), np.zeros((2, 4))), r"hx: expected a tuple \(h, c\)"),
        (lambda c: c(np.full((2, 3), np.nan)), r"x: contains 6 NaN"),
        (lambda c: c(np.zeros((1, 2, 3))), r"x: expected a 1-D or 2-D array, got 3-D"),
    ],
)
def test_bad_cell_input_is_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call(LSTMCell(3, 4))
