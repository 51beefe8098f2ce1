"""Task `detect`: anomaly detection by prediction error, learnt from normal data.

A forecaster (``models.forecaster``, direct mode) reads the W points before an origin o and
predicts a Gaussian N(μ, σ²) for each of the next K points (``--horizon K``, default 1), so a
point t is forecast K times, from the origins t−K+1 … t. Its error is taken in the model's own
units of surprise (``--score scaled``) or in the training data's standard deviations
(``--score error``), over the channels c and the forecasts k that exist:

    e_t = sqrt(mean_k,c ((y_t,c − μ_t,c|k) / σ_t,c|k)²)      (--score error: without / σ)

so with ``scaled`` a point the model expected to be hard (large σ) needs a larger error to stand
out. The anomaly score is the mean of the last S errors (``--smooth S``, default 1: e_t itself):
an anomaly that lasts lifts a whole stretch of scores, not a few isolated points. Every score
reads only points before and at t, so scoring a whole series (all windows as one batch) and
streaming one point at a time (a ring buffer of W + K + S − 2 points: constant memory) give the
same numbers. The first W points of a series have no score (0).

The threshold comes from the scores of held-out normal data (the last ``--valid-fraction`` of
the training series): a percentile, or extreme-value theory's peaks-over-threshold (POT, Siffer
et al. 2017): the scores above their 98% quantile follow a generalised Pareto distribution,
fitted by the method of moments, and the threshold is the score exceeded with probability
``--risk``.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics as M
from ..data import DataError
from ..data.fingerprint import check_data, record_data
from ..export import onnx as onnx_export
from ..data.series import ANOMALY_SERIES, Series, anomaly_ranges, check_series, fill_gaps, read_series_table
from ..models.forecaster import Forecaster
from ..data.series import MISSING, TABLE_FORMATS
from ..models.sequence_model import INPUT_BOUND, cell_choices, cell_help, cell_name, cell_option_help, init_help
from ..nn import GaussianNLLLoss, no_grad
from ..training import model_dir as md
from ..training import parallel
from ..training.trainer import check_options
from ..training.plots import output_path, pyplot, save_figure
from .base import MEANS_SCHEMA, NAMES_SCHEMA, SPREADS_SCHEMA, Exportable, SeededRun, Task, export_metadata, data_schema, network_checks, register, validation_line

BUILT_IN = tuple(ANOMALY_SERIES)
SCORES = ("scaled", "error")
UCR_TOLERANCE = 100  # the UCR archive's criterion: the top score within 100 points of the labelled range


@dataclass
class DetectOptions:
    data: str = ""
    time: str = ""
    target: str = ""
    labels: str = "is_anomaly"
    missing: str = "error"
    window: int = 64
    # one-step, unsmoothed: the setting a synthetic validation series chose (K = 8, S = 32) ranked
    # worse on every real series (benchmarks/README.md, "Anomaly ranking"), so the default stays
    horizon: int = 1
    score: str = "scaled"
    smooth: int = 1
    cell: str = "lstm"
    cell_option: dict = field(default_factory=dict)
    init: str = "rnnkit"
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    batch_size: int = 32
    valid_fraction: float = 0.2
    threshold: str = "pot"
    percentile: float = 99.5
    risk: float = 1e-3

    # the values an option takes (the command line lists them in its usage)
    CHOICES = {"missing": MISSING, "score": SCORES, "cell": cell_choices()}
    HELP = {
        "data": "normal data to learn from: " + TABLE_FORMATS + "; or a built-in series: "
                + ", ".join(BUILT_IN) + " (its training part; its test part is what `evaluate` scores)",
        "time": "the time column (default: the first column; none in a file of one column of values)",
        "target": "the value column(s), comma-separated (default: every column but the time and --labels)",
        "labels": "the name of a 0/1 column marking anomalies, read by `evaluate --data` (left out of the values)",
        "missing": "missing values: error, interpolate, or mask (interpolated as inputs, no score, left out of the loss)",
        "window": "W, the points the model reads before each prediction",
        "horizon": "K, the points the model forecasts from each window; a point's error is taken over its K forecasts",
        "score": "a point's error: scaled (by the model's predicted spread σ) or error (in the training data's "
                 "standard deviations)",
        "smooth": "S: a point's score is the mean of the last S points' errors (1: its own error)",
        "cell": cell_help(),
        "cell_option": cell_option_help(),
        "init": "how the parameters start: " + init_help(),
        "hidden": "hidden size of each recurrent layer",
        "layers": "number of stacked recurrent layers",
        "dropout": "dropout between layers and before the output layer",
        "batch_size": "training windows per batch",
        "valid_fraction": "the last fraction of the normal data, held out for validation and the threshold",
        "threshold": "pot (extreme-value theory) or percentile",
        "percentile": "with --threshold percentile: the percentile of the held-out scores",
        "risk": "with --threshold pot: the probability of a normal score exceeding the threshold",
    }

    def __post_init__(self):
        checks = {"missing": self.missing in ("error", "interpolate", "mask"), "window": self.window >= 1,
                  "horizon": self.horizon >= 1, "score": self.score in SCORES, "smooth": self.smooth >= 1,
                  "valid_fraction": 0 < self.valid_fraction < 1, "threshold": self.threshold in ("pot", "percentile"),
                  "percentile": 0 < self.percentile < 100, "risk": 0 < self.risk < 0.1, "dropout": 0 <= self.dropout < 1,
                  **network_checks(self)}
        check_options(self, checks)


def load(opts: DetectOptions, spec: str | None = None, part: str = "train",
         stored: dict | None = None) -> tuple[Series, np.ndarray | None]:
    """A series and its 0/1 anomaly labels (None when it has none): the one ``spec`` names (from
    the command line), else ``opts.data``: for a loaded or resumed model (``stored``, its
    encoding) only while that is the file it was trained on."""
    if spec is None and stored is not None:
        check_data(opts, stored.get("data_files"), BUILT_IN.__contains__)
    spec = spec or opts.data
    if spec in BUILT_IN:
        a = ANOMALY_SERIES[spec]()
        return (a.train, None) if part == "train" else (a.test, a.labels)
    if not Path(spec).is_file():
        raise DataError(f"--data: {spec} is not a file nor a built-in series ({', '.join(BUILT_IN)})")
    series = read_series_table(spec, time=opts.time or None, missing=opts.missing, labels=opts.labels,
                               target=[t.strip() for t in opts.target.split(",") if t.strip()] or None)
    if opts.labels in series.columns:
        c = series.columns.index(opts.labels)
        labels = series.values[:, c]
        if not np.isin(labels, (0, 1)).all():
            raise DataError(f"{spec}: column {opts.labels!r} must hold 0 or 1 (the anomaly labels)")
        keep = [i for i in range(len(series.columns)) if i != c]
        series = Series(series.time, series.values[:, keep], [series.columns[i] for i in keep], series.mask[:, keep],
                        series.source, [t for t in series.target if t != opts.labels])
        return series, labels.astype(np.int8)
    return series, None


def pot_threshold(scores: np.ndarray, risk: float, level: float = 0.98) -> float:
    """Peaks over threshold: the score exceeded with probability ``risk`` under a generalised
    Pareto tail fitted (method of moments) to the scores above their ``level`` quantile."""
    t = float(np.quantile(scores, level))
    peaks = scores[scores > t] - t
    if peaks.size < 5:  # too few peaks to fit a tail: the highest held-out score
        return float(scores.max())
    m, v = peaks.mean(), peaks.var()
    gamma = 0.5 * (1 - m * m / v) if v > 0 else 0.0
    sigma = 0.5 * m * (m * m / v + 1) if v > 0 else m
    r = risk * scores.size / peaks.size
    if abs(gamma) < 1e-6:
        return t - sigma * np.log(r)
    return t + sigma / gamma * (r ** (-gamma) - 1)


def point_errors(x: np.ndarray, mu: np.ndarray, var: np.ndarray, scaled: bool = True) -> np.ndarray:
    """e_t of every point: x (N, C) scaled values; mu, var (N, K, C) the forecasts of each point,
    k = 0 the one from the nearest origin, NaN where there is none. → (N,), 0 where no forecast."""
    d = (x[:, None, :] - mu) / (np.sqrt(var) if scaled else 1.0)
    have = ~np.isnan(mu)
    sq = np.where(have, d * d, 0.0).sum(axis=(1, 2))
    n = have.sum(axis=(1, 2))
    return np.sqrt(np.divide(sq, n, out=np.zeros(len(x)), where=n > 0))


def smooth_scores(errors: np.ndarray, first: int, smooth: int, observed: np.ndarray | None = None) -> np.ndarray:
    """score_t = the mean of the errors (N,) of the observed points among t−S+1 … t from ``first``
    on (the points before it have none); 0 before ``first``. → (N,)."""
    N = len(errors)
    weight = np.ones(N) if observed is None else observed.astype(np.float64)
    weight[:first] = 0
    total = np.concatenate([[0.0], np.cumsum(errors * weight)])
    count = np.concatenate([[0.0], np.cumsum(weight)])
    t = np.arange(N)
    lo = np.maximum(t - smooth + 1, 0)
    n = count[t + 1] - count[lo]
    out = np.divide(total[t + 1] - total[lo], n, out=np.zeros(N), where=n > 0)
    out[:first] = 0
    return out


class Detector:
    """Scores and threshold of a trained model; ``mean``, ``std`` are the training data's scaling;
    ``score`` and ``smooth`` as ``--score`` and ``--smooth``; K is the model's horizon."""

    def __init__(self, model: Forecaster, window: int, mean, std, threshold: float | None = None,
                 score: str = "scaled", smooth: int = 1):
        self.model, self.window = model, window
        self.mean, self.std = np.asarray(mean), np.asarray(std)
        self.threshold, self.score, self.smooth = threshold, score, smooth

    @property
    def memory(self) -> int:
        """The points a score reads: W + K + S − 2 before it and itself."""
        return self.window + self.model.horizon + self.smooth - 1

    def forecasts(self, values: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The scaled values x (N, C) and every point's forecasts μ, σ² (N, K, C): [t, k] is the
        forecast of y_t from origin t − k (reading the W points before it); NaN where none."""
        x = (values - self.mean) / self.std
        inputs = np.clip(x, -INPUT_BOUND, INPUT_BOUND).astype(np.float32)
        (N, C), W, K = x.shape, self.window, self.model.horizon
        mu, var = np.full((N, K, C), np.nan), np.full((N, K, C), np.nan)
        origins = np.arange(W, N)
        with no_grad():
            self.model.eval()
            for s in range(0, origins.size, batch):
                o = origins[s : s + batch]
                z = np.stack([inputs[e - W : e] for e in o], axis=1)  # (W, b, C)
                m, v = self.model(z, np.zeros((len(o), K, 0), np.float32))  # (b, K, C)
                for k in range(K):
                    keep = o + k < N
                    mu[o[keep] + k, k], var[o[keep] + k, k] = m[keep, k], v[keep, k]
        return x, mu, var

    def errors(self, values: np.ndarray, scaled: bool = True) -> np.ndarray:
        """e_t for every point of ``values`` (N, C): (N,), 0 for the first W. Taken in float64 from
        the values themselves, so a huge value gets a huge (finite) error."""
        return point_errors(*self.forecasts(values), scaled=scaled)

    def scores(self, values: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
        """score_t for every point of ``values`` (N, C): (N,), 0 for the first W; the errors of
        points not ``observed`` (N,) bool are left out of their neighbours' means."""
        e = self.errors(values, scaled=self.score == "scaled")
        return smooth_scores(e, self.window, self.smooth, observed)

    def stream(self) -> "Stream":
        return Stream(self)


class Stream:
    """Streaming scores: ``update(value)`` → the score of that point, from a ring buffer of the
    ``detector.memory − 1`` points before it (constant memory); the same numbers as
    ``Detector.scores``."""

    def __init__(self, detector: Detector):
        self.detector = detector
        self.buffer: deque = deque(maxlen=detector.memory - 1)

    def update(self, value) -> float:
        value = np.atleast_1d(np.asarray(value, np.float64))
        d = self.detector
        score = 0.0
        if len(self.buffer) >= d.window:
            window = np.array(self.buffer)
            score = float(d.scores(np.concatenate([window, value[None]]))[-1])
        self.buffer.append(value)
        return score


class DetectRun(SeededRun):
    """Training on random windows of the normal data; validation on its held-out tail."""

    def __init__(self, model: Forecaster, series: Series, encoding: dict, opts: DetectOptions, seed: int):
        self.model, self.opts, self.seed = model, opts, seed
        self.values = fill_gaps(series.values)
        self.observed = series.mask.all(axis=1)
        self.split = encoding["split"]
        self.scaled = ((self.values - np.array(encoding["mean"])) / np.array(encoding["std"])).astype(np.float32)
        self.loss_fn = GaussianNLLLoss()
        self.detector = Detector(model, opts.window, encoding["mean"], encoding["std"], score=opts.score,
                                 smooth=opts.smooth)

    def train_step(self) -> tuple[float, int, int]:
        rng = self.batch_rng()
        W, K = self.opts.window, self.opts.horizon
        ends = rng.integers(W, self.split - K + 1, self.opts.batch_size)
        seen = np.array([self.observed[e : e + K].all() for e in ends])
        ends = ends[seen] if seen.any() else ends  # no loss on missing targets
        ends = parallel.share_of(ends)
        z = np.stack([self.scaled[e - W : e] for e in ends], axis=1)
        mu, var = self.model(z, np.zeros((len(ends), K, 0), np.float32))
        loss = self.loss_fn(mu, np.stack([self.scaled[e : e + K] for e in ends]), var)
        self.model.backward(*self.loss_fn.backward())
        return loss, len(ends), len(ends)

    def _held_out(self) -> tuple[np.ndarray, np.ndarray, int]:
        """The values (n, C) a held-out score reads, whether each was observed (n,), and where
        the held-out part starts in them."""
        start = max(0, self.split - self.detector.memory + 1)
        return self.values[start:], self.observed[start:], self.split - start

    def held_out_scores(self) -> np.ndarray:
        """The scores of the observed held-out points: what the threshold is drawn from."""
        values, observed, first = self._held_out()
        s = self.detector.scores(values, observed)[first:]
        return s[observed[first:]]

    def evaluate(self) -> dict:
        """The held-out mean squared scaled error (one-step: the mean Gaussian surprise), whatever
        --score and --smooth say, so that early stopping keeps the same weights for every scoring."""
        values, observed, first = self._held_out()
        e = self.detector.errors(values, scaled=True)[first:][observed[first:]]
        s = self.held_out_scores()
        return {"loss": float(np.mean(e * e)), "median_score": float(np.median(s)), "max_score": float(s.max())}


def prepare_series(opts: DetectOptions, stored: dict | None = None) -> tuple[Series, dict]:
    """The normal series and the encoding: the split point and the scaling of the training part."""
    series, _ = load(opts, stored=stored)
    check_series(series, opts.window + opts.horizon + 10, window=opts.window, horizon=opts.horizon + 10)
    split = stored["split"] if stored else int(round(len(series) * (1 - opts.valid_fraction)))
    if not stored and (split - opts.window - opts.horizon < 10 or len(series) - split < 10):
        raise DataError(f"data: {len(series)} points are too few for a window of {opts.window} with "
                        f"{opts.valid_fraction:.0%} held out; give more normal data or a shorter --window")
    if stored and not opts.window < split < len(series):  # the data is the model's own: config.json was edited
        raise DataError(f"config.json: encoding.split is {split}, but it must lie between the window ({opts.window}) and "
                        f"the {len(series)} points of {opts.data}; retrain or restore config.json")
    train = fill_gaps(series.values)[:split]
    encoding = stored or {"columns": series.target, "split": split, "mean": train.mean(axis=0).tolist(),
                          "std": np.maximum(train.std(axis=0), 1e-8).tolist(),
                          "data_files": record_data(opts, BUILT_IN.__contains__)}
    return series, encoding


def build_model(opts: DetectOptions, encoding: dict, seed: int) -> Forecaster:
    return Forecaster(len(encoding["columns"]), 0, opts.horizon, opts.hidden, opts.cell, opts.layers, "direct", opts.dropout,
                      rng=np.random.default_rng(seed), cell_settings=opts.cell_option, init=opts.init)


class TrainedDetector(Exportable):
    """A trained detector loaded from its directory: detect, evaluate, describe."""

    def __init__(self, out_dir: Path, config: dict, model: Forecaster):
        self.dir, self.config, self.model = Path(out_dir), config, model
        opts = self.opts = DetectOptions(**config["task_options"])
        e = self.encoding = config["encoding"]
        # the threshold, from the held-out normal scores of these weights (cheap: a few hundred windows)
        series, _ = prepare_series(opts, e)
        scores = DetectRun(model, series, e, opts, 0).held_out_scores()
        threshold = pot_threshold(scores, opts.risk) if opts.threshold == "pot" else float(np.percentile(scores, opts.percentile))
        self.detector = Detector(model, opts.window, e["mean"], e["std"], threshold, opts.score, opts.smooth)

    def _scored(self, data: str | None):
        series, labels = load(self.opts, data, part="test", stored=self.encoding)
        if series.target != self.encoding["columns"]:
            raise DataError(f"--data: the model reads {', '.join(self.encoding['columns'])}, "
                            f"the file's value columns are {', '.join(series.target)}")
        check_series(series, self.opts.window + 1)
        values = fill_gaps(series.values)
        scored = series.mask.all(axis=1)  # no score for a point that was not observed
        scores = self.detector.scores(values, scored)
        scored[: self.opts.window] = False  # nor for the first W: nothing before them to read
        scores[~scored] = 0
        return series, labels, scores, scored

    def onnx_model(self):
        """The ONNX model (``export/onnx.py``'s ``detector_graph``): the score of a point from the
        ``memory − 1`` points before it, and whether it passes the threshold; its metadata holds the
        encoding, the threshold and how to call it."""
        o, before = self.opts, self.detector.memory - 1
        meta = {**export_metadata(self), "encoding": json.dumps(self.encoding), "threshold": str(self.detector.threshold),
                "inputs": f"window (B, {before}, C) float32: the {before} points before the scored one (W + K + S − 2), "
                          "value (B, C): the point; in the data's units, gaps filled",
                "outputs": f"score (B,): the mean of the last {o.smooth} point(s)' errors, each over its {o.horizon} "
                           f"forecast(s), {o.score}; anomaly (B,): score > threshold; mean, sigma (B, C): the value's "
                           "forecast from the W points before it. rnnkit scores the first points of a series, which "
                           f"lack the {before} before them, from fewer forecasts and errors (none for the first W)"}
        return onnx_export.detector_graph(self.model, self.encoding, o.window, self.detector.threshold, o.score, o.smooth, meta)

    def detect(self, data: str | None = None) -> dict:
        """Scores, flags (score above the threshold) and the flagged ranges of a series; ``scored``
        is False where a point has no score (the first W, a missing value; its score is 0)."""
        series, labels, scores, scored = self._scored(data)
        if self.opts.data in BUILT_IN and data is None:
            train = len(ANOMALY_SERIES[self.opts.data]().train)
            scores[:train], scored[:train] = 0, False  # the test file repeats the training points first
        flags = scores > self.detector.threshold
        return {"series": series, "labels": labels, "scores": scores, "scored": scored, "flags": flags,
                "ranges": anomaly_ranges(flags)}

    def evaluate(self, data: str | None = None) -> dict:
        """On labelled data: whether the top score falls in (or within 100 points of) a labelled
        anomaly (the UCR archive's criterion); the ranking of the scored points (ROC-AUC, average
        precision), point-wise precision, recall and F1 of their flags, and point-adjusted ones."""
        result = self.detect(data)
        source = data or self.opts.data
        if result["labels"] is None:
            raise DataError(f"evaluate: {source} has no {self.opts.labels!r} column of anomaly labels"
                            + ("" if data else "; give --data FILE, a series with labelled anomalies"))
        labels, scores, scored = result["labels"], result["scores"], result["scored"]
        anomalous = int(labels[scored].sum())
        if anomalous in (0, int(scored.sum())):  # a ranking needs both kinds of point
            raise DataError(f"evaluate: the {int(scored.sum())} scored points of {source} are all labelled "
                            f"{int(anomalous > 0)} in {self.opts.labels!r} (the first {self.opts.window} points have no "
                            "score); ROC-AUC and precision need normal and anomalous points: give a series with both")
        top = int(np.argmax(scores))
        true_ranges = anomaly_ranges(labels)
        hit = any(a - UCR_TOLERANCE <= top < b + UCR_TOLERANCE for a, b in true_ranges)
        pointwise = M.pointwise_scores(labels[scored], result["flags"][scored])
        pa = M.point_adjusted_scores(labels, result["flags"])
        plot = plot_scores(result, self.detector.threshold, self.dir / "detection.png")
        return {"top_score_at": top, "top_score": float(scores[top]), "labelled": str(true_ranges), "top_in_anomaly": hit,
                "threshold": float(self.detector.threshold), "scored_points": int(scored.sum()),
                "flagged_points": int(result["flags"].sum()),
                "roc_auc": M.roc_auc(labels[scored], scores[scored]),
                "avg_precision": M.average_precision(labels[scored], scores[scored]),
                **{f"point_{k}": v for k, v in pointwise.items()},
                **{f"pa_{k}": v for k, v in pa.items()}, "plot": str(plot)}

    def describe(self, short: bool = False) -> str:
        c, o, e = self.config, self.opts, self.encoding
        m = c.get("metrics", {})
        lines = [
            f"model      {self.dir}: task detect ({c.get('status', '?')}), rnnkit {c.get('rnnkit_version')}",
            f"network    {o.layers}-layer {cell_name(o.cell, o.cell_option, o.init)}, hidden {o.hidden}, window {o.window}, Gaussian "
            f"prediction of {o.horizon} step(s); {self.model.num_parameters():,} parameters",
            f"score      {o.score} error" + (f", mean of the last {o.smooth} points" if o.smooth > 1 else "")
            + (f", over {o.horizon} forecasts" if o.horizon > 1 else ""),
            f"data       {c['data']['source']}: {c['data']['points']:,} normal points of {', '.join(e['columns'])}",
            f"threshold  {self.detector.threshold:.3f} ({o.threshold}"
            + (f", risk {o.risk}" if o.threshold == "pot" else f", percentile {o.percentile}") + ")",
        ]
        if m:
            lines.append(validation_line(m))
        return "\n".join(lines if not short else [lines[0], lines[-2], lines[-1]])


def scores_output(path, overwrite: bool) -> Path:
    """The --scores path, checked before any work: its directory exists, it is not a directory,
    and it is a new file unless ``overwrite``. Errors are ValueErrors that start with --scores."""
    path = output_path(path, "--scores")
    if path.exists() and not overwrite:
        raise ValueError(f"--scores: {path} exists; replace it with --overwrite, or choose another path")
    if path.exists() and not path.is_file():
        raise ValueError(f"--scores: {path} exists and is not a regular file; choose another path")
    return path


def write_scores(path: Path, result: dict, labels_name: str) -> None:
    """Every point of ``result`` (``TrainedDetector.detect``) as a CSV row, written atomically:
    its index, time, values (empty where missing), score (empty where it has none), whether the
    score is above the threshold (1/0) and its label, when the data has labels."""
    series, scores, scored, flags = result["series"], result["scores"], result["scored"], result["flags"]
    labels = result["labels"]
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(["index", "time", *series.columns, "score", "above_threshold"] + ([labels_name] if labels is not None else []))
    for i, t in enumerate(series.time):
        values = [repr(float(v)) if seen else "" for v, seen in zip(series.values[i], series.mask[i])]
        row = [i, t.isoformat() if hasattr(t, "isoformat") else t, *values,
               repr(float(scores[i])) if scored[i] else "", int(flags[i])]
        out.writerow(row + ([int(labels[i])] if labels is not None else []))
    try:
        md.atomic_write_bytes(path, buf.getvalue().encode("utf-8"))
    except OSError as exc:
        raise ValueError(f"--scores: {path}: cannot be written ({exc.strerror or exc})") from None


def plot_scores(result: dict, threshold: float, path: Path) -> Path:
    """The series with its labelled and flagged ranges, and the scores against the threshold."""
    plt = pyplot()
    series, scores = result["series"], result["scores"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 5.5), sharex=True)
    x = np.arange(len(scores))
    top.plot(x, series.values[:, 0], color="black", lw=0.7)
    top.set_title(f"{Path(series.source.split(';')[0]).name}: {series.target[0]}")
    if result["labels"] is not None:
        for i, (a, b) in enumerate(anomaly_ranges(result["labels"])):
            top.axvspan(a, b, color="C3", alpha=0.3, label="labelled anomaly" if i == 0 else None)
    for i, (a, b) in enumerate(result["ranges"]):
        bottom.axvspan(a, b, color="C1", alpha=0.4, label="flagged" if i == 0 else None)
    bottom.plot(x, scores, color="C0", lw=0.7, label="score")
    bottom.axhline(threshold, color="C3", ls="--", label=f"threshold {threshold:.2f}")
    bottom.set_xlabel("point")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left")
    return save_figure(fig, path)


