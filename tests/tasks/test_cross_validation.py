"""Choosing the steps by K-fold cross-validation: the folds, the choice, and `classify` with it."""

import json
import tempfile
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.tasks.classify import ClassifyOptions, ClassifyRun, Splits, build_model, predict, score
from rnnkit.tasks.cross_validation import choose_steps, cross_validate, stratified_folds
from rnnkit.training.trainer import TrainingOptions
from rnnkit.training import model_dir as md


def write_updown(path, n=40, seed=0):
    """Univariate series of 6…11 steps: class "up" rises, "down" falls; ``n`` rows, 3/4 of them up."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        up = i % 4 != 0
        T = int(rng.integers(6, 12))
        series = (1 if up else -1) * np.arange(T) / T + 0.05 * rng.standard_normal(T)
        rows.append(",".join(["up" if up else "down", *(f"{v:.4f}" for v in series)]))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


SMALL = dict(hidden=8, batch_size=8, lr=0.02, valid_every=10, quiet=True)


# ---- the folds -----------------------------------------------------------------------------------
def test_folds_partition_the_examples_and_keep_each_class_balanced():
    labels = ["a"] * 23 + ["b"] * 9 + ["c"] * 3
    folds = stratified_folds(labels, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(35))
    assert max(map(len, folds)) - min(map(len, folds)) <= 1
    for fold in folds:
        counts = Counter(labels[i] for i in fold)
        assert counts["a"] in (4, 5) and counts["b"] in (1, 2) and counts["c"] in (0, 1)


def test_folds_are_a_function_of_the_seed():
    labels = ["a", "b"] * 20
    same = [f.tolist() for f in stratified_folds(labels, 4, seed=3)]
    assert same == [f.tolist() for f in stratified_folds(labels, 4, seed=3)]
    assert same != [f.tolist() for f in stratified_folds(labels, 4, seed=4)]


def test_numeric_labels_are_folded_as_one_group():
    folds = stratified_folds(np.linspace(0, 1, 10), 3, seed=0)
    assert sorted(map(len, folds)) == [3, 3, 4]


# ---- the choice ----------------------------------------------------------------------------------
def test_the_steps_are_the_first_best_of_the_mean_curve():
    fold_a = [{"step": 10, "loss": 0.9, "accuracy": 0.5}, {"step": 20, "loss": 0.4, "accuracy": 0.8},
              {"step": 30, "loss": 0.6, "accuracy": 0.8}]
    fold_b = [{"step": 10, "loss": 0.7, "accuracy": 0.6}, {"step": 20, "loss": 0.8, "accuracy": 0.7},
              {"step": 30, "loss": 0.3, "accuracy": 0.7}]
    steps, mean = choose_steps([fold_a, fold_b], "loss", "min")
    assert [m["loss"] for m in mean] == pytest.approx([0.8, 0.6, 0.45]) and steps == 30  # no fold alone says 30
    steps, mean = choose_steps([fold_a, fold_b], "accuracy", "max")
    assert [m["accuracy"] for m in mean] == pytest.approx([0.55, 0.75, 0.75]) and steps == 20  # the first of a tie


def test_a_fold_stopped_sooner_limits_the_steps_compared():
    short = [{"step": 10, "loss": 0.5}]
    full = [{"step": 10, "loss": 0.9}, {"step": 20, "loss": 0.1}]
    steps, mean = choose_steps([short, full], "loss", "min")
    assert steps == 10 and [m["step"] for m in mean] == [10]


# ---- classify with cross-validation ----------------------------------------------------------------
def test_each_fold_validates_on_its_fold_and_knows_every_class(tmp_path):
    data = write_updown(tmp_path / "s.csv", n=12)  # 3 "down": one of the 4 folds has none in training
    opts = ClassifyOptions(data=str(data), cv_folds=4)
    labels = ["down" if i % 4 == 0 else "up" for i in range(12)]
    seen = []
    for k, fold in enumerate(stratified_folds(labels, 4, seed=7)):
        splits = Splits(opts, 7, cv_fold=k)
        assert splits.description["valid_examples"] == len(fold) and splits.description["train_examples"] == 12 - len(fold)
        assert splits.config["labels"] == ["down", "up"]
        seen.extend(fold.tolist())
    assert sorted(seen) == list(range(12))


def test_a_small_set_is_cross_validated_and_the_final_model_trains_on_all_of_it(tmp_path):
    data = write_updown(tmp_path / "s.csv")
    # 40 < 500: automatic; refit: a network trains on all of it (auto would keep the fold networks alone)
    model = rnnkit.train("classify", tmp_path / "m", data=str(data), steps=40, final="refit", **SMALL)
    config = model.config
    cv = config["encoding"]["cross_validation"]
    assert cv["folds"] == 5 and [r["step"] for r in cv["curve"]] == [10, 20, 30, 40]
    losses = [r["loss"] for r in cv["curve"]]
    assert cv["steps"] == cv["curve"][int(np.argmin(losses))]["step"]
    assert config["training"]["steps"] == cv["steps"] and config["metrics"]["step"] == cv["steps"]
    assert config["data"]["train_examples"] == 40 and config["data"]["valid_examples"] == 0
    # the final run trained to the chosen step, and its kept weights are that step's, not an earlier best
    steps_logged = [r["step"] for r in md.read_metrics(tmp_path / "m") if "train_loss" in r]
    assert max(steps_logged) == cv["steps"]
    last, _, state = md.load_checkpoint(tmp_path / "m")
    assert state["step"] == cv["steps"]
    kept = md.load_weights(tmp_path / "m" / "model.safetensors")
    for name, value in kept.items():
        np.testing.assert_array_equal(value, last[name], err_msg=name)
    evaluated = model.evaluate()
    assert evaluated["cv_folds"] == 5 and evaluated["cv_loss"] == pytest.approx(min(losses))


def test_the_fold_weights_kept_are_those_validated_at_the_chosen_step(tmp_path, monkeypatch):
    data = write_updown(tmp_path / "s.csv", n=24)
    rows = data.read_text().splitlines()
    rng = np.random.default_rng(0)  # labels drawn at random: the folds overfit, so the best step is not the last
    data.write_text("\n".join(str(rng.choice(["up", "down"])) + row[row.index(","):] for row in rows) + "\n")
    opts = ClassifyOptions(data=str(data), cv_folds=3, hidden=8, batch_size=8)
    training = TrainingOptions(steps=40, valid_every=10, lr=0.05, seed=1, ema=0.8)  # validated: the average

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    on_disk = []  # the earlier folds' validated weights wait on disk, not in memory

    def make_fold(k):
        on_disk.append(sorted(p.name for p in scratch.glob("rnnkit-cv-weights-*/fold*/*.safetensors")))
        fold = Splits(opts, 1, cv_fold=k)
        model = build_model(opts, fold.config, 1)
        return model, ClassifyRun(model, fold, opts, 1), {"task": "classify"}

    result = cross_validate(make_fold, 3, training, "min", quiet=True, keep_weights=True)
    assert len(result["fold_weights"]) == 3 and result["steps"] < training.steps
    assert on_disk[0] == [] and len(on_disk[2]) == 2 * 4 and "validated-10.safetensors" in on_disk[2]
    assert list(scratch.iterdir()) == []  # and are gone once the step is chosen
    losses = []
    for k, weights in enumerate(result["fold_weights"]):
        fold = Splits(opts, 1, cv_fold=k)
        model = build_model(opts, fold.config, 99)  # other initial weights: all come from the kept ones
        model.load_state_dict(weights)
        losses.append(score(fold.config, predict(model, fold.inputs["valid"], 8), fold.targets["valid"])["loss"])
    at_chosen = next(r for r in result["curve"] if r["step"] == result["steps"])
    assert np.mean(losses) == pytest.approx(at_chosen["loss"], rel=1e-6)
    assert "fold_weights" not in cross_validate(make_fold, 3, replace(training, steps=10), "min", quiet=True)


def test_cv_folds_zero_keeps_the_validation_split(tmp_path):
    data = write_updown(tmp_path / "s.csv")
    config = rnnkit.train("classify", tmp_path / "m", data=str(data), steps=20, cv_folds=0, **SMALL).config
    assert "cross_validation" not in config["encoding"] and config["data"]["valid_examples"] == 4


def test_a_model_from_before_the_new_options_reads_its_series_as_it_was_trained(tmp_path):
    data = write_updown(tmp_path / "s.csv")
    rnnkit.train("classify", tmp_path / "m", data=str(data), steps=2, cv_folds=0, **SMALL)
    path = tmp_path / "m" / "config.json"
    config = json.loads(path.read_text())
    for option in ("cv_folds", "znorm", "max_length"):
        del config["task_options"][option]
    path.write_text(json.dumps(config))
    loaded = rnnkit.load(tmp_path / "m")
    assert (loaded.opts.znorm, loaded.opts.max_length, loaded.opts.cv_folds) == ("none", 0, 0)


# ---- bad --cv-folds: one line, exit code 2 ---------------------------------------------------------
def run_error(args, capsys):
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("value", ["1", "-2"])
def test_a_cv_folds_below_two_is_refused(tmp_path, capsys, value):
    data = write_updown(tmp_path / "s.csv")
    err = run_error(["train", "classify", "--data", str(data), "--out", str(tmp_path / "m"), "--cv-folds", value], capsys)
    assert f"--cv-folds: invalid value {value}" in err and "K >= 2" in err


def test_more_folds_than_examples_is_refused_before_training(tmp_path, capsys):
    data = write_updown(tmp_path / "s.csv", n=8)
    err = run_error(["train", "classify", "--data", str(data), "--out", str(tmp_path / "m"), "--cv-folds", "9"], capsys)
    assert "--cv-folds: 9 folds need at least 9 training examples, but the training data has 8" in err
    assert not (tmp_path / "m").exists()


def test_a_cross_validated_model_resumes_without_cross_validating_again(tmp_path):
    data = write_updown(tmp_path / "s.csv", n=20)
    first = rnnkit.train("classify", tmp_path / "m", data=str(data), steps=20, cv_folds=2, final="both", **SMALL).config
    chosen = first["encoding"]["cross_validation"]
    resumed = rnnkit.train("classify", tmp_path / "m", resume=True, steps=chosen["steps"] + 10, quiet=True)
    assert resumed.config["encoding"]["cross_validation"] == chosen
    assert resumed.config["status"] == "finished" and resumed.evaluate()["cv_folds"] == 2
