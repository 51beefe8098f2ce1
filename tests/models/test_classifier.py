"""The many-to-one classifier: pooling over each sequence's own steps, gradients by finite differences."""

import numpy as np
import pytest
from gradcheck import numerical_grad, rel_err

from rnnkit.models.classifier import POOLINGS, Pooling, SequenceClassifier
from rnnkit.nn import no_grad


def make(pooling, bidirectional=False, cell="gru", tokens=True, seed=0):
    kw = dict(vocab_size=7, embed_size=3) if tokens else dict(input_size=3)
    return SequenceClassifier(4, hidden_size=3, cell=cell, bidirectional=bidirectional, pooling=pooling,
                              attention_size=3, dtype=np.float64, rng=seed, **kw)


def inputs(tokens, T=6, B=3, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 7, (T, B)) if tokens else rng.standard_normal((T, B, 3))
    return x, np.array([6, 2, 4])[:B]


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", ["lstm", "mingru"])
def test_gradients_match_finite_differences(pooling, bidirectional, cell):
    model = make(pooling, bidirectional, cell, tokens=False)
    x, lengths = inputs(False)
    w = np.random.default_rng(2).standard_normal((3, 4))

    def loss():
        with no_grad():
            return float(np.sum(model(x, lengths) * w))

    model.zero_grad()
    model(x, lengths)
    model.backward(w)
    for name, p in model.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-5, name


@pytest.mark.parametrize("pooling", POOLINGS)
def test_steps_past_each_length_change_nothing(pooling):
    model = make(pooling, bidirectional=True)
    x, lengths = inputs(True)
    y = model(x, lengths)
    x2 = x.copy()
    x2[2:, 1] = (x2[2:, 1] + 1) % 7  # row 1 has length 2
    x2[4:, 2] = (x2[4:, 2] + 3) % 7
    np.testing.assert_allclose(model(x2, lengths), y, rtol=0, atol=1e-12)


@pytest.mark.parametrize("pooling", POOLINGS)
def test_a_batch_gives_what_each_sequence_gives_alone(pooling):
    model = make(pooling, bidirectional=True)
    x, lengths = inputs(True)
    y = model(x, lengths)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(model(x[:n, b : b + 1])[0], y[b], rtol=1e-10, atol=1e-12)


def test_last_pooling_reads_each_direction_where_it_ended():
    pool = Pooling("last", 4, directions=2)
    out = np.arange(3 * 2 * 4, dtype=float).reshape(3, 2, 4)
    v = pool(out, [3, 2])
    np.testing.assert_array_equal(v[:, :2], [out[2, 0, :2], out[1, 1, :2]])  # forward: the last step
    np.testing.assert_array_equal(v[:, 2:], out[0, :, 2:])  # backward: step 0


def test_max_and_mean_pooling_ignore_the_padding():
    out = np.zeros((3, 1, 2))
    out[0, 0], out[1, 0], out[2, 0] = [-2.0, 1.0], [-4.0, 3.0], [0.0, 0.0]  # the last step is padding
    np.testing.assert_array_equal(Pooling("max", 2)(out, [2]), [[-2.0, 3.0]])
    np.testing.assert_array_equal(Pooling("mean", 2)(out, [2]), [[-3.0, 2.0]])


def test_attention_weights_are_a_distribution_over_the_real_steps():
    pool = Pooling("attention", 4, attention_size=3, dtype=np.float64, rng=0)
    out = np.random.default_rng(0).standard_normal((5, 2, 4))
    with no_grad():  # read as a reader of the model does: no cache kept, the weights still there
        pooled = pool(out, [5, 3])
    alpha = pool.weights
    np.testing.assert_allclose(alpha.sum(axis=0), 1.0)
    assert np.all(alpha[3:, 1] == 0)
    np.testing.assert_allclose(pooled, np.einsum("tb,tbf->bf", alpha, out))  # the weights the pooling used
    assert Pooling("mean", 4).weights is None


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="pooling: expected one of last, mean, max, attention, got 'sum'"):
        make("sum")
    with pytest.raises(ValueError, match="give vocab_size .* or input_size"):
        SequenceClassifier(2, vocab_size=5, input_size=3)
    with pytest.raises(ValueError, match="lengths: a length of 9 exceeds"):
        make("mean")(*inputs(True)[:1], lengths=[9, 1, 1])
