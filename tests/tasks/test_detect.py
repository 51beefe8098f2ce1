"""Task `detect`: anomaly scores from prediction errors, streaming, thresholds, on series the tests write."""

import json

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.nn import cells
from rnnkit.tasks.detect import Detector, DetectOptions, build_model, pot_threshold

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
    assert np.all(batch[8:] > 0) and len(stream.buffer) == 8
