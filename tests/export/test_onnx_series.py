"""rnnkit.export.onnx for the series tasks: a forecaster (seasonal residual, seasonal lags, several
seasons, the blend with seasonal naive, the calibrated intervals, the calendar from the origin's
index; a recursive one's sampled paths from draws given as an input), a detector with K-step forecasts, either score and smoothing, and a classifier that
z-normalises and averages each series down: trained a few steps on series the tests write,
exported, run by onnxruntime and equal to rnnkit's own outputs (float32, within 1e-5 of their norm)."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

import rnnkit
from onnx_checks import assert_close, session
from rnnkit.cli.main import main
from rnnkit.export import onnx as onnx_export
from rnnkit.tasks.detect import load as load_detect_series
from rnnkit.tasks.forecast import calendar_features, forecast_at


def metadata(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


def float32_text(v) -> str:
    """A value float32 holds exactly, so that rnnkit (float64 from the file) and the graph (float32) read the same."""
    return repr(float(np.float32(v)))


def write_seasonal(path, n=200, dated=True, seed=0):
    """Two columns with a trend, a season of 12 and one of 4, and noise; monthly dates, or a step index."""
    rng = np.random.default_rng(seed)
    rows = ["month,a,b" if dated else "step,a,b"]
    for i in range(n):
        stamp = f"{2000 + i // 12}-{i % 12 + 1:02d}-01" if dated else str(i)
        rows.append(stamp + "," + ",".join(float32_text(10 + 0.05 * i + (2 + c) * np.sin(2 * np.pi * i / 12)
                                                        + np.sin(2 * np.pi * i / 4) + 0.3 * rng.standard_normal())
                                           for c in range(2)))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def monthly(tmp_path_factory):
    return write_seasonal(tmp_path_factory.mktemp("series") / "monthly.csv")


@pytest.fixture(scope="module")
def undated(tmp_path_factory):
    return write_seasonal(tmp_path_factory.mktemp("series") / "steps.csv", dated=False, seed=1)


# ---- forecast ---------------------------------------------------------------------------------------

FORECASTS = {  # name: options; the first is the default forecaster (--seasonal residual, --level scale)
    "default": dict(),  # monthly dates: a season of 12
    "residual-two-seasons-window": dict(season="4,12", level="window"),
    "lags-level-none": dict(season=12, seasonal="lags", level="none"),
    "no-lags-calendar": dict(season=12, seasonal="none"),
    "window-shorter-than-season": dict(season=12, seasonal="none", window=8),  # the blend reads a season back
    "no-season": dict(),  # a step index: no season, no calendar; seasonal naive is the last value
}


def exported_forecaster(tmp_path, data, options, blend=None, widen=None):
    trained = rnnkit.train("forecast", tmp_path / "m", data=str(data), horizon=6, origins=2, hidden=8, steps=2,
                           valid_every=2, quiet=True, **options)
    if blend is not None:  # a calibration other than the one two steps of training chose
        trained.blend, trained.widen = blend, widen
    [path] = trained.export(tmp_path / "m.onnx")
    return trained, onnx.load(str(path))


def onnx_forecasts(model, prepared, origins):
    """onnxruntime's mean, sigma, lower, upper from the history before each origin (and its index)."""
    N = int(metadata(model)["history"])
    feeds = {"history": np.stack([prepared.filled[o - N : o] for o in origins]).astype(np.float32)}
    if "origin" in [i.name for i in model.graph.input]:
        feeds["origin"] = np.asarray(origins, np.int64)
    return dict(zip(("mean", "sigma", "lower", "upper"), session(model).run(None, feeds)))


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("name", FORECASTS)
def test_forecaster_equals_rnnkit_forecasts_from_the_history_before_each_origin(tmp_path, monthly, undated, name):
    options = FORECASTS[name]
    trained, model = exported_forecaster(tmp_path, undated if name == "no-season" else monthly, options, blend=0.35, widen=1.7)
    prepared = trained._prepared(None)
    n = len(prepared.series)
    origins = [n - 40, n - 13, n - 6]
    got = onnx_forecasts(model, prepared, origins)
    expected = [forecast_at(trained.model, prepared, o, trained.opts, widen=1.7, blend=0.35) for o in origins]
    for key in ("mean", "lower", "upper"):
        assert_close(got[key], np.stack([e[key] for e in expected]), f"{name} {key}")
    assert_close(got["upper"] - got["mean"], 1.7 * 1.2815515655446004 * got["sigma"], "the interval is mean ± z80·widen·σ")
    calendar = name != "no-season"
    assert ("origin" in [i.name for i in model.graph.input]) == calendar
    meta = metadata(model)
    assert (float(meta["blend"]), float(meta["widen"])) == (0.35, 1.7)
    assert int(meta["history"]) == model.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    assert json.loads(meta["encoding"]) == trained.encoding and ("origin (B,)" in meta["inputs"]) == calendar


