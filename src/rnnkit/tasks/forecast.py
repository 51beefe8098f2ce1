"""Task `forecast`: multi-step probabilistic forecasts of univariate or multivariate series.

The series (N points) is cut as forecasters cut it, by time:

    [ training ............ | validation: V origins (V·H) | backtest: K origins (K·H) ]

The model learns from windows whose targets lie in the training part; early stopping watches
the forecasts from the V validation origins (``--valid-origins``); ``evaluate`` is a
rolling-origin backtest over the last K·H points (``--origins``), the model, naive and
seasonal-naive forecasts scored on the same points (MAE, RMSE, sMAPE, MASE, and the coverage of
the 80% intervals). The model is not refitted between origins: each forecast reads the W points
before its origin. Scaling (per-column mean and standard deviation) is fitted on the data
before the backtest (training and validation parts).

Known-in-advance covariates: calendar features, sin/cos of the phase in the seasonal cycle
(its period taken from the dates when there are dates: 52.18 weeks a year, not 52).

Level: by default each window is read relative to its own mean and in units of its own spread,
and the forecast is made in those units too (as DeepAR scales each series): a trend that carries
the series past the training range (co2) does not put the model's inputs where it has never been,
and the intervals widen where the series swings widely (sunspots' large cycles).

Intervals: a network trained by likelihood tends to be overconfident out of sample, so the
loaded model widens its 80% intervals by the factor that makes them hold 80% of the actual
values over the validation origins (a split-conformal correction, ``widen`` in the
validation metrics, measured with the best weights).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from .. import metrics as M
from ..data import DataError
from ..data.fingerprint import check_data, record_data
from ..data.series import TABLE_FORMATS, Series, check_series, co2_series, elnino_series, fill_gaps, read_series_table, sunspots_series
from ..models.forecaster import MODES, Forecaster
from ..data.series import MISSING
from ..models.sequence_model import INPUT_BOUND, cell_choices, cell_help, cell_name, cell_option_help, init_help
from ..nn import GaussianNLLLoss
from ..progress import Progress
from ..training.trainer import check_options
from ..training.plots import output_path, pyplot, save_figure
from .base import MEANS_SCHEMA, NAMES_SCHEMA, SPREADS_SCHEMA, SeededRun, Task, data_schema, network_checks, register, validation_line

BUILT_IN = {"co2": co2_series, "sunspots": sunspots_series, "elnino": elnino_series}
Z80 = 1.2815515655446004  # the 90% quantile of N(0, 1): μ ± Z80·σ is the central 80% interval
#: the most the calibration widens the intervals (config.json's metrics.widen): intervals that miss
#: by more say nothing, and a larger factor read from an edited config.json could make them infinite
WIDEN_LIMIT = 1e6


@dataclass
class ForecastOptions:
    data: str = ""
    time: str = ""
    target: str = ""
    missing: str = "error"
    horizon: int = 12
    season: int = 0
    window: int = 0
    mode: str = "direct"
    level: str = "scale"
    cell: str = "lstm"
    cell_option: dict = field(default_factory=dict)
    init: str = "rnnkit"
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    batch_size: int = 32
    origins: int = 5
    valid_origins: int = 3
    paths: int = 200

    # the values an option takes (the command line lists them in its usage)
    CHOICES = {"missing": MISSING, "mode": MODES, "level": ("window", "scale", "none"), "cell": cell_choices()}
    HELP = {
        "data": TABLE_FORMATS + "; or a built-in series: " + ", ".join(BUILT_IN),
        "time": "the time column (default: the first column; none in a file of one column of values)",
        "target": "the column(s) to forecast, comma-separated (default: every other column)",
        "missing": "missing values: error, interpolate, or mask (interpolated as inputs, left out of the loss and the scores)",
        "horizon": "H, the number of steps to forecast",
        "season": "the seasonal period m in steps, for the seasonal-naive baseline, MASE and the calendar features "
                  "(0: the built-in series' own, else 1)",
        "window": "W, the steps the model reads before each forecast (0: 2·max(H, m), at least 24)",
        "mode": "direct (one head for all H steps) or recursive (one step at a time, values fed back)",
        "level": "window: the model sees and predicts values relative to each window's mean (a trend that leaves "
                 "the training range stays learnable); scale: also in units of the window's spread (intervals grow "
                 "with the local amplitude); none: the scaled values as they are",
        "cell": cell_help(),
        "cell_option": cell_option_help(),
        "init": "how the parameters start: " + init_help(),
        "hidden": "hidden size of each recurrent layer",
        "layers": "number of stacked recurrent layers",
        "dropout": "dropout between layers and before the output layer",
        "batch_size": "training windows per batch",
        "origins": "K, the forecast origins of the backtest (the last K·H points are held out)",
        "valid_origins": "V, the forecast origins before the backtest that validate (early stopping, interval calibration)",
        "paths": "recursive mode: sampled paths for the intervals (0: feed the means back; one-step intervals)",
    }

    def __post_init__(self):
        checks = {"missing": self.missing in ("error", "interpolate", "mask"), "mode": self.mode in MODES,
                  "level": self.level in ("window", "scale", "none"),
                  "horizon": self.horizon >= 1, "season": self.season >= 0, "window": self.window >= 0,
                  "origins": self.origins >= 1, "valid_origins": self.valid_origins >= 1, "paths": self.paths >= 0, "dropout": 0 <= self.dropout < 1,
                  **network_checks(self)}
        check_options(self, checks)


def load_series(opts: ForecastOptions, data: str | None = None, stored: dict | None = None) -> Series:
    """The series ``data`` names (from the command line), else ``opts.data``: for a loaded or
    resumed model (``stored``, its encoding) only while that is the file it was trained on."""
    if data is None and stored is not None:
        check_data(opts, stored.get("data_files"), BUILT_IN.__contains__)
    spec = data or opts.data
    if spec in BUILT_IN:
        return BUILT_IN[spec]()
    if not Path(spec).is_file():
        raise DataError(f"--data: {spec} is not a file nor a built-in series ({', '.join(BUILT_IN)})")
    target = [t.strip() for t in opts.target.split(",") if t.strip()] or None
    return read_series_table(spec, time=opts.time or None, target=target, missing=opts.missing)


# ---- time: calendar features and future time stamps ------------------------------------------------


def _days(times: list) -> np.ndarray | None:
    if not times or not isinstance(times[0], datetime):
        return None
    return np.array([(t - times[0]).total_seconds() / 86400 for t in times])


def season_period(times: list, season: int) -> float:
    """The seasonal cycle in steps: from the dates when there are dates (a year over the median
    spacing), else the given season."""
    days = _days(times)
    if days is not None and season > 1 and len(days) > 1:
        return 365.2425 / float(np.median(np.diff(days)))
    return float(season)


def calendar_features(n: int, period: float) -> np.ndarray:
    """(n, F): sin and cos of 2πk·t/period for k = 1, 2 (k = 1 only when the period is short);
    F = 0 without a season."""
    if period < 2:
        return np.zeros((n, 0), np.float32)
    t = np.arange(n)[:, None] * (np.arange(1, 3 if period >= 4 else 2)[None, :] * 2 * np.pi / period)
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


def future_times(times: list, steps: int) -> list:
    """The next ``steps`` time stamps: months stay month starts, other dates advance by the median
    step, numbers by their median step."""
    days = _days(times)
    if days is None:
        step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
        return [times[-1] + step * (i + 1) for i in range(steps)]
    step = float(np.median(np.diff(days)))
    if 28 <= step <= 31:
        last = times[-1]
        return [last.replace(year=last.year + (last.month - 1 + i) // 12, month=(last.month - 1 + i) % 12 + 1)
                for i in range(1, steps + 1)]
    return [times[-1] + timedelta(days=step * (i + 1)) for i in range(steps)]


# ---- the prepared series ---------------------------------------------------------------------------------


class Prepared:
    """A series with everything a forecast needs: scaled values, calendar features, the cut points."""

    def __init__(self, series: Series, opts: ForecastOptions, stored: dict | None = None):
        self.series = series
        C = len(series.target)
        self.raw = series.values[:, :C]
        self.observed = series.mask[:, :C]
        self.filled = fill_gaps(self.raw)
        H = opts.horizon
        if stored:
            self.encoding = stored
        else:
            season = opts.season or series.season or 1
            window = opts.window or max(2 * max(H, season if season > 1 else 0), 24)
            check_series(series, window + H * (opts.origins + opts.valid_origins + 1))  # training, validation, backtest
            first_origin = len(series) - opts.origins * H
            train = self.filled[: first_origin]
            self.encoding = {"columns": series.target, "season": int(season), "window": int(window),
                             "period": season_period(series.time, season), "mean": train.mean(axis=0).tolist(),
                             "std": np.maximum(train.std(axis=0), 1e-8).tolist(), "first_origin": int(first_origin)}
        e = self.encoding
        self.window, self.season = e["window"], e["season"]
        self.scaled = ((self.filled - np.array(e["mean"])) / np.array(e["std"])).astype(np.float32)
        self.calendar = calendar_features(len(series) + H + 1, e["period"])

    def read_window(self, start: int, end: int, level: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(z, level, spread) for the steps start … end−1: z (end − start, C + F), each value as
        (value − level) / spread, with the next step's covariates. level (C,): the window's mean
        ("window", "scale") or 0; spread (C,): the window's standard deviation ("scale") or 1.
        Level and spread are taken in float64 (float32 sums of values near 1e38 overflow), and z
        is bounded by ``INPUT_BOUND``."""
        values = self.scaled[start:end].astype(np.float64)
        C = values.shape[1]
        mean = values.mean(axis=0) if level in ("window", "scale") else np.zeros(C)
        spread = np.maximum(values.std(axis=0), 1e-3) if level == "scale" else np.ones(C)
        z = np.clip((values - mean) / spread, -INPUT_BOUND, INPUT_BOUND).astype(np.float32)
        return (np.concatenate([z, self.calendar[start + 1 : end + 1]], axis=1), mean.astype(np.float32),
                spread.astype(np.float32))

    def unscale(self, x: np.ndarray) -> np.ndarray:
        return x * np.array(self.encoding["std"]) + np.array(self.encoding["mean"])


