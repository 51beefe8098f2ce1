"""Bach chorales as piano rolls: frame NLL of a tanh RNN, a GRU and an LSTM against a per-pitch baseline.

Task ``music`` on ``bach-chorales`` (music21 10.5.1's corpus, eighth-note frames, transposed to C
major / A minor unless ``--no-transpose``, split by melody with seed 0: 10% validation, 10% test).
Each cell kind gets the same network (one layer, ``--hidden`` units), the same optimizer and the
same budget (``--minutes`` of training or ``--steps``, whichever ends first); the weights kept are
those of the best validation NLL (checked every ``--valid-every`` steps). Scored: the negative
log-likelihood of a frame in nats, summed over pitches, averaged over the frames of the
validation and the test chorales (each predicted from those before it, the first from silence).

The baseline gives every pitch its frequency in the training frames as its probability, each
frame alike (add-one smoothed: (count + 1) / (frames + 2), fixed before any result, so a pitch
never heard in training costs finite nats).

    python benchmarks/eval_chorales.py                 # 3 models, 5,000 steps each: about 12 minutes on 2 busy cores
    python benchmarks/eval_chorales.py --reuse         # score the models already trained

Results: ``benchmarks/results/music/chorales.json`` (``chorales_no_transpose.json`` without
transposing); a chorale composed by the model with the best validation NLL (8 bars, seed 0) as
MIDI and piano roll beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import rnnkit
from rnnkit.tasks.music import ChoraleData, MusicOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_commit, machine_info, write  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "music"
CELLS = ("rnn", "gru", "lstm")  # rnn: tanh


def network(args) -> dict:
    return dict(data="bach-chorales", transpose=args.transpose, layers=1, hidden=args.hidden, batch_size=16, dropout=0.0,
                steps=args.steps, time_limit=args.minutes * 60, valid_every=args.valid_every, log_every=50, lr=2e-3,
                seed=0)


def frequency_baseline(data: ChoraleData) -> dict:
    """Frame NLL (nats) of each pitch at its add-one smoothed training frequency."""
    train = np.concatenate(data.rolls["train"])
    p = (train.sum(axis=0) + 1) / (len(train) + 2)
    result = {}
    for part in ("valid", "test"):
        frames = np.concatenate(data.rolls[part])
        nll = -(frames * np.log(p) + (1 - frames) * np.log1p(-p)).sum(axis=1)
        result[f"{part}_nll"] = float(nll.mean())
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--minutes", type=float, default=6.0, help="training budget of each model")
    ap.add_argument("--steps", type=int, default=5000, help="step cap of each model")
    ap.add_argument("--valid-every", type=int, default=100)
    ap.add_argument("--cells", default=",".join(CELLS))
    ap.add_argument("--no-transpose", dest="transpose", action="store_false")
    ap.add_argument("--models", default="models/chorales", help="where the models are trained")
    ap.add_argument("--reuse", action="store_true", help="score the models already in --models")
    args = ap.parse_args()

    suffix = "" if args.transpose else "_no_transpose"
    report = {"machine": machine_info(), "git": git_commit(), "network": network(args), "loads": [], "models": {}}

    def load_now(what):
        report["loads"].append({"at": what, "load_average": os.getloadavg()})
        print(f"[{time.strftime('%H:%M:%S')}] {what}; load {os.getloadavg()[0]:.1f}", file=sys.stderr, flush=True)

    load_now("reading the chorales")
    data = ChoraleData(MusicOptions(transpose=args.transpose), seed=0)
    report["data"] = {**data.description, "pitches": [data.encoding["low"], data.encoding["high"]]}
    report["baseline"] = frequency_baseline(data)
    for cell in args.cells.split(","):
        out = Path(args.models) / f"{cell}{suffix}"
        seconds = float("nan")
        if args.reuse and (out / "model.safetensors").exists():
            model = rnnkit.load(out)
        else:
            load_now(f"training {cell}")
            start = time.time()
            model = rnnkit.train("music", out, overwrite=True, quiet=True, cell=cell, **network(args))
            seconds = time.time() - start
        load_now(f"scoring {cell}")
        scores = model.evaluate()
        metrics = model.config.get("metrics", {})
        steps = max(json.loads(line).get("step", 0) for line in (out / "metrics.jsonl").read_text().splitlines())
        report["models"][cell] = {"valid_nll": scores["valid_loss"], "test_nll": scores["test_loss"],
                                  "best_step": metrics.get("step"), "steps_run": steps, "train_seconds": seconds,
                                  "parameters": model.model.num_parameters()}
        write(RESULTS / f"chorales{suffix}.json", report)
    load_now("composing")
    best = min(report["models"], key=lambda c: report["models"][c]["valid_nll"])
    report["composed_by"] = best
    model = rnnkit.load(Path(args.models) / f"{best}{suffix}")
    from rnnkit.music.chorales import write_roll

    roll = model.compose(8, seed=0)
    write_roll(roll, model.encoding["low"], {"midi": RESULTS / f"chorale{suffix}.mid", "png": RESULTS / f"chorale{suffix}.png"},
               title=f"8 bars composed by the {best.upper()} (seed 0)")
    write(RESULTS / f"chorales{suffix}.json", report)
    print(f"{'model':<10} {'valid':>7} {'test':>7}")
    print(f"{'baseline':<10} {report['baseline']['valid_nll']:7.2f} {report['baseline']['test_nll']:7.2f}")
    for cell, r in report["models"].items():
        print(f"{cell:<10} {r['valid_nll']:7.2f} {r['test_nll']:7.2f}   best step {r['best_step']} of {r['steps_run']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
