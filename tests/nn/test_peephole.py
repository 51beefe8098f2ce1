"""Peephole LSTM: what is its own (the shared suite, test_layers.py, checks the rest): zero
peepholes are LSTM exactly, and the peephole vector is ONNX's P, ordered i, o, f."""

import numpy as np
import pytest

from gradcheck import rel_err
from rnnkit.nn import LSTM, LSTMCell, PeepholeLSTM, PeepholeLSTMCell


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


@pytest.mark.usefixtures("reference_backend")
def test_zero_peepholes_are_lstm_exactly():
    peephole = PeepholeLSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=0)
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    for name, p in peephole.named_parameters():
        if name.startswith("weight_peephole"):
            p.data[...] = 0
    lstm.load_state_dict({k: v for k, v in peephole.state_dict().items() if not k.startswith("weight_peephole")})
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, 3, 3)), rng.standard_normal((5, 3, 8))
    outs = [layer(x, lengths=[5, 2, 4]) for layer in (peephole, lstm)]
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    np.testing.assert_array_equal(outs[0][1][1], outs[1][1][1])
    grads = [layer.backward(w)[0] for layer in (peephole, lstm)]
    np.testing.assert_array_equal(*grads)
    for name, p in lstm.named_parameters():
        np.testing.assert_array_equal(getattr(peephole, name).grad, p.grad)

    cell, plain = PeepholeLSTMCell(3, 4, dtype=np.float64, rng=0), LSTMCell(3, 4, dtype=np.float64)
    cell.weight_peephole.data[...] = 0
    plain.load_state_dict({k: v for k, v in cell.state_dict().items() if k != "weight_peephole"})
    for a, b in zip(cell(x[0]), plain(x[0])):
        np.testing.assert_array_equal(a, b)


def test_one_step_follows_the_equations_with_onnx_ordered_peepholes():
    cell = PeepholeLSTMCell(3, 4, dtype=np.float64, rng=0)
    rng = np.random.default_rng(2)
    cell.weight_peephole.data[...] = rng.standard_normal(12)
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    p_i, p_o, p_f = np.split(cell.weight_peephole.data, 3)  # ONNX's P: "iof"
    a = x @ cell.weight_ih.data.T + cell.bias_ih.data + h @ cell.weight_hh.data.T + cell.bias_hh.data
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)  # PyTorch's gate rows: i f g o
    i, f, g = sigmoid(a_i + p_i * c), sigmoid(a_f + p_f * c), np.tanh(a_g)
    c_new = f * c + i * g
    o = sigmoid(a_o + p_o * c_new)
    h_new, c_out = cell(x, (h, c))
    assert rel_err(c_out, c_new) < 1e-14
    assert rel_err(h_new, o * np.tanh(c_new)) < 1e-14
