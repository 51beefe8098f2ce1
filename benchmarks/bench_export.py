"""The deployed model's speed: onnxruntime running rnnkit's ONNX export, against rnnkit itself
(its compiled kernels) and torch.nn with the same weights.

Cases, at the core benchmark's sizes (``bench_core.py``; ``BxTxIxH``, batch-first):

* inference: one pass of an LSTM / GRU layer over a batch (rnnkit under ``no_grad``, torch
  under ``torch.no_grad``, onnxruntime the exported ``layer_graph``);
* streaming: one step at batch 1 with the state carried (rnnkit's and torch's cells; for
  onnxruntime the exported layer called with T = 1 and the state fed back, as a deployed
  language model streams).

Each case first checks that the three give the same outputs (1e-5 of their norm). Timing: the
median of single calls, the three taking turns. onnxruntime runs with its default threads and
with one (``intra_op_num_threads=1``); torch with its default; rnnkit with its thread policy.
The load average is recorded: on a shared machine the numbers are only comparable within a run.

Run from the repository root:  python benchmarks/bench_export.py [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

import rnnkit.nn as rk
from rnnkit.export import onnx as onnx_export
from rnnkit.threads import apply_thread_policy

from common import machine_info, write

RESULTS = Path(__file__).resolve().parent / "results" / "export.json"
LAYER_SHAPES = [(32, 100, 64, 128), (64, 100, 128, 256)]
STREAM_HIDDEN = [64, 256]


def twins(model: str, I: int, H: int, seed: int = 0):
    """(rnnkit layer, torch layer) with the same weights, batch-first."""
    torch.manual_seed(seed)
    ref = getattr(torch.nn, model)(I, H, batch_first=True)
    ours = getattr(rk, model)(I, H, batch_first=True)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()})
    ours.eval()
    return ours, ref


def sessions(layer) -> dict:
    model = onnx_export.layer_graph(layer).SerializeToString()
    one = ort.SessionOptions()
    one.intra_op_num_threads = 1
    return {"onnxruntime": ort.InferenceSession(model, providers=["CPUExecutionProvider"]),
            "onnxruntime_1thread": ort.InferenceSession(model, one, providers=["CPUExecutionProvider"])}


def median_seconds(fns: dict, seconds: float) -> dict:
    """Each function's median call time, taking turns for ``seconds`` in all (at least 3 calls each)."""
    times = {name: [] for name in fns}
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or min(len(t) for t in times.values()) < 3:
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def check(outputs: dict, what: str) -> None:
    ref = outputs.pop("torch")
    for name, out in outputs.items():
        err = np.linalg.norm(np.asarray(out) - ref) / max(np.linalg.norm(ref), 1.0)
        assert err <= 1e-5, f"{what}: {name} differs from torch by {err:.2g}"


def inference_case(model: str, B: int, T: int, I: int, H: int, seconds: float) -> dict:
    ours, ref = twins(model, I, H)
    x = np.random.default_rng(0).standard_normal((B, T, I)).astype(np.float32)
    xt = torch.from_numpy(x)
    states = {f"{part}0": np.zeros((1, B, size), np.float32) for part, size in onnx_export.state_parts(ours)}
    feeds = {"x": x, "lengths": np.full(B, T, np.int64), **states}
    runs = {name: (lambda s=s: s.run(["out"], feeds)[0]) for name, s in sessions(ours).items()}

    def rnnkit_run():
        with rk.no_grad():
            return ours(x)[0]

    def torch_run():
        with torch.no_grad():
            return ref(xt)[0].numpy()

    runs.update(rnnkit=rnnkit_run, torch=torch_run)
    check({name: fn() for name, fn in runs.items()}, f"{model} {B}x{T}x{I}x{H}")
    return {"case": f"{model} infer {B}x{T}x{I}x{H}", **median_seconds(runs, seconds)}


def stream_case(model: str, H: int, seconds: float, steps: int = 50) -> dict:
    ours_layer, ref = twins(model, H, H)
    cell = getattr(rk, model + "Cell")(H, H)
    cell.load_state_dict({k[: -len("_l0")]: v for k, v in ours_layer.state_dict().items()})
    ref_cell = getattr(torch.nn, model + "Cell")(H, H)
    ref_cell.load_state_dict({k[: -len("_l0")]: v for k, v in ref.state_dict().items()})
    xs = np.random.default_rng(1).standard_normal((steps, 1, H)).astype(np.float32)
    parts = [part for part, _ in onnx_export.state_parts(ours_layer)]
    onnx_runs = {}
    for name, s in sessions(ours_layer).items():
        def run(s=s):  # `steps` calls of one step each, the state fed back
            state = {f"{p}0": np.zeros((1, 1, H), np.float32) for p in parts}
            for x in xs:
                out, *new = s.run(None, {"x": x[None], "lengths": np.ones(1, np.int64), **state})
                state = dict(zip(state, new))
            return out[0, 0]
        onnx_runs[name] = run

    def rnnkit_run():
        state = None
        with rk.no_grad():
            for x in xs:
                state = cell(x, state)
        return state[0][0] if isinstance(state, tuple) else state[0]

    def torch_run():
        state = None
        with torch.no_grad():
            for x in xs:
                state = ref_cell(torch.from_numpy(x), state)
        return (state[0] if isinstance(state, tuple) else state)[0].numpy()

    runs = {**onnx_runs, "rnnkit": rnnkit_run, "torch": torch_run}
    check({name: fn() for name, fn in runs.items()}, f"{model}Cell H{H}")
    return {"case": f"{model} stream H{H} (per step)", **{k: v / steps for k, v in median_seconds(runs, seconds).items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per case (default: 3)")
    args = parser.parse_args()
    apply_thread_policy(once=True)
    info = machine_info(torch=torch.__version__, onnxruntime=ort.__version__, torch_threads=torch.get_num_threads())
    rows = []
    for model in ("LSTM", "GRU"):
        rows += [inference_case(model, *shape, args.seconds) for shape in LAYER_SHAPES]
        rows += [stream_case(model, H, args.seconds) for H in STREAM_HIDDEN]
    info["load_average_1min_at_end"] = os.getloadavg()[0]
    names = ["rnnkit", "torch", "onnxruntime", "onnxruntime_1thread"]
    print(f"{'case':<34}" + "".join(f"{n:>21}" for n in names) + "   (ms a call)")
    for row in rows:
        print(f"{row['case']:<34}" + "".join(f"{row[n] * 1e3:>21.3f}" for n in names))
    print(f"load average {info['load_average_1min_at_start']:.2f} → {info['load_average_1min_at_end']:.2f}")
    write(RESULTS, {"machine": info, "seconds_per_case": args.seconds, "results": rows})


if __name__ == "__main__":
    main()