@pytest.mark.usefixtures("reference_backend")
def test_a_default_forecaster_exports_with_its_own_calibration_and_equals_rnnkit_forecast(tmp_path, monthly, capsys):
    """`rnnkit forecast`'s numbers after the series' end, from the file `rnnkit export` writes."""
    trained, _ = exported_forecaster(tmp_path, monthly, {})
    assert trained.encoding["residual"] and trained.encoding["lags"] == [12, 24]  # the default is the residual model
    assert main(["export", str(tmp_path / "m"), "--out", str(tmp_path / "cli.onnx")]) == 0
    model = onnx.load(str(tmp_path / "cli.onnx"))
    prepared = trained._prepared(None)
    got = onnx_forecasts(model, prepared, [len(prepared.series)])
    expected = trained.forecast()
    for key in ("mean", "lower", "upper"):
        assert_close(got[key][0], expected[key], key)


@pytest.mark.usefixtures("reference_backend")
def test_the_metadata_s_numpy_lines_prepare_a_series_with_gaps_as_rnnkit_forecast(tmp_path, monthly):
    """The consumer's side: the lines in the metadata's "prepare" (and README's), run on the raw
    series with gaps (one at the end), give the feeds of `rnnkit forecast`'s numbers."""
    lines = monthly.read_text().splitlines()
    for row in (150, 151, 152, 199, 200):  # a gap inside the history, and the last two points
        cells = lines[row].split(",")
        lines[row] = ",".join([cells[0], "", cells[2]] if row < 199 else [cells[0], "NA", cells[2]])
    gappy = tmp_path / "gappy.csv"
    gappy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    trained, model = exported_forecaster(tmp_path, gappy, {"missing": "interpolate"})
    meta = metadata(model)
    prepare = meta["prepare"]
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert prepare.replace(f"[None, -{meta['history']}:]", "[None, -N:]") in readme  # README's N is the model's number
    values = np.genfromtxt(gappy, delimiter=",", skip_header=1, usecols=(1, 2), missing_values=("", "NA"))
    scope = {"np": np, "values": values}
    exec(prepare, scope)  # noqa: S102  (the lines as a consumer runs them)
    got = dict(zip(("mean", "sigma", "lower", "upper"), session(model).run(None, scope["feeds"])))
    expected = trained.forecast()
    for key in ("mean", "lower", "upper"):
        assert_close(got[key][0], expected[key], key)


def test_calendar_features_in_the_graph_keep_their_phase_far_into_a_series():
    frequencies = [np.array([1, 2]) * 2 * np.pi / 52.1775, np.array([1]) * 2 * np.pi / 3]
    g = onnx_export.Graph()
    g.output(onnx_export._calendar(g, "origin", np.arange(-2, 3), frequencies), "features")
    model = g.model([("origin", "int64", ["batch"])], [("features", "float", ["batch", 5, 6])], {}, "calendar")
    got = session(model).run(None, {"origin": np.array([2, 1_000_003])})[0]
    for row, origin in zip(got, (2, 1_000_003)):
        expected = calendar_features(origin + 3, [52.1775, 3])[origin - 2 :]
        np.testing.assert_allclose(row, expected, atol=1e-6)


RECURSIVE = {  # name: options of a recursive forecaster
    "sampled-paths": dict(paths=50),  # the default residual model, monthly: lags and calendar as covariates
    "means-fed-back": dict(paths=0),
    "lags-level-window": dict(paths=7, season=12, seasonal="lags", level="window"),
    "no-covariates": dict(paths=20),  # a step index: no season, no calendar
}


