"""Time rnnkit against torch.nn, in one process, on this machine.

Cases:

* layers: a training step (forward, loss = Σ out ⊙ W, backward, zeroed gradients) and an
  inference pass (rnnkit under ``rnnkit.nn.no_grad()``, torch under ``torch.no_grad()``) for
  RNN (tanh), LSTM and GRU, a 2-layer LSTM and a bidirectional LSTM; shapes are written
  ``BxTxIxH`` (batch, time, input size, hidden size), ``batch_first=True``;
* streaming: one step at batch 1 of RNNCell, LSTMCell and GRUCell with the state carried
  from step to step, as a real-time decoder would run them (input size = hidden size).

rnnkit runs on both backends (``rnnkit.nn.backend``): ``numba``, the compiled kernels (the
default, its column "rnnkit"), and ``numpy``, the reference. Both libraries see the same
float32 inputs and the same weights (torch's ``state_dict`` loaded into rnnkit's module); each
case first checks that their outputs agree. Timing: the median of ``time.perf_counter``
measurements of single calls, the three taking turns (numba, numpy, torch, then the reverse:
4 turns a case, about ``--seconds`` in all) so that drifts of the machine hit them alike; the
ratio of the two libraries' fastest calls is printed beside it ("fastest", ``ratio_fastest``):
on a shared machine other work only adds time, and where few calls are timed the median moves.
Each turn first runs its library untimed for 0.2 s: on 2 cores the other library's idle
threads (OpenBLAS's spin for up to ~0.1 s) would otherwise slow the first calls by up to 2×.
Threads: rnnkit's policy as the command applies it (``rnnkit.threads``: one BLAS thread, the
kernels on the cores the load leaves free), or ``--threads N`` for the kernels; torch's default. The
header prints them. Memory: as the command, freed arrays are reused (``rnnkit.keep_freed_memory``,
process-wide: torch's tensors come from the same allocator).

``--profile`` (with ``--only``) shows instead where rnnkit's training step spends its time.

Run from the repository root:  python benchmarks/bench_core.py [--quick] [--only TEXT]
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import datetime
import gc
import json
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import common  # noqa: F401  (first: starts rnnkit's kernels before torch; see there)
import numpy as np
import torch

import rnnkit
import rnnkit.nn as rk
from rnnkit.nn import backend
from rnnkit.threads import apply_thread_policy
from rnnkit.threads import describe as describe_threads

RESULTS = Path(__file__).resolve().parent / "results" / "core.json"
LAYER_SHAPES = [(32, 100, 64, 128), (64, 100, 128, 256), (32, 200, 256, 512)]
STACKED_SHAPES = LAYER_SHAPES[:2]  # the 2-layer and the bidirectional LSTM
STREAM_HIDDEN = [64, 128, 256, 512]
STREAM_STEPS = 2000
LIBRARY_ENV = ("OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "MALLOC_")  # variables that steer the math libraries and malloc


# ---- cases ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerCase:
    model: str  # "RNN", "LSTM" or "GRU"
    task: str  # "train" or "infer"
    batch: int
    time: int
    input: int
    hidden: int
    num_layers: int = 1
    bidirectional: bool = False

    @property
    def name(self) -> str:
        tag = self.model + (f"-{self.num_layers}L" if self.num_layers > 1 else "") + ("-bi" if self.bidirectional else "")
        return f"{tag} {self.task} {self.batch}x{self.time}x{self.input}x{self.hidden}"


@dataclass(frozen=True)
class StreamCase:
    model: str  # "RNNCell", "LSTMCell" or "GRUCell"
    hidden: int
    steps: int = STREAM_STEPS

    @property
    def name(self) -> str:
        return f"{self.model} stream H{self.hidden}"


def all_cases() -> list:
    cases = []
    for B, T, I, H in LAYER_SHAPES:
        for model in ("RNN", "LSTM", "GRU"):
            cases += [LayerCase(model, task, B, T, I, H) for task in ("train", "infer")]
    for B, T, I, H in STACKED_SHAPES:
        for extra in ({"num_layers": 2}, {"bidirectional": True}):
            cases += [LayerCase("LSTM", task, B, T, I, H, **extra) for task in ("train", "infer")]
    cases += [StreamCase(m, H) for H in STREAM_HIDDEN for m in ("RNNCell", "LSTMCell", "GRUCell")]
    return cases


def select(cases: list, only: list[str] | None) -> list:
    if not only:
        return cases
    wanted = [s.lower() for s in only]
    return [c for c in cases if any(w in c.name.lower() for w in wanted)]


# ---- the two libraries, set up alike ------------------------------------------------------------


def torch_weights(ref: torch.nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in ref.state_dict().items()}


@dataclass
class Pair:
    """Both libraries set up for one case: two callables doing the same work."""

    ours: rk.Module
    run_ours: Callable[[], object]
    run_torch: Callable[[], object]
    diff: float  # the largest |difference| of their outputs
    loss: Callable[[], float] | None = None  # the loss Σ out ⊙ W alone, on rnnkit's out
    check: Callable[[], float] | None = None  # the largest |difference| again, on the current backend


def layer_pair(case: LayerCase, seed: int = 0) -> Pair:
    torch.manual_seed(seed)
    kw = {"num_layers": case.num_layers, "bidirectional": case.bidirectional, "batch_first": True}
    ref = getattr(torch.nn, case.model)(case.input, case.hidden, **kw)
    ours = getattr(rk, case.model)(case.input, case.hidden, **kw, rng=seed)
    ours.load_state_dict(torch_weights(ref))
    rng = np.random.default_rng(seed)
    D = 2 if case.bidirectional else 1
    x = rng.standard_normal((case.batch, case.time, case.input), dtype=np.float32)
    w_out = rng.standard_normal((case.batch, case.time, D * case.hidden), dtype=np.float32)
    x_t, w_out_t = torch.from_numpy(x), torch.from_numpy(w_out)
    # rnnkit's backward always returns dx; asking torch for it too keeps the work the same.
    x_t_grad = torch.from_numpy(x.copy()).requires_grad_(True)

    with rk.no_grad(), torch.no_grad():
        expected = ref(x_t)[0].numpy()
        with backend.use_backend("numpy"):
            out = ours(x)[0]
        diff = float(np.max(np.abs(out - expected)))

    if case.task == "infer":

        def run_ours():
            with rk.no_grad():
                ours(x)

        def run_torch():
            with torch.no_grad():
                ref(x_t)

    else:

        def run_ours():
            ours.zero_grad()
            out, _ = ours(x)
            float((out * w_out).sum())  # the loss, as torch computes it
            ours.backward(w_out, None)

        def run_torch():
            ref.zero_grad()
            x_t_grad.grad = None
            out, _ = ref(x_t_grad)
            (out * w_out_t).sum().backward()

    return Pair(ours, run_ours, run_torch, diff, loss=lambda: float((out * w_out).sum()),
                check=lambda: float(np.max(np.abs(ours(x)[0] - expected))))


def stream_pair(case: StreamCase, seed: int = 0):
    torch.manual_seed(seed)
    H = case.hidden
    ref = getattr(torch.nn, case.model)(H, H)
    ours = getattr(rk, case.model)(H, H, rng=seed)
    ours.load_state_dict(torch_weights(ref))
    xs = np.random.default_rng(seed).standard_normal((case.steps, 1, H), dtype=np.float32)
    xs_t = torch.from_numpy(xs)
    lstm = case.model == "LSTMCell"

    def run_ours():
        h = np.zeros((1, H), np.float32)
        state = (h, h.copy()) if lstm else h
        with rk.no_grad():
            for t in range(case.steps):
                state = ours(xs[t], state)
        return state[0] if lstm else state

    def run_torch():
        h = torch.zeros(1, H)
        state = (h, h.clone()) if lstm else h
        with torch.no_grad():
            for t in range(case.steps):
                state = ref(xs_t[t], state)
        return state[0] if lstm else state

    diff = float(np.max(np.abs(run_ours() - run_torch().numpy())))
    return run_ours, run_torch, diff


# ---- timing ---------------------------------------------------------------------------------


@dataclass
class Budget:
    """How long to spend on each case: repeats = target_s / (one call of each), clipped."""

    target_s: float
    min_repeats: int
    max_repeats: int
    turns: int  # how many times each library takes its turn in a case

    def repeats(self, seconds_per_round: float) -> int:
        return int(np.clip(round(self.target_s / max(seconds_per_round, 1e-9)), self.min_repeats, self.max_repeats))


def once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# After one library runs, its idle worker threads keep spinning for a while (OpenBLAS for up
# to ~0.1 s) and compete for the cores with the other library, whose own threads may in turn
# have gone to sleep. So each turn of a library first runs it untimed for SETTLE_S.
SETTLE_S = 0.2


def settle(fn) -> float:
    """Run fn untimed for SETTLE_S (at least once); returns the median seconds of those calls."""
    end = time.perf_counter() + SETTLE_S
    calls = [once(fn)]
    while time.perf_counter() < end:
        calls.append(once(fn))
    return statistics.median(calls)


def on_backend(name: str, fn):
    """fn, run on rnnkit's backend ``name``."""

    def run():
        with backend.use_backend(name):
            return fn()

    return run


