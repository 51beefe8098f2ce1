"""`classify` on small UCR/UEA sets with its defaults, against 1-NN Euclidean and 1-NN DTW.

Seven sets, official train/test splits (`rnnkit data install ucr` and `ucr-aeon`): GunPoint,
ItalyPowerDemand, JapaneseVowels, BasicMotions (sktime 1.2.0), ACSF1, PLAID (sktime 1.2.0) and
PickupGestureWiimoteZ (aeon 1.6.0), read with rnnkit's own .ts reader.

- **rnnkit**: ``rnnkit.train("classify", data="ucr:NAME", **config)``; a config is the task's
  defaults plus the variant's options, with the steps capped (``--steps``, default 200; validation
  every 50) so that a set fits the shared 2-core machine. The sets with fewer than 500 training
  series are cross-validated by default (5 folds choose the steps; the fold networks at that step
  classify: ``--final auto``, since session 20; in session 19 a final model trained on all of them
  joined them); PLAID (537) uses
  the 10% validation split. What a variant is chosen by is its cross-validated (or validation)
  accuracy, recorded as ``cv_accuracy``; the test accuracy is reported, never used to choose.
- **1-NN Euclidean** (series of different lengths linearly resampled to the longest training
  length) and **1-NN DTW** with a full window (dependent: one warping path for all channels,
  squared differences summed over channels), on the series as the archive gives them, written
  here in NumPy and numba: baselines, not package code.

Run from the repository root, one process, one thread:

    OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1 PYTHONPATH=src python benchmarks/bench_classify_small.py
    python benchmarks/bench_classify_small.py --sets GunPoint --configs defaults unidirectional-last
    python benchmarks/bench_classify_small.py --baselines-only

Results: ``benchmarks/results/classify_small.json`` (merged run by run, so a stopped run keeps
what it finished; a run's key is config/steps/seed, with ``--label`` /LABEL after it, so that a
rerun on another commit keeps the earlier run).
"""

from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

import rnnkit
from rnnkit.data import ucr_dataset
from rnnkit.tasks.classify import Splits, network_trainer, predict, softmax
from rnnkit.training.trainer import TrainingOptions
from common import git_commit, machine_info, write

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "classify_small.json"
SETS = ("GunPoint", "ItalyPowerDemand", "JapaneseVowels", "BasicMotions", "ACSF1", "PickupGestureWiimoteZ", "PLAID")

# each config: the task's defaults (bidirectional LSTM 128, max pooling, --znorm auto: none but on PLAID,
# where most series are under 1/20 of the data's spread: z-normalised with log std and level as channels;
# at most 256 steps, shortened series as segment mean, minimum and maximum (--segments auto), 5-fold
# cross-validation below 500 training series) changed by these options
CONFIGS = {
    "defaults": {},
    "unidirectional-last": {"bidirectional": False, "pooling": "last"},  # the defaults before issue 22
    "znorm-series": {"znorm": "series"},  # the first candidate default: lost on cross-validated accuracy
    "znorm-none": {"znorm": "none"},  # the default before --znorm auto (auto: scaled on PLAID only)
    "znorm-scaled": {"znorm": "scaled"},  # z-normalised series plus their level and scale as channels
    "mean-pooling": {"pooling": "mean"},
    "max-length-128": {"max_length": 128},
    "max-length-512": {"max_length": 512},  # ACSF1's 1460 steps in segments of about 3, not 6
    "dropout-0.2": {"dropout": 0.2},  # candidates for ItalyPowerDemand (67 series): regularised,
    "lr-1e-3": {"lr": 1e-3},  # or slower
    "validation-split": {"cv_folds": 0},  # early stopping on a 10% split, as before issue 22
    "segments-range": {"segments": "range"},  # shortened series keep each segment's minimum and maximum too
    "mean-segments": {"segments": "mean"},  # the default before --segments auto (range on ACSF1, PLAID, Pickup…)
    "ensemble-5": {"ensemble": 5},  # five networks, seeds 0…4, probabilities averaged (judged by ensemble_cv; since
    # session 19 a cross-validated set's test figure averages the five fold networks too: --final auto)
    # session 11's candidates for ItalyPowerDemand (67 series of 24 steps): each changes the network of every set
    "gru": {"cell": "gru"},  # three gates where the LSTM has four, no cell state
    "hidden-64": {"hidden": 64},  # half the width: a quarter of the recurrent weights for 67 series
    "layers-2": {"layers": 2},  # a second bidirectional layer over the first's outputs
    # session 12: training series scaled by N(1, s) per channel and jittered by N(0, 0.3 s) (--augment)
    "augment-0.05": {"augment": 0.05},
    "augment-0.1": {"augment": 0.1},
    "augment-0.2": {"augment": 0.2},
    # session 18: the weights' moving average (--ema): validation, the chosen steps and the final model
    # read the discounted mean of the weights over about the last 50 steps. The rule, stated before the
    # runs: it becomes classify's default if, on each of the five sets cheap enough to run (GunPoint,
    # ItalyPowerDemand, JapaneseVowels, BasicMotions, PickupGestureWiimoteZ; 200-step cap, seed 0), its
    # cross-validated log-loss (the folds' mean validation loss at the chosen step) is lower than the
    # defaults' at this commit and its cross-validated accuracy is not lower by more than 0.01
    "ema-0.98": {"ema": 0.98},
    # session 18: the fold networks join the final one (judged by nested cross-validation in bench_classify_final.py)
    "final-both": {"final": "both"},  # in session 19 the defaults' own on a cross-validated set (--final auto)
    "final-refit": {"final": "refit"},  # the default before session 19: the network trained on all the data alone
    # session 20: the fold networks alone (--final folds), the pick of bench_classify_final.py's rule; since
    # session 20 the defaults' own on a cross-validated set (--final auto)
    "final-folds": {"final": "folds"},
}