def forecast_draws(seeds, horizon, paths, channels=2):
    """Each forecast's standard normal draws, (B, H, paths, C): rnnkit's for each seed."""
    return np.stack([np.random.default_rng(seed).standard_normal((horizon, paths, channels)) for seed in seeds]).astype(np.float32)


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("name", RECURSIVE)
def test_recursive_forecaster_s_sampled_paths_equal_rnnkit_s_for_the_same_draws(tmp_path, monthly, undated, name):
    """The paths run in a Scan, the draws an input: the mean, sigma and quantile interval of each
    origin equal `forecast_at`'s with that seed's generator (seeds 0, 1, 2, as a backtest draws)."""
    options = RECURSIVE[name]
    trained, model = exported_forecaster(tmp_path, undated if name == "no-covariates" else monthly, {"mode": "recursive", **options},
                                         blend=0.35, widen=1.7)
    prepared, opts = trained._prepared(None), trained.opts
    n, N, H, P = len(prepared.series), int(metadata(model)["history"]), opts.horizon, opts.paths
    origins = [n - 40, n - 13, n - 6]
    feeds = {"history": np.stack([prepared.filled[o - N : o] for o in origins]).astype(np.float32)}
    inputs = [i.name for i in model.graph.input]
    if "origin" in inputs:
        feeds["origin"] = np.asarray(origins, np.int64)
    assert ("noise" in inputs) == (P > 0) and int(metadata(model)["paths"]) == P
    if P:
        feeds["noise"] = forecast_draws(range(3), H, P)
    run = session(model)
    got = dict(zip(("mean", "sigma", "lower", "upper"), run.run(None, feeds)))
    expected = [forecast_at(trained.model, prepared, o, opts, seed=k, widen=1.7, blend=0.35) for k, o in enumerate(origins)]
    for key in ("mean", "lower", "upper"):
        assert_close(got[key], np.stack([e[key] for e in expected]), f"{name} {key}")
    sigma = []  # the model's own spread, in data units
    for k, o in enumerate(origins):
        z, level, spread = prepared.read_window(o - prepared.window, o, opts.level)
        _, sd, _ = trained.model.forecast(z[:, None], prepared.covariates(o, o + H, o, level, spread), paths=P, rng=k)
        sigma.append(sd * spread * np.array(trained.encoding["std"]))
    assert_close(got["sigma"], sigma, f"{name} sigma")
    if P:  # the draws are read: another seed's move the interval
        other = dict(zip(("mean", "sigma", "lower", "upper"), run.run(None, {**feeds, "noise": forecast_draws(range(3, 6), H, P)})))
        assert np.linalg.norm(other["upper"] - got["upper"]) > 1e-3 * np.linalg.norm(got["upper"])