def measure_turns(fns: list, budget: Budget, fastest: list | None = None) -> tuple[list[float], int]:
    """Median seconds per call of each of fns; returns (medians, calls timed per callable), and
    puts each one's fastest call into ``fastest`` where given.

    They take turns (a, b, c, then c, b, a, ...), several turns per case, so that slow drifts of
    the machine hit all alike; each turn settles, then times `per_turn` calls.
    """
    n = budget.repeats(sum(settle(fn) for fn in fns))
    turns = min(n, budget.turns)
    per_turn = -(-n // turns)
    samples: list[list[float]] = [[] for _ in fns]
    gc.collect()
    gc.disable()  # as timeit does: a collection inside one sample would be noise
    try:
        for i in range(turns):
            order = list(zip(fns, samples))
            for fn, own in order if i % 2 == 0 else order[::-1]:
                settle(fn)
                own.extend(once(fn) for _ in range(per_turn))
    finally:
        gc.enable()
    if fastest is not None:
        fastest[:] = [min(own) for own in samples]
    return [statistics.median(own) for own in samples], len(samples[0])


def measure_pair(run_ours, run_torch, budget: Budget) -> tuple[float, float, int]:
    """Median seconds per call of each; returns (ours, torch, calls timed per library)."""
    (ours, theirs), n = measure_turns([run_ours, run_torch], budget)
    return ours, theirs, n


def measure_one(fn, budget: Budget) -> float:
    n = budget.repeats(settle(fn))
    gc.collect()
    gc.disable()
    try:
        return statistics.median(once(fn) for _ in range(n))
    finally:
        gc.enable()


# ---- machine facts ----------------------------------------------------------------------------


def numpy_blas() -> tuple[str, int | str, str]:
    """The BLAS numpy was built with, its thread count and the kernel it picked (read from the library)."""
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except (TypeError, KeyError):  # older numpy: no dict form of the config
        name = "unknown"
    threads: int | str = "unknown"
    core = "unknown"
    np.ones((2, 2)) @ np.ones((2, 2))  # make sure the library is loaded
    try:
        with open("/proc/self/maps") as f:
            libs = {line.split()[-1] for line in f if "openblas" in line.lower() and "numpy" in line.lower()}
        for path in libs:
            lib = ctypes.CDLL(path)
            for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("openblas", "")):
                get_threads = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
                get_core = getattr(lib, f"{prefix}_get_corename{suffix}", None)
                if get_threads is not None:
                    threads = int(get_threads())
                if get_core is not None:
                    get_core.restype = ctypes.c_char_p
                    core = get_core().decode()
                if get_threads is not None:
                    break
    except OSError:  # not Linux, or no OpenBLAS
        pass
    return name, threads, core


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    blas, blas_threads, blas_core = numpy_blas()
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas,
        "numpy_blas_threads": blas_threads,
        "numpy_blas_kernel": blas_core,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        # torch runs LSTM (not RNN or GRU) through oneDNN's fused kernels when it can
        "torch_onednn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        "rnnkit": rnnkit.__version__,
        "rnnkit_threads": describe_threads(),
        "library_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(LIBRARY_ENV)},
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def print_header(info: dict) -> None:
    print(f"rnnkit {info['rnnkit']} vs torch {info['torch']} | {info['cpu']}, {info['cpu_count']} CPUs | {info['platform']}")
    print(f"python {info['python']} | numpy {info['numpy']} with {info['numpy_blas']} ({info['numpy_blas_kernel']} kernels), "
          f"{info['numpy_blas_threads']} threads | "
          f"torch threads {info['torch_threads']} (interop {info['torch_interop_threads']}), oneDNN {'on' if info['torch_onednn'] else 'off'}"
          + (f" | env {info['library_env']}" if info["library_env"] else ""))
    print(f"rnnkit {info['rnnkit_threads']}")


