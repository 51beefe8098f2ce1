"""loss.png speaks the command line's unit: bits per character for a character language model;
it is redrawn at most every PLOT_EVERY_S, and once more at the end."""

import math

import numpy as np
import pytest

import rnnkit
from rnnkit.training import model_dir as md
from rnnkit.training import plots, trainer
from rnnkit.training.plots import loss_unit


def write_corpus(tmp_path):
    text = "\n".join(" ".join(np.random.default_rng(0).choice(["to", "be", "or", "not"], size=6)) for _ in range(60))
    (tmp_path / "c.txt").write_text(text, encoding="utf-8")
    return tmp_path / "c.txt"


def test_a_character_model_is_drawn_in_bits_per_character(tmp_path):
    write_corpus(tmp_path)
    rnnkit.train("lm", tmp_path / "m", data=str(tmp_path / "c.txt"), steps=6, hidden=8, embed=4, layers=1,
                 batch_size=2, seq_len=8, valid_every=6, log_every=3, quiet=True)
    factor, label = loss_unit(md.read_metrics(tmp_path / "m"), md.load_config(tmp_path / "m"))
    assert label == "bits per character" and factor == 1 / math.log(2)
    assert (tmp_path / "m" / "loss.png").stat().st_size > 0


def test_other_losses_are_drawn_as_they_are():
    assert loss_unit([{"step": 5, "valid_loss": 0.3, "valid_accuracy": 0.9}], {"task": "classify"}) == (1.0, "loss")
    assert loss_unit([{"step": 5, "valid_loss": 2.0, "valid_bits_per_token": 2.9}],
                     {"vocabulary": {"kind": "word"}})[1] == "bits per token"


@pytest.mark.parametrize("every, drawings", [(1e9, [1, 4]), (0.0, [1, 2, 3, 4])])
def test_the_curve_is_redrawn_at_most_every_plot_every_s_and_once_at_the_end(tmp_path, monkeypatch, every, drawings):
    drawn = []  # the validations in metrics.jsonl at each drawing (the real drawing runs too)
    draw = plots.plot_loss_curve
    monkeypatch.setattr(plots, "plot_loss_curve", lambda out: (drawn.append(sum("valid_loss" in r for r in md.read_metrics(out))),
                                                               draw(out)))
    monkeypatch.setattr(trainer, "PLOT_EVERY_S", every)
    rnnkit.train("lm", tmp_path / "m", data=str(write_corpus(tmp_path)), steps=8, hidden=8, embed=4, layers=1,
                 batch_size=2, seq_len=8, valid_every=2, quiet=True)
    assert drawn == drawings  # the first validation at once; the last always, never twice
    assert (tmp_path / "m" / "loss.png").stat().st_size > 0