# recalled from the UCR archive's DataSummary (Dau et al. 2018, arXiv:1810.07758): 1-NN DTW with a full
# window; not re-checked here (no network). The figures this script computes are the ones compared with.
PUBLISHED_DTW = {"GunPoint": 0.907, "ItalyPowerDemand": 0.950, "ACSF1": 0.640, "PickupGestureWiimoteZ": 0.660,
                 "PLAID": 0.832}


# ---- baselines ------------------------------------------------------------------------------------
@numba.njit(cache=True)
def _dtw(a, b):
    """Dependent DTW distance between (n, C) and (m, C), full window, squared differences."""
    n, m = a.shape[0], b.shape[0]
    prev = np.full(m + 1, np.inf)
    prev[0] = 0.0
    cur = np.empty(m + 1)
    for i in range(1, n + 1):
        cur[0] = np.inf
        for j in range(1, m + 1):
            d = 0.0
            for c in range(a.shape[1]):
                diff = a[i - 1, c] - b[j - 1, c]
                d += diff * diff
            best = prev[j - 1]
            if prev[j] < best:
                best = prev[j]
            if cur[j - 1] < best:
                best = cur[j - 1]
            cur[j] = d + best
        prev, cur = cur, prev
    return prev[m]


def one_nn(train, train_labels, test, test_labels, distance) -> float:
    """Accuracy of the 1-nearest-neighbour rule under ``distance``."""
    correct = 0
    for x, y in zip(test, test_labels):
        d = [distance(x, t) for t in train]
        correct += train_labels[int(np.argmin(d))] == y
    return correct / len(test)


def resample(series: np.ndarray, length: int) -> np.ndarray:
    old = np.linspace(0, 1, len(series))
    new = np.linspace(0, 1, length)
    return np.column_stack([np.interp(new, old, series[:, c]) for c in range(series.shape[1])])


def baselines(name: str) -> dict:
    (X, y), (X_test, y_test) = ucr_dataset(name)
    X = [x.astype(np.float64) for x in X]
    X_test = [x.astype(np.float64) for x in X_test]
    length = max(len(x) for x in X)
    Xe, Xe_test = [resample(x, length) for x in X], [resample(x, length) for x in X_test]
    started = time.perf_counter()
    ed = one_nn(Xe, y, Xe_test, y_test, lambda a, b: float(np.sum((a - b) ** 2)))
    dtw = one_nn(X, y, X_test, y_test, _dtw)
    return {"ed_1nn": ed, "dtw_1nn": dtw, "seconds": time.perf_counter() - started,
            "published_dtw_1nn": PUBLISHED_DTW.get(name)}