# ---- the benchmark --------------------------------------------------------------------------


def run_benchmark(cases: list, budget: Budget) -> list[dict]:
    results = []
    layer_cases = [c for c in cases if isinstance(c, LayerCase)]
    stream_cases = [c for c in cases if isinstance(c, StreamCase)]
    if layer_cases:
        print(f"\n{'case (BxTxIxH)':<34}{'rnnkit ms':>11}{'numpy ms':>11}{'torch ms':>11}{'ratio':>8}{'numpy':>8}{'n':>5}{'max|diff|':>11}"
              f"{'fastest':>9}")
        for case in layer_cases:
            pair = layer_pair(case)
            with backend.use_backend("numba"), rk.no_grad():
                diff = max(pair.diff, pair.check())
            fastest = []
            (ours_s, numpy_s, torch_s), n = measure_turns(
                [on_backend("numba", pair.run_ours), on_backend("numpy", pair.run_ours), pair.run_torch], budget, fastest)
            r = dict(case=case.name, kind="layer", **asdict(case), rnnkit_ms=ours_s * 1e3, rnnkit_numpy_ms=numpy_s * 1e3,
                     torch_ms=torch_s * 1e3, ratio=ours_s / torch_s, ratio_numpy=numpy_s / torch_s, calls_timed=n, max_abs_diff=diff,
                     rnnkit_fastest_ms=fastest[0] * 1e3, torch_fastest_ms=fastest[2] * 1e3, ratio_fastest=fastest[0] / fastest[2])
            results.append(r)
            print(f"{case.name:<34}{r['rnnkit_ms']:>11.2f}{numpy_s * 1e3:>11.2f}{r['torch_ms']:>11.2f}{r['ratio']:>8.2f}"
                  f"{r['ratio_numpy']:>8.2f}{n:>5}{diff:>11.1e}{r['ratio_fastest']:>9.2f}", flush=True)
    if stream_cases:
        print(f"\n{'case (batch 1, state carried)':<34}{'rnnkit µs':>11}{'numpy µs':>11}{'torch µs':>11}{'ratio':>8}{'numpy':>8}{'n':>5}"
              f"{'max|diff|':>11}{'fastest':>9}  (per step)")
        for case in stream_cases:
            run_ours, run_torch, diff = stream_pair(case)
            with backend.use_backend("numba"):
                diff = max(diff, float(np.max(np.abs(run_ours() - run_torch().numpy()))))
            fastest = []
            (ours_s, numpy_s, torch_s), n = measure_turns([on_backend("numba", run_ours), on_backend("numpy", run_ours), run_torch],
                                                          budget, fastest)
            ours_s, numpy_s, torch_s = ours_s / case.steps, numpy_s / case.steps, torch_s / case.steps
            r = dict(case=case.name, kind="stream", **asdict(case), rnnkit_ms=ours_s * 1e3, torch_ms=torch_s * 1e3,
                     rnnkit_us_per_step=ours_s * 1e6, rnnkit_numpy_us_per_step=numpy_s * 1e6, torch_us_per_step=torch_s * 1e6,
                     ratio=ours_s / torch_s, ratio_numpy=numpy_s / torch_s, calls_timed=n, max_abs_diff=diff,
                     ratio_fastest=fastest[0] / fastest[2])
            results.append(r)
            print(f"{case.name:<34}{r['rnnkit_us_per_step']:>11.1f}{numpy_s * 1e6:>11.1f}{r['torch_us_per_step']:>11.1f}{r['ratio']:>8.2f}"
                  f"{r['ratio_numpy']:>8.2f}{n:>5}{diff:>11.1e}{r['ratio_fastest']:>9.2f}", flush=True)
    return results


