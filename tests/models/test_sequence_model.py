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