# ---- rnnkit ---------------------------------------------------------------------------------------
def ensemble_cv(model) -> dict:
    """The cross-validated accuracy, at the steps s the first network chose, of the first network
    alone and of the model's ensemble: on each fold of its cross-validation, networks of seeds
    seed … seed+K−1 trained on the other folds for s steps (as `classify --ensemble` trains them),
    the first network's accuracy and that of their averaged probabilities on the fold, and the
    log-loss of each (−log of the true class's probability, averaged over every training series,
    each predicted by networks that did not see it: a proper score that sees every probability,
    where accuracy on folds of 8–54 series moves in steps of a series)."""
    opts, cv = model.opts, model.encoding["cross_validation"]
    training = TrainingOptions(**model.config["training"])
    single, ensemble, losses = [], [], {"single": [], "ensemble": []}
    for fold in range(cv["folds"]):
        splits = Splits(opts, training.seed, cv_fold=fold)
        probabilities = []
        for k in range(opts.ensemble):
            with tempfile.TemporaryDirectory(prefix="bench-ensemble-cv-") as tmp:
                trainer = network_trainer(opts, training, splits, k, cv["steps"], tmp,
                                          {"task": "classify"}, quiet=True)
                trainer.fit()
                probabilities.append(softmax(predict(trainer.model, splits.inputs["valid"], opts.batch_size)))
        truth = splits.targets["valid"]
        single.append(float(np.mean(probabilities[0].argmax(axis=1) == truth)))
        ensemble.append(float(np.mean(np.mean(probabilities, axis=0).argmax(axis=1) == truth)))
        for name, p in (("single", probabilities[0]), ("ensemble", np.mean(probabilities, axis=0))):
            losses[name].extend((-np.log(np.maximum(p[np.arange(len(truth)), truth], 1e-12))).tolist())
    return {"steps": cv["steps"], "single_cv_accuracy": float(np.mean(single)), "ensemble_cv_accuracy": float(np.mean(ensemble)),
            "single_cv_log_loss": float(np.mean(losses["single"])), "ensemble_cv_log_loss": float(np.mean(losses["ensemble"])),
            "folds_single": single, "folds_ensemble": ensemble}


def run_rnnkit(name: str, config: str, steps: int, seed: int, work: Path) -> dict:
    options = dict(data=f"ucr:{name}", steps=steps, valid_every=50, seed=seed, quiet=True, **CONFIGS[config])
    load = os.getloadavg()[0]
    started = time.perf_counter()
    model = rnnkit.train("classify", work / f"{name}-{config}-{seed}", overwrite=True, **options)
    seconds = time.perf_counter() - started
    ev = model.evaluate()
    cv = model.encoding.get("cross_validation")
    extra = {}
    if model.opts.ensemble > 1:  # what the ensemble is judged by: its figure beside the first network's, both at its steps
        if cv:
            started = time.perf_counter()
            extra = {"selection": ensemble_cv(model), "selection_seconds": time.perf_counter() - started}
        else:
            extra = {"selection": {"steps": model.config["metrics"]["step"],
                                   "single_valid_accuracy": model.config["metrics"]["accuracy"],
                                   "ensemble_valid_accuracy": model.config["ensemble"]["metrics"]["accuracy"]}}
        networks, model.members = model.members, model.members[:1]  # information: the first network alone on the test split
        extra["first_network_test_accuracy"] = model.evaluate()["test_accuracy"]
        model.members = networks
    return {**extra, "options": options, "seed": seed, "test_accuracy": ev["test_accuracy"], "test_macro_f1": ev["test_macro_f1"],
            "cv_accuracy": ev.get("cv_accuracy", ev.get("valid_accuracy")),
            "chosen_by": f"{cv['folds']}-fold cross-validation" if cv else "validation split",
            "steps_chosen": cv["steps"] if cv else model.config["metrics"]["step"],
            # the mean validation curve of the folds (loss chooses the steps), to see whether a figure sits at the cap
            **({"cv_curve": [{k: r[k] for k in ("step", "loss", "accuracy")} for r in cv["curve"]]} if cv else {}),
            "train_examples": model.config["data"]["train_examples"], "seconds": seconds,
            "load_average_1min_at_start": load, "load_average_1min_at_end": os.getloadavg()[0]}


def selection(run: dict) -> str:
    """What a run is chosen by: its cross-validated or validation accuracy; an ensemble's beside its
    first network's ("0.960 vs 0.955 one network")."""
    chosen = run.get("selection")
    if not chosen:
        return f"{run['cv_accuracy']:.3f}"
    kind = "cv" if "ensemble_cv_accuracy" in chosen else "valid"
    loss = (f"; log-loss {chosen['ensemble_cv_log_loss']:.3f} vs {chosen['single_cv_log_loss']:.3f}"
            if "ensemble_cv_log_loss" in chosen else "")
    return f"{chosen[f'ensemble_{kind}_accuracy']:.3f} vs {chosen[f'single_{kind}_accuracy']:.3f} one network{loss}"