# ---- where the time goes ----------------------------------------------------------------------


def gemm_groups(ours, case: LayerCase, rng: np.random.Generator) -> dict[str, list]:
    """The matrix products of one training step, with the shapes and weight layouts rnnkit
    uses, as {group: [callables]}, summed over layers and directions."""
    T, B, H = case.time, case.batch, case.hidden
    D = 2 if case.bidirectional else 1
    groups: dict[str, list] = {
        "input projection    X W_ihᵀ": [],
        "recurrent, forward  T × h W_hhᵀ": [],
        "recurrent, backward T × dg W_hh": [],
        "weight grads        dGᵀX, dGᵀH": [],
        "input grad          dG W_ih": [],
    }
    for k in range(case.num_layers):
        for sfx in ("", "_reverse")[:D]:
            W_ih = getattr(ours, f"weight_ih_l{k}{sfx}").data
            W_hh = getattr(ours, f"weight_hh_l{k}{sfx}").data
            GH, I = W_ih.shape
            X = rng.standard_normal((T * B, I), dtype=np.float32)
            Hs = rng.standard_normal((T, B, H), dtype=np.float32)
            dG = rng.standard_normal((T, B, GH), dtype=np.float32)
            dG2, H2 = dG.reshape(T * B, GH), Hs.reshape(T * B, H)
            groups["input projection    X W_ihᵀ"].append(lambda X=X, W=W_ih: X @ W.T)
            groups["recurrent, forward  T × h W_hhᵀ"].append(lambda Hs=Hs, W=W_hh: [h @ W.T for h in Hs])
            groups["recurrent, backward T × dg W_hh"].append(lambda dG=dG, W=W_hh: [g @ W for g in dG])
            groups["weight grads        dGᵀX, dGᵀH"].append(lambda dG2=dG2, X=X, H2=H2: (dG2.T @ X, dG2.T @ H2))
            groups["input grad          dG W_ih"].append(lambda dG2=dG2, W=W_ih: dG2 @ W)
    return groups


