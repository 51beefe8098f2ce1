"""Training speed against sequence length: sequential RNNs, parallel-scan minimal RNNs, attention.

One training step (forward, backward, and nothing else) of a single layer with a linear head,
under a mean-squared error to random targets, timed for each layer kind, sequence length T and
(batch, hidden) size; the peak memory of the step is measured with tracemalloc (NumPy reports
its arrays to it).

Each case is timed for at least ``repeats`` steps and ``min_time`` seconds, and the fastest step
is the figure (the median is recorded too): on a shared machine other work can only add time,
so the minimum is the steadiest measure of the code's own cost, and a fast case gets as many
steps as a slow one gets seconds.
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import asdict, dataclass, field

import numpy as np

from ..nn import Linear, MSELoss, cells
from ..nn.attention import MultiheadSelfAttention
from ..training.plots import pyplot, save_figure

# every registered cell kind; "-seq": a kind that has a sequential mode (the minimal RNNs: the
# same numbers as their parallel scan, a loop of vector operations), run in it; and attention
KINDS = (*cells.names(), *(f"{k.name}-seq" for k in cells.kinds() if "sequential" in k.modes[1:]), "attention")


@dataclass
class SpeedOptions:
    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    lengths: list[int] = field(default_factory=lambda: [128, 512, 2048, 4096])
    sizes: list[tuple[int, int]] = field(default_factory=lambda: [(1, 64), (8, 128), (32, 512)])
    repeats: int = 3
    min_time: float = 1.0  # seconds of timed steps per case, at least
    seed: int = 0
    max_seconds: float = 0.0  # skip a case whose step is predicted to take longer (0: never skip)


def make_layer(kind: str, hidden: int, rng):
    if kind == "attention":
        return MultiheadSelfAttention(hidden, num_heads=1, causal=True, rng=rng)
    name, _, variant = kind.partition("-")
    return cells.get(name).make_layer(hidden, hidden, rng=rng, **({"mode": "sequential"} if variant == "seq" else {}))


def step_time(kind: str, T: int, batch: int, hidden: int, repeats: int, seed: int = 0, min_time: float = 0.0) -> dict:
    """Seconds of the fastest training step (and the median) of at least ``repeats`` steps and
    ``min_time`` seconds, and the peak memory of a step in bytes."""
    rng = np.random.default_rng(seed)
    layer, head, loss_fn = make_layer(kind, hidden, rng), Linear(hidden, hidden, rng=rng), MSELoss()
    x = rng.standard_normal((T, batch, hidden)).astype(np.float32)
    y = rng.standard_normal((T, batch, hidden)).astype(np.float32)

    def step():
        out = layer(x)[0]
        loss_fn(head(out), y)
        layer.backward(head.backward(loss_fn.backward()))

    step()  # warm-up: first-touch page faults and BLAS start-up are not the layer's cost
    times = []
    while len(times) < repeats or sum(times) < min_time:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    step()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"kind": kind, "T": T, "batch": batch, "hidden": hidden, "seconds": float(np.min(times)),
            "median_seconds": float(np.median(times)), "steps_timed": len(times), "peak_bytes": int(peak)}


def predicted_seconds(done: list[dict], kind: str, T: int, batch: int, hidden: int) -> float | None:
    """A step's time extrapolated from the longest shorter T of the same kind and size: linear in T
    for the recurrent layers, quadratic for attention."""
    shorter = [r for r in done if (r["kind"], r["batch"], r["hidden"]) == (kind, batch, hidden) and r["T"] < T and "seconds" in r]
    if not shorter:
        return None
    r = max(shorter, key=lambda r: r["T"])
    return r["seconds"] * (T / r["T"]) ** (2 if kind == "attention" else 1)


def run(opts: SpeedOptions, progress=None) -> dict:
    bad = [k for k in opts.kinds if k not in KINDS]
    if bad:
        raise ValueError(f"--kinds: unknown {bad}; choose from {', '.join(KINDS)}")
    results = []
    for batch, hidden in opts.sizes:
        for T in opts.lengths:
            for kind in opts.kinds:
                guess = predicted_seconds(results, kind, T, batch, hidden)
                if opts.max_seconds and guess is not None and guess > opts.max_seconds:
                    results.append({"kind": kind, "T": T, "batch": batch, "hidden": hidden, "skipped": f"predicted {guess:.0f} s a step"})
                    continue
                if progress:
                    progress(f"speed: {kind} T={T} batch={batch} hidden={hidden}")
                results.append(step_time(kind, T, batch, hidden, opts.repeats, opts.seed, opts.min_time))
    return {"options": asdict(opts), "results": results}


def _lookup(rows, kind, T, batch, hidden):
    return next((r for r in rows if (r["kind"], r["T"], r["batch"], r["hidden"]) == (kind, T, batch, hidden)), None)


def format_table(report: dict) -> str:
    """Milliseconds per step (peak MB), and each kind's speed-up over GRU when GRU was timed."""
    rows = report["results"]
    kinds = list(dict.fromkeys(r["kind"] for r in rows))
    lines = ["training step: milliseconds, fastest of the steps timed (peak MB) [speed-up over gru]"]
    for batch, hidden in dict.fromkeys((r["batch"], r["hidden"]) for r in rows):
        lines.append(f"\nbatch {batch}, hidden {hidden}")
        lines.append(f"{'T':>6}" + "".join(f"{k:>26}" for k in kinds))
        for T in dict.fromkeys(r["T"] for r in rows):
            gru = _lookup(rows, "gru", T, batch, hidden)
            cells = []
            for k in kinds:
                r = _lookup(rows, k, T, batch, hidden)
                if "skipped" in r:
                    cells.append(f"{'skipped':>26}")
                    continue
                ratio = f" [{gru['seconds'] / r['seconds']:5.1f}x]" if gru and "seconds" in gru and k != "gru" else " " * 9
                cells.append(f"{r['seconds'] * 1e3:>9.1f} ({r['peak_bytes'] / 2**20:>6.1f}){ratio}")
            lines.append(f"{T:>6}" + "".join(cells))
    return "\n".join(lines)


def plot_speed(report: dict, path):
    """Time per step against T, log-log, one panel per (batch, hidden)."""
    rows = report["results"]
    sizes = list(dict.fromkeys((r["batch"], r["hidden"]) for r in rows))
    fig, axes = pyplot().subplots(1, len(sizes), figsize=(4.5 * len(sizes), 4), squeeze=False)
    for ax, (batch, hidden) in zip(axes[0], sizes):
        for kind in dict.fromkeys(r["kind"] for r in rows):
            pts = sorted((r["T"], r["seconds"] * 1e3) for r in rows
                         if (r["kind"], r["batch"], r["hidden"]) == (kind, batch, hidden) and "seconds" in r)
            ax.loglog(*zip(*pts), marker="o", label=kind)
        ax.set(title=f"batch {batch}, hidden {hidden}", xlabel="sequence length T", ylabel="ms per training step")
        lengths = sorted({r["T"] for r in rows})
        ax.set_xticks(lengths, [str(T) for T in lengths])  # the lengths measured, not 2×10², 3×10², …
        ax.minorticks_off()
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend()
    return save_figure(fig, path)
