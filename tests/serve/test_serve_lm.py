"""A generation token by token, for every registered cell kind, and the text features the units
panel correlates with."""

import numpy as np
import pytest

import rnnkit
from rnnkit.models.sequence_model import cell_choices
from rnnkit.serve import lm

from conftest import write_text  # tests/serve/conftest.py


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    return write_text(tmp_path_factory.mktemp("kinds") / "text.txt", n=120)


@pytest.mark.parametrize("cell", cell_choices())
def test_every_kind_generates_rnnkit_generates_text_with_its_own_signals(cell, text, tmp_path):
    model = rnnkit.train("lm", tmp_path / "m", data=str(text), cell=cell, steps=1, hidden=8, embed=4, layers=2,
                         seq_len=16, batch_size=4, valid_every=1, quiet=True)
    layer = model.model.rnn
    signals = lm.describe_model(model)["signals"]
    assert list(signals) == list(layer.kind.states) + [f"gate:{name}" for name, _ in layer.kind.gates]
    for signal in signals:  # each signal of every unit of the layer, and the unit's gates, at each token
        generation = lm.Generation(model, lm.GenerateRequest(prime="the", length=6, seed=0, signal=signal, layer=1))
        events = generation.start() + [generation.next() for _ in range(6)]
        assert generation.text == model.generate("the", 6, seed=0)
        assert all(len(e["values"]) == signals[signal] and len(e["gates"]) == len(layer.kind.gates) for e in events)
    found = lm.feature_units(model, max_chars=100)
    assert found["chars"] == 100 and all(f["units"] for f in found["features"] if f["present"])


def test_text_features_and_correlations():
    features = lm.text_features('a"b"(c)\nd')
    assert features["in_quotes"].tolist() == [0, 1, 1, 0, 0, 0, 0, 0, 0]
    assert features["in_brackets"].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0]
    assert features["line_position"].tolist() == [1, 2, 3, 4, 5, 6, 7, 0, 1]
    assert features["after_newline"].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0]
    assert lm.text_features(["<unk>", '"', "x"])["in_quotes"].tolist() == [0, 1, 1]  # a token is one step
    values = np.stack([features["in_quotes"], -features["in_quotes"], np.ones(9)], axis=1)
    assert lm.correlations(values, features["in_quotes"]).tolist() == pytest.approx([1, -1, 0])


def test_a_word_model_has_no_character_features(tmp_path, text):
    model = rnnkit.train("lm", tmp_path / "m", data=str(text), tokenizer="word", steps=1, hidden=8, embed=4, layers=1,
                         seq_len=8, batch_size=4, valid_every=1, quiet=True)
    with pytest.raises(ValueError, match="units: the text features are of characters; this is a word-level model"):
        lm.feature_units(model)
    generation = lm.Generation(model, lm.GenerateRequest(prime="the king", length=5, seed=1))
    generation.start()
    for _ in range(5):
        generation.next()
    assert generation.text == model.generate("the king", 5, seed=1)
