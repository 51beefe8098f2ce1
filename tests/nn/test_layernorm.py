"""Layer-normalised LSTM and GRU: what is their own (the shared suite, test_layers.py, checks the
rest): without normalisation they are LSTM and GRU exactly; with it, haste's equations."""

import numpy as np

from gradcheck import rel_err
import pytest

from rnnkit.nn import GRU, LSTM, GRUCell, LayerNormGRU, LayerNormGRUCell, LayerNormLSTM, LayerNormLSTMCell, LSTMCell


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def layer_norm(z, gain, shift=0.0, eps=1e-5):
    return gain * (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + eps) + shift


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("cls,plain_cls,cell_cls,plain_cell_cls", [(LayerNormLSTM, LSTM, LayerNormLSTMCell, LSTMCell),
                                                                     (LayerNormGRU, GRU, LayerNormGRUCell, GRUCell)])
def test_without_normalisation_it_is_the_plain_layer_and_cell_exactly(cls, plain_cls, cell_cls, plain_cell_cls):
    layer = cls(3, 4, num_layers=2, bidirectional=True, layer_norm=False, dtype=np.float64, rng=0)
    assert not any(name.startswith("ln_") for name, _ in layer.named_parameters())
    plain = plain_cls(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    plain.load_state_dict(layer.state_dict())
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, 3, 3)), rng.standard_normal((5, 3, 8))
    np.testing.assert_array_equal(layer(x, lengths=[5, 2, 4])[0], plain(x, lengths=[5, 2, 4])[0])
    np.testing.assert_array_equal(layer.backward(w)[0], plain.backward(w)[0])
    cell, plain_cell = cell_cls(3, 4, layer_norm=False, dtype=np.float64, rng=0), plain_cell_cls(3, 4, dtype=np.float64)
    plain_cell.load_state_dict(cell.state_dict())
    np.testing.assert_array_equal(np.concatenate(np.atleast_1d(cell(x[0]))), np.concatenate(np.atleast_1d(plain_cell(x[0]))))
    np.testing.assert_array_equal(cell.backward(w[0, :, :4])[0], plain_cell.backward(w[0, :, :4])[0])


def test_steps_follow_haste_layer_norm_lstm_equations():
    layer = LayerNormLSTM(3, 4, dtype=np.float64, rng=0)
    p = {n.removesuffix("_l0"): v.data for n, v in layer.named_parameters()}
    assert np.all(p["ln_ih_gain"] == 1) and np.all(p["ln_c_bias"] == 0)  # LN starts as the identity map
    rng = np.random.default_rng(1)
    for v in p.values():
        v[...] = rng.uniform(0.5, 1.5, v.shape) if v.ndim == 1 else v
    x, h, c = rng.standard_normal((3, 2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    out, (h_n, c_n) = layer(x, (h[None], c[None]))
    for t in range(3):
        a = (layer_norm(x[t] @ p["weight_ih"].T, p["ln_ih_gain"]) + layer_norm(h @ p["weight_hh"].T, p["ln_hh_gain"])
             + p["bias_ih"] + p["bias_hh"])
        i, f, g, o = sigmoid(a[:, :4]), sigmoid(a[:, 4:8]), np.tanh(a[:, 8:12]), sigmoid(a[:, 12:])
        c = f * c + i * g
        h = o * np.tanh(layer_norm(c, p["ln_c_gain"], p["ln_c_bias"]))
        assert rel_err(out[t], h) < 1e-13
    assert rel_err(c_n[0], c) < 1e-13 and rel_err(h_n[0], h) < 1e-13


def test_gru_steps_follow_haste_layer_norm_gru_equations():
    layer = LayerNormGRU(3, 4, dtype=np.float64, rng=0)
    p = {n.removesuffix("_l0"): v.data for n, v in layer.named_parameters()}
    rng = np.random.default_rng(1)
    p["ln_ih_gain"][...], p["ln_hh_gain"][...] = rng.uniform(0.5, 1.5, (2, 12))
    x, h = rng.standard_normal((3, 2, 3)), rng.standard_normal((2, 4))
    out, h_n = layer(x, h[None])
    for t in range(3):
        a_x = layer_norm(x[t] @ p["weight_ih"].T, p["ln_ih_gain"]) + p["bias_ih"]
        a_h = layer_norm(h @ p["weight_hh"].T, p["ln_hh_gain"]) + p["bias_hh"]
        r, z = sigmoid(a_x[:, :4] + a_h[:, :4]), sigmoid(a_x[:, 4:8] + a_h[:, 4:8])
        n = np.tanh(a_x[:, 8:] + r * a_h[:, 8:])
        h = (1 - z) * n + z * h
        assert rel_err(out[t], h) < 1e-13
    assert rel_err(h_n[0], h) < 1e-13
