"""Layer-normalised LSTM: what is its own (the shared suite, test_layers.py, checks the rest):
without normalisation it is LSTM exactly; with it, haste's LayerNormLSTM equations."""

import numpy as np

from gradcheck import rel_err
from rnnkit.nn import LSTM, LayerNormLSTM


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def layer_norm(z, gain, shift=0.0, eps=1e-5):
    return gain * (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + eps) + shift


def test_without_normalisation_it_is_lstm_exactly():
    layer = LayerNormLSTM(3, 4, num_layers=2, bidirectional=True, layer_norm=False, dtype=np.float64, rng=0)
    assert not any(name.startswith("ln_") for name, _ in layer.named_parameters())
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    lstm.load_state_dict(layer.state_dict())
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, 3, 3)), rng.standard_normal((5, 3, 8))
    np.testing.assert_array_equal(layer(x, lengths=[5, 2, 4])[0], lstm(x, lengths=[5, 2, 4])[0])
    np.testing.assert_array_equal(layer.backward(w)[0], lstm.backward(w)[0])


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
