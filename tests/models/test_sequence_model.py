"""make_recurrent and the --cell choices: every registered kind, with the initialisation that suits it, and its
settings as --cell-option reads them."""

import numpy as np
import pytest

from rnnkit.models.sequence_model import (SequenceModel, cell_choices, cell_help, cell_name, cell_option_help, cell_settings,
                                          make_recurrent)
from rnnkit.nn import cells


@pytest.mark.parametrize("cell", cells.names())
def test_every_kind_makes_a_layer_that_a_model_trains(cell):
    model = SequenceModel(3, 4, 2, cell=cell, num_layers=2, rng=0)
    assert model.rnn.kind is cells.get(cell)
    y = model(np.random.default_rng(0).standard_normal((5, 2, 3)))
    model.backward(np.ones_like(y))
    assert all(np.isfinite(p.grad).all() for p in model.parameters())
    assert any(np.abs(p.grad).sum() > 0 for name, p in model.named_parameters() if name.startswith("rnn."))


def test_each_kind_gets_its_initialisation():
    lstm = make_recurrent("lstm", 3, 4, rng=0)
    assert np.all(lstm.bias_ih_l0.data[4:8] == 1) and np.all(lstm.bias_hh_l0.data[4:8] == 0)  # forget gate
    irnn = make_recurrent("irnn", 3, 4, rng=0)
    assert irnn.nonlinearity == "relu" and np.array_equal(irnn.weight_hh_l0.data, np.eye(4))
    assert np.abs(irnn.weight_ih_l0.data).max() < 0.01  # N(0, 0.001)
    with pytest.raises(ValueError, match="dropout: mingru layers have no dropout between layers"):
        make_recurrent("mingru", 3, 4, num_layers=2, dropout=0.5)


def test_the_cell_choices_and_help_come_from_the_registry():
    assert cell_choices() == cells.names() and set(cell_choices(step=True)) < set(cell_choices())
    assert all(f"{k.name}: {k.about}" in cell_help() for k in cells.kinds())
    with pytest.raises(ValueError, match=r"cell: expected one of rnn, irnn, lstm, .*got 'rwkv'"):
        make_recurrent("rwkv", 3, 4)


def test_cell_option_is_read_from_texts_a_comma_separated_text_or_a_dict_and_completed_with_the_defaults():
    full = {"zoneout_h": 0.2, "zoneout_c": 0.5}
    assert cell_settings("zoneout", ["zoneout_h=0.2"]) == cell_settings("zoneout", " zoneout_h = 0.2 ,") == full
    assert cell_settings("zoneout", {"zoneout_h": 0.2}) == cell_settings("zoneout", full) == full
    assert cell_settings("zoneout", []) == {"zoneout_h": 0.05, "zoneout_c": 0.5}
    assert cell_settings("lstm", {}) == cell_settings("lstm", "") == {}
    assert cell_name("zoneout", full) == "ZONEOUT (zoneout_h 0.2, zoneout_c 0.5)" and cell_name("lstm", {}) == "LSTM"
    model = SequenceModel(3, 4, 2, cell="variational", rng=0, cell_settings=cell_settings("variational", "dropout_h=0.3"))
    assert (model.rnn.dropout_h, model.rnn.weight_drop) == (0.3, 0.5)


def test_the_cell_option_help_lists_every_kinds_settings_with_their_defaults():
    shown = cell_option_help()
    for kind in cells.kinds():
        assert all(f"{name}={s.default} ({s.about})" in shown for name, s in kind.settings.items())
    assert "variational" not in cell_option_help(step=True)  # no cell: translate does not offer it


# ---- init="torch" in every task model: the recurrent parts as torch.nn builds them ----------------
E, H = 64, 128  # every tensor has ≥ 384 values: the laws' statistics are sharp (tests/init_laws.py)


def task_models(cell, init):
    """{model name: (model, {prefix: torch twin factory})}: each task model with its recurrent parts'
    torch.nn twins (the same sizes), built lazily so the test can skip without torch."""
    from rnnkit.models.classifier import SequenceClassifier
    from rnnkit.models.forecaster import Forecaster
    from rnnkit.models.seq2seq import Seq2Seq
    from rnnkit.models.tagger import SequenceTagger

    layer = lambda nn, i, bi=False: getattr(nn, cell.upper())(i, H, 1, bidirectional=bi)
    step = lambda nn, i: getattr(nn, cell.upper() + "Cell")(i, H)
    return {
        "classifier": (SequenceClassifier(3, H, cell, 1, True, "mean", vocab_size=97, embed_size=E, rng=0, init=init),
                       {"rnn": lambda nn: layer(nn, E, True)}),
        "tagger": (SequenceTagger(5, 97, E, H, cell, 1, True, rng=0, init=init), {"rnn": lambda nn: layer(nn, E, True)}),
        "forecaster": (Forecaster(2, 0, 1, H, cell, 1, rng=0, init=init), {"rnn": lambda nn: layer(nn, 2)}),
        "seq2seq": (Seq2Seq(97, 89, E, H, cell, 2, True, "bahdanau", rng=0, init=init),
                    {"encoder": lambda nn: getattr(nn, cell.upper())(E, H, 2, bidirectional=True),
                     "decoder_l0": lambda nn: step(nn, E + 2 * H), "decoder_l1": lambda nn: step(nn, H)}),
    }


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("name", ["classifier", "tagger", "forecaster", "seq2seq"])
def test_torch_init_gives_every_recurrent_part_torchs_names_shapes_and_laws(name, cell):
    torch = pytest.importorskip("torch")
    from init_laws import assert_law, assert_standard_normal, assert_uniform, torch_laws

    model, twins = task_models(cell, "torch")[name]
    mine = model.state_dict()
    for prefix, make in twins.items():
        torch.manual_seed(0)
        twin = make(torch.nn)
        theirs = {f"{prefix}.{k}": v.detach().numpy() for k, v in twin.state_dict().items()}
        assert {k: v.shape for k, v in mine.items() if k.startswith(prefix + ".")} == {k: v.shape for k, v in theirs.items()}
        for k, law in torch_laws(twin).items():
            assert_law(theirs[f"{prefix}.{k}"], law, f"torch {k}")  # the checks hold torch's own draw
            assert_law(mine[f"{prefix}.{k}"], law, f"{name} {prefix}.{k}")
    for k, v in mine.items():  # the embeddings and the output layer: torch.nn's Embedding and Linear
        if k.endswith("embedding.weight"):
            assert_standard_normal(v, k)
        elif k in ("head.weight", "head.bias"):
            assert_uniform(v, 1 / np.sqrt(model.head.in_features), k)


@pytest.mark.parametrize("name", ["classifier", "tagger", "forecaster", "seq2seq"])
def test_every_task_model_sets_the_forget_gate_bias_under_rnnkit_init_only(name):
    forget = slice(H, 2 * H)  # gate order i, f, g, o
    for init, is_one in (("rnnkit", True), ("torch", False)):
        model, twins = task_models("lstm", init)[name]
        state = model.state_dict()
        for prefix in twins:
            biases = [v[forget] for k, v in state.items() if k.startswith(prefix + ".bias_ih")]
            assert biases and all(np.all(b == 1) == is_one for b in biases), (name, prefix, init)