def build_model(opts: ForecastOptions, encoding: dict, seed: int) -> Forecaster:
    return Forecaster(len(encoding["columns"]), calendar_features(1, encoding["period"]).shape[1], opts.horizon,
                      opts.hidden, opts.cell, opts.layers, opts.mode, opts.dropout, rng=np.random.default_rng(seed),
                      cell_settings=opts.cell_option, init=opts.init)


def forecast_at(model: Forecaster, data: Prepared, origin: int, opts: ForecastOptions, seed: int = 0,
                widen: float = 1.0) -> dict:
    """The forecast of the H steps from ``origin`` (index of the first forecast point), in data units:
    mean, lower and upper 80% bounds, (H, C) each; ``widen`` scales the intervals about the mean
    (the calibration of ``TrainedForecaster``)."""
    H, W = opts.horizon, data.window
    if origin < W:
        raise DataError(f"data: a forecast needs the {W} points before it, and only {origin} come before this one")
    z, level, spread = data.read_window(origin - W, origin, opts.level)
    future = data.calendar[origin : origin + H]
    mean, sigma, samples = model.forecast(z[:, None], future, paths=opts.paths if opts.mode == "recursive" else 0, rng=seed)
    if samples is not None:
        lo, hi = np.quantile(samples, [0.1, 0.9], axis=0)
    else:
        lo, hi = mean - Z80 * sigma, mean + Z80 * sigma
    lo, hi = mean + widen * (lo - mean), mean + widen * (hi - mean)
    back = lambda x: data.unscale(x * spread + level)  # noqa: E731  (the window's units → the data's)
    return {"mean": back(mean), "lower": back(lo), "upper": back(hi)}