def print_page_faults(fn, steps: int) -> None:
    """Large arrays freshly allocated each step come as new pages from the kernel, each one a
    page fault, paid as system time: this shows how much of the step that is."""
    try:
        import resource
    except ImportError:  # not on Windows
        return
    before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        fn()
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - t0
    faults = (after.ru_minflt - before.ru_minflt) / steps
    sys_ms = (after.ru_stime - before.ru_stime) / steps * 1e3
    print(f"page faults: {faults:.0f} a step, system time {sys_ms:.2f} ms a step ({100 * sys_ms / (wall / steps * 1e3):.0f}% of it)")


def profile_case(case: LayerCase, budget: Budget, top: int) -> None:
    if case.task != "train":
        return
    print(f"\n=== profile: {case.name} (training step) ===")
    pair = layer_pair(case)
    ours, run_ours = pair.ours, pair.run_ours
    ours_s, torch_s, _ = measure_pair(run_ours, pair.run_torch, budget)
    print(f"step time: rnnkit {ours_s * 1e3:.2f} ms, torch {torch_s * 1e3:.2f} ms (ratio {ours_s / torch_s:.2f})")
    print_page_faults(run_ours, max(3, min(20, round(1.0 / ours_s))))

    # 1. The same matrix products alone, in NumPy, timed like the step.
    print("\nmatrix products alone (same shapes and layouts, numpy):")
    gemm_total = 0.0
    for label, fns in gemm_groups(ours, case, np.random.default_rng(1)).items():
        s = measure_one(lambda fns=fns: [f() for f in fns], budget)
        gemm_total += s
        print(f"  {label:<34}{s * 1e3:>9.2f} ms {100 * s / ours_s:>5.1f}%")
    print(f"  {'all matrix products':<34}{gemm_total * 1e3:>9.2f} ms {100 * gemm_total / ours_s:>5.1f}%")

    # 2. Fixed cost per call: the same step (same T, layers, directions) at batch 1 and size 1,
    # where the arithmetic is negligible and what is left is Python and NumPy dispatch.
    tiny = LayerCase(case.model, "train", 1, case.time, 1, 1, case.num_layers, case.bidirectional)
    overhead = measure_one(layer_pair(tiny).run_ours, budget)
    loss = measure_one(pair.loss, budget)  # the benchmark's loss, part of the step but not of rnnkit
    rest = ours_s - gemm_total - overhead - loss
    print(f"  {'Python + dispatch (size-1 step)':<34}{overhead * 1e3:>9.2f} ms {100 * overhead / ours_s:>5.1f}%")
    print(f"  {'the loss Σ out ⊙ W (benchmark)':<34}{loss * 1e3:>9.2f} ms {100 * loss / ours_s:>5.1f}%")
    print(f"  {'elementwise, copies (the rest)':<34}{rest * 1e3:>9.2f} ms {100 * rest / ours_s:>5.1f}%")

    # 3. cProfile over a few steps: which function of functional.py holds the time. NumPy's
    # ufuncs and `@` are not Python calls, so their time is the tottime of the caller.
    steps = max(2, min(20, round(1.0 / ours_s)))
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(steps):
        run_ours()
    prof.disable()
    stats = pstats.Stats(prof).stats
    functional = os.path.join("rnnkit", "nn", "functional.py")
    package = os.path.dirname(rk.__file__)
    rows, outside, other_rnnkit, total = [], [], 0.0, 0.0
    for (path, line, func), (_, ncalls, tottime, cumtime, _) in stats.items():
        total += tottime
        if path.endswith(functional):
            rows.append((tottime, cumtime, ncalls, f"{func} (functional.py:{line})"))
        elif path.startswith(package):
            other_rnnkit += tottime
        else:
            outside.append((tottime, cumtime, ncalls, func if path == "~" else f"{func} ({os.path.basename(path)}:{line})"))
    rows.sort(reverse=True)
    outside.sort(reverse=True)
    print(f"\ncProfile, {steps} steps, per step (profiled step: {total / steps * 1e3:.2f} ms; the profiler adds to every call)")
    print(f"  {'function':<44}{'calls':>7}{'tottime ms':>12}{'%':>6}{'cumtime ms':>12}")
    for tottime, cumtime, ncalls, name in rows[:top]:
        print(f"  {name:<44}{ncalls / steps:>7.0f}{tottime / steps * 1e3:>12.2f}{100 * tottime / total:>6.1f}{cumtime / steps * 1e3:>12.2f}")
    print(f"  {'other rnnkit code (recurrent.py, module.py, …)':<44}{'':>7}{other_rnnkit / steps * 1e3:>12.2f}{100 * other_rnnkit / total:>6.1f}")
    rest = sum(r[0] for r in outside)
    print(f"  {'outside rnnkit (numpy helpers, builtins)':<44}{'':>7}{rest / steps * 1e3:>12.2f}{100 * rest / total:>6.1f}, of which:")
    for tottime, cumtime, ncalls, name in outside[:5]:
        print(f"    {name[:42]:<42}{ncalls / steps:>7.0f}{tottime / steps * 1e3:>12.2f}{100 * tottime / total:>6.1f}{cumtime / steps * 1e3:>12.2f}")


