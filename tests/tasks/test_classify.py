"""Task `classify` through the command line and the Python API, on small files the tests write."""

import contextlib
import json
import shutil
import time
from types import SimpleNamespace

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.tasks.classify import NOISE_SHARE, ClassifyOptions, ClassifyRun, Splits, stratified_split
from rnnkit.training import model_dir as md

# a validation split, not cross-validation (tested in tests/tasks/test_cross_validation.py): fewer trainings
TINY = ["--steps", "60", "--lr", "0.02", "--hidden", "12", "--embed", "6", "--batch-size", "8", "--valid-every", "20",
        "--cv-folds", "0", "--quiet"]
POSITIVE, NEGATIVE = ["good", "great", "superb"], ["bad", "awful", "dull"]


def write_reviews(path, n=160, seed=0):
    """Texts whose class is given by one sentiment word among fillers."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        positive = bool(rng.integers(2))
        words = list(rng.choice(["the", "film", "was", "a", "plot", "very"], size=rng.integers(1, 6)))
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(POSITIVE if positive else NEGATIVE)))
        lines.append(f"{'pos' if positive else 'neg'}\t{' '.join(words)}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_series(path, n=80, seed=0, values=False):
    """Univariate series: class "up" rises, "down" falls (or, with values, the label is the slope)."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        slope = rng.uniform(-1, 1)
        T = int(rng.integers(5, 15))
        series = slope * np.arange(T) / T + 0.05 * rng.standard_normal(T)
        label = f"{slope:.4f}" if values else ("up" if slope > 0 else "down")
        lines.append(",".join([label, *(f"{v:.4f}" for v in series)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def reviews(tmp_path):
    return write_reviews(tmp_path / "reviews.tsv")


@pytest.fixture(scope="module")
def small_classifier_once(tmp_path_factory):
    """A classifier of reviews trained for two steps, once for the module (once per worker)."""
    folder = tmp_path_factory.mktemp("classify")
    rnnkit.train("classify", folder / "m", data=str(write_reviews(folder / "reviews.tsv")), steps=2, hidden=4, embed=4,
                 valid_every=2)
    return folder / "m"


@pytest.fixture
def small_classifier(tmp_path, small_classifier_once):
    """The test's own copy of that classifier, at ``tmp_path / "m"``."""
    return shutil.copytree(small_classifier_once, tmp_path / "m")


def test_text_classifier_trains_classifies_and_evaluates(tmp_path, reviews, capsys):
    out = tmp_path / "m"
    assert main(["train", "classify", "--data", str(reviews), "--out", str(out), "--bidirectional", "--pooling", "max", *TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["encoding"]["labels"] == ["neg", "pos"]
    assert config["data"]["train_examples"] + config["data"]["valid_examples"] == 160
    capsys.readouterr()
    assert main(["classify", str(out), "a great film", "the plot was awful"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("pos ") and lines[1].startswith("neg ")
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "valid_accuracy" in printed and "predicted" in printed
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"


def test_python_api_gives_probabilities_that_sum_to_one(tmp_path, reviews):
    model = rnnkit.train("classify", tmp_path / "m", data=str(reviews), steps=40, lr=0.02, hidden=8, embed=4, batch_size=8, valid_every=20,
                         cv_folds=0)
    results = model.classify(["great", "dull dull"])
    assert [r["label"] for r in results] == ["pos", "neg"]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-9 for r in results)
    again = rnnkit.load(tmp_path / "m").classify(["great"])[0]  # the saved model gives the same
    assert again["label"] == "pos" and again["probabilities"]["pos"] == pytest.approx(results[0]["probabilities"]["pos"], rel=1e-5)


def test_numeric_series_and_values_make_a_regressor(tmp_path):
    data = write_series(tmp_path / "slopes.csv", values=True)
    model = rnnkit.train("classify", tmp_path / "m", data=str(data), steps=150, hidden=16, batch_size=8, valid_every=50, cell="gru",
                         cv_folds=0)
    assert model.encoding["values"] and model.encoding["input"] == "series"
    metrics = model.evaluate()
    assert metrics["valid_r2"] > 0.5  # the slope is learnable; a constant predictor has r2 <= 0
    value = model.classify([np.linspace(0, 0.9, 10)[:, None]])[0]["value"]
    assert value > 0.3


def write_sized_series(path, n=40, seed=0, sizes=(-4.0, 1.0)):
    """Class "sin" or "cos" in the shape; each series at a size 10^u, u uniform in ``sizes``
    (appliances' currents: PLAID's series differ in size by five orders of magnitude)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    X = np.stack([10 ** rng.uniform(*sizes) * (1.5 + (np.sin if y else np.cos)(np.arange(30) / 3)) for y in labels])[:, :, None]
    np.savez(path, X=X, y=np.array(["cos", "sin"])[labels])
    return path


def test_series_of_very_different_sizes_reach_the_network_with_their_shape(tmp_path):
    # standardised with the training part's statistics only, most of these series were flat lines of
    # range below 0.01 (PLAID: 0.36 accuracy where 1-NN DTW gets 0.93); --znorm auto finds them
    opts = ClassifyOptions(data=str(write_sized_series(tmp_path / "sized.npz")), cv_folds=0)
    splits = Splits(opts, seed=0)
    shape_ranges = [np.ptp(x[:, 0]) for x in splits.inputs["train"]]
    assert min(shape_ranges) > 0.5
    assert splits.config["znorm"] == "scaled" and splits.config["channels"] == 3  # the shape, log std, level
    sizes = np.array([x[0, 1] for x in splits.inputs["train"]])  # the log std channel, standardised: sizes told apart
    assert np.ptp(sizes) > 2


def test_series_of_like_sizes_keep_their_levels_under_znorm_auto(tmp_path):
    data = str(write_sized_series(tmp_path / "alike.npz", sizes=(0.0, 0.5)))
    auto, none = Splits(ClassifyOptions(data=data, cv_folds=0), seed=0), Splits(ClassifyOptions(data=data, cv_folds=0, znorm="none"), seed=0)
    assert auto.config["znorm"] == "none"
    for a, b in zip(auto.inputs["train"], none.inputs["train"]):
        np.testing.assert_array_equal(a, b)


def test_a_scaled_model_classifies_after_loading_as_it_did_in_training(tmp_path):
    data = str(write_sized_series(tmp_path / "sized.npz"))
    model = rnnkit.train("classify", tmp_path / "m", data=data, steps=4, hidden=4, batch_size=8, valid_every=2, cv_folds=0, quiet=True)
    loaded = rnnkit.load(tmp_path / "m")
    assert loaded.encoding["znorm"] == "scaled" and "level and scale" in loaded.describe()
    series = [np.array([1e-3, 3e-3, 2e-3, 5e-4])[:, None], np.array([30.0, 10.0, 20.0])[:, None]]
    assert model.classify(series) == loaded.classify(series)


def test_series_classes_with_cross_validation_folds_never_overlap(tmp_path):
    data = write_series(tmp_path / "updown.csv")
    seen = []
    for fold in range(3):
        model = rnnkit.train("classify", tmp_path / f"f{fold}", data=str(data), folds=3, fold=fold, steps=2, hidden=4,
                             batch_size=8, valid_every=2, cv_folds=0)
        sizes = model.config["data"]
        assert sizes["train_examples"] + sizes["valid_examples"] + sizes["test_examples"] == 80
        seen.append(sizes["test_examples"])
    assert sum(seen) == 80  # every example is tested exactly once


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, reviews):
    opts = dict(data=str(reviews), hidden=8, embed=4, batch_size=8, valid_every=10, dropout=0.2, layers=2, cv_folds=0)
    whole = rnnkit.train("classify", tmp_path / "whole", steps=40, **opts)
    rnnkit.train("classify", tmp_path / "part", steps=20, **opts)
    resumed = rnnkit.train("classify", tmp_path / "part", resume=True, steps=40)
    assert resumed.config["status"] == whole.config["status"] == "finished"
    a, b = md.load_weights(tmp_path / "whole" / "model.safetensors"), md.load_weights(tmp_path / "part" / "model.safetensors")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_augmented_series_train_otherwise_and_resume_exactly(tmp_path):
    data = write_series(tmp_path / "updown.csv")
    opts = dict(data=str(data), hidden=8, batch_size=8, valid_every=10, cv_folds=0)
    plain = rnnkit.train("classify", tmp_path / "plain", steps=20, **opts)
    whole = rnnkit.train("classify", tmp_path / "whole", steps=20, augment=0.2, **opts)
    rnnkit.train("classify", tmp_path / "part", steps=10, augment=0.2, **opts)
    resumed = rnnkit.train("classify", tmp_path / "part", resume=True, steps=20)
    assert resumed.opts.augment == 0.2 and resumed.config["status"] == "finished"
    weights = {name: md.load_weights(tmp_path / name / "model.safetensors") for name in ("plain", "whole", "part")}
    for k in weights["whole"]:
        np.testing.assert_array_equal(weights["whole"][k], weights["part"][k], err_msg=k)
    assert any(not np.array_equal(weights["whole"][k], weights["plain"][k]) for k in weights["whole"])
    assert plain.opts.augment == 0


def test_augment_scales_each_series_channel_and_jitters_each_value():
    """--augment s: a factor N(1, s) per series and channel, noise N(0, 0.3 s) per value; the same
    example at the same step draws the same, whichever batch and padding it comes in."""
    spread, T = 0.2, 60
    run = SimpleNamespace(opts=SimpleNamespace(augment=spread), seed=3, steps_done=7)
    x = np.ones((T, 2000, 2), np.float32)  # time-major, as the batches are padded
    idx = np.arange(2000)
    out = ClassifyRun.augmented(run, x, idx)
    factors = out.mean(axis=0)  # (B, C): the noise averages away
    assert abs(factors.mean() - 1) < 0.02 and abs(factors.std() / spread - 1) < 0.1
    jitter = out - factors
    assert abs(jitter.std() / (NOISE_SHARE * spread) - 1) < 0.05
    longer = ClassifyRun.augmented(run, np.ones((T + 5, 2, 2), np.float32), idx[[5, 9]])  # padded further, in another batch
    np.testing.assert_array_equal(longer[:T], out[:, [5, 9]])
    run.steps_done += 1
    assert not np.array_equal(ClassifyRun.augmented(run, x[:, :2], idx[:2]), out[:, :2])


def test_stratified_split_keeps_the_class_balance():
    labels = ["a"] * 80 + ["b"] * 20
    keep, held = stratified_split(labels, 0.1, seed=0, salt=0)
    assert sorted(np.concatenate([keep, held])) == list(range(100))
    assert [labels[i] for i in held].count("b") == 2 and len(held) == 10


# ---- bad input: one line, exit code 2 ------------------------------------------------------------


def run_error(args, capsys):
    capsys.readouterr()  # what earlier steps of the test printed (training progress) is not this error
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_line_without_a_tab_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("pos\tgood film\nneg bad film\n", encoding="utf-8")
    err = run_error(["train", "classify", "--data", str(bad), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert f"{bad}:2" in err and "tab" in err


def test_a_missing_label_names_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_text("pos\tgood film\n\tbad film\n", encoding="utf-8")
    assert f"{bad}:2" in run_error(["train", "classify", "--data", str(bad), "--out", str(tmp_path / "m"), *TINY], capsys)


def test_a_label_the_model_never_saw_is_named_at_evaluation(tmp_path, small_classifier, capsys):
    other = tmp_path / "other.tsv"
    other.write_text("pos\tgood\nneutral\tthe film\n", encoding="utf-8")
    err = run_error(["evaluate", str(small_classifier), "--data", str(other)], capsys)
    assert "labels the model never saw: 'neutral'" in err


def test_classify_without_input_and_the_wrong_verb_are_named(small_classifier, capsys):
    assert "give at least one text" in run_error(["classify", str(small_classifier)], capsys)
    assert "classify" in run_error(["generate", str(small_classifier)], capsys)
    assert "diagnostics work on 'lm' models" in run_error(["diagnose", str(small_classifier)], capsys)


def test_bad_options_are_named(tmp_path, reviews, capsys):
    train = ["train", "classify", "--data", str(reviews), "--out", str(tmp_path / "m"), *TINY]
    assert "--fold: invalid value 3" in run_error([*train, "--folds", "3", "--fold", "3"], capsys)
    assert "--augment: invalid value 2" in run_error([*train, "--augment", "2"], capsys)
    assert "--augment: scales and jitters numeric series, but --data" in run_error([*train, "--augment", "0.1"], capsys)
    for option, value in (("--pooling", "sum"), ("--target", "label")):  # a fixed set of values: argparse's choices
        with pytest.raises(SystemExit) as exit_:
            main([*train, option, value])
        assert exit_.value.code == 2
        assert f"argument {option}: invalid choice: {value!r}" in capsys.readouterr().err
    with pytest.raises(ValueError, match="pooling: invalid value 'sum'"):  # the Python API checks the same
        rnnkit.train("classify", tmp_path / "m", data=str(reviews), pooling="sum", steps=2)


def test_missing_data_names_the_built_in_sets(tmp_path, capsys):
    err = run_error(["train", "classify", "--data", str(tmp_path / "nope.tsv"), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert "polarity" in err and "ucr:NAME" in err


# ---- issue 13: action options anywhere, at least two classes, --top, --plot ----------------------------


def test_options_may_come_before_the_texts(small_classifier, capsys):
    assert main(["classify", str(small_classifier), "--top", "1", "good film", "bad film"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == ["good film", "bad film"]
    assert all(len(line.split("\t")[0].split("  ")) == 1 for line in lines)  # one label each


def test_data_with_one_class_is_refused(tmp_path, capsys):
    one = tmp_path / "one.tsv"
    one.write_text("".join(f"pos\tgood film {i}\n" for i in range(40)), encoding="utf-8")
    err = run_error(["train", "classify", "--data", str(one), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert "at least two classes" in err and "'pos'" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("top", ["0", "-2"])
def test_top_below_one_is_refused(small_classifier, capsys, top):
    assert "--top: expected" in run_error(["classify", str(small_classifier), "--top", top, "good film"], capsys)


def test_a_file_with_one_enormous_line_is_refused_at_once(tmp_path, small_classifier, capsys):
    huge = tmp_path / "huge.tsv"
    huge.write_bytes(b"pos\t" + b"good " * 10_000_000)  # 50 MB without a newline: 2.9 GB and 88 s before
    start = time.perf_counter()
    for args in (["train", "classify", "--data", str(huge), "--out", str(tmp_path / "m2"), *TINY],
                 ["evaluate", str(small_classifier), "--data", str(huge)], ["classify", str(small_classifier), "--data", str(huge)]):
        assert f"{huge}:1: the line is 47.7 MB long" in run_error(args, capsys)
    assert time.perf_counter() - start < 10


def point_config_at(model_dir, option, path):
    config = json.loads((model_dir / "config.json").read_text())
    config["task_options"][option] = str(path)
    (model_dir / "config.json").write_text(json.dumps(config))


def test_config_json_may_not_point_the_model_at_another_file(tmp_path, reviews, capsys):
    test = write_reviews(tmp_path / "test.tsv", n=20, seed=1)
    rnnkit.train("classify", tmp_path / "m", data=str(reviews), test=str(test), steps=2, hidden=4, embed=4, valid_every=2)
    capsys.readouterr()
    other = write_reviews(tmp_path / "other.tsv", n=20, seed=2)
    point_config_at(tmp_path / "m", "test", other)
    err = run_error(["evaluate", str(tmp_path / "m")], capsys)
    assert f"config.json names {other} as its --test file, but that is not the file this model was trained on" in err
    point_config_at(tmp_path / "m", "test", test)
    point_config_at(tmp_path / "m", "data", "/etc/passwd")
    assert "names /etc/passwd as its data" in run_error(["evaluate", str(tmp_path / "m")], capsys)


def test_resume_refuses_data_that_changed_since_the_run_started(tmp_path, reviews, capsys):
    rnnkit.train("classify", tmp_path / "m", data=str(reviews), steps=4, hidden=4, embed=4, valid_every=2)
    capsys.readouterr()
    write_reviews(reviews, seed=5)  # the same file name, other examples
    err = run_error(["train", "--resume", str(tmp_path / "m"), "--steps", "8"], capsys)
    assert f"config.json names {reviews} as its data, but that is not the file this model was trained on" in err
    assert "restore the data the run started with" in err


def test_a_model_too_large_for_memory_is_refused_before_training(tmp_path, reviews, capsys, monkeypatch):
    from rnnkit import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 10_000)
    monkeypatch.setattr(memory, "_address_space_limit", lambda extra: contextlib.nullcontext())  # builds; cannot train
    err = run_error(["train", "classify", "--data", str(reviews), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert err.startswith("rnnkit: error: --hidden 12, --embed 6, --layers 1: training this model needs about")
    assert "GiB of memory are available; lower --hidden, --embed, --layers" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.skipif(open("/proc/sys/vm/overcommit_memory").read().strip() != "0",
                    reason="numpy refuses a 149 GiB array at once only under Linux's heuristic overcommit")
def test_hidden_100000_is_an_error_naming_it_not_a_traceback(tmp_path, reviews, capsys):
    err = run_error(["train", "classify", "--data", str(reviews), "--out", str(tmp_path / "m"), *TINY, "--hidden", "100000"],
                    capsys)
    assert err.startswith("rnnkit: error: --hidden 100000, --embed 6, --layers 1: the model does not fit in memory")


def test_running_out_of_memory_in_a_step_is_one_line(tmp_path, reviews, capsys, monkeypatch):
    from rnnkit.tasks.classify import ClassifyRun

    def step(self):
        raise MemoryError("Unable to allocate 12.0 GiB for an array with shape (32, 100, 1000000) and data type float32")

    monkeypatch.setattr(ClassifyRun, "train_step", step)
    err = run_error(["train", "classify", "--data", str(reviews), "--out", str(tmp_path / "m"), *TINY], capsys)
    assert err.startswith("rnnkit: error: out of memory (Unable to allocate 12.0 GiB") and "--batch-size" in err


def test_a_huge_value_within_float32_gives_finite_probabilities(tmp_path, capsys):
    rnnkit.train("classify", tmp_path / "m", data=str(write_series(tmp_path / "s.csv")), steps=2, hidden=4, valid_every=2)
    huge = tmp_path / "huge.csv"
    huge.write_text("up,0.1,3e38,0.2\n")  # standardised by the training data's spread: beyond float32
    capsys.readouterr()
    assert main(["classify", str(tmp_path / "m"), "--data", str(huge)]) == 0
    probabilities = [float(v) for v in capsys.readouterr().out.split("\t")[0].split()[1::2]]
    assert np.all(np.isfinite(probabilities)) and sum(probabilities) == pytest.approx(1, abs=2e-3)


def test_data_help_lists_every_file_format(capsys):
    # the formats load_classification reads: text lines, and series as .csv, .npz and .ts
    with pytest.raises(SystemExit):
        main(["train", "classify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("`label<TAB>text`", "`label,text`", "`label,v1,v2,…`", ".npz file with X and y", ".ts file"):
        assert shown in text, shown


def test_the_classify_verb_lists_the_series_formats_and_bidirectional_can_be_turned_off(capsys):
    with pytest.raises(SystemExit):
        main(["classify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("`label,v1,v2,…`", ".npz file with X and y", ".ts file"):
        assert shown in text, shown
    with pytest.raises(SystemExit):
        main(["train", "classify", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--no-bidirectional" in text and "--cv-folds" in text and "fewer than 500 examples" in text