def baselines(data: Prepared, origin: int, H: int) -> dict:
    """Naive (the last value) and seasonal naive (the value one season earlier) forecasts, (H, C)."""
    y, m = data.filled, data.season
    naive = np.repeat(y[origin - 1 : origin], H, axis=0)
    steps = np.arange(H)
    seasonal = y[origin - m + steps % m] if m > 1 else naive
    return {"naive": naive, "seasonal_naive": seasonal}


def backtest(model: Forecaster, data: Prepared, origins: list[int], opts: ForecastOptions, widen: float = 1.0) -> dict:
    """Scores of the model and the baselines over the forecasts from every origin, pooled over
    every observed point (MASE scales each column by its own in-sample seasonal-naive error);
    ``forecasts`` keeps each origin's numbers for plots."""
    H = opts.horizon
    train = data.filled[: data.encoding["first_origin"]]
    scale = np.array([M.seasonal_naive_scale(train[:, c], data.season) for c in range(train.shape[1])])
    actual, seen, lower, upper, forecasts = [], [], [], [], []
    pooled = {"rnnkit": [], "naive": [], "seasonal_naive": []}
    for k, origin in enumerate(Progress.over(origins, "backtest", unit="origin")):
        f = forecast_at(model, data, origin, opts, seed=k, widen=widen)
        actual.append(data.raw[origin : origin + H])
        seen.append(data.observed[origin : origin + H])
        lower.append(f["lower"])
        upper.append(f["upper"])
        pooled["rnnkit"].append(f["mean"])
        for name, values in baselines(data, origin, H).items():
            pooled[name].append(values)
        forecasts.append({"origin": origin, **{key: f[key].tolist() for key in ("mean", "lower", "upper")}})
    seen = np.array(seen)
    y, sc = np.array(actual)[seen], np.broadcast_to(scale, seen.shape)[seen]
    result = {}
    for name, parts in pooled.items():
        f = np.array(parts)[seen]
        result[name] = {"mae": M.mae(y, f), "rmse": M.rmse(y, f), "smape": M.smape(y, f), "mase": M.mase(y / sc, f / sc, 1.0)}
    result["rnnkit"]["coverage80"] = M.coverage(y, np.array(lower)[seen], np.array(upper)[seen])
    return {"scores": result, "forecasts": forecasts, "points": int(seen.sum())}


