"""Diagnostics: the recorded gradient flow is the true ∂L/∂h_t; saturation counts what it says."""

import numpy as np
import pytest

from rnnkit import diagnostics
from rnnkit.cli.main import main
from rnnkit.nn import GRU, LSTM, RNN, MinGRU

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
def test_recorded_gradient_norms_equal_torchs_dl_dh_t(mode):
    ours_cls = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[mode]
    cell_cls = {"RNN": torch.nn.RNNCell, "LSTM": torch.nn.LSTMCell, "GRU": torch.nn.GRUCell}[mode]
    T, B, I, H = 7, 3, 4, 5
    layer = ours_cls(I, H, dtype=np.float64, rng=0)
    cell = cell_cls(I, H).double()
    cell.load_state_dict({k.removesuffix("_l0"): torch.tensor(v) for k, v in layer.state_dict().items()})
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((T, B, I)), rng.standard_normal((T, B, H))

    layer.record_grad_norms = True
    out, _ = layer(x)
    layer.backward(w)

    state, hs = None, []
    for t in range(T):
        state = cell(torch.tensor(x[t]), state)
        h = state[0] if mode == "LSTM" else state
        h.retain_grad()
        hs.append(h)
    (sum((h * torch.tensor(w[t])).sum() for t, h in enumerate(hs))).backward()
    expected = np.array([np.linalg.norm(h.grad.numpy()) for h in hs])
    np.testing.assert_allclose(layer.grad_norms[0], expected, rtol=1e-10)


def test_gradient_vanishes_through_a_saturated_tanh_rnn():
    layer = RNN(2, 8, dtype=np.float64, rng=0)
    layer.weight_hh_l0.data *= 0.1  # a contracting recurrence: ∂h_t/∂h_{t−1} is small
    layer.record_grad_norms = True
    out, _ = layer(np.random.default_rng(0).standard_normal((30, 1, 2)))
    d_out = np.zeros_like(out)
    d_out[-1] = 1.0  # the loss sees the last step only, as a many-to-one model
    layer.backward(d_out)
    norms = layer.grad_norms[0]
    assert norms[0] < 1e-10 * norms[-1]


def test_gate_saturation_counts_only_steps_inside_each_sequence():
    layer = GRU(3, 4, dtype=np.float64, rng=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)) * 50  # huge inputs saturate every gate
    layer(x, lengths=[5, 2])
    sat = diagnostics.gate_saturation(layer)
    assert set(sat) == {"layer 0 reset", "layer 0 update", "layer 0 new"}
    assert layer.gate_activations()[0].shape == (3, 5 + 2, 4)  # (gates, steps inside the sequences, H)
    alone = []  # each sequence run alone, without padding: its reset gates
    for x_b in (x[:, :1], x[:2, 1:2]):
        layer(x_b)
        alone.append(layer.gate_activations()[0][0].ravel())
    r = np.concatenate(alone)
    assert sat["layer 0 reset"] == pytest.approx(np.mean((r < 0.05) | (r > 0.95)))
    assert sat["layer 0 reset"] > 0.8


def test_diagnose_command_prints_and_plots(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question. " * 30)
    out = tmp_path / "m"
    assert main(["train", "lm", "--data", str(text), "--out", str(out), "--steps", "4", "--hidden", "8", "--embed", "4",
                 "--layers", "2", "--batch-size", "2", "--seq-len", "10", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(out), "--windows", "2"]) == 0
    report = capsys.readouterr().out
    for needle in ("gradient flow", "layer 1", "forget", "before → after clipping", "rnn.weight_hh_l1"):
        assert needle in report
    assert (out / "diagnostics" / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("kind", [RNN, MinGRU])
def test_recorded_gradient_norms_do_not_underflow_in_float32(kind):
    layer = kind(3, 4, rng=0)
    layer.record_grad_norms = True
    x = np.zeros((3, 2, 3), np.float32)
    layer(x)
    d = np.zeros((3, 2, 4), np.float32)
    d[0] = 1e-30  # a float32 number whose square underflows
    layer.backward(d)
    assert layer.grad_norms[0, 0] == pytest.approx(np.sqrt(8) * 1e-30, rel=1e-5)


@pytest.mark.parametrize("norms", [np.array([[0.0, 0.0, 1e-44, 1e-3], [1e-5, 1e-4, 1e-3, 1e-2]]), np.zeros((1, 3))],
                         ids=["some underflowed", "all zero"])
def test_gradient_flow_plot_draws_underflowed_norms_instead_of_dropping_them(norms, tmp_path):
    path = diagnostics.plot_gradient_flow(norms, ["a", "b"][: len(norms)], tmp_path / "flow.png", "title")
    assert path.read_bytes()[:4] == b"\x89PNG"
