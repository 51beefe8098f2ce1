"""Task `detect`: anomaly scores from prediction errors, streaming, thresholds, on series the tests write."""

import json
import shutil

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.nn import cells, no_grad
from rnnkit.tasks.detect import Detector, DetectOptions, build_model, point_errors, pot_threshold, smooth_scores

OPTS = dict(window=16, hidden=8, steps=150, lr=0.01, valid_every=50, batch_size=16)


def write(path, n=400, seed=0, spike=None, labels=False):
    """A noisy sine; with ``spike`` a burst of 5 wrong values there (labelled when ``labels``)."""
    rng = np.random.default_rng(seed)
    y = np.sin(2 * np.pi * np.arange(n) / 25) + 0.05 * rng.standard_normal(n)
    flag = np.zeros(n, int)
    if spike is not None:
        y[spike : spike + 5] += 2.5
        flag[spike : spike + 5] = 1
    rows = ["t,v" + (",is_anomaly" if labels else "")]
    rows += [f"{i},{v:.5f}" + (f",{f}" if labels else "") for i, (v, f) in enumerate(zip(y, flag))]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("detect")
    model = rnnkit.train("detect", tmp / "m", data=str(write(tmp / "normal.csv", n=1000)), **OPTS)
    return model, tmp


def test_the_injected_anomaly_gets_the_top_score_and_is_flagged(trained, capsys):
    model, tmp = trained
    test = write(tmp / "test.csv", n=300, seed=1, spike=200, labels=True)
    metrics = model.evaluate(str(test))
    assert metrics["top_in_anomaly"] and 200 <= metrics["top_score_at"] < 205
    assert metrics["pa_recall"] == 1.0
    flagged = np.flatnonzero(model.detect(str(test))["flags"])
    # mostly the anomaly itself and the windows that still read it
    near = (flagged >= 200) & (flagged < 205 + model.opts.window)
    assert near.mean() >= 0.7
    assert main(["detect", str(model.dir), "--data", str(test)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[1].startswith("20")  # the strongest range is listed first
    assert (model.dir / "detection.png").exists()


def test_streaming_gives_the_batch_scores_with_constant_memory(trained):
    model, _ = trained
    rng = np.random.default_rng(2)
    values = np.sin(2 * np.pi * np.arange(60) / 25)[:, None] + 0.05 * rng.standard_normal((60, 1))
    batch = model.detector.scores(values)
    stream = model.detector.stream()
    streamed = [stream.update(v) for v in values]
    np.testing.assert_allclose(streamed, batch, rtol=1e-5, atol=1e-6)
    assert len(stream.buffer) == model.opts.window


def test_pot_threshold_matches_the_exponential_tail():
    # exponential scores: a generalised Pareto tail with shape 0; P(X > x) = e^{−x}
    scores = np.random.default_rng(0).exponential(size=200_000)
    assert pot_threshold(scores, 1e-4) == pytest.approx(-np.log(1e-4), rel=0.05)


def test_percentile_threshold_is_the_held_out_percentile(tmp_path):
    model = rnnkit.train("detect", tmp_path / "m", data=str(write(tmp_path / "n.csv")), threshold="percentile",
                         percentile=90.0, **{**OPTS, "steps": 2})
    from rnnkit.tasks.detect import DetectRun, load

    series, _ = load(model.opts)
    held = DetectRun(model.model, series, model.encoding, model.opts, 0).held_out_scores()
    assert model.detector.threshold == pytest.approx(np.percentile(held, 90.0))


def run_error(args, capsys):
    capsys.readouterr()  # what earlier steps of the test printed (training progress) is not this error
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_is_one_line(tmp_path, capsys, trained):
    model, tmp = trained
    short = write(tmp_path / "short.csv", n=30)
    assert "needs at least" in run_error(["train", "detect", "--data", str(short), "--out", str(tmp_path / "m"),
                                          "--window", "32", "--quiet"], capsys)
    unlabelled = write(tmp_path / "u.csv", n=100)
    assert "no 'is_anomaly' column" in run_error(["evaluate", str(model.dir), "--data", str(unlabelled)], capsys)
    bad = tmp_path / "bad.csv"
    bad.write_text("t,v,is_anomaly\n" + "\n".join(f"{i},{np.sin(i):.3f},{i % 3}" for i in range(100)) + "\n")
    assert "must hold 0 or 1" in run_error(["evaluate", str(model.dir), "--data", str(bad)], capsys)


def test_a_plot_into_a_missing_directory_is_refused(tmp_path, capsys, trained):
    model, tmp = trained
    err = run_error(["detect", str(model.dir), "--data", str(write(tmp_path / "t.csv", n=100)),
                     "--plot", str(tmp_path / "nowhere" / "deeper" / "d.png")], capsys)
    assert err.startswith("rnnkit: error: --plot:") and "does not exist" in err
    assert not (tmp_path / "nowhere").exists()


def test_a_value_beyond_float32_is_an_error_naming_the_line(trained, tmp_path, capsys):
    model, _ = trained
    path = write(tmp_path / "t.csv", n=120)
    lines = path.read_text().splitlines()
    lines[101] = "100,1e300"  # its square overflowed the standard deviation: nothing was flagged
    path.write_text("\n".join(lines) + "\n")
    for verb in ("detect", "evaluate"):
        err = run_error([verb, str(model.dir), "--data", str(path)], capsys)
        assert f"{path}:102: column 'v': '1e300' is beyond the range" in err
    err = run_error(["train", "detect", "--data", str(path), "--out", str(tmp_path / "m"), "--window", "16", "--quiet"], capsys)
    assert f"{path}:102" in err


def test_a_huge_spike_within_float32_gets_a_finite_score_and_is_flagged(trained, tmp_path):
    model, _ = trained
    path = write(tmp_path / "t.csv", n=120)
    lines = path.read_text().splitlines()
    lines[101] = "100,3e38"
    path.write_text("\n".join(lines) + "\n")
    result = model.detect(str(path))
    assert np.all(np.isfinite(result["scores"])) and result["flags"][100]


def test_config_json_may_not_point_the_model_at_another_file(tmp_path, capsys):
    data = write(tmp_path / "normal.csv", n=200)
    model = rnnkit.train("detect", tmp_path / "m", data=str(data), **{**OPTS, "steps": 2})
    capsys.readouterr()
    config = json.loads((model.dir / "config.json").read_text())
    config["task_options"]["data"] = "/etc/passwd"
    (model.dir / "config.json").write_text(json.dumps(config))
    for args in (["detect", str(model.dir)], ["evaluate", str(model.dir), "--data", str(data)], ["info", str(model.dir)]):
        err = run_error(args, capsys)
        assert "config.json names /etc/passwd as its data, but that is not the file this model was trained on" in err


@pytest.mark.parametrize("cell", cells.names())
def test_streaming_gives_the_batch_scores_for_every_kind(cell):
    # the ring buffer re-scores its W points with the kind's layer (in eval: no dropout, zoneout's
    # expectation), so each kind streams the numbers it scores in a batch; an untrained model will do
    model = build_model(DetectOptions(window=8, hidden=6, cell=cell), {"columns": ["v"]}, seed=3)
    detector = Detector(model, 8, [0.1], [0.9])
    values = np.sin(np.arange(30) / 3.0)[:, None] + 0.05 * np.random.default_rng(4).standard_normal((30, 1))
    batch = detector.scores(values)
    stream = detector.stream()
    np.testing.assert_allclose([stream.update(v) for v in values], batch, rtol=1e-4, atol=1e-5)
    assert np.all(batch[8:] > 0) and len(stream.buffer) == detector.memory - 1 == 8 + model.horizon - 1


def read_scores(path):
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def test_evaluate_ranks_the_scored_points_as_scikit_learn_does(trained, capsys):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    model, tmp = trained
    test = write(tmp / "ranked.csv", n=300, seed=3, spike=150, labels=True)
    out = tmp / "ranked-scores.csv"
    assert main(["detect", str(model.dir), "--data", str(test), "--scores", str(out)]) == 0
    header, rows = read_scores(out)
    scored = [r for r in rows if r[3]]
    labels = [int(r[5]) for r in scored]
    scores = [float(r[3]) for r in scored]
    flags = [int(r[4]) for r in scored]
    metrics = model.evaluate(str(test))
    assert metrics["scored_points"] == len(scored) == 300 - model.opts.window
    assert metrics["roc_auc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-9)
    assert metrics["avg_precision"] == pytest.approx(sklearn_metrics.average_precision_score(labels, scores), abs=1e-9)
    p, r, f, _ = sklearn_metrics.precision_recall_fscore_support(labels, flags, average="binary", zero_division=0)
    assert (metrics["point_precision"], metrics["point_recall"], metrics["point_f1"]) == pytest.approx((p, r, f))
    assert metrics["roc_auc"] > 0.9  # the burst outscores the normal points
    capsys.readouterr()
    assert main(["evaluate", str(model.dir), "--data", str(test)]) == 0
    printed = dict(line.split(":", 1) for line in capsys.readouterr().out.splitlines())
    for key in ("roc_auc", "avg_precision", "point_precision", "point_recall", "point_f1", "pa_f1"):
        assert float(printed[f"{key:>16}"]) == pytest.approx(metrics[key], abs=5e-5)


def test_evaluate_on_labels_of_one_class_is_one_line(trained, tmp_path, capsys):
    model, _ = trained
    path = write(tmp_path / "calm.csv", n=120, labels=True)  # no spike: every label is 0
    err = run_error(["evaluate", str(model.dir), "--data", str(path)], capsys)
    assert f"the {120 - model.opts.window} scored points of {path} are all labelled 0 in 'is_anomaly'" in err


def test_detect_writes_every_points_score_as_csv_and_keeps_an_existing_file(trained, tmp_path, capsys):
    model, _ = trained
    test = write(tmp_path / "t.csv", n=200, seed=4, spike=120)
    out = tmp_path / "scores.csv"
    capsys.readouterr()
    assert main(["detect", str(model.dir), "--data", str(test), "--scores", str(out)]) == 0
    assert f"scores: {out} (200 points, {200 - model.opts.window} scored)" in capsys.readouterr().out
    header, rows = read_scores(out)
    assert header == ["index", "time", "v", "score", "above_threshold"]
    result = model.detect(str(test))
    assert [int(r[0]) for r in rows] == list(range(200)) and [int(r[1]) for r in rows] == list(range(200))
    np.testing.assert_array_equal([float(r[2]) for r in rows], result["series"].values[:, 0])
    assert all(r[3] == "" for r in rows[: model.opts.window])
    scores = np.array([float(r[3]) for r in rows[model.opts.window :]])
    np.testing.assert_array_equal(scores, result["scores"][model.opts.window :])
    assert [r[4] == "1" for r in rows] == list(result["flags"]) and result["flags"][120]
    before = out.read_bytes()
    err = run_error(["detect", str(model.dir), "--data", str(test), "--scores", str(out)], capsys)
    assert err == f"rnnkit: error: --scores: {out} exists; replace it with --overwrite, or choose another path"
    assert out.read_bytes() == before
    out.write_text("old\n")
    assert main(["detect", str(model.dir), "--data", str(test), "--scores", str(out), "--overwrite"]) == 0
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv", "t.csv"]  # no temporary file left


def test_a_bad_scores_path_is_one_line_before_any_work(trained, tmp_path, capsys):
    model, _ = trained
    test = write(tmp_path / "t.csv", n=100)
    err = run_error(["detect", str(model.dir), "--data", str(test), "--scores", str(tmp_path / "no" / "s.csv")], capsys)
    assert err.startswith("rnnkit: error: --scores:") and "does not exist" in err
    err = run_error(["detect", str(model.dir), "--data", str(test), "--scores", str(tmp_path)], capsys)
    assert err.startswith("rnnkit: error: --scores:") and "is a directory" in err
    # a --data error still comes first from the data, and writes nothing
    err = run_error(["detect", str(model.dir), "--data", str(tmp_path / "absent.csv"), "--scores", str(tmp_path / "s.csv")], capsys)
    assert "absent.csv" in err and not (tmp_path / "s.csv").exists()


def test_a_csv_of_values_only_is_timed_by_its_row_index(trained, tmp_path, capsys):
    model, _ = trained
    rng = np.random.default_rng(6)
    y = np.sin(2 * np.pi * np.arange(300) / 25) + 0.05 * rng.standard_normal(300)
    y[0] = -0.21  # starts below the next value: read as times, the rows were refused
    y[150:155] += 2.5
    with_header = tmp_path / "values.csv"
    with_header.write_text("v\n" + "\n".join(f"{v:.5f}" for v in y) + "\n")
    labelled = tmp_path / "labelled.csv"
    labelled.write_text("v,is_anomaly\n" + "\n".join(f"{v:.5f},{int(150 <= i < 155)}" for i, v in enumerate(y)) + "\n")
    result = model.detect(str(with_header))
    assert result["series"].time == list(range(300)) and result["flags"][150:155].any()
    assert model.evaluate(str(labelled))["top_in_anomaly"]
    # without a header, the column is 'value': a model trained on such a file reads it
    bare = tmp_path / "bare.csv"
    bare.write_text("\n".join(f"{v:.5f}" for v in y) + "\n")
    tiny = rnnkit.train("detect", tmp_path / "m", data=str(bare), quiet=True, **{**OPTS, "steps": 2})
    out = tmp_path / "s.csv"
    assert main(["detect", str(tiny.dir), "--data", str(bare), "--scores", str(out)]) == 0
    header, rows = read_scores(out)
    assert header[:3] == ["index", "time", "value"] and [r[1] for r in rows] == [str(i) for i in range(300)]
    err = run_error(["detect", str(model.dir), "--data", str(bare)], capsys)
    assert "the model reads v, the file's value columns are value" in err


def test_help_lists_every_accepted_format(capsys):
    for args in (["detect", "--help"], ["train", "detect", "--help"]):
        with pytest.raises(SystemExit):
            main(args)
        text = " ".join(capsys.readouterr().out.split())
        assert "a CSV file with a header row, a time column" in text
        assert "a CSV file of one column of values, with or without a header (the row number is the time)" in text
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    assert "--scores CSV" in capsys.readouterr().out


# ---- the scoring options: --horizon K, --score, --smooth S -------------------------------------
def test_smoothed_scores_are_trailing_means_of_the_observed_errors():
    errors = np.array([9.0, 9.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(smooth_scores(errors, 2, 1), [0, 0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(smooth_scores(errors, 2, 2), [0, 0, 1, 1.5, 2.5, 3.5, 4.5])  # the first W are never read
    np.testing.assert_allclose(smooth_scores(errors, 2, 3), [0, 0, 1, 1.5, 2, 3, 4])
    observed = np.array([1, 1, 1, 1, 0, 1, 1], bool)  # a missing point's error counts for no neighbour
    np.testing.assert_allclose(smooth_scores(errors, 2, 3, observed), [0, 0, 1, 1.5, 1.5, 3, 4.5])


def test_point_errors_are_scaled_by_the_spread_and_taken_over_every_forecast_of_the_point():
    x = np.array([[0.0], [1.0], [2.0]])
    nan = np.nan
    mu = np.array([[[nan], [nan]], [[0.0], [nan]], [[1.0], [-1.0]]])  # (N, K, C): point 2 forecast twice
    var = np.array([[[nan], [nan]], [[4.0], [nan]], [[1.0], [9.0]]])
    np.testing.assert_allclose(point_errors(x, mu, var), [0, 0.5, np.sqrt((1 + 1) / 2)])  # (1/1)², (3/3)²
    np.testing.assert_allclose(point_errors(x, mu, var, scaled=False), [0, 1, np.sqrt((1 + 9) / 2)])


@pytest.mark.parametrize("horizon,smooth,score", [(3, 1, "scaled"), (1, 4, "error"), (3, 4, "scaled")])
def test_streaming_gives_the_batch_scores_for_every_horizon_and_smoothing(horizon, smooth, score):
    model = build_model(DetectOptions(window=8, hidden=6, horizon=horizon), {"columns": ["v"]}, seed=3)
    detector = Detector(model, 8, [0.1], [0.9], score=score, smooth=smooth)
    values = np.sin(np.arange(40) / 3.0)[:, None] + 0.05 * np.random.default_rng(4).standard_normal((40, 1))
    batch = detector.scores(values)
    stream = detector.stream()
    np.testing.assert_allclose([stream.update(v) for v in values], batch, rtol=1e-4, atol=1e-5)
    assert np.all(batch[:8] == 0) and np.all(batch[8:] > 0)
    assert len(stream.buffer) == 8 + horizon + smooth - 2  # constant memory: W + K + S − 2 points


def test_a_multi_step_point_error_averages_the_forecasts_from_its_k_origins():
    model = build_model(DetectOptions(window=8, hidden=6, horizon=3), {"columns": ["v"]}, seed=3)
    detector = Detector(model, 8, [0.0], [1.0])
    values = np.cos(np.arange(20) / 2.0)[:, None]
    x, mu, var = detector.forecasts(values)
    assert mu.shape == (20, 3, 1) and np.isnan(mu[:8]).all() and np.isnan(mu[8, 1:]).all() and not np.isnan(mu[10:]).any()
    with no_grad():  # the forecast of point 12 from origin 10 (its third step) reads points 2..9
        m, v = model(values[2:10, None].astype(np.float32), np.zeros((1, 3, 0), np.float32))
    np.testing.assert_allclose(mu[12, 2], m[0, 2], rtol=1e-6) and np.testing.assert_allclose(var[12, 2], v[0, 2], rtol=1e-6)
    expected = np.sqrt(np.mean([(values[12, 0] - mu[12, k, 0]) ** 2 / var[12, k, 0] for k in range(3)]))
    assert detector.errors(values)[12] == pytest.approx(expected)


def test_the_scoring_options_are_kept_in_config_json_and_rebuild_the_same_scores(tmp_path):
    data = write(tmp_path / "normal.csv", n=400)
    model = rnnkit.train("detect", tmp_path / "m", data=str(data), **dict(OPTS, steps=20, valid_every=10, horizon=3,
                                                                          score="error", smooth=5, init="torch"))
    stored = json.loads((tmp_path / "m" / "config.json").read_text())["task_options"]
    assert (stored["horizon"], stored["score"], stored["smooth"], stored["init"]) == (3, "error", 5, "torch")
    assert model.model.horizon == 3 and "LSTM (torch initialisation)" in model.describe()
    loaded = rnnkit.load(tmp_path / "m")
    test = write(tmp_path / "test.csv", n=120, seed=1, spike=80, labels=True)
    np.testing.assert_array_equal(loaded.detect(str(test))["scores"], model.detect(str(test))["scores"])
    raw = Detector(loaded.model, 16, loaded.encoding["mean"], loaded.encoding["std"], score="error", smooth=1)
    values = loaded.detect(str(test))["series"].values
    np.testing.assert_allclose(loaded.detector.scores(values), smooth_scores(raw.scores(values), 16, 5))
    assert "score      error error, mean of the last 5 points, over 3 forecasts" in loaded.describe()


def test_smoothed_multi_step_scores_still_find_the_burst_within_s_points(tmp_path):
    options = dict(OPTS, horizon=8, smooth=32)
    model = rnnkit.train("detect", tmp_path / "m", data=str(write(tmp_path / "normal.csv", n=1000)), **options)
    assert model.model.horizon == 8
    metrics = model.evaluate(str(write(tmp_path / "test.csv", n=300, seed=1, spike=200, labels=True)))
    # a trailing mean of 32 errors peaks at or after the burst's end, within S points of it
    assert 200 <= metrics["top_score_at"] < 205 + 32 and metrics["top_in_anomaly"] and metrics["pa_recall"] == 1.0


def test_a_model_directory_from_before_the_scoring_options_scores_as_it_did(trained, tmp_path):
    model, _ = trained  # the weights of a one-step model
    old = tmp_path / "old"
    shutil.copytree(model.dir, old)
    config = json.loads((old / "config.json").read_text())
    for key in ("horizon", "score", "smooth"):
        del config["task_options"][key]
    (old / "config.json").write_text(json.dumps(config))
    loaded = rnnkit.load(old)  # a horizon other than 1 would not even fit the stored weights
    assert (loaded.opts.horizon, loaded.opts.score, loaded.opts.smooth) == (1, "scaled", 1)
    assert (loaded.detector.score, loaded.detector.smooth) == ("scaled", 1)
    test = write(tmp_path / "test.csv", n=120, seed=1, spike=80, labels=True)
    np.testing.assert_array_equal(loaded.detect(str(test))["scores"], model.detect(str(test))["scores"])


@pytest.mark.parametrize("flag,value", [("--smooth", "0"), ("--horizon", "0")])
def test_a_bad_scoring_option_is_one_line(tmp_path, capsys, flag, value):
    data = write(tmp_path / "normal.csv", n=200)
    err = run_error(["train", "detect", "--data", str(data), "--out", str(tmp_path / "m"), flag, value, "--quiet"], capsys)
    assert flag in err and not (tmp_path / "m").exists()


def test_an_unknown_score_is_refused_naming_it(tmp_path):
    with pytest.raises(ValueError) as caught:
        rnnkit.train("detect", tmp_path / "m", data=str(write(tmp_path / "n.csv", n=200)), score="z", quiet=True)
    assert "score" in str(caught.value) and "'z'" in str(caught.value) and len(str(caught.value).splitlines()) == 1
