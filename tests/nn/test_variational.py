"""Variational LSTM: what is its own (the shared suite, test_layers.py, checks the rest with the
default rates): p = 0 and eval are LSTM exactly; one mask per sequence, locked across time; the
state's mask differentiated too."""

import numpy as np
import pytest

from gradcheck import numerical_grad, rel_err
from rnnkit.nn import LSTM, VariationalLSTM, no_grad

RATES = ("dropout_x", "dropout_h", "dropout_y", "weight_drop")


def pair(**rates):
    layer = VariationalLSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, rng=0, **rates)
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    lstm.load_state_dict(layer.state_dict())
    return layer, lstm


@pytest.mark.usefixtures("reference_backend")
def test_zero_rates_in_training_and_any_rates_in_eval_are_lstm_exactly():
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, 3, 3)), rng.standard_normal((5, 3, 8))
    for layer, lstm in (pair(**dict.fromkeys(RATES, 0.0)), pair(dropout_h=0.3)):
        if layer.dropout_h:
            layer.eval()
        outs = [m(x, lengths=[5, 2, 4]) for m in (layer, lstm)]
        np.testing.assert_array_equal(outs[0][0], outs[1][0])
        np.testing.assert_array_equal(layer.backward(w)[0], lstm.backward(w)[0])
        for name, p in lstm.named_parameters():
            np.testing.assert_array_equal(getattr(layer, name).grad, p.grad)


def test_one_mask_per_sequence_the_same_at_every_step():
    layer = VariationalLSTM(3, 50, dropout_x=0.0, dropout_h=0.0, dropout_y=0.5, weight_drop=0.0, rng=0)
    with no_grad():
        out, _ = layer(np.random.default_rng(0).standard_normal((6, 4, 3)))
    dropped = out == 0
    assert 0.4 < dropped.mean() < 0.6
    assert np.all(dropped == dropped[0])  # the units a sequence drops are the same at every step
    assert np.any(dropped[0] != dropped[0, :1])  # and differ between sequences


def test_gradients_through_every_mask_match_finite_differences():
    layer = VariationalLSTM(2, 3, num_layers=2, bidirectional=True, dropout_x=0.3, dropout_h=0.3, dropout_y=0.3,
                            weight_drop=0.3, dtype=np.float64, rng=0)
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((4, 3, 2)), rng.standard_normal((4, 3, 6))

    def forward():
        layer.rng = np.random.default_rng(9)  # the same masks at every forward
        return layer(x, lengths=[4, 2, 3])[0]

    def loss():
        with no_grad():
            return np.sum(forward() * w)

    forward()
    layer.zero_grad()
    dx, _ = layer.backward(w)
    assert rel_err(dx, numerical_grad(loss, x)) < 1e-6
    for name, p in layer.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-6, name
