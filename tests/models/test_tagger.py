"""The tagger: embedding → bidirectional RNN → scores → softmax or CRF, gradients by finite differences."""

import numpy as np
import pytest
from gradcheck import numerical_grad, rel_err

from rnnkit.models.tagger import SequenceTagger
from rnnkit.nn import no_grad


def make(crf, seed=0):
    return SequenceTagger(4, vocab_size=6, embed_size=3, hidden_size=3, cell="gru", crf=crf, dtype=np.float64, rng=seed)


def batch(seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 6, (5, 3)), rng.integers(0, 4, (5, 3)), np.array([5, 2, 4])


@pytest.mark.parametrize("crf", [False, True])
def test_gradients_match_finite_differences(crf):
    model = make(crf)
    x, tags, lengths = batch()

    def loss():
        with no_grad():
            return model(x, tags, lengths)

    model.zero_grad()
    model(x, tags, lengths)
    model.backward()
    for name, p in model.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-6, name


@pytest.mark.parametrize("crf", [False, True])
def test_padding_changes_neither_loss_nor_decoding(crf):
    model = make(crf)
    x, tags, lengths = batch()
    x2, tags2 = x.copy(), tags.copy()
    x2[2:, 1], tags2[2:, 1] = 5 - x2[2:, 1], 3 - tags2[2:, 1]  # row 1 has length 2
    with no_grad():
        assert model(x, tags, lengths) == pytest.approx(model(x2, tags2, lengths), rel=1e-12)
    decoded = model.decode(x, lengths)
    np.testing.assert_array_equal(decoded, model.decode(x2, lengths))
    assert np.all(decoded[2:, 1] == -1) and np.all(decoded[:2, 1] >= 0)


def test_crf_decoding_is_the_viterbi_path_of_the_scores():
    model = make(crf=True)
    x, _, lengths = batch()
    with no_grad():
        s = model.scores(x, lengths)
    paths, _ = model.crf.decode(s, lengths)
    np.testing.assert_array_equal(model.decode(x, lengths), paths)
    assert model._caches == [] and model.rnn._caches == []  # decoding keeps nothing for backward
