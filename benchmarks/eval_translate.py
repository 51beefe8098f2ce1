"""English → Spanish Bible verses with the `translate` task: attention against none, greedy against beam.

Data: ``--data bible`` (`rnnkit data install bible`: the World English Bible and the Reina-Valera
1909 from Debian's sword-text-web and sword-text-sparv, aligned verse by verse), the verses whose
two sides have at most 30 words, split by the task itself with the seed: 5% test, 5% validation,
the rest trains. Word tokens, cased; each side keeps its 8,000 most frequent tokens (the rest is
``<unk>``; the output layer over the target vocabulary is most of the cost of a step).

Both models are trained through ``rnnkit.train("translate", …)`` with one budget: the same steps,
batches, optimizer and seed; only ``attention`` differs (``bahdanau`` or ``none``; both have a
bidirectional LSTM encoder and a bridge from its final state to the decoder). The trainer keeps
the weights of the lowest validation loss. Those are scored on the test split with sacrebleu's
BLEU and chrF, decoding greedily and with beam search (width 5, GNMT length penalty 0.6),
against the raw reference verses. The attention of one held-out verse is drawn into a PNG.

Results: ``benchmarks/results/translate_bible.json`` (config, runs with their validation curves,
sample translations, machine facts, date, git commit) and ``translate_bible_attention.png``. The
two models train side by side in two processes (one BLAS thread each): about an hour on 2 cores.

    python benchmarks/eval_translate.py                   # both models
    python benchmarks/eval_translate.py --set steps=4000  # override any option (recorded)
    python benchmarks/eval_translate.py --work DIR --rescore   # score the models kept in DIR again (new decoding code)
    python benchmarks/eval_translate.py --quick           # a smoke test, not a measurement
"""

from __future__ import annotations

import os

# Each model trains in its own process on one core: one BLAS thread each, set before NumPy loads.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import datetime
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import rnnkit
from rnnkit.tasks.translate import PairData, plot_attention
from rnnkit.training import model_dir as md
from common import git_commit, machine_info, merge, parse_override, quick_output, write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

BASE = dict(
    data="bible", max_words=30, tokenizer="word", max_vocab=8000, cell="lstm", embed=128, hidden=128, layers=1,
    dropout=0.2, batch_size=64, valid_fraction=0.05, test_fraction=0.05, beam=5, length_penalty=0.6,
    optimizer="adam", lr=2e-3, clip=5.0, schedule="constant", steps=3000, valid_every=300, patience=0, seed=0,
)
MODELS = {"attention": {"attention": "bahdanau"}, "none": {"attention": "none"}}
SAMPLES = 5  # test verses whose translations are recorded


