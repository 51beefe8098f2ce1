"""What two of the cell variants are for, measured on Shakespeare with `rnnkit.train("lm", ...)`.

1. **Word-level LM** (``tokenizer="word"``, ``max_vocab`` 5000): a 1-layer LSTM with ordinary
   dropout 0.2 on the embeddings and before the output layer (a new mask at every step), against
   the ``variational`` kind with the task's ``dropout`` 0 and its layer's own defaults: locked
   dropout 0.2 on the layer's input (the embeddings) and 0.2 on its output (one mask per sequence,
   the same at every step), and DropConnect 0.5 on W_hh (AWD-LSTM's weight drop). The same rates
   at the same places, per-step against locked, plus the weight drop. The claim (Gal & Ghahramani
   2016; Merity et al. 2018): lower validation perplexity. The variational kind's rates are not
   options of the ``lm`` task, so this compares at the layer's defaults.
2. **Character LM**: ``lnlstm`` (layer-normalised, haste's formulation) against ``lstm``, no
   dropout. The claim (Ba et al. 2016): faster convergence per step.

Within a comparison the runs have the same size, data, step budget, learning rate and seed.
Each run is its own process with ``OPENBLAS_NUM_THREADS=1``, two at a time; the 1-minute load
average is recorded at its start, at each validation and at its end (two runs count ~2; more
means something else ran). Validation happens every ``valid_every`` steps on the held-out last
``valid_fraction`` of the text; the curves record the validation loss (nats per token) there.

Results: ``benchmarks/results/variants/<run>-seed<k>.json`` (one per run and seed, written when
it ends) and ``variants.json`` (the tables; with several seeds, the mean and spread of the final
validation loss), plot ``variants.png`` (two panels: validation loss against step).

The budget is small (minutes per run on a shared 2-core machine, under one epoch of the word
corpus): these are the first ~1000 steps of training, not converged models.

Run from the repository root:

    python benchmarks/eval_variants.py                  # every run, two at a time, then the report
    python benchmarks/eval_variants.py --seeds 0 1      # each run with two seeds
    python benchmarks/eval_variants.py --only char      # one comparison
    python benchmarks/eval_variants.py --report         # tables and plot from the stored runs
    python benchmarks/eval_variants.py --quick          # a smoke test, tiny runs in a temporary folder
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rnnkit
from common import git_commit, machine_info, stats, write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "variants"

# ---- the settings -------------------------------------------------------------------------------

WORD_BASE = dict(tokenizer="word", max_vocab=5000, embed=128, hidden=128, layers=1, seq_len=35, batch_size=20,
                 valid_fraction=0.05, lr=2e-3, clip=5.0, steps=1000, valid_every=100, seed=0)
CHAR_BASE = dict(tokenizer="char", embed=64, hidden=128, layers=1, seq_len=100, batch_size=32, dropout=0.0,
                 valid_fraction=0.01, lr=2e-3, clip=5.0, steps=1000, valid_every=50, seed=0)
COMPARISONS = {
    "word": {"title": "word LM: per-step dropout against locked dropout + weight drop",
             "claim": "variational: lower validation perplexity",
             "runs": {"word-lstm-dropout": dict(WORD_BASE, cell="lstm", dropout=0.2),
                      "word-variational": dict(WORD_BASE, cell="variational", dropout=0.0)}},
    "char": {"title": "character LM: layer-normalised LSTM against LSTM",
             "claim": "lnlstm: faster convergence per step",
             "runs": {"char-lstm": dict(CHAR_BASE, cell="lstm"),
                      "char-lnlstm": dict(CHAR_BASE, cell="lnlstm")}},
}
QUICK = dict(steps=6, valid_every=3, valid_fraction=0.002, max_vocab=200)


def all_runs() -> dict[str, tuple[str, dict]]:
    return {name: (comp, opts) for comp, c in COMPARISONS.items() for name, opts in c["runs"].items()}


def quick_options(opts: dict) -> dict:
    out = dict(opts, **QUICK, embed=8, hidden=8, seq_len=10, batch_size=4)
    if opts["tokenizer"] == "char":
        out.pop("max_vocab")
    return out


# ---- one run --------------------------------------------------------------------------------------


def run_one(name: str, opts: dict, out_dir: Path, work: Path) -> dict:
    """Train one configuration, record each validation (step, loss, seconds, load); write <name>.json."""
    points: list[dict] = []
    start = time.perf_counter()
    load_start = os.getloadavg()[0]

    def callback(record: dict) -> None:
        if "valid_loss" in record:
            points.append({"step": record["step"], "valid_loss": record["valid_loss"],
                           "valid_perplexity": math.exp(min(record["valid_loss"], 700)),
                           "valid_bits_per_token": record["valid_loss"] / math.log(2),
                           "seconds": time.perf_counter() - start, "load_average_1min": os.getloadavg()[0]})
            print(f"  {name:<18} step {record['step']:>5}  valid loss {record['valid_loss']:.4f}  "
                  f"({points[-1]['seconds']:.0f} s, load {points[-1]['load_average_1min']:.2f})", flush=True)

    model = rnnkit.train("lm", work / name, quiet=True, overwrite=True, callbacks=[callback], **opts)
    seconds = time.perf_counter() - start
    config = getattr(model, "config", {}) or {}
    result = {
        "run": name, "seed": opts["seed"], "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git": git_commit(), "machine": machine_info(), "options": opts,
        "data": config.get("data"), "parameters": _parameters(model),
        "seconds": seconds, "steps": points[-1]["step"] if points else None,
        "load_average_1min": {"start": load_start, "end": os.getloadavg()[0]},
        "loadavg_at_end": Path("/proc/loadavg").read_text().strip() if Path("/proc/loadavg").exists() else None,
        "points": points,
        "final": points[-1] if points else None,
        "best": min(points, key=lambda p: p["valid_loss"]) if points else None,
    }
    write(out_dir / f"{name}-seed{opts['seed']}.json", result)
    return result


def _parameters(model) -> int | None:
    inner = getattr(model, "model", None)
    return inner.num_parameters() if inner is not None and hasattr(inner, "num_parameters") else None


def run_all(names: list[str], seeds: list[int], out_dir: Path, quick: bool, jobs: int) -> None:
    """Each run and seed a child process (``--run NAME --seed K``) with OPENBLAS_NUM_THREADS=1,
    ``jobs`` at a time, in the order given (the runs of one comparison side by side)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    pending, running = [(name, seed) for seed in seeds for name in names], []
    while pending or running:
        while pending and len(running) < jobs:
            name, seed = pending.pop(0)
            cmd = [sys.executable, str(Path(__file__).resolve()), "--run", name, "--seed", str(seed), "--out-dir", str(out_dir)]
            if quick:
                cmd.append("--quick")
            print(f"start {name} seed {seed} (loadavg {Path('/proc/loadavg').read_text().split()[0]})", flush=True)
            running.append((name, subprocess.Popen(cmd, env=env)))
        time.sleep(0.2)
        for item in list(running):
            if item[1].poll() is not None:
                running.remove(item)
                if item[1].returncode:
                    raise RuntimeError(f"run {item[0]} failed with exit status {item[1].returncode}")


