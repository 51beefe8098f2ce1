"""classify --final both: the fold networks of the cross-validation, kept at the chosen step, join the
network trained on all the data; carried through a stopped run, stored, loaded and exported with it.
--final folds (and auto, the default, where numeric series are cross-validated): they are the model
alone, and no network trains on all the data."""

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx_checks import assert_close, series_feed, session

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data.sources import load_classification
from rnnkit.tasks.classify import ClassifyOptions, Splits, build_model, encode_inputs, predict, score, softmax
from rnnkit.training import model_dir as md
from rnnkit.training.plots import loss_series

# three folds of 48 series, a tiny network; the cross-validation chooses 20 of the 40 steps (asserted below)
TINY = dict(steps=40, lr=0.02, hidden=8, batch_size=8, valid_every=10, cv_folds=3, seed=2, quiet=True)
CLASSES = ("up", "down", "flat")


def write_series(path, n=48, seed=0, values=False):
    """Univariate series of 5 to 14 steps at levels around 3: class "up" rises, "down" falls, "flat"
    stays, but 30% of the labels are drawn at random (so the folds overfit); with ``values``, each
    series is labelled by its slope instead."""
    rng, noise = np.random.default_rng(seed), np.random.default_rng(1)
    lines = []
    for i in range(n):
        label = CLASSES[i % 3]
        slope = {"up": 1.0, "down": -1.0, "flat": 0.0}[label] * rng.uniform(0.2, 1)
        T = int(rng.integers(5, 15))
        series = 3 + slope * np.arange(T) / T + 0.3 * rng.standard_normal(T)
        if noise.random() < 0.3:
            label = str(noise.choice(CLASSES))
        lines.append(",".join([f"{slope:.4f}" if values else label, *(f"{v:.4f}" for v in series)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_series(tmp_path_factory.mktemp("data") / "series.csv")


@pytest.fixture(scope="module")
def both(tmp_path_factory, data):
    return rnnkit.train("classify", tmp_path_factory.mktemp("models") / "both", data=str(data), final="both", **TINY)


@pytest.fixture(scope="module")
def folds(tmp_path_factory, data):
    return rnnkit.train("classify", tmp_path_factory.mktemp("models") / "folds", data=str(data), final="folds", **TINY)


class Stop(Exception):
    """Raised by ``stop_once_checkpointed``: a run stopped as a kill would stop it, its checkpoint kept."""


def stop_once_checkpointed(directory):
    """A callback that stops the run at its next step once ``directory`` holds a checkpoint (the
    folds' runs, which write elsewhere, come first)."""
    def stop(record):
        if "train_loss" in record and md.has_checkpoint(directory):
            raise Stop

    return stop


def stored_networks(trained) -> list[dict]:
    """The weights as the directory holds them: the refit's, then fold k's from members.safetensors."""
    members = md.load_weights(trained.dir / md.MEMBERS)
    folds = [{name.split(".", 1)[1]: v for name, v in members.items() if name.startswith(f"fold{k}.")} for k in range(3)]
    return [md.load_model_weights(trained.dir), *folds]


def test_the_fold_networks_are_those_cross_validated_at_the_chosen_step(both, data):
    assert both.config["final"] == {"folds": 3} and len(both.members) == 4
    cv = both.encoding["cross_validation"]
    assert cv["steps"] < TINY["steps"]  # not simply the folds' last weights
    networks = stored_networks(both)
    assert all(networks[1:]) and sorted(md.load_weights(both.dir / md.MEMBERS)) == sorted(
        f"fold{k}.{name}" for k in range(3) for name in networks[0])
    losses = []
    for k, weights in enumerate(networks[1:]):  # each fold network scores its own fold as the cross-validation did
        fold = Splits(both.opts, TINY["seed"], cv_fold=k)
        network = build_model(both.opts, fold.config, seed=123)
        network.load_state_dict(weights)
        losses.append(score(fold.config, predict(network, fold.inputs["valid"], 8), fold.targets["valid"])["loss"])
    assert np.mean(losses) == pytest.approx(next(r["loss"] for r in cv["curve"] if r["step"] == cv["steps"]), rel=1e-6)


def test_classify_averages_the_refit_and_the_fold_networks(both, data):
    items = load_classification(str(data)).items
    inputs = encode_inputs(both.encoding, both.opts, items, "test")
    each = []
    for weights in stored_networks(both):
        network = build_model(both.opts, both.encoding, seed=123)
        network.load_state_dict(weights)
        each.append(softmax(predict(network, inputs, 8)))
    got = np.array([[r["probabilities"][label] for label in both.labels] for r in both.classify(items)])
    np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-5, atol=1e-7)
    assert np.abs(got - each[0]).max() > 1e-3  # not the refit's alone


@pytest.mark.parametrize("final", ["both", "auto"])
def test_with_final_both_every_fold_reads_the_whole_training_parts_standardisation(data, final):
    both = ClassifyOptions(data=str(data), cv_folds=3, final=final)
    refit = ClassifyOptions(data=str(data), cv_folds=3, final="refit")
    whole = Splits(both, 2).config
    for k in range(3):
        assert Splits(both, 2, cv_fold=k).config["mean"] == whole["mean"]
        assert Splits(refit, 2, cv_fold=k).config["mean"] != whole["mean"]  # --final refit: the other folds' own


def test_the_default_keeps_the_fold_networks_where_it_cross_validates_and_refits_elsewhere(tmp_path, data, folds):
    """--final auto (the default) is folds where numeric series are cross-validated: the same
    networks to the bit, and the choice recorded with the cross-validation; without
    cross-validation, or for text, it is refit, with no fold networks and no error."""
    auto = rnnkit.train("classify", tmp_path / "auto", data=str(data), **TINY)
    assert auto.opts.final == "auto" and auto.config["final"] == {"folds": 3, "refit": False}
    assert auto.encoding["cross_validation"]["final"] == "folds" and len(auto.members) == 3
    for name in (md.WEIGHTS, md.MEMBERS):
        assert (auto.dir / name).read_bytes() == (folds.dir / name).read_bytes()
    plain = rnnkit.train("classify", tmp_path / "plain", data=str(data), **dict(TINY, cv_folds=0))
    assert "final" not in plain.config and len(plain.members) == 1 and not (plain.dir / md.MEMBERS).exists()
    refit = rnnkit.train("classify", tmp_path / "refit", data=str(data), final="refit", **TINY)
    assert "final" not in refit.config and len(refit.members) == 1
    rng = np.random.default_rng(0)  # text: auto is refit (measured on series only); both keeps them on request
    words = {"pos": ["good", "fine", "great"], "neg": ["bad", "dull", "poor"]}
    texts = tmp_path / "texts.tsv"
    texts.write_text("".join(f"{label}\t{' '.join(rng.choice(words[label], 3))} film\n" for label in ["pos", "neg"] * 15))
    text = rnnkit.train("classify", tmp_path / "text", data=str(texts), embed=4, **TINY)
    assert text.encoding["cross_validation"]["folds"] == 3 and "final" not in text.config and len(text.members) == 1
    assert text.encoding["cross_validation"]["final"] == "refit"
    text_both = rnnkit.train("classify", tmp_path / "text-both", data=str(texts), embed=4, final="both", **TINY)
    assert text_both.config["final"] == {"folds": 3} and len(text_both.members) == 4


def test_a_model_of_auto_from_before_its_choice_was_recorded_reads_as_both(tmp_path, both):
    """Until session 20, auto meant both for series, and the cross-validation did not record the
    choice: such a model (task_options.final auto, no cross_validation.final) is the refit and the
    fold networks, as it was trained."""
    shutil.copytree(both.dir, tmp_path / "m")
    config = json.loads((tmp_path / "m" / md.CONFIG).read_text())
    config["task_options"]["final"] = "auto"
    del config["encoding"]["cross_validation"]["final"]
    (tmp_path / "m" / md.CONFIG).write_text(json.dumps(config))
    old = rnnkit.load(tmp_path / "m")
    assert len(old.members) == 4
    inputs = encode_inputs(both.encoding, both.opts, load_classification(both.opts.data).items, "test")
    np.testing.assert_array_equal(old.outputs(inputs), both.outputs(inputs))


def test_a_cross_validated_model_from_before_the_option_reads_as_the_refit_alone(tmp_path, data, capsys):
    """A config.json without task_options.final (trained before the option, when the refit was all
    there was) means refit, not today's auto: one network, and info does not promise fold networks."""
    rnnkit.train("classify", tmp_path / "m", data=str(data), final="refit", **TINY)
    path = tmp_path / "m" / md.CONFIG
    config = json.loads(path.read_text())
    del config["task_options"]["final"]
    path.write_text(json.dumps(config))
    old = rnnkit.load(tmp_path / "m")
    assert old.opts.final == "refit" and len(old.members) == 1
    assert main(["info", str(tmp_path / "m")]) == 0
    assert "fold networks" not in capsys.readouterr().out


def test_a_run_stopped_in_its_final_training_keeps_its_fold_networks(tmp_path, data, both):
    """The fold networks live in the run's checkpoint (the first written at step 0) until the model is
    stored: a run stopped after its first step and resumed from its directory alone ends with the
    same networks."""
    with pytest.raises(Stop):
        rnnkit.train("classify", tmp_path / "m", data=str(data), final="both", log_every=1,
                     callbacks=[stop_once_checkpointed(tmp_path / "m")], **TINY)
    assert not (tmp_path / "m" / md.MEMBERS).exists()
    resumed = rnnkit.train("classify", tmp_path / "m", resume=True, quiet=True)
    for a, b in zip(stored_networks(resumed), stored_networks(both)):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_run_that_lost_its_fold_networks_is_refused_before_training_again(tmp_path, data):
    """Killed between config.json and the step-0 checkpoint, a --final both run keeps nothing of its
    cross-validation: its resume says so in one line instead of training to a model that cannot store them."""
    with pytest.raises(Stop):
        rnnkit.train("classify", tmp_path / "m", data=str(data), final="both", log_every=1,
                     callbacks=[stop_once_checkpointed(tmp_path / "m")], **TINY)
    shutil.rmtree(tmp_path / "m" / "checkpoint")  # as a kill between the two writes leaves it
    with pytest.raises(ValueError, match="fold networks were lost .* overwrite"):
        rnnkit.train("classify", tmp_path / "m", resume=True, quiet=True)
    assert not md.has_checkpoint(tmp_path / "m")


def test_the_default_with_an_ensemble_resumed_without_its_fold_networks_ends_as_the_refits_and_says_so(tmp_path, data, capsys):
    """The same kill under --final auto with --ensemble (both: the ensemble's networks train on all
    the data): the resume trains the network on all the data from step 0 and the ensemble's other,
    without the fold networks, and info says they were lost."""
    with pytest.raises(Stop):
        rnnkit.train("classify", tmp_path / "m", data=str(data), ensemble=2, log_every=1,
                     callbacks=[stop_once_checkpointed(tmp_path / "m")], **TINY)
    shutil.rmtree(tmp_path / "m" / "checkpoint")
    resumed = rnnkit.train("classify", tmp_path / "m", resume=True, quiet=True)
    assert resumed.encoding["cross_validation"]["final"] == "both"
    assert resumed.config["final"] == {"folds": 0} and len(resumed.members) == 2
    assert sorted({name.split(".", 1)[0] for name in md.load_weights(resumed.dir / md.MEMBERS)}) == ["member1"]
    assert main(["info", str(resumed.dir)]) == 0
    assert "the fold networks were lost" in capsys.readouterr().out
    again = rnnkit.train("classify", tmp_path / "m", resume=True, quiet=True, steps=TINY["steps"])  # a finished run: kept as it is
    assert again.config["final"] == {"folds": 0}


def test_an_ensemble_stopped_while_its_second_network_trains_ends_as_one_never_stopped(tmp_path, data):
    whole = rnnkit.train("classify", tmp_path / "whole", data=str(data), final="both", ensemble=2, **TINY)

    with pytest.raises(Stop):  # in the second network's run
        rnnkit.train("classify", tmp_path / "m", data=str(data), final="both", ensemble=2, log_every=1,
                     callbacks=[stop_once_checkpointed(tmp_path / "m" / md.MEMBER_RUN)], **TINY)
    resumed = rnnkit.train("classify", tmp_path / "m", resume=True, quiet=True)
    a, b = md.load_weights(whole.dir / md.MEMBERS), md.load_weights(resumed.dir / md.MEMBERS)
    assert sorted(a) == sorted(b) and len(resumed.members) == 5
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


@pytest.mark.parametrize("value", ["fold", "Both", ""])
def test_a_final_that_is_not_one_of_its_choices_is_refused_naming_it(tmp_path, data, capsys, value):
    with pytest.raises(SystemExit) as exit_:  # a fixed set of values: argparse's choices
        main(["train", "classify", "--data", str(data), "--out", str(tmp_path / "m"), "--final", value, "--quiet"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --final: invalid choice: {value!r} (choose from 'auto', 'refit', 'both', 'folds')" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()
    with pytest.raises(ValueError, match=f"final: invalid value {value!r}"):  # the Python API checks the same
        rnnkit.train("classify", tmp_path / "m", data=str(data), final=value, steps=2)


@pytest.mark.parametrize("final", ["both", "folds"])
def test_final_both_or_folds_without_cross_validation_is_one_line_naming_it(tmp_path, data, capsys, final):
    assert main(["train", "classify", "--data", str(data), "--out", str(tmp_path / "m"), "--final", final,
                 "--cv-folds", "0", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--final {final}" in err and "--cv-folds" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_final_folds_is_the_fold_networks_alone(folds, both, data, capsys):
    """The same fold networks as --final both keeps, to the bit: fold 0's is the model's own network,
    the others are in members.safetensors; nothing trains after the cross-validation, and the model's
    metrics are the cross-validated ones at the chosen step."""
    cv = folds.encoding["cross_validation"]
    assert folds.config["final"] == {"folds": 3, "refit": False} and len(folds.members) == 3
    assert sorted({name.split(".", 1)[0] for name in md.load_weights(folds.dir / md.MEMBERS)}) == ["fold1", "fold2"]
    theirs = stored_networks(both)[1:]
    ours = [md.load_model_weights(folds.dir)] + stored_networks(folds)[2:]
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys()
        for name in a:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    records = [json.loads(line) for line in (folds.dir / md.METRICS).read_text().splitlines()]
    assert not any("train_loss" in r for r in records)  # no step trained after the cross-validation
    assert records[-1]["step"] == cv["steps"] == folds.config["metrics"]["step"] and folds.config["status"] == "finished"
    assert folds.config["metrics"]["loss"] == next(r["loss"] for r in cv["curve"] if r["step"] == cv["steps"])

    items = load_classification(str(data)).items
    inputs = encode_inputs(folds.encoding, folds.opts, items, "test")
    each = []
    for weights in theirs:
        network = build_model(folds.opts, folds.encoding, seed=123)
        network.load_state_dict(weights)
        each.append(softmax(predict(network, inputs, 8)))
    got = np.array([[r["probabilities"][label] for label in folds.labels] for r in folds.classify(items)])
    np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-5, atol=1e-7)
    assert main(["info", str(folds.dir)]) == 0
    out = capsys.readouterr().out
    assert "no network trained on all of it" in out and "the 3 fold networks at step" in out and "also" not in out


def test_the_loss_plot_of_a_folds_model_draws_its_cross_validation(folds):
    """It trains no step: loss.png draws the folds' mean validation loss at every step they validated
    (one point otherwise), and the step chosen."""
    series = loss_series(md.read_metrics(folds.dir), folds.config)
    cv = folds.encoding["cross_validation"]
    assert series == {"training": [], "validation: 3-fold cross-validation, mean": [(s, r["loss"]) for s, r in
                                                                                   zip((10, 20, 30, 40), cv["curve"])]}
    assert (folds.dir / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_a_folds_model_resumes_as_it_is_and_refuses_to_train_on(tmp_path, data, folds, capsys):
    shutil.copytree(folds.dir, tmp_path / "m")
    before = {p.name: p.read_bytes() for p in (tmp_path / "m").iterdir() if p.is_file()}
    again = rnnkit.train("classify", tmp_path / "m", resume=True, quiet=True)
    assert len(again.members) == 3 and {p: (tmp_path / "m" / p).read_bytes() for p in before} == before
    assert main(["train", "--resume", str(tmp_path / "m"), "--steps", "60", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rnnkit: error: --steps 60:") and "--final folds" in err and "no run to continue" in err
    assert {p: (tmp_path / "m" / p).read_bytes() for p in before} == before


def test_a_folds_run_stopped_before_storing_its_networks_stores_them_on_resume(tmp_path, folds):
    """Stopped after its checkpoint and before the fold networks joined it (as that kill leaves the
    directory: config.json without its final entry, no members), the resume stores the same; stopped
    before the checkpoint, the resume is refused and the model's network is left as it is."""
    shutil.copytree(folds.dir, tmp_path / "m")
    config = json.loads((tmp_path / "m" / md.CONFIG).read_text())
    del config["final"]
    (tmp_path / "m" / md.CONFIG).write_text(json.dumps(config))
    (tmp_path / "m" / md.MEMBERS).unlink()
    with pytest.raises(md.ModelDirError, match="the fold networks are not stored yet .* --resume"):
        rnnkit.load(tmp_path / "m")  # its network alone is fold 0's: refused, not taken for the model
    resumed = rnnkit.train("classify", tmp_path / "m", resume=True, quiet=True)
    assert resumed.config["final"] == {"folds": 3, "refit": False}
    assert (tmp_path / "m" / md.MEMBERS).read_bytes() == (folds.dir / md.MEMBERS).read_bytes()
    shutil.rmtree(tmp_path / "m" / "checkpoint")
    network = (tmp_path / "m" / md.WEIGHTS).read_bytes()
    with pytest.raises(ValueError, match="final folds: the fold networks were lost .* overwrite"):
        rnnkit.train("classify", tmp_path / "m", resume=True, quiet=True)
    assert (tmp_path / "m" / md.WEIGHTS).read_bytes() == network


def test_final_folds_with_an_ensemble_is_one_line_naming_both(tmp_path, data, capsys):
    assert main(["train", "classify", "--data", str(data), "--out", str(tmp_path / "m"), "--final", "folds",
                 "--ensemble", "2", "--cv-folds", "3", "--steps", "4", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--ensemble: 2 networks" in err and "--final folds" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_with_an_ensemble_and_for_a_regressor_every_network_counts(tmp_path, data, capsys):
    trained = rnnkit.train("classify", tmp_path / "e", data=str(data), final="both", ensemble=2, **TINY)
    assert len(trained.members) == 1 + 1 + 3  # the refit, the next seed's network, the three folds
    assert sorted({name.split(".", 1)[0] for name in md.load_weights(trained.dir / md.MEMBERS)}) == ["fold0", "fold1", "fold2", "member1"]
    assert main(["info", str(trained.dir)]) == 0
    assert "also the 3 fold networks at step" in capsys.readouterr().out

    values = write_series(tmp_path / "slopes.csv", values=True)
    regressor = rnnkit.train("classify", tmp_path / "r", data=str(values), final="both", target="value", **TINY)
    items = load_classification(str(values)).items
    inputs = encode_inputs(regressor.encoding, regressor.opts, items, "test")
    each = [predict(network, inputs, 8)[:, 0] for network in regressor.members]
    got = np.array([r["value"] for r in regressor.classify(items)])
    expected = np.mean(each, axis=0) * regressor.encoding["value_std"] + regressor.encoding["value_mean"]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert len(regressor.members) == 4


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("final", ["both", "folds"])
def test_the_exported_model_averages_every_network_as_rnnkit_does(request, data, tmp_path, final):
    trained = request.getfixturevalue(final)
    model = onnx.load(str(trained.export(tmp_path / "model.onnx")[0]))
    items = load_classification(str(data)).items[:16]
    got = session(model).run(None, series_feed(items))[0]
    assert_close(got, [[r["probabilities"][label] for label in trained.labels] for r in trained.classify(items)], "probabilities")
