"""Which fish is speaking: the `classify` task on Fish Fillets' dialogue, against 1-nearest-neighbour.

Data: ``--data fillets-speaker:cs`` (or ``:nl``): the lines of the two heroes (ids ``*-m-*``, the
small fish, and ``*-v-*``, the big one), each a series of 40-band log-mel features averaged over
3 frames (30 ms a step); test = the held-out levels (md5(level) % 5 == 0), as for transcription,
so no scene is in both parts. The classifier is rnnkit's, through ``rnnkit.train("classify", …)``,
its validation split and best weights its own; the options are given on the command line and
recorded.

Baseline: 1-nearest-neighbour (Euclidean) on each clip's per-band mean and standard deviation,
standardised with the training clips' statistics — the issue's "MFCC mean/std 1-NN" measured
97.8% (cs) and 93.6% (nl) on its copy, with MFCCs where this uses the log-mel bands they are
computed from (a DCT away).

    python benchmarks/eval_speaker.py --data fillets-speaker:cs [--set steps=600 --set hidden=64]
Results: ``benchmarks/results/speaker_<lang>.json``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from common import ROOT, git_commit, machine_info, parse_override, write
import rnnkit
from rnnkit.data.sources import load_classification

DEFAULTS = dict(bidirectional=True, pooling="mean", hidden=64, layers=1, steps=600, valid_every=100, batch_size=32, lr=3e-3)


def mean_std_1nn(train, train_labels, test, test_labels) -> float:
    describe = lambda xs: np.array([np.concatenate([x.mean(axis=0), x.std(axis=0)]) for x in xs])  # noqa: E731
    a, b = describe(train), describe(test)
    mu, sd = a.mean(axis=0), a.std(axis=0) + 1e-8
    a, b = (a - mu) / sd, (b - mu) / sd
    nearest = ((b[:, None, :] - a[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    return float(np.mean(np.array(train_labels)[nearest] == np.array(test_labels)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="fillets-speaker:cs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a classify or training option")
    args = parser.parse_args(argv)
    options = {**DEFAULTS, **parse_override(args.set)}
    source = load_classification(args.data)
    baseline = mean_std_1nn(source.items, source.labels, *source.test)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model"
        rnnkit.train("classify", out=out, data=args.data, quiet=True, overwrite=True, **options)
        metrics = rnnkit.load(out).evaluate()
    result = {"data": args.data, "options": options, "train_clips": len(source.items), "test_clips": len(source.test[0]),
              "test_accuracy_mean_std_1nn": baseline,
              "rnnkit": {k: v for k, v in metrics.items() if isinstance(v, (int, float))},
              "machine": machine_info(), "git": git_commit()}
    out_file = ROOT / "benchmarks" / "results" / f"speaker_{args.data.split(':')[-1]}.json"
    write(out_file, result)
    print(f"1-NN mean/std: {baseline:.4f}; rnnkit: {result['rnnkit']}")
    print(f"wrote {out_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
