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

Known-in-advance covariates: calendar features, sin/cos of the phase in each seasonal cycle
(``--season 48,336``: a day and a week of half-hours; a season within 1% of a year in steps is
the year itself when there are dates: 52.18 weeks, not 52), and with a season m > 1 the
seasonal lags: the values one and two seasons earlier, y_{t−m} and y_{t−2m} of every season (for a
future step t the latest value at the same phase before the origin, so the first lag of the
longest season is the seasonal-naive forecast). The lags bring the last seasons into each window,
so a window need not span several of them: by default it is 2·H (at least 24) where the old rule,
without lags, was 2·max(H, m). ``--seasonal residual`` makes the network read and forecast the
residual over seasonal naive, r_t = y_t − y_{t−m} (y_t − y_{t−k·m} after the origin), each window
relative to its mean residual and in units of the residuals' spread over the training part (a
window's own can be far calmer than the steps after it): the forecast is seasonal naive plus the
network's, and its lags are residuals too (y_{t−2m} − y_{t−m} …); ``lags`` gives the network the
lagged values as inputs, ``none`` neither (the default is chosen on validation:
benchmarks/README.md). Without ``--season`` the seasons are the built-in series' own, else those
the dates imply (``detect_seasons``).

Refit (``--refit``): once training has chosen its best step s* on the validation origins, a fresh
network with the same seed is trained for s* steps on windows whose targets reach the first
backtest origin (training and validation parts), and its weights are the model's; the intervals
keep the calibration measured before the refit.

Guard: the validation metrics hold the seasonal-naive forecast's MAE on the same points; ``train``'s
summary, ``info`` and ``evaluate`` say plainly when the model loses to it.

