"""Zoneout LSTM: what is its own (the shared suite, test_layers.py, checks the rest): p = 0 is
LSTM exactly; in training a unit keeps its value with probability p, drawn from the seed; in
eval, the expectation."""

import numpy as np
import pytest

from gradcheck import rel_err
from rnnkit.nn import LSTM, LSTMCell, ZoneoutLSTM, ZoneoutLSTMCell, no_grad


@pytest.mark.usefixtures("reference_backend")
def test_zero_rates_are_lstm_exactly_in_training():
    zoneout = ZoneoutLSTM(3, 4, num_layers=2, bidirectional=True, zoneout_h=0.0, zoneout_c=0.0, dtype=np.float64, rng=0)
    lstm = LSTM(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    lstm.load_state_dict(zoneout.state_dict())
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal((5, 3, 3)), rng.standard_normal((5, 3, 8))
    (out_z, (_, c_z)), (out_l, (_, c_l)) = zoneout(x, lengths=[5, 2, 4]), lstm(x, lengths=[5, 2, 4])
    np.testing.assert_array_equal(out_z, out_l)
    np.testing.assert_array_equal(c_z, c_l)
    np.testing.assert_array_equal(zoneout.backward(w)[0], lstm.backward(w)[0])
    for name, p in lstm.named_parameters():
        np.testing.assert_array_equal(getattr(zoneout, name).grad, p.grad)
    cell, plain = ZoneoutLSTMCell(3, 4, zoneout_h=0.0, zoneout_c=0.0, dtype=np.float64, rng=0), LSTMCell(3, 4, dtype=np.float64)
    plain.load_state_dict(cell.state_dict())
    for a, b in zip(cell(x[0]), plain(x[0])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.usefixtures("reference_backend")
def test_training_keeps_each_unit_with_probability_p_and_eval_takes_the_expectation():
    layer = ZoneoutLSTM(2, 50, zoneout_h=0.3, zoneout_c=0.6, dtype=np.float64, rng=0)
    lstm = LSTM(2, 50, dtype=np.float64)
    lstm.load_state_dict(layer.state_dict())
    x = np.random.default_rng(1).standard_normal((1, 40, 2))  # one step: h_{−1} = c_{−1} = 0
    h0, c0 = np.ones((1, 40, 50)), np.ones((1, 40, 50))
    with no_grad():
        out, (h, c) = layer(x, (h0, c0))
        _, (h_lstm, c_lstm) = lstm(x, (h0, c0))
        kept_h, kept_c = np.mean(h == 1.0), np.mean(c == 1.0)  # a unit that kept its value is exactly 1
        assert abs(kept_h - 0.3) < 0.03 and abs(kept_c - 0.6) < 0.03
        assert np.all((h == 1.0) | (h == h_lstm))
        layer.rng = np.random.default_rng(3)
        again = layer(x, (h0, c0))[0]
        layer.rng = np.random.default_rng(3)
        np.testing.assert_array_equal(layer(x, (h0, c0))[0], again)  # the same generator, the same masks
        layer.eval()
        _, (h_eval, c_eval) = layer(x, (h0, c0))
    assert rel_err(c_eval, 0.6 * c0 + 0.4 * c_lstm) < 1e-14
    assert rel_err(h_eval, 0.3 * h0 + 0.7 * h_lstm) < 1e-14


@pytest.mark.parametrize("build", [lambda: ZoneoutLSTM(3, 4, zoneout_h=1.5), lambda: ZoneoutLSTMCell(3, 4, zoneout_c=-0.1)])
def test_bad_rates_are_named(build):
    with pytest.raises(ValueError, match=r"zoneout_[hc]: expected a number in \[0, 1\)"):
        build()
