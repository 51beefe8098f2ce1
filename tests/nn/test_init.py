import numpy as np
import pytest

from rnnkit.nn import GRU, LSTM, RNN, LSTMCell, init, no_grad


def test_orthogonal_recurrent_makes_every_gate_block_orthogonal():
    layer = init.orthogonal_recurrent_(GRU(3, 5, num_layers=2, bidirectional=True, dtype=np.float64), rng=0)
    for name, p in layer.named_parameters():
        if name.startswith("weight_hh"):
            for k in range(3):
                block = p.data[5 * k : 5 * (k + 1)]
                np.testing.assert_allclose(block.T @ block, np.eye(5), atol=1e-12)


def test_orthogonal_recurrent_with_projection_is_semi_orthogonal():
    layer = init.orthogonal_recurrent_(LSTM(3, 6, proj_size=2, dtype=np.float64), rng=0)
    block = layer.weight_hh_l0.data[:6]  # (6, 2)
    np.testing.assert_allclose(block.T @ block, np.eye(2), atol=1e-12)


def test_xavier_input_respects_the_glorot_bound_per_gate():
    layer = init.xavier_input_(LSTM(30, 50), rng=0)
    bound = np.sqrt(6 / (30 + 50))
    w = layer.weight_ih_l0.data
    assert np.abs(w).max() <= bound
    assert np.abs(w).max() > 0.9 * bound


def test_forget_gate_bias_sets_the_total_forget_bias():
    for module in (LSTM(3, 4, num_layers=2, bidirectional=True), LSTMCell(3, 4)):
        init.forget_gate_bias_(module, 1.0)
        for name, p in module.named_parameters():
            if name.startswith("bias_ih"):
                other = dict(module.named_parameters())[name.replace("bias_ih", "bias_hh")]
                np.testing.assert_allclose(p.data[4:8] + other.data[4:8], 1.0)


def test_forget_gate_bias_opens_the_gate_in_forward():
    layer = init.forget_gate_bias_(LSTM(2, 3, dtype=np.float64, rng=0), 20.0)
    layer.weight_ih_l0.data[4:8] = 0
    layer.weight_hh_l0.data[4:8] = 0
    c0 = np.random.default_rng(0).standard_normal((1, 1, 3))
    with no_grad():
        _, (_, c1) = layer(np.zeros((1, 1, 2)), (np.zeros((1, 1, 3)), c0))
    # f ≈ 1, so c1 = c0 + i·g, where i·g comes from the other gates' biases alone
    i = 1 / (1 + np.exp(-(layer.bias_ih_l0.data[:3] + layer.bias_hh_l0.data[:3])))
    g = np.tanh(layer.bias_ih_l0.data[6:9] + layer.bias_hh_l0.data[6:9])
    np.testing.assert_allclose(c1[0, 0], c0[0, 0] + i * g, atol=1e-8)


def test_identity_recurrent_builds_an_irnn():
    layer = init.identity_recurrent_(RNN(2, 4, nonlinearity="relu", num_layers=2), scale=1.0)
    np.testing.assert_array_equal(layer.weight_hh_l1.data, np.eye(4))
    assert not layer.bias_ih_l0.data.any() and not layer.bias_hh_l1.data.any()


def test_initialisers_refuse_the_wrong_module():
    with pytest.raises(TypeError, match="module: expected an LSTM"):
        init.forget_gate_bias_(GRU(2, 3))
    with pytest.raises(TypeError, match="module: expected an RNN"):
        init.identity_recurrent_(LSTM(2, 3))
    with pytest.raises(ValueError, match="bias=False"):
        init.forget_gate_bias_(LSTM(2, 3, bias=False))