# ---- the report -----------------------------------------------------------------------------------


def report(out_dir: Path) -> dict:
    """Tables from the stored runs (printed, and written to variants.json) and the plot."""
    runs = {}
    for path in sorted(out_dir.glob("*-seed*.json")):
        r = json.loads(path.read_text())
        if r.get("run") in all_runs() and r["points"]:
            runs[(r["run"], r["seed"])] = r
    tables = {}
    for comp, c in COMPARISONS.items():
        rows, means = {}, {}
        for name in c["runs"]:
            seeds = sorted(seed for (n, seed) in runs if n == name)
            for seed in seeds:
                r = runs[(name, seed)]
                final, best = r["final"], r["best"]
                rows[f"{name} seed {seed}"] = {
                    "run": name, "seed": seed, "cell": r["options"]["cell"], "dropout": r["options"].get("dropout", 0.0),
                    "steps": r["steps"], "seconds": round(r["seconds"], 1),
                    "final_valid_loss": final["valid_loss"], "final_perplexity": final["valid_perplexity"],
                    "final_bits_per_token": final["valid_bits_per_token"],
                    "best_valid_loss": best["valid_loss"], "best_step": best["step"],
                    "load_min": min(loads(r)), "load_max": max(loads(r)),
                    "curve": {p["step"]: p["valid_loss"] for p in r["points"]}}
            if seeds:
                finals = [runs[(name, seed)]["final"]["valid_loss"] for seed in seeds]
                means[name] = {"seeds": seeds, "final_valid_loss": stats(finals),
                               "final_perplexity_of_mean_loss": math.exp(sum(finals) / len(finals))}
        tables[comp] = {"title": c["title"], "claim": c["claim"], "rows": rows, "means": means}
        if rows:
            print(f"\n{c['title']} (claim: {c['claim']})")
            print(f"{'run':<27}{'steps':>6}{'seconds':>9}{'valid loss':>12}{'ppl':>10}{'bits/tok':>10}{'load':>12}")
            for label, row in rows.items():
                print(f"{label:<27}{row['steps']:>6}{row['seconds']:>9.0f}{row['final_valid_loss']:>12.4f}"
                      f"{row['final_perplexity']:>10.2f}{row['final_bits_per_token']:>10.4f}"
                      f"{row['load_min']:>6.2f}–{row['load_max']:.2f}")
            for name, m in means.items():
                print(f"  mean of {name} over seeds {m['seeds']}: valid loss {m['final_valid_loss']['mean']:.4f} "
                      f"(std {m['final_valid_loss']['std']:.4f}), perplexity {m['final_perplexity_of_mean_loss']:.2f}")
            steps = sorted({s for row in rows.values() for s in row["curve"]})
            print("valid loss by step:" + " " * 8 + " ".join(f"{s:>7}" for s in steps))
            for label, row in rows.items():
                print(f"  {label:<25}" + " ".join(f"{row['curve'][s]:>7.4f}" if s in row["curve"] else f"{'—':>7}" for s in steps))
    summary = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "git": git_commit(), "comparisons": tables}
    write(out_dir / "variants.json", summary)
    plot(runs, out_dir / "variants.png")
    return summary