# ---- training ------------------------------------------------------------------------------------


class ForecastRun(SeededRun):
    """Training on random windows of the training part; validation from the origin before the backtest."""

    def __init__(self, model: Forecaster, data: Prepared, opts: ForecastOptions, seed: int):
        self.model, self.data, self.opts, self.seed = model, data, opts, seed
        self.loss_fn = GaussianNLLLoss(reduction="sum")
        H, W = opts.horizon, data.window
        self.valid_origins = [data.encoding["first_origin"] - v * H for v in range(opts.valid_origins, 0, -1)]
        # every target of a training window lies before the first validation origin
        self.last_start = self.valid_origins[0] - W - (H if opts.mode == "direct" else 1)
        if self.last_start < 0:
            raise DataError(f"data: too few points to train: a window of {W} and a horizon of {H} need more than the "
                            f"{self.valid_origins[0]} points before the validation origins; lower --window, --origins "
                            "or --valid-origins")

    def train_step(self) -> tuple[float, int]:
        rng = self.batch_rng()
        starts = rng.integers(0, self.last_start + 1, self.opts.batch_size)
        H, W, d = self.opts.horizon, self.data.window, self.data
        windows = [d.read_window(s, s + W, self.opts.level) for s in starts]
        z = np.stack([w for w, _, _ in windows], axis=1)
        level = np.stack([m for _, m, _ in windows])  # (B, C)
        spread = np.stack([r for _, _, r in windows])
        if self.opts.mode == "direct":
            future = np.stack([d.calendar[s + W : s + W + H] for s in starts])
            target = (np.stack([d.scaled[s + W : s + W + H] for s in starts]) - level[:, None]) / spread[:, None]
            seen = np.stack([d.observed[s + W : s + W + H] for s in starts])
        else:
            future = None
            target = (np.stack([d.scaled[s + 1 : s + W + 1] for s in starts], axis=1) - level[None]) / spread[None]
            seen = np.stack([d.observed[s + 1 : s + W + 1] for s in starts], axis=1)
        mu, var = self.model(z, future)
        n = max(int(seen.sum()), 1)
        loss = self.loss_fn(mu[seen], target[seen], var[seen]) / n  # missing targets (mask) are left out
        d_mu, d_var = np.zeros_like(mu), np.zeros_like(var)
        d_mu[seen], d_var[seen] = self.loss_fn.backward(1.0 / n)
        self.model.backward(d_mu, d_var)
        return loss, n

    def evaluate(self) -> dict:
        """Over the validation origins: the scaled MAE ("loss"), the raw coverage of the 80%
        intervals, and ``widen``, the factor that makes the intervals hold 80% of the actual
        values there (the 80% quantile of |y − μ| over each interval's half-width: a
        split-conformal correction, which the loaded model applies). It only widens: a few
        validation points that happen to fall near the mean are no reason to trust the model more."""
        H, d = self.opts.horizon, self.data
        errors, ratios, actual, mean, lower, upper = [], [], [], [], [], []
        for origin in self.valid_origins:
            f = forecast_at(self.model, d, origin, self.opts)
            seen = d.observed[origin : origin + H]
            y = d.raw[origin : origin + H]
            errors.append((np.abs(f["mean"] - y) / np.array(d.encoding["std"]))[seen])
            ratios.append((np.abs(y - f["mean"]) / np.maximum((f["upper"] - f["lower"]) / 2, 1e-12))[seen])
            for part, values in ((actual, y), (mean, f["mean"]), (lower, f["lower"]), (upper, f["upper"])):
                part.append(values[seen])
        y, mu = np.concatenate(actual), np.concatenate(mean)
        return {"loss": float(np.concatenate(errors).mean()), "mae": M.mae(y, mu),
                "coverage80": M.coverage(y, np.concatenate(lower), np.concatenate(upper)),
                "widen": min(WIDEN_LIMIT, max(1.0, float(np.quantile(np.concatenate(ratios), 0.8))))}