def table(payload: dict) -> str:
    """The markdown table of the results: per set, the baselines, then each config's run(s)."""
    configs = [c for c in CONFIGS if any(k.startswith(c + "/") for e in payload.get("sets", {}).values() for k in e["runs"])]
    head = "| set (series trained on) | 1-NN ED | 1-NN DTW | " + " | ".join(configs) + " |"
    rows = [head, "|" + "---|" * (3 + len(configs))]
    for name in SETS:
        e = payload.get("sets", {}).get(name)
        if not e:
            continue
        b = e.get("baselines", {})
        cells = []
        for c in configs:
            runs = [r for k, r in e["runs"].items() if k.startswith(c + "/")]
            cells.append("; ".join(f"{r['test_accuracy']:.3f} ({'cv' if 'cross' in r['chosen_by'] else 'valid'} "
                                   f"{selection(r)}, {r['steps_chosen']}/{r['options']['steps']} steps"
                                   f"{', seed ' + str(r['seed']) if r['seed'] else ''}"
                                   f"{', ' + r['label'] if r.get('label') else ''})"
                                   for r in runs) or "–")
        n = next(iter(e["runs"].values()), {}).get("train_examples", "?")
        rows.append(f"| {name} ({n}) | {b.get('ed_1nn', float('nan')):.3f} | {b.get('dtw_1nn', float('nan')):.3f} | "
                    + " | ".join(cells) + " |")
    return "\n".join(rows)


def stored() -> dict:
    """The results file as it is now ({} before the first run)."""
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else {}


def record(header: dict, name: str, change) -> None:
    """Apply `change` to set `name`'s entry of the results file as it is on disk now, under a lock:
    runs of several processes (and runs started before another's finished) all keep their entries."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(RESULTS.parent, os.O_RDONLY)  # the lock is on the folder: the file itself is replaced by rename
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        payload = stored()
        payload.update(header)
        change(payload.setdefault("sets", {}).setdefault(name, {"runs": {}}))
        write(RESULTS, payload)
    finally:
        os.close(folder)  # closing releases the lock


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", nargs="+", choices=SETS, default=list(SETS))
    p.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["defaults"])
    p.add_argument("--steps", type=int, default=200, help="training steps of every run, the cap (default 200)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", default="", help="appended to each run's key and shown in the table (e.g. the commit), "
                   "so that a rerun of a config keeps the earlier run beside it (default: none)")
    p.add_argument("--baselines-only", action="store_true")
    p.add_argument("--no-baselines", action="store_true")
    p.add_argument("--table", action="store_true", help="print the stored results as a markdown table and stop")
    args = p.parse_args()
    if args.table:
        print(table(stored()))
        return 0
    header = dict(benchmark="classify on small UCR/UEA sets: defaults and variants vs 1-NN ED and 1-NN DTW",
                  configs=CONFIGS, published_dtw_source="recalled from the UCR archive DataSummary (Dau et al. 2018); "
                  "not re-checked", machine=machine_info(numba=numba.__version__), **git_commit(),
                  date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    with tempfile.TemporaryDirectory(prefix="bench-classify-small-") as tmp:
        for name in args.sets:
            if not args.no_baselines and "baselines" not in stored().get("sets", {}).get(name, {}):
                found = baselines(name)
                record(header, name, lambda entry: entry.__setitem__("baselines", found))
                print(f"{name}: {found}", flush=True)
            if args.baselines_only:
                continue
            for config in args.configs:
                r = run_rnnkit(name, config, args.steps, args.seed, Path(tmp))
                key = f"{config}/steps{args.steps}/seed{args.seed}"
                if args.label:
                    r["label"], key = args.label, f"{key}/{args.label}"
                record(header, name, lambda entry: entry["runs"].__setitem__(key, r))
                print(f"{name} {config}: test {r['test_accuracy']:.3f}, cv {r['cv_accuracy']:.3f}, "
                      f"steps {r['steps_chosen']}, {r['seconds']:.0f} s, load {r['load_average_1min_at_start']:.2f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
