"""The known problems of RNNs, made visible in a user's own model.

- Gradient flow over time: ‖∂L/∂h_t‖ at every step and layer, straight from the hand-written
  BPTT (``layer.record_grad_norms``). Vanishing gradients show as a decay over orders of
  magnitude from the last step back to the first; exploding ones as growth.
- Gradient norms per parameter, before and after clipping.
- Gate saturation: the share of sigmoid gates near 0 or 1 and of tanh units near ±1, where
  the derivative, and so the gradient through them, is nearly zero.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .nn import clip_grad_norm_
from .nn.recurrent import RecurrentLayer, RNNBase
from .training.plots import pyplot, save_figure

SIGMOID_EDGE = 0.05  # σ within this of 0 or 1: σ' = σ(1 − σ) < 0.0475
TANH_EDGE = 0.95  # |tanh| above this: tanh' = 1 − tanh² < 0.0975

_GATES = {"LSTM": (("input", "sigmoid"), ("forget", "sigmoid"), ("cell", "tanh"), ("output", "sigmoid")),
          "GRU": (("reset", "sigmoid"), ("update", "sigmoid"), ("new", "tanh")),
          "RNN": (("hidden", "tanh"),)}


def _saturated(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "sigmoid":
        return (values < SIGMOID_EDGE) | (values > 1 - SIGMOID_EDGE)
    if kind == "relu":  # a dead unit passes no gradient at all
        return values <= 0
    return np.abs(values) > TANH_EDGE


def gate_saturation(layer: RNNBase) -> dict[str, float]:
    """Share of saturated units per gate in the layer's most recent forward (before its backward).

    Returns {"layer 0 forget": 0.12, …}, counting only the steps inside each sequence.
    """
    if not layer._caches:
        raise RuntimeError("gate_saturation: run a forward pass (outside no_grad) first")
    _, bs, _, _, caches, _ = layer._caches[-1]
    gates = _GATES[layer.mode]
    if layer.mode == "RNN" and layer.nonlinearity == "relu":
        gates = (("hidden", "relu"),)
    H, D = layer.hidden_size, layer.num_directions
    counts: dict[str, list[int]] = {}
    for j, cache in enumerate(caches):
        acts = cache[1]  # RNN: the outputs h_t; LSTM and GRU: the activated gates (T, B, G·H)
        T, B = acts.shape[:2]
        active = np.arange(B)[None, :] < np.asarray(bs)[:, None]  # (T, B): steps inside each sequence
        for g, (name, kind) in enumerate(gates):
            block = acts[:, :, g * H : (g + 1) * H][active]
            key = f"layer {j // D}{' reverse' if j % D else ''} {name}"
            counts[key] = [int(_saturated(block, kind).sum()), block.size]
    return {k: s / max(n, 1) for k, (s, n) in counts.items()}


def parameter_grad_norms(model, clip: float) -> list[tuple[str, float, float]]:
    """(name, ‖grad‖ before clipping, after) for every parameter; clips the gradients in place."""
    before = {name: float(np.linalg.norm(p.grad)) for name, p in model.named_parameters()}
    scale = 1.0
    if clip:
        total = clip_grad_norm_(model.parameters(), clip)
        scale = min(1.0, clip / (total + 1e-6))
    return [(name, b, b * scale) for name, b in before.items()]


def plot_gradient_flow(norms: np.ndarray, labels: list[str], path, title: str) -> Path:
    """‖∂L/∂h_t‖ against t on a log scale, one line per layer (and direction).

    A norm of exactly 0 is the gradient underflowing in the layer's own arithmetic (in float32
    below 1.4·10⁻⁴⁵): it is drawn on a dotted line at the bottom, marked "0", not left out.
    """
    fig, ax = pyplot().subplots(figsize=(7, 4), dpi=100)
    t = np.arange(1, norms.shape[1] + 1)
    positive = norms[norms > 0]
    zero_at = positive.min() / 10 if positive.size else 1.0
    for row, label in zip(norms, labels):
        ax.semilogy(t, np.where(row > 0, row, zero_at), label=label)
    if (norms == 0).any():
        ax.axhline(zero_at, color="grey", linestyle=":", linewidth=1)
        ax.annotate("0 (underflow)", (t[0], zero_at), xytext=(4, 3), textcoords="offset points", fontsize=8, color="grey")
    ax.set_xlabel("time step t")
    ax.set_ylabel("‖∂L/∂h_t‖")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return save_figure(fig, path)


def layer_labels(layer: RecurrentLayer) -> list[str]:
    D = layer.num_directions
    return [f"layer {j // D}{' reverse' if j % D else ''}" for j in range(layer.num_layers * D)]


def format_report(report: dict) -> str:
    """The text `rnnkit diagnose` prints."""
    norms, labels = report["grad_flow"], report["labels"]
    lines = [f"loss on the diagnosed windows: {report['loss']:.4f}",
             "", "gradient flow ‖∂L/∂h_t‖ (mean over windows): first step, middle, last step; ratio first/last"]
    for row, label in zip(norms, labels):
        mid = row[len(row) // 2]
        ratio = row[0] / row[-1] if row[-1] > 0 else float("inf")
        lines.append(f"  {label:<18} {row[0]:10.3e} {mid:10.3e} {row[-1]:10.3e}   {ratio:9.2e}")
    lines += ["", f"gate saturation (sigmoid within {SIGMOID_EDGE} of 0 or 1, |tanh| > {TANH_EDGE}):"]
    lines += [f"  {k:<26} {v:6.1%}" for k, v in report["saturation"].items()]
    lines += ["", f"gradient norm per parameter (clip at {report['clip'] or 'off'}): before → after clipping"]
    lines += [f"  {name:<26} {b:10.3e} → {a:10.3e}" for name, b, a in report["param_norms"]]
    lines += ["", f"plot: {report['plot']}"]
    return "\n".join(lines)
