"""Forecasting with long seasons: the seasonal inputs of the `forecast` task (``--seasonal``),
``--refit``, the seasonal-naive guard and the intervals, against seasonal naive and ETS.

Series (``rnnkit data install forecasting taylor seattle-temps``):

    co2             weekly,      H = 52, m = 52         statsmodels 0.15.0
    elnino          monthly,     H = 12, m = 12         statsmodels 0.15.0
    sunspots        yearly,      H = 11, m = 1          statsmodels 0.15.0
    taylor          half-hourly, H = 48, m = 48 and 336 pmdarima 2.1.1 (electricity demand, 12 weeks)
    seattle-temps   hourly,      H = 24, m = 24         vega_datasets 0.9.0 (temperature, 2010)

For each series the task's rolling-origin backtest (5 origins, the last 5·H points) scores rnnkit,
seasonal naive and ETS on the same points with the task's MASE scale. rnnkit: the task's defaults
(1-layer LSTM 64, direct, ``--level scale``, window by the task's rule) with each ``--seasonal``
variant (none, lags, residual; one run where m = 1, as they are then the same), Adam 2e-3, up to
1500 steps, validation every 50, patience 10, and a time limit per run (``--time-limit``). The
variant with the lowest *validation* loss (the task's early-stopping metric) is the series' choice;
backtest scores of every variant are recorded, never used to choose. The chosen variant is trained
again with ``--refit`` (the best step count, on training and validation points); the refit cannot be
judged on validation (it has seen it), so its backtest is reported only. The default of
``--seasonal`` is the variant with the lowest mean validation MAE relative to seasonal naive over
the series with a season.

ETS: statsmodels' ``ETSModel`` (additive errors) fitted at each origin on the points before it, the
specification chosen by AIC among trend {none, additive damped} × seasonality {none, additive m}
(m the series' longest season); where m ≥ 24, initial states by statsmodels' heuristic, not by
likelihood (336 initial states are beyond its optimiser), on the last ``ETS_HISTORY`` points.

Intervals: the task calibrates them on the validation origins by split conformal, a factor that
scales the network's 80% intervals about the blended mean. Two rules: the factor may narrow them
(``narrow``) or only widen them (``widen-only``, floored at 1). A first criterion, leave-one-origin-out
coverage on the validation origins of each chosen model (blend and factor fitted on the other origins,
coverage counted on the one left out; pooled over the series), and its forward form (fitted on the
earlier validation origins only), are recorded; both chose ``narrow``, which the backtest then showed
too narrow: three adjacent origins cannot show that the stretch after them is rougher.
``--intervals-from DIR`` recomputes only this part from the models a ``--keep DIR`` run kept.

``--nested`` chooses the rule on backtests nested in the training and validation history, laid out
as the real one: each series is cut at its first backtest origin, and once more K·H points earlier
(``NESTED_CUTS``); the series' chosen ``--seasonal`` variant is trained on the cut series as the task
trains it (its own validation origins, blend), and every candidate rule gives a factor at each of the
cut series' K backtest origins, scored there: ``valid-static`` (the task's split conformal on the
validation origins, narrowing allowed), ``valid-widen-only`` (floored at 1), ``history-static``
(split conformal on up to ``HISTORY_ORIGINS`` origins H apart over the training and validation parts:
in-sample for the training part), and, on either calibration set, ``adaptive-<step>``: adaptive
conformal inference over the backtest origins (``adaptive_interval_factors``; step 0 is online split
conformal, each origin's ratios joining the set once its values are known). The rule whose coverage,
pooled over every nested backtest, is nearest 80% is chosen; ``--nested-models DIR`` then scores that
rule alone on the real backtests of the models a ``--keep DIR`` run kept. Results:
``benchmarks/results/forecast_intervals.json``.

Results: ``benchmarks/results/forecast_seasons.json`` (rewritten after each series). One process,
one thread (``OPENBLAS_NUM_THREADS=1 RNNKIT_THREADS=1``):

    python benchmarks/bench_forecast_seasons.py
    python benchmarks/bench_forecast_seasons.py --only taylor --only seattle-temps
    python benchmarks/bench_forecast_seasons.py --quick     # a smoke test, not a measurement
    python benchmarks/bench_forecast_seasons.py --nested --keep /tmp/nested --nested-models /tmp/models
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import rnnkit
from common import git_commit, machine_info, write
from eval_forecast import _statsmodels_version, ets_fit, ets_spec_name, full_backtest, scores, train_forecaster
from rnnkit.tasks import forecast as forecast_task
from rnnkit.tasks.forecast import ForecastRun, best_blend, conformal_quantile, interval_factor, interval_ratios, validation_points

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

SERIES = {
    "co2": {"horizon": 52, "season": 52},
    "elnino": {"horizon": 12, "season": 12},
    "sunspots": {"horizon": 11, "season": 1},
    "taylor": {"horizon": 48, "season": "48,336"},
    "seattle-temps": {"horizon": 24, "season": 24},
}
BASE = dict(origins=5, cell="lstm", hidden=64, layers=1, mode="direct", optimizer="adam", lr=2e-3, clip=5.0,
            steps=1500, valid_every=50, patience=10, seed=0)
VARIANTS = ("none", "lags", "residual")
ETS_HISTORY = 2016  # points (six weeks of half-hours, twelve weeks of hours) before each origin for m >= 24
COVERAGE_GOAL = (0.75, 0.85)
# the nested backtests that choose the interval rule: each series cut before its backtest (and once
# more K·H points earlier), the chosen variant trained again on what is left
NESTED_CUTS = 2
HISTORY_ORIGINS = 50  # the most origins of the training and validation history a calibration reads
ADAPT_STEPS = (0.0, 0.1, 0.3)  # ACI's step per origin (0: online split conformal, no level change)


def longest_season(season) -> int:
    return max(int(m) for m in str(season).split(","))


def ets_backtest(model, m: int, H: int) -> dict:
    """ETS at every origin of the task's backtest, scored as ``full_backtest`` scores rnnkit."""
    from rnnkit import metrics as M

    data = model._prepared(None)
    K = model.opts.origins
    origins = [len(data.series) - (K - k) * H for k in range(K)]
    train = data.filled[: data.encoding["first_origin"], 0]
    scale = M.seasonal_naive_scale(train, data.season)
    long = m >= 24
    family = [(t, d, s) for t, d in ((None, False), ("add", True)) for s in ((None, "add") if m > 1 else (None,))]
    ys, means, lows, highs, specs = [], [], [], [], []
    for origin in origins:
        history = data.filled[max(0, origin - ETS_HISTORY) if long else 0 : origin, 0]
        fits = [ets_fit(history, spec, m, H, "heuristic" if long and spec[2] else "estimated") for spec in family]
        best = min(fits, key=lambda f: f["aic"])
        specs.append(best["spec"])
        ys.append(data.raw[origin : origin + H, 0])
        means.append(best["mean"][:, 0])
        lows.append(best["lower"][:, 0])
        highs.append(best["upper"][:, 0])
    y = np.concatenate(ys)
    result = scores(y, np.concatenate(means), scale, np.concatenate(lows), np.concatenate(highs))
    return dict(result, specs=specs, family=[ets_spec_name(*f) for f in family])


