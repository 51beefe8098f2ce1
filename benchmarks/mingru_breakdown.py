"""Where a minGRU training step spends its time: the step of ``rnnkit experiment speed`` (one
layer, a linear head under MSE, forward and backward) taken apart and each piece timed alone.

Pieces, in the order a step runs them:

* input projection: x Wᵀ + b for all steps, one matrix product;
* activations: log(1 − z), z and g(k_h), b = z·h̃ (exp, log1p, expm1: the transcendental part);
* forward scan: block decays e^{a*}, the in-block cumulative sums, the block ends joined;
* head and loss: Linear forward and backward, MSE forward and backward;
* backward scan: ∂L/∂h_t for every t from the forward's block decays;
* activation slopes: the pre-activation gradients from ∂L/∂h_t;
* weight gradients: ∂L/∂W, ∂L/∂b and ∂L/∂x, three matrix products;
* the rest: the whole step minus the pieces (checks, copies, bookkeeping).

Each piece's figure is its fastest of many runs, as for ``experiment speed``. The pieces are
those of the NumPy reference (the parallel scan), so the step runs on that backend: on the
compiled one the activations and the loop are one kernel each way (``nn/kernels/minimal.py``).

Run from the repository root:  OPENBLAS_NUM_THREADS=1 python benchmarks/mingru_breakdown.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import ROOT, git_commit, machine_info, write
from rnnkit import keep_freed_memory
from rnnkit.nn import Linear, MinGRU, MSELoss, backend
from rnnkit.nn.minimal import _reverse_scan_segment, _scan_segment, segment_steps


def fastest(fn, min_time: float) -> float:
    """Seconds of the fastest of at least 20 calls and ``min_time`` seconds of calls."""
    fn()
    times = []
    while len(times) < 20 or sum(times) < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def breakdown(T: int, batch: int, hidden: int, min_time: float, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    layer, head, loss_fn = MinGRU(hidden, hidden, rng=rng), Linear(hidden, hidden, rng=rng), MSELoss()
    x = rng.standard_normal((T, batch, hidden)).astype(np.float32)
    y = rng.standard_normal((T, batch, hidden)).astype(np.float32)
    if T * batch * hidden > segment_steps(batch * hidden) * batch * hidden:
        raise SystemExit("mingru_breakdown: T must fit in one segment of the scan (T·batch·hidden ≤ 65536)")
    w = layer._weights(0, "")
    H, h0 = hidden, np.zeros((batch, hidden), np.float32)

    def step():
        out = layer(x)[0]
        loss_fn(head(out), y)
        layer.backward(head.backward(loss_fn.backward()))

    # the inputs of each piece, made once by the real forward and backward
    K0 = layer._project(x, w)
    K, log_a = K0.copy(), np.empty((T, batch, H), np.float32)
    b = layer._coefficients(K, log_a)
    Hs = np.empty_like(log_a)
    exponentials = _scan_segment(log_a, b, h0, out=Hs)
    d_out = rng.standard_normal(Hs.shape).astype(np.float32)
    G, dK = np.empty_like(Hs), np.empty_like(K)
    H_prev = np.concatenate([h0[None], Hs[:-1]])

    def head_and_loss():
        loss_fn(head(Hs), y)
        head.backward(loss_fn.backward())

    pieces = {
        "input projection": lambda: layer._project(x, w),
        "activations": lambda: layer._coefficients(K0.copy(), log_a),  # the copy is timed below and taken off
        "forward scan": lambda: _scan_segment(log_a, b, h0, out=Hs),
        "head and loss": head_and_loss,
        "backward scan": lambda: _reverse_scan_segment(*exponentials, d_out, h0, out=G),
        "activation slopes": lambda: layer._coefficients_backward(G, H_prev, K, log_a, out=dK),
        "weight gradients": lambda: layer._weight_gradients(dK, x, w),
    }
    seconds = {name: fastest(fn, min_time) for name, fn in pieces.items()}
    seconds["activations"] -= fastest(K0.copy, min_time)
    total = fastest(step, 2 * min_time)
    seconds["the rest"] = total - sum(seconds.values())
    return {"T": T, "batch": batch, "hidden": hidden, "step_seconds": total,
            "pieces": {name: {"seconds": s, "share": s / total} for name, s in seconds.items()}}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="128,1024", help="comma-separated T (default: 128,1024)")
    ap.add_argument("--min-time", type=float, default=1.0, help="seconds of timed calls per piece, at least")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/speed/breakdown.json")
    args = ap.parse_args()
    keep_freed_memory()  # as the rnnkit command does
    backend.set_backend("numpy")  # the reference's pieces (see the module docstring)
    rows = []
    for T in (int(t) for t in args.lengths.split(",")):
        r = breakdown(T, 1, 64, args.min_time)
        rows.append(r)
        print(f"\nminGRU training step, (batch 1, hidden 64), T = {T}: {r['step_seconds'] * 1e6:.0f} µs")
        for name, p in r["pieces"].items():
            print(f"  {name:<20} {p['seconds'] * 1e6:8.1f} µs  {p['share']:6.1%}")
    write(args.out, {"script": "benchmarks/mingru_breakdown.py", **git_commit(), "machine": machine_info(), "results": rows})
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
