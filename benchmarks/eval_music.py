"""Folk tunes in ABC: characters against ABC tokens, and whether what the models write is music.

Two language models on ``folk-tunes`` (music21 10.5.1's ABC corpus, read as text, split tune by
tune with seed 0, 5% of the tunes held out), the same network and the same number of steps,
one on characters (``--tokenizer char``) and one on ABC tokens (``--tokenizer abc``, folk-rnn's
units). Both are scored in validation bits per CHARACTER (the ABC model's nats per token
summed over the validation text and divided by its characters), so the two compare.

Then, for 100 tunes each of: the validation tunes (the first 100 of the held-out part), each
model's samples (temperature 1, from a newline, seed 0; the tunes of the text that a blank line
closes), and a bigram model of the same ABC tokens (counts of the training tunes, add-0.5
smoothing fixed beforehand, sampled the same way): the share that music21's ABC reader parses
with a note, the share whose bars all match ``M:`` (``rnnkit.music.notation.tune_checks``:
except the first and last bar and bars beside repeats) and the share ending on the key's tonic.

    python benchmarks/eval_music.py --steps 400            # about 15 min on 2 busy cores
    python benchmarks/eval_music.py --steps 400 --reuse    # evaluate the models already trained

Results: ``benchmarks/results/music/folk_tunes.json``; three generated tunes of the better
model as MIDI (and their piano rolls) beside it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rnnkit
from rnnkit.data.abc import folk_tunes, split_tunes, tune_texts
from rnnkit.data.corpora import join_texts
from rnnkit.data.errors import DataError
from rnnkit.data.tokenizers import AbcTokenizer
from rnnkit.music import write_tunes
from rnnkit.music.notation import parse_tune, tune_checks, write_midi

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_commit, machine_info, write  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "music"
TUNES = 100
SMOOTHING = 0.5  # the bigram's add-k, fixed before any result


def network(args) -> dict:
    return dict(data="folk-tunes", cell="lstm", layers=1, hidden=args.hidden, embed=32, batch_size=32, seq_len=100,
                steps=args.steps, valid_every=args.steps // 2, log_every=50, lr=2e-3, seed=0)


def train(tokenizer: str, args) -> tuple[object, float]:
    out = Path(args.models) / f"folk_{tokenizer}"
    if args.reuse and (out / "model.safetensors").exists():
        return rnnkit.load(out), float("nan")
    start = time.time()
    model = rnnkit.train("lm", out, overwrite=True, quiet=True, tokenizer=tokenizer, **network(args))
    return model, time.time() - start


def closed_tunes(text: str) -> list[str]:
    """The tunes of sampled text that a blank line closes (the last, cut by the length, is not)."""
    head, _, _ = text.rstrip(" ").rpartition("\n\n")
    return tune_texts(head)


MAX_CHUNKS = 20  # a model that writes no tune (untrained) stops here, with fewer than TUNES tunes


def sample_tunes(model, seed: int = 0) -> tuple[list[str], int]:
    """``TUNES`` tunes from ``model`` at temperature 1; (tunes, tokens sampled)."""
    tunes, tokens, chunk = [], 0, 4000
    for _ in range(MAX_CHUNKS):
        if len(tunes) >= TUNES:
            break
        text = model.generate("\n", chunk, temperature=1.0, seed=seed + tokens)
        tunes += closed_tunes(text)
        tokens += chunk
    return tunes[:TUNES], tokens


class Bigram:
    """P(token | previous token) from counts of the training text's ABC tokens, add-k smoothed."""

    def __init__(self, text: str, k: float = SMOOTHING):
        self.tok = AbcTokenizer.from_text(text)
        ids = self.tok.encode(text)
        n = len(self.tok)
        counts = np.full((n, n), k)
        np.add.at(counts, (ids[:-1], ids[1:]), 1)
        self.p = counts / counts.sum(1, keepdims=True)

    def bits_per_char(self, text: str) -> float:
        ids = self.tok.encode(text)
        nats = -np.log(self.p[ids[:-1], ids[1:]]).sum()
        chars = sum(len(t) for t in AbcTokenizer.split(text)[1:])
        return float(nats / math.log(2) / chars)

    def sample(self, length: int, rng) -> str:
        out, prev = [], self.tok.index["\n"]
        cum = np.cumsum(self.p, axis=1)
        for u in rng.random(length):
            prev = int(np.searchsorted(cum[prev], u * cum[prev, -1]))
            out.append(prev)
        return self.tok.decode(np.array(out))