def interval_rules(model, name: str) -> dict:
    """For each calibration rule: the leave-one-origin-out coverage on the validation origins and
    the backtest coverage with the factor fitted on all of them."""
    data = model._prepared(None)
    origins = ForecastRun(model.model, data, model.opts, 0).valid_origins
    points = validation_points(model.model, data, origins, model.opts)
    out = {}
    def held_out(v: int, fitted_on: list[int]) -> list[bool]:
        """Blend and factor fitted on the origins ``fitted_on``; which points of origin v they cover."""
        fit = {k: np.concatenate([points[k][i] for i in fitted_on]) for k in ("y", "mean", "lower", "upper", "seasonal_naive")}
        blend, _ = best_blend(fit["y"], fit["mean"], fit["seasonal_naive"])
        factor = interval_factor(fit["y"], fit["seasonal_naive"] + blend * (fit["mean"] - fit["seasonal_naive"]),
                                 (fit["upper"] - fit["lower"]) / 2, narrow)
        y, mean, sn = points["y"][v], points["mean"][v], points["seasonal_naive"][v]
        half = (points["upper"][v] - points["lower"][v]) / 2
        return (np.abs(y - (sn + blend * (mean - sn))) <= factor * half).ravel().tolist()

    for rule, narrow in (("narrow", True), ("widen-only", False)):
        inside, forward = [], []
        for v in range(len(origins)):
            inside += held_out(v, [i for i in range(len(origins)) if i != v])
            if v:  # calibrated on the earlier origins only, as a model is used: on the past, for the future
                forward += held_out(v, list(range(v)))
        y, mean, sn, lo, hi = (np.concatenate(points[k]) for k in ("y", "mean", "seasonal_naive", "lower", "upper"))
        kept = model.widen
        model.widen = interval_factor(y, sn + model.blend * (mean - sn), (hi - lo) / 2, narrow)
        backtest = full_backtest(model, name, with_ets=False)["pooled"]["rnnkit"]["coverage80"]
        out[rule] = {"loo_valid_coverage80": float(np.mean(inside)), "valid_points": len(inside), "factor": model.widen,
                     "forward_valid_coverage80": float(np.mean(forward)), "forward_points": len(forward),
                     "backtest_coverage80": backtest}
        model.widen = kept
    return out