def loads(run: dict) -> list[float]:
    """The 1-minute load averages seen at a run's start, validations and end."""
    return [run["load_average_1min"]["start"], run["load_average_1min"]["end"]] + [p["load_average_1min"] for p in run["points"]]


def plot(runs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = ("-", "--", ":", "-.")
    for ax, (comp, c) in zip(axes, COMPARISONS.items()):
        for colour, name in zip(("C0", "C1"), c["runs"]):
            for (n, seed), r in sorted(runs.items()):
                if n == name:
                    ax.plot([p["step"] for p in r["points"]], [p["valid_loss"] for p in r["points"]], marker=".",
                            color=colour, linestyle=styles[seed % len(styles)], label=f"{name} seed {seed}")
        o = next(iter(c["runs"].values()))
        ax.set(title=c["title"], xlabel="training step",
               ylabel="validation loss (nats per " + ("word" if o["tokenizer"] == "word" else "character") + ")")
        ax.title.set_fontsize(9)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- the command line -------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Word LM: LSTM + dropout against the variational kind; char LM: lnlstm "
                                            "against lstm; on Shakespeare, same size, budget and seed.")
    p.add_argument("--only", action="append", choices=list(COMPARISONS), help="a comparison (repeatable; default: both)")
    p.add_argument("--run", choices=list(all_runs()), help="train one run in this process (what the parent starts)")
    p.add_argument("--report", action="store_true", help="only the tables and plot, from the stored runs")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="the seeds of each run (default: 0)")
    p.add_argument("--seed", type=int, default=0, help="with --run: its seed")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: tiny models, a few steps, a sliver of validation; a temporary --out-dir unless given")
    args = p.parse_args(argv)
    if args.quick and args.out_dir == RESULTS:
        args.out_dir = Path(tempfile.mkdtemp(prefix="eval_variants_quick_"))
    if args.run:
        comp, opts = all_runs()[args.run]
        with tempfile.TemporaryDirectory(prefix="eval_variants_") as work:
            opts = dict(opts, seed=args.seed)
            run_one(args.run, quick_options(opts) if args.quick else opts, args.out_dir, Path(work))
        return 0
    if not args.report:
        names = [n for n, (comp, _) in all_runs().items() if comp in (args.only or COMPARISONS)]
        run_all(names, args.seeds, args.out_dir, args.quick, args.jobs)
    report(args.out_dir)
    print(f"\nwrote {args.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