# ---- command line -----------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Time rnnkit against torch.nn on this machine (same weights, same float32 inputs, "
        "one process, libraries interleaved, median of repeats). Prints a table of rnnkit ms, torch ms "
        "and rnnkit/torch (above 1: rnnkit is slower; \"fastest\": the ratio of the two fastest calls) and writes it as JSON.",
        epilog="Cases are named 'MODEL TASK BxTxIxH' (e.g. 'LSTM train 32x100x64x128', "
        "'LSTM-2L infer 64x100x128x256', 'LSTM-bi train ...') and 'CELL stream H' (e.g. 'GRUCell stream H256').",
    )
    parser.add_argument("--quick", action="store_true", help="fewer repeats (about 0.3 s a case instead of about 2 s): a smoke test, not a measurement")
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="about how long each library takes turns at a case (default 2; more gives more calls timed "
                             "where a call is slow: at 2 s the big training cases time 3)")
    parser.add_argument("--only", action="append", metavar="TEXT",
                        help="run only the cases whose name contains TEXT (case-insensitive; may be given more than once)")
    parser.add_argument("--list", action="store_true", help="print the case names and exit")
    parser.add_argument("--profile", action="store_true",
                        help="instead of the table: for each selected training case (use --only), where rnnkit's step spends "
                        "its time: the matrix products timed alone, the fixed per-call cost, and cProfile of functional.py")
    parser.add_argument("--top", type=int, default=15, help="with --profile: how many functions to list (default 15)")
    parser.add_argument("--threads", metavar="N", help="threads for rnnkit's kernels (BLAS stays at one beside them; numpy backend: BLAS's) (default: rnnkit's policy)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"where to write the JSON results (default {RESULTS})")
    args = parser.parse_args(argv)

    cases = select(all_cases(), args.only)
    if args.list:
        print("\n".join(c.name for c in cases))
        return 0
    if not cases:
        parser.error(f"--only {args.only}: no case matches; --list shows the names")
    if not 0 < args.seconds < float("inf"):
        parser.error(f"--seconds: expected a positive number of seconds, got {args.seconds:g}")
    if args.quick and args.seconds != 2.0:
        parser.error("--seconds and --quick: choose one (--quick is 0.3 s a case)")
    budget = Budget(0.3, 3, 30, 2) if args.quick else Budget(args.seconds, 3, max(200, round(100 * args.seconds)), 4)
    apply_thread_policy(args.threads)
    rnnkit.keep_freed_memory()
    backend.accelerated()  # numba's import and its cached kernels, before anything is timed
    info = machine_info()
    print_header(info)

    if args.profile:
        train = [c for c in cases if isinstance(c, LayerCase) and c.task == "train"]
        if not args.only or not train:
            parser.error("--profile needs --only selecting at least one training case, e.g. --only 'LSTM train 32x100x64x128'")
        for case in train:
            profile_case(case, budget, args.top)
        return 0

    results = run_benchmark(cases, budget)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": info, "options": {"quick": args.quick, "only": args.only}, "results": results}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
