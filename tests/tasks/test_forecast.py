"""Task `forecast` through the command line and the Python API, on small CSV series the tests write."""

import json
from datetime import date, timedelta

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.tasks.forecast import calendar_features, future_times, season_period
from rnnkit.training import model_dir as md

TINY = ["--horizon", "6", "--season", "12", "--window", "24", "--origins", "2", "--hidden", "8", "--steps", "40",
        "--valid-every", "20", "--lr", "0.01", "--quiet"]


def write_monthly(path, n=120, seed=0, holes=(), columns=("sales",)):
    """A seasonal series with trend and noise, monthly dates from 2000-01-01."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    rows = ["month," + ",".join(columns)]
    for i in t:
        d = date(2000 + i // 12, i % 12 + 1, 1)
        values = [10 + 0.05 * i + (2 + c) * np.sin(2 * np.pi * i / 12) + 0.2 * rng.standard_normal() for c in range(len(columns))]
        cells = ["" if i in holes else f"{v:.4f}" for v in values]
        rows.append(f"{d.isoformat()}," + ",".join(cells))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("mode", ["direct", "recursive"])
def test_forecaster_trains_backtests_and_forecasts(tmp_path, capsys, mode):
    data = write_monthly(tmp_path / "sales.csv")
    out = tmp_path / "m"
    assert main(["train", "forecast", "--data", str(data), "--out", str(out), "--mode", mode, "--paths", "50", *TINY]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(out)]) == 0
    printed = capsys.readouterr().out
    for key in ("rnnkit_mase", "seasonal_naive_mase", "naive_mae", "rnnkit_coverage80"):
        assert key in printed
    assert (out / "backtest.png").read_bytes()[:4] == b"\x89PNG"
    assert main(["forecast", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "time\tsales\tsales_lo80\tsales_hi80"
    assert [line.split("\t")[0] for line in lines[1:7]] == ["2010-01-01", "2010-02-01", "2010-03-01",
                                                           "2010-04-01", "2010-05-01", "2010-06-01"]
    lo, mean, hi = (np.array([float(line.split("\t")[k]) for line in lines[1:7]]) for k in (2, 1, 3))
    assert np.all(lo <= mean) and np.all(mean <= hi)
    assert (out / "forecast.png").exists()


def test_the_backtest_scores_baselines_on_the_same_points(tmp_path):
    data = write_monthly(tmp_path / "sales.csv")
    model = rnnkit.train("forecast", tmp_path / "m", data=str(data), horizon=6, season=12, window=24, origins=2,
                         hidden=8, steps=2, valid_every=2)
    metrics = model.evaluate()
    assert metrics["points"] == 12 and metrics["origins"] == 2
    # a seasonal series with a small trend: one season back is far better than the last value
    assert metrics["seasonal_naive_mase"] < 0.5 * metrics["naive_mase"]


def test_missing_values_can_be_masked_or_interpolated_and_multivariate_targets_work(tmp_path):
    data = write_monthly(tmp_path / "two.csv", holes=(30, 31, 110), columns=("a", "b"))
    for missing in ("mask", "interpolate"):
        model = rnnkit.train("forecast", tmp_path / missing, data=str(data), missing=missing, horizon=6, season=12,
                             window=24, origins=2, hidden=8, steps=4, valid_every=2)
        assert model.encoding["columns"] == ["a", "b"]
        result = model.forecast()
        assert result["mean"].shape == (6, 2) and np.all(np.isfinite(result["mean"]))
        assert np.isfinite(model.evaluate()["rnnkit_mase"])


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    data = write_monthly(tmp_path / "sales.csv")
    opts = dict(data=str(data), horizon=6, season=12, window=24, origins=2, hidden=8, valid_every=5, dropout=0.1, layers=2)
    rnnkit.train("forecast", tmp_path / "whole", steps=20, **opts)
    rnnkit.train("forecast", tmp_path / "part", steps=10, **opts)
    rnnkit.train("forecast", tmp_path / "part", resume=True, steps=20)
    a, b = md.load_weights(tmp_path / "whole" / "model.safetensors"), md.load_weights(tmp_path / "part" / "model.safetensors")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_calendar_time_facts():
    times = [date(2000, 1, 1) + timedelta(weeks=i) for i in range(10)]
    from datetime import datetime

    times = [datetime(d.year, d.month, d.day) for d in times]
    assert season_period(times, 52) == pytest.approx(365.2425 / 7)  # a year of weeks, not 52
    assert season_period([1.0, 2.0, 3.0], 12) == 12.0
    f = calendar_features(5, 4.0)
    assert f.shape == (5, 4) and f[4] == pytest.approx(f[0], abs=1e-6)  # one period later, the same phase
    assert calendar_features(5, 1.0).shape == (5, 0)
    assert future_times([datetime(2000, 11, 1), datetime(2000, 12, 1)], 2) == [datetime(2001, 1, 1), datetime(2001, 2, 1)]
    assert future_times([1700, 1701], 2) == [1702.0, 1703.0]


# ---- bad input: one line with the row, exit code 2 ---------------------------------------------------


def run_error(args, capsys):
    capsys.readouterr()  # what earlier steps of the test printed (training progress) is not this error
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def train_args(path, tmp_path):
    return ["train", "forecast", "--data", str(path), "--out", str(tmp_path / "m"), *TINY]


def test_non_numeric_value_names_the_line(tmp_path, capsys):
    path = write_monthly(tmp_path / "s.csv")
    lines = path.read_text().splitlines()
    lines[5] = lines[5].split(",")[0] + ",lots"
    path.write_text("\n".join(lines) + "\n")
    err = run_error(train_args(path, tmp_path), capsys)
    assert f"{path}:6" in err and "lots" in err


def test_time_that_goes_back_names_the_line(tmp_path, capsys):
    path = write_monthly(tmp_path / "s.csv")
    lines = path.read_text().splitlines()
    lines[7], lines[8] = lines[8], lines[7]
    path.write_text("\n".join(lines) + "\n")
    assert f"{path}:9" in run_error(train_args(path, tmp_path), capsys)


def test_too_few_points_for_window_and_horizon(tmp_path, capsys):
    err = run_error(train_args(write_monthly(tmp_path / "s.csv", n=40), tmp_path), capsys)
    assert "needs at least" in err and "got 40" in err


def test_constant_series_and_missing_values(tmp_path, capsys):
    flat = tmp_path / "flat.csv"
    flat.write_text("t,v\n" + "\n".join(f"{i},3" for i in range(100)) + "\n")
    assert "all values equal 3" in run_error(train_args(flat, tmp_path), capsys)
    holes = write_monthly(tmp_path / "holes.csv", holes=(10,))
    err = run_error(train_args(holes, tmp_path), capsys)
    assert f"{holes}:12" in err and "missing" in err


def test_window_level_follows_a_trend_past_the_training_range(tmp_path):
    path = tmp_path / "trend.csv"
    rng = np.random.default_rng(5)
    path.write_text("t,v\n" + "\n".join(f"{i},{0.1 * i + np.sin(i / 2) + 0.05 * rng.standard_normal():.4f}"
                                        for i in range(160)) + "\n")
    model = rnnkit.train("forecast", tmp_path / "m", data=str(path), horizon=5, window=20, origins=2, valid_origins=2,
                         hidden=16, steps=300, lr=0.01, valid_every=100)
    before_backtest = model.encoding["first_origin"] - 1
    top = np.loadtxt(path, delimiter=",", skiprows=1)[: before_backtest + 1, 1].max()
    result = model.forecast()  # after the end: 16 points above anything the scaling saw
    assert result["mean"].mean() > top
    assert model.widen == model.config["metrics"]["widen"] > 0
    metrics = model.evaluate()
    assert metrics["rnnkit_mase"] < metrics["naive_mase"]


def test_scale_level_reads_each_window_in_its_own_units(tmp_path):
    from rnnkit.tasks.forecast import ForecastOptions, Prepared, load_series

    path = write_monthly(tmp_path / "s.csv")
    opts = ForecastOptions(data=str(path), horizon=6, season=12, window=24, origins=2, seasonal="lags")
    data = Prepared(load_series(opts), opts)
    z, level, spread = data.read_window(30, 54, "scale")
    values = z[:, :1]
    assert abs(values.mean()) < 1e-6 and abs(values.std() - 1) < 1e-5  # standardised within the window
    np.testing.assert_allclose(values * spread + level, data.scaled[30:54], rtol=1e-5, atol=1e-6)
    z, level, spread = data.read_window(30, 54, "none")
    assert np.all(level == 0) and np.all(spread == 1)


def test_a_plot_into_a_missing_directory_is_refused(tmp_path, capsys):
    data = write_monthly(tmp_path / "sales.csv")
    rnnkit.train("forecast", tmp_path / "m", data=str(data), horizon=6, season=12, window=24, origins=2, hidden=8,
                 steps=2, valid_every=2)
    capsys.readouterr()  # the training's progress lines
    err = run_error(["forecast", str(tmp_path / "m"), "--plot", str(tmp_path / "nowhere" / "deeper" / "f.png")], capsys)
    assert err.startswith("rnnkit: error: --plot:") and "does not exist" in err
    assert not (tmp_path / "nowhere").exists()


def test_a_value_beyond_float32_is_an_error_naming_the_line(tmp_path, capsys):
    path = write_monthly(tmp_path / "s.csv")
    lines = path.read_text().splitlines()
    lines[50] = lines[50].split(",")[0] + ",1e300"  # the forecasts were ±inf
    path.write_text("\n".join(lines) + "\n")
    err = run_error(train_args(path, tmp_path), capsys)
    assert f"{path}:51: column 'sales': '1e300' is beyond the range" in err
    model = rnnkit.train("forecast", tmp_path / "ok", data=str(write_monthly(tmp_path / "ok.csv")), horizon=6, season=12,
                         window=24, origins=2, hidden=8, steps=2, valid_every=2)
    capsys.readouterr()
    for verb in ("forecast", "evaluate"):
        assert f"{path}:51" in run_error([verb, str(model.dir), "--data", str(path)], capsys)


def test_a_huge_value_within_float32_gives_finite_forecasts(tmp_path):
    path = write_monthly(tmp_path / "s.csv")
    model = rnnkit.train("forecast", tmp_path / "m", data=str(path), horizon=6, season=12, window=24, origins=2,
                         hidden=8, steps=2, valid_every=2)
    lines = path.read_text().splitlines()
    lines[-3] = lines[-3].split(",")[0] + ",3e38"
    path.write_text("\n".join(lines) + "\n")
    result = model.forecast(str(path))
    assert all(np.all(np.isfinite(result[k])) for k in ("mean", "lower", "upper"))


def test_config_json_may_not_point_the_model_at_another_file(tmp_path, capsys):
    data = write_monthly(tmp_path / "sales.csv")
    model = rnnkit.train("forecast", tmp_path / "m", data=str(data), horizon=6, season=12, window=24, origins=2, hidden=8,
                         steps=2, valid_every=2)
    capsys.readouterr()
    other = write_monthly(tmp_path / "other.csv", seed=1)
    config = json.loads((model.dir / "config.json").read_text())
    config["task_options"]["data"] = str(other)
    (model.dir / "config.json").write_text(json.dumps(config))
    for verb in ("forecast", "evaluate"):
        err = run_error([verb, str(model.dir)], capsys)
        assert f"config.json names {other} as its data, but that is not the file this model was trained on" in err
    assert main(["forecast", str(model.dir), "--data", str(other)]) == 0  # a file the user names is read


# ---- long seasons: --season with dates, seasonal lags, the residual, the guard, --refit ----------------


def write_half_hourly(path, n=1200, seed=0):
    """Half-hourly ISO datetimes from Monday 2000-06-05 00:00 with a daily and a weekly cycle."""
    from datetime import datetime

    rng = np.random.default_rng(seed)
    start = datetime(2000, 6, 5)
    rows = ["time,load"]
    for i in range(n):
        value = 30 + 5 * np.sin(2 * np.pi * i / 48) + 3 * (i % 336 >= 240) + 0.3 * rng.standard_normal()
        rows.append(f"{(start + timedelta(minutes=30 * i)).isoformat()},{value:.4f}")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_season_is_honoured_with_timestamps_and_several_seasons_are_read(tmp_path, capsys):
    data = write_half_hourly(tmp_path / "load.csv")
    out = tmp_path / "m"
    assert main(["train", "forecast", "--data", str(data), "--out", str(out), "--horizon", "6", "--season", "48,336",
                 "--origins", "2", "--hidden", "8", "--steps", "2", "--valid-every", "2", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    info = capsys.readouterr().out
    # a week of half-hours is 336 steps, not the year (17531.64) that the dates alone would give
    assert "seasons 48, 336; calendar periods 48, 336; seasonal lags 336, 672, 48, 96" in info and "17531" not in info
    config = json.loads((out / "config.json").read_text())
    assert config["task_options"]["season"] == "48,336" and config["encoding"]["season"] == 336
    assert config["encoding"]["window"] == 24  # 2·H, at least 24: the lags bring the seasons in


def test_a_season_near_a_year_of_dated_steps_is_the_year():
    from datetime import datetime

    half_hours = [datetime(2000, 6, 5) + timedelta(minutes=30 * i) for i in range(100)]
    assert season_period(half_hours, 336) == 336.0 and season_period(half_hours, 48) == 48.0
    months = [datetime(2000 + i // 12, i % 12 + 1, 1) for i in range(36)]
    assert season_period(months, 12) == pytest.approx(12.0, abs=0.01)  # month lengths differ: the mean spacing
    assert calendar_features(10, [48, 336]).shape == (10, 8) and calendar_features(10, [1]).shape == (10, 0)


@pytest.mark.parametrize("season", ["48,x", "-1", "48,48", "1,48", "2.5", "48,"])
def test_bad_season_values_are_one_line_errors(tmp_path, capsys, season):
    data = write_monthly(tmp_path / "s.csv")
    err = run_error(["train", "forecast", "--data", str(data), "--out", str(tmp_path / "m"), "--season", season,
                     "--horizon", "6", "--quiet"], capsys)
    assert err.startswith(f"rnnkit: error: --season: invalid value {season!r}") and "commas" in err
    assert not (tmp_path / "m").exists()


def test_a_season_longer_than_the_series_allows_says_what_it_needs(tmp_path, capsys):
    data = write_monthly(tmp_path / "s.csv", n=120)
    err = run_error(["train", "forecast", "--data", str(data), "--out", str(tmp_path / "m"), "--season", "60",
                     "--horizon", "6", "--origins", "2", "--quiet"], capsys)
    assert "needs at least" in err and "got 120" in err


def prepared(path, **options):
    from rnnkit.tasks.forecast import ForecastOptions, Prepared, load_series

    opts = ForecastOptions(data=str(path), **options)
    return opts, Prepared(load_series(opts), opts)


def test_seasonal_lag_inputs_are_the_values_one_and_two_seasons_back(tmp_path):
    _, data = prepared(write_monthly(tmp_path / "s.csv"), horizon=6, season=12, window=24, origins=2, seasonal="lags")
    assert data.lags == data.input_lags == [12, 24] and data.first_start == 24
    z, level, spread = data.read_window(30, 54, "scale")
    F = calendar_features(1, data.encoding["periods"]).shape[1]
    in_units = lambda v: (v - level) / spread  # noqa: E731
    # the input at step t carries the covariates of step t + 1: its values 12 and 24 steps back
    np.testing.assert_allclose(z[:, 1 + F], in_units(data.scaled[31 - 12 : 55 - 12, 0]), atol=1e-5)
    np.testing.assert_allclose(z[:, 2 + F], in_units(data.scaled[31 - 24 : 55 - 24, 0]), atol=1e-5)
    # after the origin, the latest value at the same phase before it: seasonal naive for every horizon
    future = data.covariates(54, 54 + 18, 54, level, spread)
    steps = np.arange(18)
    np.testing.assert_allclose(future[:, F], in_units(data.scaled[54 - 12 + steps % 12, 0]), atol=1e-5)
    np.testing.assert_allclose(future[:, F + 1], in_units(data.scaled[54 - 24 + steps % 24, 0]), atol=1e-5)


@pytest.mark.parametrize("mode", ["direct", "recursive"])
def test_a_residual_model_reads_and_forecasts_the_residual_over_seasonal_naive(tmp_path, mode):
    from rnnkit.tasks.forecast import baselines, build_model, forecast_at

    opts, data = prepared(write_monthly(tmp_path / "s.csv"), horizon=6, season=12, window=24, origins=2, mode=mode,
                          paths=0, seasonal="residual")
    assert data.residual and data.input_lags == [24]  # the first lag is the base: zero as a residual
    z, level, spread = data.read_window(30, 54, "scale")
    residual = data.scaled[30:54, 0] - data.scaled[18:42, 0]  # each value less the one a season back
    first = data.encoding["first_origin"]  # the unit: the residuals' spread over the training part
    training = data.scaled[12:first, 0].astype(np.float64) - data.scaled[: first - 12, 0]
    assert level[0] == pytest.approx(residual.mean(), abs=1e-6) and spread[0] == pytest.approx(training.std(), rel=1e-4)
    np.testing.assert_allclose(z[:, 0], (residual - level[0]) / spread[0], atol=1e-4)
    F = calendar_features(1, data.encoding["periods"]).shape[1]
    # the second lag as a residual: two seasons back less one season back, for the next step
    np.testing.assert_allclose(z[:, 1 + F], (data.scaled[7:31, 0] - data.scaled[19:43, 0] - level[0]) / spread[0], atol=1e-4)
    # an untrained network forecasts 0 in its units: seasonal naive plus the window's mean residual
    model = build_model(opts, data.encoding, seed=0)
    f = forecast_at(model, data, 100, opts)
    y = data.raw[:, 0]
    expected = baselines(data, 100, 6)["seasonal_naive"][:, 0] + np.mean(y[76:100] - y[64:88])
    np.testing.assert_allclose(f["mean"][:, 0], expected, rtol=1e-5)
    assert np.all(f["lower"] < f["mean"]) and np.all(f["mean"] < f["upper"])


def test_the_guard_says_when_the_network_loses_to_seasonal_naive_and_falls_back_to_it(tmp_path, capsys):
    path = tmp_path / "periodic.csv"  # periodic after its first 30 steps: seasonal naive makes no error there
    path.write_text("t,v\n" + "\n".join(f"{i},{np.sin(2 * np.pi * (i % 12) / 12) + 0.1 * (i % 12) + 0.5 * (i < 30):.6f}"
                                        for i in range(120)) + "\n")
    out = tmp_path / "m"
    assert main(["train", "forecast", "--data", str(path), "--out", str(out), "--seasonal", "none", *TINY]) == 0
    summary = capsys.readouterr().out
    assert "WARNING: the network LOSES to seasonal naive (m = 12) on validation" in summary
    assert "the forecasts ARE seasonal naive (m = 12)'s (blend weight 0)" in summary
    assert main(["evaluate", str(out)]) == 0
    evaluated = capsys.readouterr().out
    assert "validation: WARNING: the network LOSES to seasonal naive" in evaluated
    model = rnnkit.load(out)
    assert model.blend == 0.0
    future = model.forecast()["mean"][:, 0]
    np.testing.assert_allclose(future, np.loadtxt(path, delimiter=",", skiprows=1)[108:114, 1], atol=1e-6)


def test_the_guard_line_says_when_the_network_wins():
    from rnnkit.tasks.forecast import seasonal_naive_check

    won = seasonal_naive_check({"mae": 1.0, "seasonal_naive_mae": 2.0, "blend": 1.0, "blended_mae": 1.0}, 12)
    assert won == "the network beats seasonal naive (m = 12) on validation: MAE 1 against 2"
    lost = seasonal_naive_check({"mae": 3.0, "seasonal_naive_mae": 2.0, "blend": 0.4, "blended_mae": 1.9}, 1)
    assert lost.startswith("WARNING: the network LOSES to naive (the last value; no season)") and "blend weight 0.4" in lost
    assert seasonal_naive_check({"loss": 0.1}, 12) is None  # a model from before the guard


def test_the_calibrated_intervals_hold_80_percent_of_the_validation_values(tmp_path):
    from rnnkit.tasks.forecast import forecast_at

    model = rnnkit.train("forecast", tmp_path / "m", data=str(write_monthly(tmp_path / "s.csv")), horizon=6, season=12,
                         window=24, origins=2, valid_origins=3, hidden=8, steps=40, valid_every=20, lr=0.01)
    data = model._prepared(None)
    inside = []
    for origin in (data.encoding["first_origin"] - k * 6 for k in (3, 2, 1)):
        f = forecast_at(model.model, data, origin, model.opts, widen=model.widen, blend=model.blend)
        y = data.raw[origin : origin + 6]
        inside += ((f["lower"] <= y + 1e-9) & (y <= f["upper"] + 1e-9)).ravel().tolist()
    assert np.mean(inside) >= 0.8  # split conformal: at least the ⌈0.8·(n + 1)⌉-th ratio is inside
    # the factor that holds 80% there, floored at 1: the intervals only widen
    from rnnkit.tasks.forecast import ForecastRun, interval_factor, validation_points

    points = validation_points(model.model, data, ForecastRun(model.model, data, model.opts, 0).valid_origins, model.opts)
    y, mean, sn, lower, upper = (np.concatenate(points[k]) for k in ("y", "mean", "seasonal_naive", "lower", "upper"))
    needed = interval_factor(y, sn + model.blend * (mean - sn), (upper - lower) / 2, narrow=True)
    assert model.widen == pytest.approx(max(1.0, needed))


def test_refit_trains_again_for_the_best_step_count_on_the_validation_part_too(tmp_path, capsys):
    from rnnkit.tasks.forecast import ForecastRun, build_model

    data = write_monthly(tmp_path / "s.csv")
    opts = dict(data=str(data), horizon=6, season=12, window=24, origins=2, hidden=8, steps=30, valid_every=10,
                patience=1, lr=0.01, seed=3)
    plain = rnnkit.train("forecast", tmp_path / "plain", **opts)
    refitted = rnnkit.train("forecast", tmp_path / "refit", refit=True, **opts)
    best = plain.config["metrics"]["step"]
    assert refitted.config["refit"] == {"steps": best, "until": plain.encoding["first_origin"]}
    assert refitted.config["metrics"] == plain.config["metrics"]  # the validation that chose the step count
    a = md.load_weights(tmp_path / "plain" / "model.safetensors")
    b = md.load_weights(tmp_path / "refit" / "model.safetensors")
    assert any(not np.array_equal(a[k], b[k]) for k in a)
    again = rnnkit.train("forecast", tmp_path / "again", refit=True, **opts)  # the same seed: the same refit
    c = md.load_weights(again.dir / "model.safetensors")
    for k in b:
        np.testing.assert_array_equal(b[k], c[k], err_msg=k)
    # the refit's windows reach the first backtest origin; the first run's stop before validation
    prep = refitted._prepared(None)
    first = ForecastRun(build_model(refitted.opts, prep.encoding, 0), prep, refitted.opts, 0)
    whole = ForecastRun(build_model(refitted.opts, prep.encoding, 0), prep, refitted.opts, 0, refit=True)
    assert whole.last_start + 24 + 6 == prep.encoding["first_origin"] == first.last_start + 24 + 6 + 3 * 6
    capsys.readouterr()
    assert main(["info", str(refitted.dir)]) == 0
    assert f"refitted for {best} steps on the {prep.encoding['first_origin']:,} points before the backtest" in capsys.readouterr().out
    resumed = rnnkit.train("forecast", tmp_path / "refit", resume=True, steps=40, patience=0)  # refits again, at the end
    assert resumed.config["refit"]["steps"] == resumed.config["metrics"]["step"]


def test_forecasting_a_series_too_short_for_the_lags_says_what_it_needs(tmp_path, capsys):
    model = rnnkit.train("forecast", tmp_path / "m", data=str(write_monthly(tmp_path / "s.csv")), horizon=6, season=12,
                         window=24, origins=2, hidden=8, steps=2, valid_every=2)
    assert model.encoding["lags"] == [12, 24]
    short = write_monthly(tmp_path / "short.csv", n=40)  # the window (24) alone fits; its lags (24 more) do not
    capsys.readouterr()
    err = run_error(["forecast", str(model.dir), "--data", str(short)], capsys)
    assert "needs at least 48 points, got 40" in err


def test_seasons_are_detected_from_the_dates_when_none_is_given(tmp_path):
    from datetime import datetime

    from rnnkit.tasks.forecast import detect_seasons

    half_hours = [datetime(2000, 6, 5) + timedelta(minutes=30 * i) for i in range(1400)]
    assert detect_seasons(half_hours) == (48, 336)
    assert detect_seasons(half_hours[:1000]) == (48,)  # fewer than four weeks: no weekly season
    hours = [datetime(2010, 1, 1) + timedelta(hours=i) for i in range(200)]
    assert detect_seasons(hours) == (24,)
    assert detect_seasons([datetime(2000 + i // 12, i % 12 + 1, 1) for i in range(60)]) == (12,)
    assert detect_seasons([datetime(2000, 1, 1) + timedelta(days=i) for i in range(60)]) == (7,)
    assert detect_seasons([1700, 1701, 1702]) == () and detect_seasons([datetime(2000, 1, 1) + timedelta(days=3 * i)
                                                                         for i in range(60)]) == ()
    _, data = prepared(write_half_hourly(tmp_path / "load.csv", n=1400), horizon=6, origins=2)
    assert data.encoding["seasons"] == [48, 336] and data.season == 336