def train_and_score(name: str, options: dict, out: Path) -> dict:
    """Train one model into ``out`` and score it on the test split: BLEU and chrF, greedy and beam."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    rnnkit.train("translate", out, overwrite=True, quiet=True, **options)
    return dict(model=name, **score(options, out), train_seconds=time.perf_counter() - started,
                load_average_1min_before=load, load_average_1min_after=os.getloadavg()[0])


def score(options: dict, out: Path) -> dict:
    """The scores of the model trained in ``out``, sample translations, the attention heatmap."""
    model = rnnkit.load(out)
    started = time.perf_counter()
    scores = model.evaluate(beams=(1, options["beam"]))
    decode_seconds = time.perf_counter() - started
    records = md.read_metrics(out)
    speeds = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
    curve = [{"step": r["step"], "valid_loss": r["valid_loss"]} for r in records if "valid_loss" in r]
    sources, references = PairData(model.opts, options["seed"], stored=model.vocab.config).texts["test"]
    # verses of about 16 words: long enough for the attention to show an alignment, short enough to read
    picked = sorted(sorted(range(len(sources)), key=lambda i: abs(len(sources[i].split()) - 16))[:SAMPLES])
    greedy = model.translate([sources[i] for i in picked], beam=1)
    beam = model.translate([sources[i] for i in picked], beam=options["beam"])
    kept = model.translate([sources[i] for i in picked], beam=options["beam"], copy_unknown=False)
    samples = [{"source": sources[i], "reference": references[i], "greedy": g["text"], "beam": b["text"],
                "beam_keep_unk": k["text"]} for i, g, b, k in zip(picked, greedy, beam, kept)]
    heatmap = None
    if options["attention"] != "none":
        heatmap = str(plot_attention(beam[0], out / "attention.png"))
    cfg = model.config
    return {
        **scores, "decode_seconds": decode_seconds,
        "steps_run": max((c["step"] for c in curve), default=None), "best_step": cfg.get("metrics", {}).get("step"),
        "best_valid_loss": cfg.get("metrics", {}).get("loss"), "status": cfg.get("status"),
        "tokens_per_s": speeds[-1] if speeds else None, "data": cfg["data"], "parameters": model.model.num_parameters(),
        "vocabulary": {"source": len(model.vocab.src), "target": len(model.vocab.tgt)},
        "valid_curve": curve, "samples": samples, "heatmap": heatmap,
    }


def summarise(runs: dict, beam: int) -> dict:
    out, wide = {}, f"beam{beam}"
    if "attention" in runs and "none" in runs:
        a, n = runs["attention"], runs["none"]
        out["attention_minus_none_bleu"] = {k: a[f"{k}_bleu"] - n[f"{k}_bleu"] for k in ("greedy", wide)}
        out["goal_attention_beats_none"] = bool(all(v > 0 for v in out["attention_minus_none_bleu"].values()))
    out["beam_minus_greedy_bleu"] = {m: r[f"{wide}_bleu"] - r["greedy_bleu"] for m, r in runs.items()}
    out["goal_beam_beats_greedy"] = bool(all(v > 0 for v in out["beam_minus_greedy_bleu"].values()))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="English → Spanish Bible verses with rnnkit's translate task: attention "
                                "against none, greedy against beam-5; BLEU and chrF on the held-out test split.")
    p.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS), help="models to train (default both)")
    p.add_argument("--set", dest="override", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option of every run, e.g. --set steps=4000 (recorded in the results)")
    p.add_argument("--jobs", type=int, default=2, help="models trained at once, one process each (default 2)")
    p.add_argument("--work", type=Path, help="keep the model directories here (default: a temporary folder, deleted)")
    p.add_argument("--out", type=Path, default=RESULTS / "translate_bible.json", help="the JSON results (default %(default)s)")
    p.add_argument("--rescore", action="store_true",
                   help="score the models kept in --work again, without training, into the runs of --out (the earlier "
                        "scores are kept in each run's `before_rescore`)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 20 steps, small model, short verses; writes under a temporary folder unless --out is given")
    args = p.parse_args(argv)
    args.override = parse_override(args.override)
    if args.quick:
        args.override = dict(dict(steps=20, valid_every=10, hidden=16, embed=16, max_words=8, max_vocab=500), **args.override)
        args.out = quick_output(args.out, RESULTS / "translate_bible.json", "eval_translate_quick_")
    unknown = sorted(set(args.override) - set(BASE) - {"lowercase", "shared_vocab", "min_count", "unidirectional",
                                                        "sampling", "warmup", "weight_decay", "time_limit", "log_every"})
    if unknown:
        p.error(f"--set: unknown options {unknown}")
    base = merge(BASE, args.override)
    payload = {
        "benchmark": "World English Bible → Reina-Valera 1909 verses (≤ 30 words), rnnkit translate: Bahdanau attention "
                     "vs none, greedy vs beam search",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_commit(), "machine": machine_info(),
        "command": "python benchmarks/eval_translate.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick, "overrides": args.override,
        "config": {"base": base, "models": MODELS,
                   "split": "the task's own, drawn by the seed: test_fraction test, valid_fraction validation, the rest "
                            "trains; the same for both models",
                   "checkpoint": "the trainer keeps the weights of the lowest validation loss",
                   "scores": "sacrebleu corpus BLEU and chrF of the detokenised output against the raw references"},
        "runs": {}, "summary": {},
    }
    if args.rescore:
        if not args.work or not args.out.exists():
            p.error("--rescore: needs --out with earlier runs and --work with their model directories")
        old = json.loads(args.out.read_text())
        base = old["config"]["base"]
        payload.update(config=old["config"], runs=old["runs"], earlier_commands=old.get("earlier_commands", []) + [
            {k: old.get(k) for k in ("command", "date", "git", "machine", "wall_seconds")}])
        args.models = [m for m in args.models if m in old["runs"]]
    print(f"rnnkit {rnnkit.__version__} | {os.cpu_count()} CPUs | load {payload['machine']['load_average_1min_at_start']:.2f} | "
          f"git {str(payload['git']['commit'])[:10]}{' (dirty)' if payload['git']['dirty'] else ''}", flush=True)
    print("settings: " + ", ".join(f"{k}={v}" for k, v in base.items()), flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eval_translate_") as tmp:
        work = args.work or Path(tmp)
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            jobs = {name: (pool.submit(score, merge(base, MODELS[name]), work / f"translate-{name}") if args.rescore else
                           pool.submit(train_and_score, name, merge(base, MODELS[name]), work / f"translate-{name}"))
                    for name in args.models}
            for name, job in jobs.items():
                r = job.result()
                if args.rescore:
                    before = payload["runs"][name]
                    r = {**before, **r, "before_rescore": {k: v for k, v in before.items() if "_bleu" in k or "_chrf" in k}}
                if r["heatmap"]:
                    target = args.out.with_name(args.out.stem + "_attention.png")
                    target.write_bytes(Path(r["heatmap"]).read_bytes())
                    r["heatmap"] = target.name
                payload["runs"][name] = r
                payload["summary"] = summarise(payload["runs"], base["beam"])
                payload["wall_seconds"] = time.perf_counter() - started
                write(args.out, payload)
                wide = f"beam{base['beam']}"
                print(f"  {name:<9} test BLEU greedy {r['greedy_bleu']:.2f} {wide} {r[wide + '_bleu']:.2f} | chrF greedy "
                      f"{r['greedy_chrf']:.1f} {wide} {r[wide + '_chrf']:.1f} | best valid loss {r['best_valid_loss']:.3f} "
                      f"(step {r['best_step']}) | {r['train_seconds']:.0f} s training, {r['decode_seconds']:.0f} s decoding",
                      flush=True)
    payload["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
    write(args.out, payload)
    s = payload["summary"]
    if "goal_attention_beats_none" in s:
        print(f"attention − none BLEU: {s['attention_minus_none_bleu']}; goal met: {s['goal_attention_beats_none']}")
    print(f"beam − greedy BLEU: {s['beam_minus_greedy_bleu']}; goal met: {s['goal_beam_beats_greedy']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
