"""RNN / LSTM / GRU: what is theirs alone (dropout between layers, constructor options). What
every layer must do — gradients, equality with torch, lengths, layouts, bad input — is the
shared suite's, test_layers.py."""

import numpy as np
import pytest

from gradcheck import numerical_grad, rel_err
from rnnkit.nn import GRU, LSTM, RNN, no_grad


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
    torch = pytest.importorskip("torch")
    ref = torch.nn.GRU(2, 3, num_layers=3, dropout=0.4).double().eval()
    layer.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    with no_grad():
        ours, _ = layer(x)
    assert rel_err(ours, ref(torch.tensor(x))[0].detach().numpy()) < 1e-12


# ---- bad input ---------------------------------------------------------------------------------


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