# ---- the trained model ------------------------------------------------------------------------


class TrainedForecaster:
    """A trained forecaster loaded from its directory: forecast, evaluate (backtest), describe."""

    def __init__(self, out_dir: Path, config: dict, model: Forecaster):
        self.dir, self.config, self.model = Path(out_dir), config, model
        self.opts = ForecastOptions(**config["task_options"])
        self.encoding = config["encoding"]
        # the intervals' calibration at the validation origin, measured with the best weights
        self.widen = float(config.get("metrics", {}).get("widen", 1.0))

    def _prepared(self, data: str | None) -> Prepared:
        series = load_series(self.opts, data, self.encoding)
        if data is not None and series.target != self.encoding["columns"]:
            raise DataError(f"--data: the model forecasts {', '.join(self.encoding['columns'])}, "
                            f"the file's target columns are {', '.join(series.target)}")
        check_series(series, self.encoding["window"])
        return Prepared(series, self.opts, stored=self.encoding)

    def forecast(self, data: str | None = None) -> dict:
        """The H steps after the end of the series (the model's own, or ``data``): times, mean and 80% bounds."""
        prepared = self._prepared(data)
        n = len(prepared.series)
        f = forecast_at(self.model, prepared, n, self.opts, widen=self.widen)
        times = future_times(prepared.series.time, self.opts.horizon)
        return {"time": times, **f, "history": prepared}

    def evaluate(self, data: str | None = None) -> dict:
        """The rolling-origin backtest (see the module docstring); writes backtest.png."""
        prepared = self._prepared(data)
        H, K = self.opts.horizon, self.opts.origins
        origins = [len(prepared.series) - (K - k) * H for k in range(K)]
        report = backtest(self.model, prepared, origins, self.opts, self.widen)
        plot = plot_backtest(prepared, report["forecasts"], self.dir / "backtest.png", self.opts.horizon)
        result = {f"{name}_{metric}": value for name, scores in report["scores"].items() for metric, value in scores.items()}
        result.update(points=report["points"], origins=K, plot=str(plot))
        return result

    def describe(self, short: bool = False) -> str:
        c, o, e = self.config, self.opts, self.encoding
        m = c.get("metrics", {})
        lines = [
            f"model      {self.dir}: task forecast, {o.mode} H={o.horizon} ({c.get('status', '?')}), rnnkit {c.get('rnnkit_version')}",
            f"network    {o.layers}-layer {cell_name(o.cell, o.cell_option, o.init)}, hidden {o.hidden}, window {e['window']}, Gaussian outputs; "
            f"{self.model.num_parameters():,} parameters",
            f"series     {c['data']['source']}: {c['data']['points']:,} points of {', '.join(e['columns'])}; season {e['season']}"
            + (f", calendar period {e['period']:.2f}" if e["period"] >= 2 else ""),
        ]
        if m:
            lines.append(validation_line(m))
        return "\n".join(lines if not short else [lines[0], lines[-1]])


def _plot_times(times: list) -> list:
    return times if times and isinstance(times[0], datetime) else [float(t) for t in times]


def plot_backtest(data: Prepared, forecasts: list[dict], path: Path, H: int) -> Path:
    """The series' tail with each origin's forecast and 80% interval."""
    plt = pyplot()
    C = data.raw.shape[1]
    fig, axes = plt.subplots(C, 1, figsize=(10, 3.2 * C), squeeze=False)
    times = _plot_times(data.series.time)
    start = max(0, forecasts[0]["origin"] - 4 * H)
    for c, ax in enumerate(axes[:, 0]):
        ax.plot(times[start:], data.raw[start:, c], color="black", lw=1, label="actual")
        for i, f in enumerate(forecasts):
            t = times[f["origin"] : f["origin"] + H]
            mean, lo, hi = (np.array(f[k])[: len(t), c] for k in ("mean", "lower", "upper"))
            ax.plot(t, mean, color="C0", lw=1.5, label="forecast" if i == 0 else None)
            ax.fill_between(t, lo, hi, color="C0", alpha=0.2, label="80% interval" if i == 0 else None)
        ax.set_title(f"{data.series.target[c]}: rolling-origin backtest, {len(forecasts)} origins of {H} steps")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    return save_figure(fig, path)


