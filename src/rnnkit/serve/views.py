"""What each task's page shows, as JSON-ready dicts: the task's own action (``classify``, ``tag``,
``translate``, ``forecast``, ``detect``) called on a loaded model, its arrays turned into lists
and its times into text. Forecast and detect read the model's own series (the files it learnt
from, checked by their fingerprints): no request names a path.

Every function here runs under the model's lock (``app.ModelLock``).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np

from ..data import Tokenizer
from ..nn import no_grad
from ..tasks.classify import encode_inputs

#: bounds on what one request may ask
MAX_TEXTS = 32
MAX_TEXT_CHARS = 2000
MAX_SERIES_POINTS = 20000  # a detector's series beyond this is sent as its last MAX points
MAX_BEAM = 16
DIGITS = 5


def _times(times) -> list:
    return [t.isoformat() if isinstance(t, datetime) else float(t) for t in times]


def _floats(values) -> list:
    """Rounded floats, None where a value is missing (JSON has no NaN)."""
    a = np.round(np.asarray(values, np.float64), DIGITS)
    return np.where(np.isfinite(a), a, None).tolist()


def check_texts(texts, name: str = "texts") -> list[str]:
    if not isinstance(texts, list) or not 1 <= len(texts) <= MAX_TEXTS or not all(isinstance(t, str) for t in texts):
        raise ValueError(f"{name}: expected a list of 1 to {MAX_TEXTS} strings")
    long = [i + 1 for i, t in enumerate(texts) if len(t) > MAX_TEXT_CHARS]
    if long:
        raise ValueError(f"{name}: text {long[0]} is longer than {MAX_TEXT_CHARS} characters")
    return texts


def describe(trained) -> dict:
    """What every page shows first: the task and the model's own description."""
    return {"task": trained.config["task"], "description": trained.describe()}


def classify(trained, texts=None, series=None) -> dict:
    """{"results": [{"label", "probabilities"} or {"value"}]} for texts (a text model) or series
    (a series model: each a list of points, each a list of channel values)."""
    text_model = trained.encoding["input"] == "text"
    if text_model:
        if series is not None:
            raise ValueError("series: this model reads texts; send texts")
        items = check_texts(texts)
    else:
        if texts is not None:
            raise ValueError("texts: this model reads series; send series: a list of series, each a list of points")
        if not isinstance(series, list) or not 1 <= len(series) <= MAX_TEXTS:
            raise ValueError(f"series: expected a list of 1 to {MAX_TEXTS} series")
        items = []
        for i, s in enumerate(series):
            try:
                a = np.asarray(s, np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"series: series {i + 1} is not a list of numbers (or of lists of numbers)") from None
            a = a[:, None] if a.ndim == 1 else a
            if not 1 <= len(a) <= MAX_SERIES_POINTS or not np.isfinite(a).all():
                raise ValueError(f"series: series {i + 1} needs 1 to {MAX_SERIES_POINTS} finite points")
            items.append(a)
    results = trained.classify(items)
    if text_model and trained.opts.pooling == "attention":
        for result, text in zip(results, items):
            result["tokens"], result["weights"] = attention_weights(trained, text)
    return {"results": results, "labels": trained.labels}


def attention_weights(trained, text: str) -> tuple[list[str], list[float]]:
    """The tokens of ``text`` as a text classifier with attention pooling reads them, and the weight
    α_t its pooling gives each (they sum to 1)."""
    ids = encode_inputs(trained.encoding, trained.opts, [text], "texts")[0]
    with no_grad():
        trained.model.eval()
        trained.model(ids[:, None], np.array([len(ids)]))
    tokenizer = Tokenizer.from_dict(trained.encoding["vocabulary"])
    return [tokenizer.decode([int(i)]) for i in ids], _floats(trained.model.pool.weights[:, 0])


def tag(trained, texts) -> dict:
    """{"results": [{"tokens", "tags", "entities": [{"type", "text", "start", "end"}]}]}."""
    results = trained.tag(check_texts(texts))
    return {"results": [{"tokens": r["tokens"], "tags": r["tags"],
                         "entities": [dict(zip(("type", "text", "start", "end"), e)) for e in r["entities"]]}
                        for r in results]}


def translate(trained, texts, beam=None) -> dict:
    """{"results": [{"text", "tokens", "source_tokens", "attention": (output × source) weights, …}]}."""
    if beam is not None and (isinstance(beam, bool) or not isinstance(beam, int) or not 1 <= beam <= MAX_BEAM):
        raise ValueError(f"beam: expected a width from 1 to {MAX_BEAM}, got {beam!r}")
    results = trained.translate(check_texts(texts), beam)
    return {"results": [{"text": r["text"], "tokens": r["tokens"], "source_tokens": r["source_tokens"],
                         "score": float(r["score"]), "log_prob": float(r["log_prob"]), "finished": bool(r["finished"]),
                         "attention": _floats(r["attention"]), "unknown": list(r["unknown"])} for r in results]}


def forecast(trained) -> dict:
    """The model's own series' tail and the H steps after it: {"columns", "history": {"time",
    "values": (N, C)}, "forecast": {"time", "mean", "lower", "upper": (H, C)}} (an 80% interval)."""
    f = trained.forecast()
    data = f["history"]
    H = len(f["time"])
    start = max(0, len(data.series) - max(6 * H, data.window))
    return {"columns": list(data.series.target), "horizon": H,
            "history": {"time": _times(data.series.time[start:]), "values": _floats(data.raw[start:])},
            "forecast": {"time": _times(f["time"]), "mean": _floats(f["mean"]), "lower": _floats(f["lower"]),
                         "upper": _floats(f["upper"])}}


def detect(trained) -> dict:
    """The model's own series with its scores: {"columns", "time", "values": (N, C), "scores",
    "scored", "threshold", "ranges": [[start, end)…], "labels"?, "first"}; a series longer than
    MAX_SERIES_POINTS is sent as its last points (``first``: the index of the first point sent)."""
    d = trained.detect()
    series = d["series"]
    first = max(0, len(series) - MAX_SERIES_POINTS)
    ranges = [[int(a) - first, int(b) - first] for a, b in d["ranges"] if b > first]
    result = {"columns": list(series.target), "first": first, "time": _times(series.time[first:]),
              "values": _floats(series.values[first:, : len(series.target)]), "scores": _floats(d["scores"][first:]),
              "scored": np.asarray(d["scored"][first:]).tolist(), "threshold": float(trained.detector.threshold),
              "ranges": [[max(a, 0), b] for a, b in ranges]}
    if d["labels"] is not None:
        result["labels"] = np.asarray(d["labels"][first:]).astype(int).tolist()
    return result