def bigram_tunes(bigram: Bigram) -> list[str]:
    rng, tunes = np.random.default_rng(0), []
    for _ in range(MAX_CHUNKS):
        if len(tunes) >= TUNES:
            break
        tunes += closed_tunes(bigram.sample(4000, rng))
    return tunes[:TUNES]


def readable(tunes: list[str]) -> list[str]:
    """The tunes music21 both reads and writes as MIDI, in order."""
    keep = []
    with tempfile.TemporaryDirectory() as tmp:
        for tune in tunes:
            try:
                write_midi(parse_tune(tune), Path(tmp) / "t.mid")
            except DataError:
                continue
            keep.append(tune)
    return keep


def judge(tunes: list[str]) -> dict:
    """Shares of ``tunes`` that music21 parses, whose bars match M:, that end on the tonic."""
    parsed = bars = tonic = 0
    errors = []
    for tune in tunes:
        try:
            checks = tune_checks(parse_tune(tune))
        except DataError as exc:
            errors.append(str(exc)[:120])
            continue
        parsed += 1
        bars += checks["bars_match"]
        tonic += checks["ends_on_tonic"]
    n = max(1, len(tunes))  # the shares count a missing tune as a failure: out of TUNES
    n = max(n, TUNES)
    return {"tunes": len(tunes), "parsed": parsed / n, "parsed_and_bars_match": bars / n, "parsed_and_ends_on_tonic": tonic / n,
            "first_errors": errors[:3], "mean_characters": float(np.mean([len(t) for t in tunes])) if tunes else 0.0}


def main() -> int:
    global TUNES, RESULTS
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--models", default="models/music", help="where the two models are trained")
    p.add_argument("--reuse", action="store_true", help="evaluate models already trained in --models")
    p.add_argument("--tunes", type=int, default=TUNES, help="tunes judged per set (a smoke test: a few)")
    p.add_argument("--results", default=str(RESULTS), help="where the JSON and the MIDI files go")
    args = p.parse_args()
    TUNES, RESULTS = args.tunes, Path(args.results)
    report = {"machine": machine_info(), "git": git_commit(), "network": network(args), "loads": []}

    def load_now(what):
        report["loads"].append({"at": what, "load_average": os.getloadavg()})
        print(f"[{time.strftime('%H:%M:%S')}] {what}; load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)

    tunes, reading = folk_tunes()
    train_tunes, valid_tunes = split_tunes(tunes, 0.05, seed=0)
    report["data"] = {"source": reading.describe(), "train_tunes": len(train_tunes), "valid_tunes": len(valid_tunes)}
    results, sampled_tunes = {}, {}
    for kind in ("char", "abc"):
        load_now(f"training {kind}")
        model, seconds = train(kind, args)
        load_now(f"evaluating {kind} (trained in {seconds:.0f} s)")
        metrics = model.evaluate()
        samples, sampled = sample_tunes(model)
        sampled_tunes[kind] = samples
        results[kind] = {"train_seconds": seconds, "parameters": model.model.num_parameters(),
                         "vocabulary": len(model.tokenizer), "valid_bits_per_char": metrics["bits_per_char"],
                         "valid_bits_per_token": metrics.get("bits_per_token", metrics["bits_per_char"]),
                         "tokens_sampled": sampled, "generated": judge(samples), "examples": samples[:3]}
        print(kind, results[kind]["valid_bits_per_char"], results[kind]["generated"], file=sys.stderr, flush=True)
    load_now("bigram and real tunes")
    bigram = Bigram(join_texts(train_tunes))
    results["bigram_abc"] = {"valid_bits_per_char": bigram.bits_per_char(join_texts(valid_tunes)),
                             "generated": judge(bigram_tunes(bigram))}
    results["real_validation"] = {"generated": judge(valid_tunes[:TUNES])}
    best = min(("char", "abc"), key=lambda k: results[k]["valid_bits_per_char"])
    report.update(results=results, best=best)
    load_now("writing")
    write(RESULTS / "folk_tunes.json", report)  # first: the files below must not cost the numbers
    examples = "\n\n".join(readable(sampled_tunes[best])[:3])  # the first three music21 reads and writes
    heard = write_tunes(examples, {"abc": RESULTS / "generated.abc", "midi": RESULTS / "generated.mid",
                                   "png": RESULTS / "generated.png"})
    report["written"] = heard.describe()
    write(RESULTS / "folk_tunes.json", report)
    for name, r in results.items():
        g = r["generated"]
        print(f"{name:<16} bpc {r.get('valid_bits_per_char', float('nan')):.3f}  parsed {g['parsed']:.2f}  "
              f"bars {g['parsed_and_bars_match']:.2f}  tonic {g['parsed_and_ends_on_tonic']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