def adaptive_interval_factors(calibration: np.ndarray, origins: list[np.ndarray], step: float = 0.0,
                              target: float = 0.8) -> np.ndarray:
    """The interval factor at each of K forecast origins in time order, each from what is known
    before it: adaptive conformal inference (Gibbs & Candès 2021) with a growing calibration set.

    calibration: (n,) ratios |y − μ| / half-width known before the first origin; origins: K arrays
    of the ratios of each origin's points, in time order (an origin's actual values are all known
    before the next: origins lie H steps apart). The factor f_k of origin k is the split-conformal
    quantile, at level 1 − α_k, of the calibration ratios and those of origins 0 … k−1; α_0 =
    1 − target, and after origin k, whose share miss_k of ratios lay above f_k,

        α_{k+1} = α_k + step·((1 − target) − miss_k)

    (α ≤ 0: the largest known ratio). step 0: online split conformal. Returns (K + 1,) factors: the
    last is for a forecast after all K origins."""
    alpha, known, factors = 1 - target, [np.ravel(calibration)], []
    for k in range(len(origins) + 1):
        factors.append(conformal_quantile(np.concatenate(known), 1 - alpha))
        if k < len(origins):
            ratios = np.ravel(origins[k])
            miss = float(np.mean(ratios > factors[-1])) if len(ratios) else 1 - target
            alpha += step * ((1 - target) - miss)
            known.append(ratios)
    return np.array(factors)