def plot_forecast(result: dict, path: Path, H: int) -> Path:
    """History (the last few horizons), the forecast and its 80% interval."""
    plt = pyplot()
    data: Prepared = result["history"]
    C = data.raw.shape[1]
    fig, axes = plt.subplots(C, 1, figsize=(10, 3.2 * C), squeeze=False)
    times = _plot_times(data.series.time)
    start = max(0, len(times) - max(6 * H, data.window))
    future = _plot_times(result["time"])
    for c, ax in enumerate(axes[:, 0]):
        ax.plot(times[start:], data.raw[start:, c], color="black", lw=1, label="history")
        ax.plot(future, result["mean"][:, c], color="C0", lw=1.5, label="forecast")
        ax.fill_between(future, result["lower"][:, c], result["upper"][:, c], color="C0", alpha=0.25, label="80% interval")
        ax.set_title(f"{data.series.target[c]}: forecast of {H} steps")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    return save_figure(fig, path)


@register
class ForecastTask(Task):
    name = "forecast"
    action = "forecast"
    description = "time series: multi-step forecasts with Gaussian prediction intervals, rolling-origin backtests"
    action_help = "Forecast the steps after the end of a series: a table and a PNG with history, forecast and 80% intervals."
    Options = ForecastOptions
    config_schema = {"type": "object", "required": ["encoding", "data"], "properties": {
        "encoding": {"type": "object", "required": ["columns", "season", "window", "period", "mean", "std", "first_origin"],
                     "properties": {"columns": NAMES_SCHEMA, "season": {"type": "integer", "minimum": 1},
                                    "window": {"type": "integer", "minimum": 1},
                                    "period": {"type": "finite", "exclusiveMinimum": 0},  # calendar features divide by it
                                    "mean": MEANS_SCHEMA, "std": SPREADS_SCHEMA, "first_origin": {"type": "integer", "minimum": 1}},
                     "sameCount": ["columns", "mean", "std"]},
        "data": data_schema("points"),
        "metrics": {"properties": {"widen": {"type": "finite", "minimum": 1, "maximum": WIDEN_LIMIT}}}}}

    Trained = TrainedForecaster
    monitors = {"loss": "min", "mae": "min"}  # loss: the scaled absolute error of the backtest

    def prepare(self, options: ForecastOptions, seed: int, stored: dict | None = None):
        data = Prepared(load_series(options, stored=stored), options, stored)
        if stored is None:
            data.encoding["data_files"] = record_data(options, BUILT_IN.__contains__)
        return data, data.encoding, {"source": data.series.source, "points": len(data.series)}

    def make_model(self, options: ForecastOptions, encoding: dict, seed: int) -> Forecaster:
        return build_model(options, encoding, seed)

    def make_run(self, model, data: Prepared, options: ForecastOptions, seed: int) -> ForecastRun:
        return ForecastRun(model, data, options, seed)

    def add_action_arguments(self, p) -> None:
        p.add_argument("--data", metavar="FILE", help="forecast after the end of this series (default: the training series)")
        p.add_argument("--plot", metavar="PNG", help="where to draw the forecast (default: DIR/forecast.png)")

    def act(self, model: TrainedForecaster, args) -> int:
        plot_path = output_path(args.plot, "--plot") if args.plot else model.dir / "forecast.png"
        result = model.forecast(args.data)
        columns = model.encoding["columns"]
        sys.stdout.write("time\t" + "\t".join(f"{c}\t{c}_lo80\t{c}_hi80" for c in columns) + "\n")
        for i, t in enumerate(result["time"]):
            shown = t.date().isoformat() if isinstance(t, datetime) else f"{t:g}"
            cells = [f"{result[k][i, c]:.6g}" for c in range(len(columns)) for k in ("mean", "lower", "upper")]
            sys.stdout.write(shown + "\t" + "\t".join(cells) + "\n")
        plot = plot_forecast(result, plot_path, model.opts.horizon)
        sys.stdout.write(f"plot: {plot}\n")
        return 0