@pytest.mark.usefixtures("reference_backend")
def test_a_recursive_forecaster_exports_from_the_command_line_and_its_prepare_lines_give_rnnkit_forecast(tmp_path, monthly, capsys):
    trained = rnnkit.train("forecast", tmp_path / "m", data=str(monthly), mode="recursive", paths=30, horizon=6, origins=2,
                           hidden=8, steps=2, valid_every=2, quiet=True)
    assert main(["export", str(tmp_path / "m"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    model = onnx.load(str(tmp_path / "m.onnx"))
    meta = metadata(model)
    assert "noise (B, 6, 30, C)" in meta["inputs"] and "30 sampled paths" in meta["outputs"]
    values = np.genfromtxt(monthly, delimiter=",", skip_header=1, usecols=(1, 2))
    scope = {"np": np, "values": values}
    exec(meta["prepare"], scope)  # noqa: S102  (the lines as a consumer runs them: rnnkit forecast's draws)
    got = dict(zip(("mean", "sigma", "lower", "upper"), session(model).run(None, scope["feeds"])))
    expected = trained.forecast()
    for key in ("mean", "lower", "upper"):
        assert_close(got[key][0], expected[key], key)


# ---- detect -------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("horizon, score, smooth", [(1, "scaled", 1), (3, "scaled", 4), (2, "error", 3)])
def test_detector_scores_flags_and_forecasts_equal_rnnkit(tmp_path, monthly, horizon, score, smooth):
    W = 12
    trained = rnnkit.train("detect", tmp_path / "m", data=str(monthly), window=W, horizon=horizon, score=score, smooth=smooth,
                           hidden=8, steps=2, valid_every=2, batch_size=8, quiet=True)
    model = onnx.load(str(trained.export(tmp_path / "m.onnx")[0]))
    meta = metadata(model)
    before = W + horizon + smooth - 2
    assert float(meta["threshold"]) == trained.detector.threshold and f"window (B, {before}, C)" in meta["inputs"]
    series, _ = load_detect_series(trained.opts, stored=trained.encoding)  # the task's own data
    values = series.values
    ends = np.arange(before, len(values))  # the points with all the history a score reads
    score_got, anomaly, mean, sigma = session(model).run(None, {
        "window": np.stack([values[e - before : e] for e in ends]).astype(np.float32), "value": values[ends].astype(np.float32)})
    expected = trained.detector.scores(values)[ends]
    assert_close(score_got, expected, "scores")
    threshold = trained.detector.threshold
    # the graph computes in float32: a score within its rounding of the threshold may fall either side
    clear = np.abs(expected - threshold) > 1e-5 * max(1.0, abs(threshold))
    assert clear.mean() > 0.95
    np.testing.assert_array_equal(anomaly[clear], (expected > threshold)[clear])
    _, mu, var = trained.detector.forecasts(values)  # standardised; [t, 0]: from the W points just before t
    std, centre = np.array(trained.encoding["std"]), np.array(trained.encoding["mean"])
    assert_close(mean, mu[ends, 0] * std + centre, "mean")
    assert_close(sigma, np.sqrt(var[ends, 0]) * std, "sigma")


# ---- classify: series z-normalised and averaged down inside the graph ------------------------------------


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("znorm, max_length", [("series", 8), ("series", 0), ("none", 8), ("scaled", 8), ("scaled", 0)])
def test_series_classifier_prepares_raw_series_in_the_graph_as_classify(tmp_path, znorm, max_length):
    rng = np.random.default_rng(3)
    lengths = rng.integers(3, 20, 80)
    lengths[:3] = [8, 9, 25]  # at, just past and far past --max-length
    labels = rng.integers(0, 2, 80)
    X = np.zeros((80, 25, 2), np.float32)
    for i, (n, y) in enumerate(zip(lengths, labels)):  # a class in the shape, each series at its own level and scale
        X[i, :n] = rng.normal(5 * i, 1 + i, 2) + rng.uniform(1, 3) * (np.sin if y else np.cos)(np.arange(n) / 2)[:, None]
    X[4, : lengths[4], 1] = 7.25  # a flat channel: zeros after z-normalisation
    np.savez(tmp_path / "series.npz", X=X, y=np.array(["a", "b"])[labels], lengths=lengths)
    trained = rnnkit.train("classify", out=tmp_path / "m", data=str(tmp_path / "series.npz"), znorm=znorm, max_length=max_length,
                           steps=2, hidden=6, batch_size=8, valid_every=2, cv_folds=0, pooling="mean", quiet=True)
    model = onnx.load(str(trained.export(tmp_path / "m.onnx")[0]))
    assert ("z-normalised per series in the graph" in metadata(model)["inputs"]) == (znorm == "series")
    assert ("with its level and scale as channels" in metadata(model)["inputs"]) == (znorm == "scaled")
    batch = np.arange(12)
    padded = X[batch].copy()
    padded[np.arange(25) >= lengths[batch, None]] = np.nan  # what lies past a length is never read
    got = session(model).run(None, {"x": padded, "lengths": lengths[batch].astype(np.int64)})[0]
    expected = [[r["probabilities"][label] for label in ("a", "b")] for r in trained.classify([X[i, : lengths[i]] for i in batch])]
    assert_close(got, expected, "probabilities")
    assert np.ptp(np.asarray(expected)[:, 0]) > 1e-4  # the inputs make a difference