def history_origins(data, opts, first_origin: int) -> list[int]:
    """Origins H apart before ``first_origin`` (the validation origins and those before them), as
    far back as a window and its lags fit, at most ``HISTORY_ORIGINS`` evenly thinned, in time order."""
    H = opts.horizon
    every = [first_origin - v * H for v in range(1, first_origin // H + 1) if first_origin - v * H >= data.window + data.first_start]
    keep = every[:: max(1, int(np.ceil(len(every) / HISTORY_ORIGINS)))]
    return sorted(keep)


def origin_ratios(model, data, origins: list[int]) -> list[np.ndarray]:
    """Each origin's ratios |y − μ| / half-width, μ the blended mean, before any interval factor."""
    points = validation_points(model.model, data, origins, model.opts)
    out = []
    for y, mean, sn, lo, hi in zip(*(points[k] for k in ("y", "mean", "seasonal_naive", "lower", "upper"))):
        out.append(interval_ratios(y, sn + model.blend * (mean - sn), (hi - lo) / 2))
    return out


def interval_rule_factors(model, data, tested: list[int]) -> dict:
    """For every candidate rule, the factor at each origin in ``tested`` (in time order, the first one
    the first origin after training and validation): calibrated on the validation origins
    (``valid``) or on up to HISTORY_ORIGINS origins of the training and validation history
    (``history``: in-sample for the training part), fixed (``static``, ``valid-widen-only``) or
    adapted origin by origin from the coverage of the origins before (``adaptive-<step>``);
    ``ratios``: the tested origins' own ratios."""
    first = tested[0]
    valid = ForecastRun(model.model, data, model.opts, 0).valid_origins
    calibration = {"valid": np.concatenate(origin_ratios(model, data, valid)),
                   "history": np.concatenate(origin_ratios(model, data, history_origins(data, model.opts, first)))}
    ratios = origin_ratios(model, data, tested)
    rules = {"valid-widen-only": [max(1.0, conformal_quantile(calibration["valid"]))] * len(tested)}
    for source, known in calibration.items():
        rules[f"{source}-static"] = [conformal_quantile(known)] * len(tested)
        for step in ADAPT_STEPS:
            rules[f"{source}-adaptive-{step:g}"] = adaptive_interval_factors(known, ratios, step)[:-1].tolist()
    return {"factors": rules, "ratios": ratios, "calibration_points": {k: len(v) for k, v in calibration.items()}}


def rule_coverage(factors: list[float], ratios: list[np.ndarray]) -> tuple[float, int]:
    inside = np.concatenate([r <= f for f, r in zip(factors, ratios)])
    return float(inside.mean()), int(inside.size)


def cut_series(name: str, end: int) -> str:
    """A built-in series' first ``end`` points, registered for this process under a name of its own."""
    key = f"{name}[:{end}]"
    if key not in forecast_task.BUILT_IN:
        load = forecast_task.BUILT_IN[name]

        def cut():
            s = load()
            return type(s)(time=s.time[:end], values=s.values[:end], columns=s.columns, mask=s.mask[:end],
                           source=f"{s.source}; its first {end} points", target=s.target, season=s.season, seasons=s.seasons)

        forecast_task.BUILT_IN[key] = cut
    return key


def nested_intervals(name: str, chosen: str, args, work: Path) -> dict:
    """The interval rules on backtests nested in the training and validation history: the series
    cut at its first backtest origin (then K·H points earlier), the chosen variant trained on the
    cut series as the task trains it, every rule measured on the cut series' own backtest."""
    settings = SERIES[name]
    H, K = settings["horizon"], BASE["origins"]
    n = len(forecast_task.BUILT_IN[name]())
    cuts = {}
    for j in range(NESTED_CUTS):
        end = n - (j + 1) * K * H
        options = dict(BASE, **settings, seasonal=chosen, time_limit=args.time_limit)
        if args.quick:
            options.update(steps=40, valid_every=20, patience=0)
        model, info = train_forecaster(cut_series(name, end), options, work / name / f"nested-{end}")
        data = model._prepared(None)
        tested = [end - (K - k) * H for k in range(K)]
        rules = interval_rule_factors(model, data, tested)
        coverage = {rule: rule_coverage(f, rules["ratios"]) for rule, f in rules["factors"].items()}
        cuts[str(end)] = {"end": end, "tested_origins": tested, "blend": model.blend, "valid_mae": info["valid_mae"],
                          "best_step": info["best_step"], "train_seconds": info["train_seconds"],
                          "load_average_1min_before": info["load_average_1min_before"],
                          "calibration_points": rules["calibration_points"], "factors": rules["factors"],
                          "coverage80": {r: c for r, (c, _) in coverage.items()},
                          "points": next(iter(coverage.values()))[1]}
        print(f"  cut at {end}: " + " | ".join(f"{r} {c:.3f}" for r, (c, _) in coverage.items()), flush=True)
    return cuts


def nested_summary(nested: dict) -> dict:
    """Coverage of each rule pooled over every cut of every series (weighted by points), and the
    rule nearest 80%: the choice."""
    cuts = [c for s in nested.values() for c in s.values()]
    rules = list(cuts[0]["coverage80"])
    points = sum(c["points"] for c in cuts)
    pooled = {r: sum(c["coverage80"][r] * c["points"] for c in cuts) / points for r in rules}
    per_series = {name: {r: sum(c["coverage80"][r] * c["points"] for c in s.values()) / sum(c["points"] for c in s.values())
                         for r in rules} for name, s in nested.items()}
    return {"pooled_coverage80": pooled, "per_series_coverage80": per_series, "points": points,
            "chosen_rule": min(rules, key=lambda r: abs(pooled[r] - 0.8))}


def run_nested(args) -> int:
    """``--nested``: the interval rules measured on nested backtests (validation only), the rule
    chosen; then that rule alone on each chosen model's backtest (``--nested-models DIR``: the
    models a ``--keep DIR`` run kept)."""
    import json

    seasons = json.loads((RESULTS / "forecast_seasons.json").read_text())
    path = RESULTS / ("forecast_intervals_quick.json" if args.quick else "forecast_intervals.json")
    payload = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv),
               "quick": args.quick, "git": git_commit(), "machine": machine_info(),
               "config": {"nested_cuts": NESTED_CUTS, "history_origins": HISTORY_ORIGINS, "adapt_steps": ADAPT_STEPS,
                          "base": BASE, "time_limit": args.time_limit,
                          "choice": "the rule whose coverage pooled over every nested backtest is nearest 80%"},
               "nested": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_forecast_intervals_") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        for name in args.only or SERIES:
            chosen = seasons["series"][name]["chosen"]
            print(f"== {name}: nested backtests of --seasonal {chosen}", flush=True)
            payload["nested"][name] = nested_intervals(name, chosen, args, work)
            payload["nested_summary"] = nested_summary(payload["nested"])
            payload["seconds"] = time.perf_counter() - started
            write(path, payload)
    summary = payload["nested_summary"]
    print("nested: " + " | ".join(f"{r} {c:.3f}" for r, c in summary["pooled_coverage80"].items()))
    print(f"chosen by the nested backtests: {summary['chosen_rule']}")
    if args.nested_models:
        rule, test, points, covered = summary["chosen_rule"], {}, 0, 0.0
        for name in args.only or SERIES:
            model = rnnkit.load(Path(args.nested_models) / name / seasons["series"][name]["chosen"])
            data = model._prepared(None)
            H, K = model.opts.horizon, model.opts.origins
            tested = [len(data.series) - (K - k) * H for k in range(K)]
            rules = interval_rule_factors(model, data, tested)
            coverage, n = rule_coverage(rules["factors"][rule], rules["ratios"])
            test[name] = {"coverage80": coverage, "points": n, "factors": rules["factors"][rule]}
            points, covered = points + n, covered + coverage * n
            print(f"  backtest {name}: {rule} {coverage:.3f} ({n} points)", flush=True)
        payload["backtest"] = {"rule": rule, "series": test, "pooled_coverage80": covered / points, "points": points,
                               "load_average_1min": os.getloadavg()[0]}
        print(f"backtest, pooled: {covered / points:.3f}")
    payload["seconds"] = time.perf_counter() - started
    write(path, payload)
    return 0


def run_series(name: str, args, work: Path) -> dict:
    settings = SERIES[name]
    m = longest_season(settings["season"])
    variants = VARIANTS if m > 1 else ("none",)
    runs = {}
    for variant in variants:
        options = dict(BASE, **settings, seasonal=variant, time_limit=args.time_limit)
        if args.quick:
            options.update(steps=40, valid_every=20, patience=0)
        model, info = train_forecaster(name, options, work / name / variant)
        info["validation"] = {k: v for k, v in model.config.get("metrics", {}).items()}
        info["backtest"] = full_backtest(model, name, with_ets=False)["pooled"]  # recorded, never used to choose
        info["options"] = options
        info["guard"] = model.evaluate().get("validation")
        runs[variant] = info
        v, b = info["validation"], info["backtest"]["rnnkit"]
        print(f"  {variant:<9} valid loss {v['loss']:.4f} mae {v['mae']:.4g} (seasonal naive {v['seasonal_naive_mae']:.4g}) | "
              f"backtest MASE {b['mase']:.3f} cov80 {b['coverage80']:.3f} | best step {info['best_step']}/{info['steps_run']}, "
              f"{info['train_seconds']:.0f}s, load {info['load_average_1min_before']:.1f}", flush=True)
    chosen = min(runs, key=lambda v: runs[v]["validation"]["loss"])
    model = rnnkit.load(work / name / chosen)
    backtest = full_backtest(model, name, with_ets=False)
    intervals = interval_rules(model, name)
    started = time.perf_counter()
    ets = ets_backtest(model, m, settings["horizon"]) if not args.no_ets else None
    ets_seconds = time.perf_counter() - started
    refit_options = dict(runs[chosen]["options"], refit=True)
    refitted, refit_info = train_forecaster(name, refit_options, work / name / f"{chosen}-refit")
    refit_info["backtest"] = full_backtest(refitted, name, with_ets=False)["pooled"]
    refit_info["refit"] = refitted.config.get("refit")
    p = backtest["pooled"]
    print(f"  chosen {chosen}: MASE {p['rnnkit']['mase']:.3f} (refit {refit_info['backtest']['rnnkit']['mase']:.3f}) | "
          f"seasonal naive {p['seasonal_naive']['mase']:.3f} | ETS {ets['mase'] if ets else float('nan'):.3f} | "
          f"cov80 {p['rnnkit']['coverage80']:.3f} (refit {refit_info['backtest']['rnnkit']['coverage80']:.3f})", flush=True)
    return {"settings": settings, "season": m, "variants": runs, "chosen": chosen, "points": backtest["points"],
            "intervals": intervals,
            "backtest": p, "ets": ets, "ets_seconds": ets_seconds, "refit": refit_info}


def summarise(series: dict) -> dict:
    rows, points, covered, covered_refit, covered_ets, covered_widen_only = [], 0, 0.0, 0.0, 0.0, 0.0
    for name, s in series.items():
        p, r = s["backtest"], s["refit"]["backtest"]
        row = {"series": name, "horizon": s["settings"]["horizon"], "season": s["settings"]["season"], "points": s["points"],
               "chosen": s["chosen"], "mase_chosen": p["rnnkit"]["mase"], "mase_refit": r["rnnkit"]["mase"],
               "mase_seasonal_naive": p["seasonal_naive"]["mase"], "mase_ets": s["ets"]["mase"] if s["ets"] else None,
               "ets_specs": sorted(set(s["ets"]["specs"])) if s["ets"] else [],
               "coverage80_chosen": p["rnnkit"]["coverage80"], "coverage80_refit": r["rnnkit"]["coverage80"],
               "coverage80_widen_only": s["intervals"]["widen-only"]["backtest_coverage80"],
               "blend": s["variants"][s["chosen"]]["validation"].get("blend"),
               "coverage80_ets": s["ets"]["coverage80"] if s["ets"] else None,
               "variants": {v: {"valid_loss": i["validation"]["loss"],
                                "valid_mae_over_seasonal_naive": i["validation"]["mae"] / i["validation"]["seasonal_naive_mae"],
                                "mase": i["backtest"]["rnnkit"]["mase"], "coverage80": i["backtest"]["rnnkit"]["coverage80"]}
                            for v, i in s["variants"].items()}}
        rows.append(row)
        points += s["points"]
        covered += p["rnnkit"]["coverage80"] * s["points"]
        covered_refit += r["rnnkit"]["coverage80"] * s["points"]
        covered_widen_only += s["intervals"]["widen-only"]["backtest_coverage80"] * s["points"]
        covered_ets += (s["ets"]["coverage80"] if s["ets"] else np.nan) * s["points"]
    loo = {rule: float(sum(s["intervals"][rule]["loo_valid_coverage80"] * s["intervals"][rule]["valid_points"]
                           for s in series.values()) / sum(s["intervals"][rule]["valid_points"] for s in series.values()))
           for rule in ("narrow", "widen-only")}
    forward = {rule: float(sum(s["intervals"][rule]["forward_valid_coverage80"] * s["intervals"][rule]["forward_points"]
                               for s in series.values()) / sum(s["intervals"][rule]["forward_points"] for s in series.values()))
               for rule in ("narrow", "widen-only")}
    seasonal = [r for r in rows if len(r["variants"]) > 1]
    relative = {v: float(np.mean([r["variants"][v]["valid_mae_over_seasonal_naive"] for r in seasonal]))
                for v in VARIANTS} if seasonal else {}
    return {"rows": rows, "points": points, "pooled_coverage80_chosen": covered / points,
            "pooled_coverage80_refit": covered_refit / points, "pooled_coverage80_ets": covered_ets / points,
            "pooled_coverage80_widen_only": covered_widen_only / points,
            "pooled_loo_valid_coverage80": loo, "interval_rule_by_validation": min(loo, key=lambda r: abs(loo[r] - 0.8)),
            "pooled_forward_valid_coverage80": forward,
            "interval_rule_by_forward_validation": min(forward, key=lambda r: abs(forward[r] - 0.8)),
            "coverage_goal": COVERAGE_GOAL, "mean_valid_mae_over_seasonal_naive": relative,
            "default_by_validation": min(relative, key=relative.get) if relative else None}


def table(summary: dict) -> str:
    lines = ["| series | H | m | MASE none / lags / residual (valid MAE ÷ seasonal naive) | chosen (blend) | MASE chosen | "
             "MASE refit | seasonal naive | ETS (AIC) | cov80 chosen | cov80 refit | cov80 widen-only | cov80 ETS | points |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["rows"]:
        variants = " / ".join(f"{i['mase']:.3f} ({i['valid_mae_over_seasonal_naive']:.2f})" for i in r["variants"].values())
        ets = "—" if r["mase_ets"] is None else f"{r['mase_ets']:.3f} ({', '.join(r['ets_specs'])})"
        lines.append(f"| {r['series']} | {r['horizon']} | {r['season']} | {variants} | {r['chosen']} ({r['blend']:g}) | "
                     f"{r['mase_chosen']:.3f} | {r['mase_refit']:.3f} | {r['mase_seasonal_naive']:.3f} | {ets} | "
                     f"{r['coverage80_chosen']:.3f} | {r['coverage80_refit']:.3f} | {r['coverage80_widen_only']:.3f} | "
                     f"{'—' if r['coverage80_ets'] is None else format(r['coverage80_ets'], '.3f')} | "
                     f"{r['points']} |")
    lines.append(f"| pooled | | | | | | | | | {summary['pooled_coverage80_chosen']:.3f} | {summary['pooled_coverage80_refit']:.3f} | "
                 f"{summary['pooled_coverage80_widen_only']:.3f} | {summary['pooled_coverage80_ets']:.3f} | {summary['points']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", choices=tuple(SERIES), help="one series (repeatable)")
    p.add_argument("--time-limit", type=float, default=150.0, help="seconds of training per run at most")
    p.add_argument("--no-ets", action="store_true", help="leave ETS out")
    p.add_argument("--quick", action="store_true", help="a few steps per model: a smoke test, not a measurement")
    p.add_argument("--out", default="forecast_seasons.json", help="results file name under benchmarks/results/")
    p.add_argument("--keep", metavar="DIR", help="train the models into DIR and keep them (default: a temporary folder)")
    p.add_argument("--intervals-from", metavar="DIR", help="only recompute the interval rules from the models in DIR "
                                                            "(a --keep DIR run), into the results file")
    p.add_argument("--nested", action="store_true", help="only the interval rules: nested backtests choose one "
                                                         "(into forecast_intervals.json)")
    p.add_argument("--nested-models", metavar="DIR", help="with --nested: then the chosen rule on the backtests of the "
                                                          "models a --keep DIR run kept")
    args = p.parse_args(argv)
    if args.nested:
        return run_nested(args)
    if args.intervals_from:
        return recompute_intervals(RESULTS / args.out, Path(args.intervals_from))
    if args.quick:
        args.out = "forecast_seasons_quick.json"
    path = RESULTS / args.out
    payload = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "command": " ".join(sys.argv),
               "quick": args.quick, "git": git_commit(), "machine": machine_info(statsmodels=_statsmodels_version()),
               "config": {"series": SERIES, "base": BASE, "variants": VARIANTS, "time_limit": args.time_limit,
                          "ets_history_long_seasons": ETS_HISTORY,
                          "choice": "lowest validation loss per series; the default: lowest mean validation MAE "
                                    "relative to seasonal naive over the series with a season"},
               "series": {}}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_forecast_seasons_") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        for name in args.only or SERIES:
            print(f"== {name}: H={SERIES[name]['horizon']}, m={SERIES[name]['season']}", flush=True)
            payload["series"][name] = run_series(name, args, work)
            payload["summary"] = summarise(payload["series"])
            payload["machine"]["load_average_1min_at_end"] = os.getloadavg()[0]
            payload["seconds"] = time.perf_counter() - started
            write(path, payload)
    print(table(payload["summary"]))
    print(f"default --seasonal by validation: {payload['summary']['default_by_validation']} "
          f"({payload['summary']['mean_valid_mae_over_seasonal_naive']}); done in {time.perf_counter() - started:.0f}s")
    return 0


def recompute_intervals(path: Path, models: Path) -> int:
    import json

    payload = json.loads(path.read_text())
    for name, s in payload["series"].items():
        s["intervals"] = interval_rules(rnnkit.load(models / name / s["chosen"]), name)
        print(f"  {name}: " + " | ".join(f"{rule} LOO valid {r['loo_valid_coverage80']:.3f} backtest {r['backtest_coverage80']:.3f} "
                                         f"(factor {r['factor']:.3f})" for rule, r in s["intervals"].items()), flush=True)
    payload["summary"] = summarise(payload["series"])
    payload["intervals_recomputed"] = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "git": git_commit(),
                                       "load_average_1min": os.getloadavg()[0]}
    write(path, payload)
    print(table(payload["summary"]))
    print(f"interval rule by validation: {payload['summary']['interval_rule_by_validation']} "
          f"({payload['summary']['pooled_loo_valid_coverage80']}); by forward validation: "
          f"{payload['summary']['interval_rule_by_forward_validation']} ({payload['summary']['pooled_forward_valid_coverage80']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
