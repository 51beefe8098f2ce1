import math

import numpy as np
import pytest

from rnnkit.cli.main import main
from rnnkit.experiments import long_range as lr


def test_adding_batch_marks_one_number_in_each_half_and_sums_them():
    x, y = lr.adding_batch(np.random.default_rng(0), 64, 20)
    assert x.shape == (20, 64, 2) and y.shape == (64, 1)
    markers = x[:, :, 1]
    assert np.all(markers.sum(axis=0) == 2)
    assert np.all(markers[:10].sum(axis=0) == 1) and np.all(markers[10:].sum(axis=0) == 1)
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * markers).sum(axis=0), rtol=1e-6)


def test_adding_baseline_is_the_variance_of_the_target():
    _, y = lr.adding_batch(np.random.default_rng(1), 200_000, 4)
    assert np.mean((y - 1.0) ** 2) == pytest.approx(lr.ADDING_BASELINE, rel=0.01)


def test_copy_batch_layout():
    x, y = lr.copy_batch(np.random.default_rng(0), 3, 7)
    assert x.shape == y.shape == (27, 3)
    assert np.all((x[:10] >= 1) & (x[:10] <= 8))
    assert np.all(x[10:16] == 0) and np.all(x[16] == 9) and np.all(x[17:] == 0)  # T − 1 blanks, the delimiter, blanks
    assert np.all(y[:17] == 0)
    np.testing.assert_array_equal(y[17:], x[:10])
    assert lr.copy_baseline(7) == pytest.approx(10 * math.log(8) / 27)


def test_gated_models_solve_a_short_adding_problem():
    opts = lr.ExperimentOptions(lengths=[8], cells=["lstm", "gru"], hidden=16, batch=32, steps=300, lr=1e-2, eval_batch=200)
    report = lr.run("adding", opts)
    assert all(r["beats_baseline"] and r["test_loss"] < 0.02 for r in report["results"])


def test_vanishing_gradient_shows_in_the_tanh_rnn(tmp_path):
    opts = lr.ExperimentOptions(lengths=[60], cells=["rnn", "lstm"], hidden=16, batch=16, steps=5, eval_batch=32)
    report = lr.run("adding", opts)
    flow = {r["cell"]: np.array(r["grad_flow"]) for r in report["results"]}
    # the loss sees the last step: from there back to t = 1 the tanh RNN's gradient shrinks by orders of magnitude
    assert flow["rnn"][0] < 1e-3 * flow["rnn"][-1]
    assert flow["lstm"][0] > flow["rnn"][0]
    assert lr.plot_gradient_flow(report, tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"


def test_experiment_command_prints_the_table(tmp_path, capsys):
    assert main(["experiment", "adding", "--lengths", "6", "--cells", "rnn,gru", "--steps", "3", "--hidden", "4",
                 "--batch", "4", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "baseline" in out and "gru" in out and "T=6" in out
    assert (tmp_path / "results.json").exists() and (tmp_path / "gradient_flow.png").exists()


@pytest.mark.parametrize("args,match", [(["--lengths", "x"], "--lengths"), (["--cells", "transformer"], "--cells: unknown")])
def test_bad_experiment_options(args, match, capsys):
    assert main(["experiment", "copy", *args]) == 2
    assert match in capsys.readouterr().err


def test_a_model_that_diverges_is_recorded_and_the_others_still_train():
    # IRNN (ReLU, identity recurrence) with a huge learning rate overflows within a few steps
    opts = lr.ExperimentOptions(lengths=[30], cells=["irnn", "gru"], hidden=8, batch=8, steps=40, lr=1.0, clip=0.0,
                                eval_batch=16)
    report = lr.run("copy", opts)
    irnn, gru = report["results"]
    assert math.isnan(irnn["test_loss"]) and not irnn["beats_baseline"] and irnn["grad_flow"] is None
    assert math.isnan(irnn["curve"][-1][1])
    assert gru["cell"] == "gru" and gru["grad_flow"] is not None