@register
class DetectTask(Task):
    name = "detect"
    action = "detect"
    description = "time series: anomaly detection by prediction error, threshold by extreme-value theory or percentile"
    action_help = "Score every point of a series, flag those above the threshold and print the flagged ranges (and a PNG)."
    Options = DetectOptions
    config_schema = {"type": "object", "required": ["encoding", "data"], "properties": {
        "encoding": {"type": "object", "required": ["columns", "split", "mean", "std"],
                     "properties": {"columns": NAMES_SCHEMA, "split": {"type": "integer", "minimum": 1},
                                    "mean": MEANS_SCHEMA, "std": SPREADS_SCHEMA},
                     "sameCount": ["columns", "mean", "std"]},
        "data": data_schema("points")}}

    Trained = TrainedDetector


    def prepare(self, options: DetectOptions, seed: int, stored: dict | None = None):
        series, encoding = prepare_series(options, stored)
        return (series, encoding), encoding, {"source": series.source, "points": len(series)}

    def make_model(self, options: DetectOptions, encoding: dict, seed: int) -> Forecaster:
        return build_model(options, encoding, seed)

    def make_run(self, model, data, options: DetectOptions, seed: int) -> "DetectRun":
        series, encoding = data
        return DetectRun(model, series, encoding, options, seed)

    def add_action_arguments(self, p) -> None:
        p.add_argument("--data", metavar="FILE", help="the series to score (default: the built-in test series, "
                       "or the training data): " + TABLE_FORMATS + "; its value columns are the model's")
        p.add_argument("--plot", metavar="PNG", help="where to draw scores and flags (default: DIR/detection.png)")
        p.add_argument("--scores", metavar="CSV", help="write every point's score to this new CSV file: "
                       "index,time,<value columns>,score,above_threshold (and the labels column, when the data has one); "
                       "an empty score where a point has none (the first --window points, a missing value)")
        p.add_argument("--overwrite", action="store_true", help="replace the --scores file if it exists (default: refuse)")

    def act(self, model: TrainedDetector, args) -> int:
        plot_path = output_path(args.plot, "--plot") if args.plot else model.dir / "detection.png"
        scores_path = scores_output(args.scores, args.overwrite) if args.scores else None
        result = model.detect(args.data)
        times, scores = result["series"].time, result["scores"]
        sys.stdout.write(f"threshold {model.detector.threshold:.3f}: {int(result['flags'].sum())} points flagged "
                         f"in {len(result['ranges'])} range(s)\n")
        for a, b in sorted(result["ranges"], key=lambda r: -scores[r[0] : r[1]].max()):
            sys.stdout.write(f"{times[a]} … {times[b - 1]}\t{b - a} point(s)\tmax score {scores[a:b].max():.2f}\n")
        plot = plot_scores(result, model.detector.threshold, plot_path)
        sys.stdout.write(f"plot: {plot}\n")
        if scores_path:
            write_scores(scores_path, result, model.opts.labels)
            sys.stdout.write(f"scores: {scores_path} ({len(scores)} points, {int(result['scored'].sum())} scored)\n")
        return 0
