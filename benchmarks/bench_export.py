"""The deployed model's speed: onnxruntime running rnnkit's ONNX export, against rnnkit itself
(its compiled kernels) and torch.nn with the same weights.

Cases, at the core benchmark's sizes (``bench_core.py``; ``BxTxIxH``, batch-first):

* inference: one pass of an LSTM / GRU layer over a batch (rnnkit under ``no_grad``, torch
  under ``torch.no_grad``, onnxruntime the exported ``layer_graph``);
* streaming: one step at batch 1 with the state carried (rnnkit's and torch's cells; for
  onnxruntime the exported layer called with T = 1 and the state fed back, as a deployed
  language model streams);
* language model (``--cases lm``): the whole lm task model (Embedding → 2-layer LSTM → Linear,
  lm's defaults: E = 64, H = 256, V = 65, Shakespeare's characters) as ``rnnkit export`` writes
  it, a window of 32×100 tokens from zeros, and a stream of single tokens with the state fed
  back (rnnkit's LanguageModel called with T = 1, as ``generate`` does; torch's twin likewise).

Each case first checks that the three give the same outputs (1e-5 of their norm). Timing: the
median of single calls, the three taking turns. onnxruntime runs with its default threads and
with one (``intra_op_num_threads=1``); torch with its default; rnnkit with its thread policy.
The load average is recorded: on a shared machine the numbers are only comparable within a run.

Run from the repository root:  python benchmarks/bench_export.py [--seconds S] [--cases layers,lm]
(results/export.json; one case alone: results/export_lm.json …)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import common  # noqa: F401  (first: starts rnnkit's kernels before torch; see there)
import numpy as np
import onnxruntime as ort
import torch

import rnnkit.nn as rk
from rnnkit.export import onnx as onnx_export
from rnnkit.models.language_model import LanguageModel
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


class TorchLM(torch.nn.Module):
    """rnnkit's lm as torch modules with its names (time first): its state dict loads strictly."""

    def __init__(self, V: int, E: int, H: int, L: int):
        super().__init__()
        self.embedding, self.rnn, self.head = torch.nn.Embedding(V, E), torch.nn.LSTM(E, H, L), torch.nn.Linear(H, V)

    def forward(self, ids, state=None):
        out, state = self.rnn(self.embedding(ids), state)
        return self.head(out), state


def lm_cases(seconds: float, V: int = 65, E: int = 64, H: int = 256, L: int = 2, B: int = 32, T: int = 100,
             steps: int = 50) -> list[dict]:
    """The exported language model: a window (B×T from zeros), and one token per call, the state fed back."""
    ours = LanguageModel(V, E, H, L, "lstm", rng=0)
    ours.eval()
    ref = TorchLM(V, E, H, L)
    ref.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in ours.state_dict().items()}, strict=True)
    graph = onnx_export.language_model_graph(ours, {}).SerializeToString()
    one = ort.SessionOptions()
    one.intra_op_num_threads = 1
    runs = {"onnxruntime": ort.InferenceSession(graph, providers=["CPUExecutionProvider"]),
            "onnxruntime_1thread": ort.InferenceSession(graph, one, providers=["CPUExecutionProvider"])}
    ids = np.random.default_rng(2).integers(0, V, (B, T))
    zeros = lambda b: {"h0": np.zeros((L, b, H), np.float32), "c0": np.zeros((L, b, H), np.float32)}  # noqa: E731

    def rnnkit_window():
        with rk.no_grad():
            return ours(ids.T)[0].transpose(1, 0, 2)

    def torch_window():
        with torch.no_grad():
            return ref(torch.from_numpy(ids.T))[0].numpy().transpose(1, 0, 2)

    window = {name: (lambda s=s: s.run(["logits"], {"ids": ids, **zeros(B)})[0]) for name, s in runs.items()}
    window.update(rnnkit=rnnkit_window, torch=torch_window)
    check({name: fn() for name, fn in window.items()}, f"lm window {B}x{T}")
    tokens = ids[0, :steps]

    def onnx_stream(s):
        state = zeros(1)
        for token in tokens:
            logits, *new = s.run(None, {"ids": np.array([[token]]), **state})
            state = dict(zip(state, new))
        return logits[0, 0]

    def rnnkit_stream():
        state = None
        with rk.no_grad():
            for token in tokens:
                logits, state = ours(np.array([[token]]), state)
        return logits[0, 0]

    def torch_stream():
        state = None
        with torch.no_grad():
            for token in tokens:
                logits, state = ref(torch.tensor([[token]]), state)
        return logits[0, 0].numpy()

    stream = {name: (lambda s=s: onnx_stream(s)) for name, s in runs.items()}
    stream.update(rnnkit=rnnkit_stream, torch=torch_stream)
    check({name: fn() for name, fn in stream.items()}, "lm stream")
    return [{"case": f"lm window {B}x{T} E{E} H{H} L{L} V{V}", **median_seconds(window, seconds)},
            {"case": f"lm stream H{H} L{L} (per token)", **{k: v / steps for k, v in median_seconds(stream, seconds).items()}}]


CASES = ("layers", "lm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per case (default: 3)")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} (default: all)")
    args = parser.parse_args()
    cases = args.cases.split(",")
    if not set(cases) <= set(CASES):
        parser.error(f"--cases: expected some of {', '.join(CASES)}, got {args.cases}")
    apply_thread_policy(once=True)
    info = machine_info(torch=torch.__version__, onnxruntime=ort.__version__, torch_threads=torch.get_num_threads())
    rows = []
    for model in ("LSTM", "GRU") if "layers" in cases else ():
        rows += [inference_case(model, *shape, args.seconds) for shape in LAYER_SHAPES]
        rows += [stream_case(model, H, args.seconds) for H in STREAM_HIDDEN]
    if "lm" in cases:
        rows += lm_cases(args.seconds)
    info["load_average_1min_at_end"] = os.getloadavg()[0]
    names = ["rnnkit", "torch", "onnxruntime", "onnxruntime_1thread"]
    print(f"{'case':<34}" + "".join(f"{n:>21}" for n in names) + "   (ms a call)")
    for row in rows:
        print(f"{row['case']:<34}" + "".join(f"{row[n] * 1e3:>21.3f}" for n in names))
    print(f"load average {info['load_average_1min_at_start']:.2f} → {info['load_average_1min_at_end']:.2f}")
    out = RESULTS if set(cases) == set(CASES) else RESULTS.with_name(f"export_{'_'.join(cases)}.json")  # a part apart
    write(out, {"machine": info, "seconds_per_case": args.seconds, "results": rows})


if __name__ == "__main__":
    main()