Level: by default each window is read relative to its own mean and in units of its own spread,
and the forecast is made in those units too (as DeepAR scales each series): a trend that carries
the series past the training range (co2) does not put the model's inputs where it has never been,
and the intervals widen where the series swings widely (sunspots' large cycles).

Calibration on the validation origins, measured with the best weights and applied by the loaded
model (config.json's ``metrics``): ``blend``, the weight α in [0, 1] of the network's mean
against the seasonal-naive forecast, μ = sn + α·(μ_net − sn), the α of the lowest validation MAE
(0: the network adds nothing seasonal naive does not, so it forecasts seasonal naive; with m = 1
seasonal naive is the last value); and ``widen``: a network trained by likelihood tends to be
overconfident out of sample, and a blended mean is closer to the actual values than the
network's own, so the 80% intervals (about the blended mean) are scaled by the factor that makes
them hold 80% of the actual values there (split conformal: the ⌈0.8·(n + 1)⌉-th smallest of the n
ratios |y − μ| / half-width), floored at 1: it widens, never narrows (``NARROW``). The validation
stretch can be calmer than what follows it, and a factor below 1 fitted there is then too narrow
for the next origins; on backtests nested in the training and validation history (each series
cut before its backtest, the model trained again, the rule fitted on the cut series' validation
origins and scored on its next K origins) only widening came nearest 80% among the rules tried
(narrowing, calibration on the training history, adaptive conformal inference:
benchmarks/README.md).
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from .. import metrics as M
from ..data import DataError
from ..data.fingerprint import check_data, record_data
from ..export import onnx as onnx_export
from ..data.series import (MISSING, TABLE_FORMATS, Series, check_series, co2_series, elnino_series, fill_gaps,
                           read_series_table, seattle_temps_series, sunspots_series, taylor_series)
from ..models.forecaster import MODES, Forecaster
from ..models.sequence_model import INPUT_BOUND, cell_choices, cell_help, cell_name, cell_option_help, init_help
from ..nn import GaussianNLLLoss
from ..progress import Progress
from ..training import model_dir as md
from ..training import parallel
from ..training.trainer import Trainer, check_options
from ..training.plots import output_path, pyplot, save_figure
from .base import MEANS_SCHEMA, NAMES_SCHEMA, SPREADS_SCHEMA, Exportable, SeededRun, Task, export_metadata, data_schema, network_checks, register, validation_line

BUILT_IN = {"co2": co2_series, "sunspots": sunspots_series, "elnino": elnino_series, "taylor": taylor_series,
            "seattle-temps": seattle_temps_series}
Z80 = 1.2815515655446004  # the 90% quantile of N(0, 1): μ ± Z80·σ is the central 80% interval
#: the most the calibration widens the intervals (config.json's metrics.widen), and 1/WIDEN_LIMIT the
#: most it narrows them: intervals that miss by more say nothing, and a larger factor read from an
#: edited config.json could make them infinite
WIDEN_LIMIT = 1e6
#: whether the calibration may narrow the intervals (a factor below 1) or only widen them: chosen
#: on backtests nested in the training and validation history, where only widening came nearest
#: 80% (benchmarks/README.md, bench_forecast_seasons.py --nested)
NARROW = False


SEASONAL = ("residual", "lags", "none")


def parse_seasons(season) -> tuple[int, ...] | None:
    """``--season``'s value as a tuple of periods: 336 → (336,), "48,336" → (48, 336); 0 is
    (0,), "use the series' own". None when it is not valid: a negative or non-integer period, or
    among several periods one below 2 or one given twice."""
    if isinstance(season, bool):
        return None
    if isinstance(season, int):
        return (season,) if season >= 0 else None
    if not isinstance(season, str):
        return None
    try:
        periods = tuple(int(part) for part in season.split(","))
    except ValueError:
        return None
    if any(m < 0 for m in periods) or (len(periods) > 1 and (min(periods) < 2 or len(set(periods)) < len(periods))):
        return None
    return periods


@dataclass
class ForecastOptions:
    data: str = ""
    time: str = ""
    target: str = ""
    missing: str = "error"
    horizon: int = 12
    season: int | str = 0  # one period (int) or several ("48,336"); config.json keeps it so
    seasonal: str = "residual"
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
    refit: bool = False

    # the values an option takes (the command line lists them in its usage)
    CHOICES = {"missing": MISSING, "mode": MODES, "level": ("window", "scale", "none"), "cell": cell_choices(),
               "seasonal": SEASONAL}
    HELP = {
        "data": TABLE_FORMATS + "; or a built-in series: " + ", ".join(BUILT_IN),
        "time": "the time column (default: the first column; none in a file of one column of values)",
        "target": "the column(s) to forecast, comma-separated (default: every other column)",
        "missing": "missing values: error, interpolate, or mask (interpolated as inputs, left out of the loss and the scores)",
        "horizon": "H, the number of steps to forecast",
        "season": "the seasonal period m in steps (a whole number), or several separated by commas (48,336: a day "
                  "and a week of half-hours), for the seasonal lags, the calendar features, and (the longest) the "
                  "seasonal-naive baseline and MASE (0: the built-in series' own, else the dates': a day and a week "
                  "for hourly data, 12 for monthly … , else 1)",
        "seasonal": "with a season m > 1: residual (the network forecasts the residual over seasonal naive, with the "
                    "values m and 2m steps earlier as inputs), lags (those inputs only) or none",
        "window": "W, the steps the model reads before each forecast (0: 2·H, at least 24; with --seasonal none "
                  "2·max(H, m))",
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
        "refit": "after training, train a fresh network for the best step count on every point before the first "
                 "backtest origin (training and validation), and keep it",
    }

    def __post_init__(self):
        seasons = parse_seasons(self.season)
        if seasons is not None:  # one period is kept as a number, several as their text
            self.season = seasons[0] if len(seasons) == 1 else ",".join(map(str, seasons))
        checks = {"missing": self.missing in ("error", "interpolate", "mask"), "mode": self.mode in MODES,
                  "level": self.level in ("window", "scale", "none"), "seasonal": self.seasonal in SEASONAL,
                  "horizon": self.horizon >= 1, "season": seasons is not None, "window": self.window >= 0,
                  "origins": self.origins >= 1, "valid_origins": self.valid_origins >= 1, "paths": self.paths >= 0, "dropout": 0 <= self.dropout < 1,
                  **network_checks(self)}
        check_options(self, checks)

    @property
    def seasons(self) -> tuple[int, ...]:
        """The periods --season gives, () for 0 (the series' own)."""
        return tuple(m for m in parse_seasons(self.season) if m)


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
    """The calendar period of a season of ``season`` steps: with dates, a season within 1% of a
    year in steps (a year over the mean spacing) is the year itself (52 weekly steps → 52.18,
    12 monthly → 12.0); any other season is taken as given (336 half-hours: a week, not a year)."""
    days = _days(times)
    if days is not None and season > 1 and len(days) > 1 and days[-1] > 0:
        year = 365.2425 / (days[-1] / (len(days) - 1))
        if abs(season - year) <= 0.01 * year:
            return year
    return float(season)


def detect_seasons(times: list) -> tuple[int, ...]:
    """The seasons the dates imply, in steps, for a series of these times: a day and a week for
    steps of an hour or less that divide a day (48 and 336 for half-hours), a week for days, a year
    for weeks (52), months (12) and quarters (4); only those the series holds at least four of.
    () without dates or for other spacings."""
    days = _days(times)
    if days is None or len(days) < 2:
        return ()
    step = float(np.median(np.diff(days)))
    per_day = 1 / step if step > 0 else 0
    if step < 1 and abs(per_day - round(per_day)) < 1e-6:
        seasons = (round(per_day), 7 * round(per_day))
    else:
        seasons = next(((m,) for low, high, m in ((0.99, 1.01, 7), (6.9, 7.1, 52), (28, 31, 12), (89, 92, 4))
                        if low <= step <= high), ())
    return tuple(m for m in seasons if m > 1 and 4 * m <= len(times))


def calendar_frequencies(periods) -> list[np.ndarray]:
    """For each period (a number or a list) of at least 2 steps, the angular frequencies 2πk/period
    of its features, k = 1, 2 (k = 1 only when the period is short); none for shorter periods."""
    return [np.arange(1, 3 if period >= 4 else 2) * 2 * np.pi / period
            for period in np.atleast_1d(np.asarray(periods, np.float64)) if period >= 2]


def calendar_features(n: int, periods) -> np.ndarray:
    """(n, F): for each period, sin(ω·t) then cos(ω·t) for its ``calendar_frequencies`` ω, t the
    step's index 0 … n − 1; F = 0 without a season."""
    t = np.arange(n)[:, None]
    parts = [np.zeros((n, 0), np.float32)]
    for omega in calendar_frequencies(periods):
        parts += [np.sin(t * omega), np.cos(t * omega)]
    return np.concatenate(parts, axis=1).astype(np.float32)


def seasonal_lags(seasons, seasonal: str) -> list[int]:
    """The lags the model reads: m and 2m of each season m > 1, the longest season's first (its
    first lag is the seasonal-naive forecast, the residual's base); none with ``seasonal`` none."""
    if seasonal == "none":
        return []
    lags = []
    for m in sorted((m for m in seasons if m > 1), reverse=True):
        lags += [lag for lag in (m, 2 * m) if lag not in lags]
    return lags


def seasonal_reference(t: np.ndarray, origin: int, lag: int) -> np.ndarray:
    """For steps t (as seen from a forecast at ``origin``) the index of the latest step before
    the origin at the same phase of the period ``lag``: t − lag before the origin, t − k·lag after
    it (so the first lag of the season is the seasonal-naive forecast)."""
    k = np.maximum(1, (t - origin) // lag + 1)
    return t - k * lag


#: the exported forecaster's feeds for a forecast after the end of ``values`` (n, C), NaN where
#: missing: the gaps interpolated over the whole series as ``fill_gaps`` does (a gap at either
#: end holds the nearest value), the last N points, and the series' length (the metadata's "prepare")
EXPORT_FEEDS = """index = np.arange(len(values))  # values (n, C): the series so far, NaN where missing
filled = np.stack([np.interp(index, index[~np.isnan(v)], v[~np.isnan(v)]) for v in values.T], axis=1)
feeds = {{"history": filled[None, -{N}:].astype(np.float32){origin}{noise}}}"""
#: a recursive model's sampled paths' draws in those feeds: rnnkit forecast's (seed 0)
EXPORT_NOISE = ', "noise": np.random.default_rng(0).standard_normal(({H}, {paths}, values.shape[1]))[None].astype(np.float32)'


def export_reads(encoding: dict, horizon: int, blend: float) -> dict:
    """What a forecast reads of the points before its origin, as rows of the exported graph's
    ``history`` (export/onnx.py's ``forecaster_graph`` documents each entry): the N points before
    the origin, where N covers the window and the seasonal lags of its first step
    (``Prepared.first_start``) and, when blended, the season of seasonal naive. Indices are those
    of a series whose first forecast step is N, so ``Prepared``'s own rules give them."""
    W, H, m = encoding["window"], horizon, encoding["season"]
    lags = encoding.get("lags", [])
    residual = bool(encoding.get("residual"))
    N = max(W + max(lags, default=0), m if blend != 1.0 else 1)
    window, steps, future = np.arange(N - W, N), np.arange(N - W + 1, N + 1), np.arange(N, N + H)  # Prepared.read_window
    base = (lambda t: seasonal_reference(t, N, lags[0])) if residual else (lambda t: None)  # noqa: E731  (Prepared.base)
    return {"history": N, "window": window, "window_base": base(window),
            "covariate_base": (base(steps), base(future)) if residual else None,
            "lags": [(seasonal_reference(steps, N, lag), seasonal_reference(future, N, lag))
                     for lag in (lags[1:] if residual else lags)],  # Prepared.input_lags
            "naive": seasonal_reference(future, N, m) if m > 1 else np.full(H, N - 1),  # baselines
            "frequencies": calendar_frequencies(encoding.get("periods", encoding["period"])),
            "calendar_offsets": (steps - N, future - N)}


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
            seasons = opts.seasons or series.seasons or ((series.season,) if series.season else None) \
                or detect_seasons(series.time) or (1,)
            season = max(seasons)
            lags = seasonal_lags(seasons, opts.seasonal)
            window = opts.window or max(2 * max(H, season if season > 1 and not lags else 0), 24)
            # the lags of the first window's steps, training, validation, backtest
            check_series(series, max(lags, default=1) + window + H * (opts.origins + opts.valid_origins + 1))
            first_origin = len(series) - opts.origins * H
            train = self.filled[: first_origin]
            periods = [season_period(series.time, m) for m in seasons if m > 1]
            std = np.maximum(train.std(axis=0), 1e-8)
            # a residual model's unit: the spread of the residuals over seasonal naive in the training part
            # (a window's own residuals can be far calmer than the steps after it)
            residual_std = np.maximum((train[season:] - train[:-season]).std(axis=0) / std, 1e-3) if lags else None
            self.encoding = {"columns": series.target, "season": int(season), "seasons": [int(m) for m in seasons],
                             "window": int(window), "period": periods[-1] if periods else float(season), "periods": periods,
                             "lags": lags, "residual": bool(lags) and opts.seasonal == "residual",
                             "mean": train.mean(axis=0).tolist(), "std": std.tolist(),
                             "first_origin": int(first_origin)}
            if self.encoding["residual"]:
                self.encoding["residual_std"] = residual_std.tolist()
        e = self.encoding
        self.window, self.season = e["window"], e["season"]
        self.lags = e.get("lags", [])  # a model from before the lags has none
        self.residual = bool(e.get("residual"))
        #: the lags the network reads: a residual model's first lag is its base, zero as a residual
        self.input_lags = self.lags[1:] if self.residual else self.lags
        self.scaled = ((self.filled - np.array(e["mean"])) / np.array(e["std"])).astype(np.float32)
        self.calendar = calendar_features(len(series) + H + 1, e.get("periods", e["period"]))
        #: the first step a window may start at: its residuals and lags lie in the series
        self.first_start = max(self.lags, default=0)

    def base(self, start: int, end: int, origin: int) -> np.ndarray:
        """(end − start, C) what the network's values are relative to for the steps start … end−1
        of a forecast from ``origin``, in scaled units: a residual model's seasonal naive (the
        first lag's value), else 0."""
        if not self.residual:
            return np.zeros((end - start, self.scaled.shape[1]))
        return self.scaled[seasonal_reference(np.arange(start, end), origin, self.lags[0])].astype(np.float64)

    def modelled(self, start: int, end: int, origin: int) -> np.ndarray:
        """(end − start, C) the values of steps start … end−1 as the network sees them for a
        forecast from ``origin``, before the window's level and spread: scaled values less ``base``."""
        return self.scaled[start:end].astype(np.float64) - self.base(start, end, origin)

    def covariates(self, start: int, end: int, origin: int, level: np.ndarray, spread: np.ndarray) -> np.ndarray:
        """(end − start, F) known-in-advance covariates of the steps start … end−1 for a forecast
        from ``origin``: the calendar features, then each input lag's value for each column
        (F_cal + L·C), less ``base``, in the window's units (value − level) / spread."""
        t = np.arange(start, end)
        parts = [self.calendar[start:end]]
        base = self.base(start, end, origin)
        for lag in self.input_lags:
            values = self.scaled[seasonal_reference(t, origin, lag)].astype(np.float64) - base
            parts.append(np.clip((values - level) / spread, -INPUT_BOUND, INPUT_BOUND).astype(np.float32))
        return np.concatenate(parts, axis=1)

    def read_window(self, start: int, end: int, level: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(z, level, spread) for the steps start … end−1: z (end − start, C + F), each value as
        (value − level) / spread, with the next step's covariates. level (C,): the window's mean
        ("window", "scale") or 0; spread (C,): the window's standard deviation ("scale") or 1.
        Level and spread are taken in float64 (float32 sums of values near 1e38 overflow), and z
        is bounded by ``INPUT_BOUND``. The values are those of ``modelled``: a residual model's
        level is its window's mean residual, and its spread (``scale``) the residuals' standard
        deviation in the training part, ``residual_std``: the units it forecasts in."""
        values = self.modelled(start, end, end)
        C = values.shape[1]
        mean = values.mean(axis=0) if level in ("window", "scale") else np.zeros(C)
        if level == "scale":
            spread = np.array(self.encoding["residual_std"]) if self.residual else np.maximum(values.std(axis=0), 1e-3)
        else:
            spread = np.ones(C)
        z = np.clip((values - mean) / spread, -INPUT_BOUND, INPUT_BOUND).astype(np.float32)
        return (np.concatenate([z, self.covariates(start + 1, end + 1, end, mean, spread)], axis=1),
                mean.astype(np.float32), spread.astype(np.float32))

    def unscale(self, x: np.ndarray) -> np.ndarray:
        return x * np.array(self.encoding["std"]) + np.array(self.encoding["mean"])


def build_model(opts: ForecastOptions, encoding: dict, seed: int) -> Forecaster:
    C = len(encoding["columns"])
    calendar = calendar_features(1, encoding.get("periods", encoding["period"])).shape[1]
    residual = bool(encoding.get("residual"))
    lags = encoding.get("lags", [])[1 if residual else 0 :]  # Prepared.input_lags
    # a residual model starts at its base: seasonal naive (plus the window's mean residual)
    return Forecaster(C, calendar + len(lags) * C, opts.horizon, opts.hidden, opts.cell, opts.layers, opts.mode,
                      opts.dropout, rng=np.random.default_rng(seed), cell_settings=opts.cell_option, zero_mean=residual,
                      init=opts.init)


def forecast_at(model: Forecaster, data: Prepared, origin: int, opts: ForecastOptions, seed: int = 0,
                widen: float = 1.0, blend: float = 1.0) -> dict:
    """The forecast of the H steps from ``origin`` (index of the first forecast point), in data units:
    mean, lower and upper 80% bounds, (H, C) each; ``blend`` shrinks the mean towards seasonal
    naive and ``widen`` scales the intervals about it (the calibration of ``TrainedForecaster``)."""
    H, W = opts.horizon, data.window
    if origin < W + data.first_start:  # the window, and the seasonal lags of its first step
        raise DataError(f"data: a forecast needs the {W + data.first_start} points before it, and only {origin} come "
                        "before this one")
    z, level, spread = data.read_window(origin - W, origin, opts.level)
    future = data.covariates(origin, origin + H, origin, level, spread)
    mean, sigma, samples = model.forecast(z[:, None], future, paths=opts.paths if opts.mode == "recursive" else 0, rng=seed)
    if samples is not None:
        lo, hi = np.quantile(samples, [0.1, 0.9], axis=0)
    else:
        lo, hi = mean - Z80 * sigma, mean + Z80 * sigma
    lo, hi = mean + widen * (lo - mean), mean + widen * (hi - mean)
    base = data.base(origin, origin + H, origin)
    back = lambda x: data.unscale(x * spread + level + base)  # noqa: E731  (the window's units → the data's)
    mean, lo, hi = back(mean), back(lo), back(hi)
    if blend != 1.0:
        shift = (1 - blend) * (baselines(data, origin, H)["seasonal_naive"] - mean)
        mean, lo, hi = mean + shift, lo + shift, hi + shift
    return {"mean": mean, "lower": lo, "upper": hi}


def baselines(data: Prepared, origin: int, H: int) -> dict:
    """Naive (the last value) and seasonal naive (the value one season earlier) forecasts, (H, C)."""
    y, m = data.filled, data.season
    naive = np.repeat(y[origin - 1 : origin], H, axis=0)
    steps = np.arange(H)
    seasonal = y[origin - m + steps % m] if m > 1 else naive
    return {"naive": naive, "seasonal_naive": seasonal}


def backtest(model: Forecaster, data: Prepared, origins: list[int], opts: ForecastOptions, widen: float = 1.0,
             blend: float = 1.0) -> dict:
    """Scores of the model and the baselines over the forecasts from every origin, pooled over
    every observed point (MASE scales each column by its own in-sample seasonal-naive error);
    ``forecasts`` keeps each origin's numbers for plots."""
    H = opts.horizon
    train = data.filled[: data.encoding["first_origin"]]
    scale = np.array([M.seasonal_naive_scale(train[:, c], data.season) for c in range(train.shape[1])])
    actual, seen, lower, upper, forecasts = [], [], [], [], []
    pooled = {"rnnkit": [], "naive": [], "seasonal_naive": []}
    for k, origin in enumerate(Progress.over(origins, "backtest", unit="origin")):
        f = forecast_at(model, data, origin, opts, seed=k, widen=widen, blend=blend)
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
    """Training on random windows of the training part; validation from the origins before the
    backtest. ``refit``: the windows' targets reach the first backtest origin (validation included)."""

    def __init__(self, model: Forecaster, data: Prepared, opts: ForecastOptions, seed: int, refit: bool = False):
        self.model, self.data, self.opts, self.seed = model, data, opts, seed
        self.loss_fn = GaussianNLLLoss(reduction="sum")
        H, W = opts.horizon, data.window
        self.valid_origins = [data.encoding["first_origin"] - v * H for v in range(opts.valid_origins, 0, -1)]
        train_end = data.encoding["first_origin"] if refit else self.valid_origins[0]
        # every target of a training window lies before train_end
        self.last_start = train_end - W - (H if opts.mode == "direct" else 1)
        if self.last_start < data.first_start:
            lags = f" and seasonal lags of up to {max(data.lags)} steps" if data.lags else ""
            raise DataError(f"data: too few points to train: a window of {W}, a horizon of {H}{lags} need more than the "
                            f"{self.valid_origins[0]} points before the validation origins; lower --window, --origins "
                            "or --valid-origins" + (", or use --seasonal none" if data.lags else ""))

    def train_step(self) -> tuple[float, int, int]:
        rng = self.batch_rng()
        starts = rng.integers(self.data.first_start, self.last_start + 1, self.opts.batch_size)
        starts = parallel.share_of(starts)
        H, W, d = self.opts.horizon, self.data.window, self.data
        windows = [d.read_window(s, s + W, self.opts.level) for s in starts]
        z = np.stack([w for w, _, _ in windows], axis=1)
        level = np.stack([m for _, m, _ in windows])  # (B, C)
        spread = np.stack([r for _, _, r in windows])
        if self.opts.mode == "direct":
            future = np.stack([d.covariates(s + W, s + W + H, s + W, m, r) for s, (_, m, r) in zip(starts, windows)])
            target = (np.stack([d.modelled(s + W, s + W + H, s + W) for s in starts]) - level[:, None]) / spread[:, None]
            seen = np.stack([d.observed[s + W : s + W + H] for s in starts])
        else:
            future = None
            target = (np.stack([d.modelled(s + 1, s + W + 1, s + W) for s in starts], axis=1) - level[None]) / spread[None]
            seen = np.stack([d.observed[s + 1 : s + W + 1] for s in starts], axis=1)
        mu, var = self.model(z, future)
        n = max(int(seen.sum()), 1)
        loss = self.loss_fn(mu[seen], target[seen], var[seen]) / n  # missing targets (mask) are left out
        d_mu, d_var = np.zeros_like(mu), np.zeros_like(var)
        d_mu[seen], d_var[seen] = self.loss_fn.backward(1.0 / n)
        self.model.backward(d_mu, d_var)
        return loss, n, int(seen.sum())

    def evaluate(self) -> dict:
        """Over the validation origins: the scaled MAE of the network ("loss"), the MAE of the
        network and of the seasonal-naive forecast on the same points (the guard), the raw
        coverage of the 80% intervals, and the calibration the loaded model applies: ``blend``
        (``best_blend``), the MAE with it (``blended_mae``), and ``widen`` (``interval_factor``)."""
        points = validation_points(self.model, self.data, self.valid_origins, self.opts)
        y, mu, sn, lower, upper = (np.concatenate(points[k]) for k in ("y", "mean", "seasonal_naive", "lower", "upper"))
        blend, blended_mae = best_blend(y, mu, sn)
        std = np.broadcast_to(np.array(self.data.encoding["std"]), points["std_shape"])
        return {"loss": float(np.mean(np.abs(mu - y) / std[points["seen"]])), "mae": M.mae(y, mu),
                "seasonal_naive_mae": M.mae(y, sn), "blend": blend, "blended_mae": blended_mae,
                "coverage80": M.coverage(y, lower, upper),
                "widen": interval_factor(y, sn + blend * (mu - sn), (upper - lower) / 2)}


def validation_points(model: Forecaster, data: Prepared, origins: list[int], opts: ForecastOptions) -> dict:
    """The network's forecasts from each origin, uncalibrated, at its observed points: lists (one
    array per origin) of ``y``, ``mean``, ``lower``, ``upper`` and ``seasonal_naive``; ``seen`` (the
    mask of the points, all origins stacked) and ``std_shape``, its shape."""
    H = opts.horizon
    points = {k: [] for k in ("y", "mean", "lower", "upper", "seasonal_naive")}
    seen = np.stack([data.observed[origin : origin + H] for origin in origins])
    for origin, mask in zip(origins, seen):
        f = forecast_at(model, data, origin, opts)
        values = {"y": data.raw[origin : origin + H], "seasonal_naive": baselines(data, origin, H)["seasonal_naive"], **f}
        for k in points:
            points[k].append(values[k][mask])
    return dict(points, seen=seen, std_shape=seen.shape)


def best_blend(y: np.ndarray, mean: np.ndarray, naive: np.ndarray) -> tuple[float, float]:
    """(α, MAE): the weight α in 0, 0.05 … 1 of ``mean`` against ``naive`` (μ = naive + α·(mean −
    naive)) with the lowest MAE on y; of equal ones the larger weight."""
    blends = {round(float(a), 2): M.mae(y, naive + a * (mean - naive)) for a in np.linspace(1, 0, 21)}
    blend = min(blends, key=blends.get)  # the first of equal ones: the larger weight
    return blend, blends[blend]


def interval_ratios(y: np.ndarray, mean: np.ndarray, half: np.ndarray) -> np.ndarray:
    """The conformal scores: |y − μ| / half-width, the factor each interval needs to hold its value."""
    return np.abs(np.asarray(y, np.float64) - mean) / np.maximum(half, 1e-12)


def conformal_quantile(ratios: np.ndarray, level: float = 0.8) -> float:
    """Split conformal: the ⌈level·(n + 1)⌉-th smallest of the n ratios (the largest when that
    rank is beyond n, with so few ratios no factor is certain to do; 1 with none), within the factor
    limits."""
    ratios = np.sort(np.ravel(ratios))
    if not len(ratios):
        return 1.0
    rank = min(len(ratios), max(1, int(np.ceil(level * (len(ratios) + 1)))))
    return float(np.clip(ratios[rank - 1], 1 / WIDEN_LIMIT, WIDEN_LIMIT))


def interval_factor(y: np.ndarray, mean: np.ndarray, half: np.ndarray, narrow: bool | None = None) -> float:
    """The factor that scales the 80% intervals (half-widths ``half`` about ``mean``) so that they
    hold 80% of y: split conformal, the ⌈0.8·(n + 1)⌉-th smallest of the n ratios |y − μ| / half.
    ``narrow`` (default ``NARROW``): whether a factor below 1 may narrow them, or only widen."""
    factor = conformal_quantile(interval_ratios(y, mean, half))
    return max(1 / WIDEN_LIMIT if (NARROW if narrow is None else narrow) else 1.0, factor)


def seasonal_naive_check(metrics: dict, season: int) -> str | None:
    """The guard: one line on how the model's validation MAE compares with the seasonal-naive
    forecast's on the same points; None for a model trained before the guard."""
    if "mae" not in metrics or "seasonal_naive_mae" not in metrics:
        return None
    model, naive, blend = metrics["mae"], metrics["seasonal_naive_mae"], metrics.get("blend", 1.0)
    name = f"seasonal naive (m = {season})" if season > 1 else "naive (the last value; no season)"
    if model <= naive:
        return (f"the network beats {name} on validation: MAE {model:.4g} against {naive:.4g}"
                + (f"; forecasts blend them at weight {blend:g} (MAE {metrics['blended_mae']:.4g})" if blend < 1 else ""))
    kept = (f"the forecasts ARE {name}'s (blend weight 0)" if blend == 0 else
            f"the forecasts are shrunk towards {name} (blend weight {blend:g}, MAE {metrics['blended_mae']:.4g})")
    return (f"WARNING: the network LOSES to {name} on validation: MAE {model:.4g} against {naive:.4g}; {kept}; "
            "try --season, more --steps or another --window")


# ---- the trained model ------------------------------------------------------------------------


class TrainedForecaster(Exportable):
    """A trained forecaster loaded from its directory: forecast, evaluate (backtest), describe."""

    def __init__(self, out_dir: Path, config: dict, model: Forecaster):
        self.dir, self.config, self.model = Path(out_dir), config, model
        self.opts = ForecastOptions(**config["task_options"])
        self.encoding = config["encoding"]
        # the calibration at the validation origins, measured with the best weights
        self.widen = float(config.get("metrics", {}).get("widen", 1.0))
        self.blend = float(config.get("metrics", {}).get("blend", 1.0))

    def _prepared(self, data: str | None) -> Prepared:
        series = load_series(self.opts, data, self.encoding)
        if data is not None and series.target != self.encoding["columns"]:
            raise DataError(f"--data: the model forecasts {', '.join(self.encoding['columns'])}, "
                            f"the file's target columns are {', '.join(series.target)}")
        check_series(series, self.encoding["window"] + max(self.encoding.get("lags", []), default=0))  # the lags' history too
        return Prepared(series, self.opts, stored=self.encoding)

    def forecast(self, data: str | None = None) -> dict:
        """The H steps after the end of the series (the model's own, or ``data``): times, mean and 80% bounds."""
        prepared = self._prepared(data)
        n = len(prepared.series)
        f = forecast_at(self.model, prepared, n, self.opts, widen=self.widen, blend=self.blend)
        times = future_times(prepared.series.time, self.opts.horizon)
        return {"time": times, **f, "history": prepared}

    def onnx_model(self):
        """The ONNX model (``export/onnx.py``'s ``forecaster_graph``): what ``forecast`` computes
        from the points before an origin (and its index, for the calendar features; a recursive
        model's sampled paths from their draws, given): mean, sigma and the 80% interval of the H
        steps after it; its metadata holds the encoding, the calibration (blend, widen) and how to call it."""
        o = self.opts
        reads = export_reads(self.encoding, o.horizon, self.blend)
        N, calendar = reads["history"], bool(reads["frequencies"])
        paths = o.paths if o.mode == "recursive" else 0
        if o.mode == "direct":
            spread = f"sigma the network's; lower, upper = mean ∓ {Z80:.6f}·widen·sigma"
        elif paths:
            spread = (f"mean, sigma: those of the {paths} sampled paths; lower, upper: their 10% and 90% quantiles "
                      "(np.quantile's linear rule), widen times as far from the mean")
        else:
            spread = f"the means fed back; sigma each step's one-step sigma; lower, upper = mean ∓ {Z80:.6f}·widen·sigma"
        meta = {**export_metadata(self), "encoding": json.dumps(self.encoding), "widen": str(self.widen),
                "blend": str(self.blend), "history": str(N), "paths": str(paths), "prepare": EXPORT_FEEDS.format(
                    N=N, origin=', "origin": np.array([len(values)], np.int64)' if calendar else "",
                    noise=EXPORT_NOISE.format(H=o.horizon, paths=paths) if paths else ""),
                "inputs": f"history (B, {N}, C) float32: the {N} points before the first forecast step, in the data's units, "
                          "gaps filled (linear interpolation), the latest last"
                          + ("; origin (B,) int64: the first forecast step's index in its series, its first point 0 (after "
                             "a series' end: its length), the calendar features' phase"
                             if calendar else "")
                          + (f"; noise (B, {o.horizon}, {paths}, C) float32: each forecast's standard normal draws for its "
                             f"{paths} sampled paths, step by step: np.random.default_rng(seed).standard_normal(({o.horizon}, "
                             f"{paths}, C)) are rnnkit's for that seed (rnnkit forecast: 0)" if paths else ""),
                "outputs": "mean, sigma, lower, upper (B, H, C) in the data's units: the network's forecast"
                           + (" over seasonal naive (the residual it models)" if self.encoding.get("residual") else "")
                           + (f", blended with seasonal naive at weight {self.blend:g}" if self.blend != 1.0 else "")
                           + f"; {spread}, the calibrated 80% interval"}
        return onnx_export.forecaster_graph(self.model, self.encoding, reads, o.level, Z80, self.widen, self.blend, meta, paths)

    def evaluate(self, data: str | None = None) -> dict:
        """The rolling-origin backtest (see the module docstring); writes backtest.png."""
        prepared = self._prepared(data)
        H, K = self.opts.horizon, self.opts.origins
        origins = [len(prepared.series) - (K - k) * H for k in range(K)]
        report = backtest(self.model, prepared, origins, self.opts, self.widen, self.blend)
        plot = plot_backtest(prepared, report["forecasts"], self.dir / "backtest.png", self.opts.horizon)
        result = {f"{name}_{metric}": value for name, scores in report["scores"].items() for metric, value in scores.items()}
        result.update(points=report["points"], origins=K, plot=str(plot))
        check = seasonal_naive_check(self.config.get("metrics", {}), self.encoding["season"])
        if check:
            result["validation"] = check
        return result

    def describe(self, short: bool = False) -> str:
        c, o, e = self.config, self.opts, self.encoding
        m = c.get("metrics", {})
        periods = e.get("periods", [e["period"]] if e["period"] >= 2 else [])
        lags = e.get("lags", [])
        refitted = c.get("refit")
        lines = [
            f"model      {self.dir}: task forecast, {o.mode} H={o.horizon} ({c.get('status', '?')}), rnnkit {c.get('rnnkit_version')}"
            + (f"; refitted for {refitted['steps']} steps on the {refitted['until']:,} points before the backtest"
               if refitted else ""),
            f"network    {o.layers}-layer {cell_name(o.cell, o.cell_option, o.init)}, hidden {o.hidden}, window {e['window']}, Gaussian outputs"
            + (f", the residual over seasonal naive" if e.get("residual") else "") + f"; {self.model.num_parameters():,} parameters",
            f"series     {c['data']['source']}: {c['data']['points']:,} points of {', '.join(e['columns'])}; "
            + ("seasons " + ", ".join(map(str, e["seasons"])) if len(e.get("seasons", [])) > 1 else f"season {e['season']}")
            + (f"; calendar period{'s' if len(periods) > 1 else ''} " + ", ".join(f"{p:g}" for p in periods) if periods else "")
            + (f"; seasonal lags {', '.join(map(str, lags))}" if lags else ""),
        ]
        if m:
            lines.append(validation_line(m))
        check = seasonal_naive_check(m, e["season"])
        if check:
            lines.append(f"guard      {check}")
        return "\n".join(lines if not short else [lines[0], *lines[3:]])


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
                                    "seasons": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
                                    "window": {"type": "integer", "minimum": 1},
                                    "period": {"type": "finite", "exclusiveMinimum": 0},  # calendar features divide by it
                                    "periods": {"type": "array", "items": {"type": "finite", "minimum": 2}},
                                    # a lag reads the value that many steps back: at least one, and a bounded count
                                    "lags": {"type": "array", "maxItems": 64, "items": {"type": "integer", "minimum": 1}},
                                    "residual": {"type": "boolean"}, "residual_std": SPREADS_SCHEMA,
                                    "mean": MEANS_SCHEMA, "std": SPREADS_SCHEMA, "first_origin": {"type": "integer", "minimum": 1}},
                     "sameCount": ["columns", "mean", "std", "residual_std"],
                     "if": {"properties": {"residual": {"const": True}}, "required": ["residual"]},
                     "then": {"required": ["residual_std"]}},
        "data": data_schema("points"),
        "metrics": {"properties": {"widen": {"type": "finite", "minimum": 1 / WIDEN_LIMIT, "maximum": WIDEN_LIMIT},
                                   "blend": {"type": "finite", "minimum": 0, "maximum": 1}}},
        "refit": {"type": "object", "required": ["steps", "until"],
                  "properties": {"steps": {"type": "integer", "minimum": 1}, "until": {"type": "integer", "minimum": 1}}}}}

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

    def rebuild(self, config: dict, out_dir: Path, quiet: bool):
        # a resumed run saves the first run's weights until it has refitted again
        config.pop("refit", None)
        return super().rebuild(config, out_dir, quiet)

    def after_training(self, out_dir: Path, quiet: bool) -> None:
        """``--refit``: a fresh network (the run's seed and options) trained for the best step
        count on the windows that reach the first backtest origin, in a temporary directory; its
        weights become the model's. config.json keeps the validation metrics (and ``widen``) of
        the run that chose the step count, and records the refit."""
        group = parallel.world()
        config = group.on_first(lambda: md.load_config(out_dir))
        options, training = self.check_config(config, f"{md.CONFIG} in {out_dir}")
        if not options.refit:
            return
        steps = int(config.get("metrics", {}).get("step") or training.steps)
        data, encoding, _ = self.prepare(options, training.seed, config["encoding"])
        model = build_model(options, encoding, training.seed)
        run = ForecastRun(model, data, options, training.seed, refit=True)
        once = training.for_steps(steps)
        with tempfile.TemporaryDirectory(prefix="rnnkit-refit-") as tmp:
            Trainer(model, run, tmp, dict(config, status="training"), once, quiet).fit()
            config["refit"] = {"steps": steps, "until": int(encoding["first_origin"])}
            if group.first:  # in a job, rank 0 writes (the others' tmp holds nothing)
                md.save_model(out_dir, config, md.load_model_weights(tmp))

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

