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
from .nn.recurrent import RecurrentLayer
from .training.plots import pyplot, save_figure

SIGMOID_EDGE = 0.05  # σ within this of 0 or 1: σ' = σ(1 − σ) < 0.0475
TANH_EDGE = 0.95  # |tanh| above this: tanh' = 1 − tanh² < 0.0975

def _saturated(values: np.ndarray, activation: str) -> np.ndarray:
    if activation == "sigmoid":
        return (values < SIGMOID_EDGE) | (values > 1 - SIGMOID_EDGE)
    if activation == "relu":  # a dead unit passes no gradient at all
        return values <= 0
    if activation == "positive":  # minGRU's g: σ below 0, linear above; flat only on the σ side
        return values < SIGMOID_EDGE
    return np.abs(values) > TANH_EDGE


def gate_saturation(layer: RecurrentLayer) -> dict[str, float]:
    """Share of saturated units per gate in the layer's most recent forward (before its backward).

    Returns {"layer 0 forget": 0.12, …}, counting only the steps inside each sequence; the
    gates and their activations are the layer's kind's (``layer.kind.gates``).
    """
    result = {}
    for label, acts in zip(layer.direction_labels(), layer.gate_activations()):  # (G, N, H) per layer·direction
        for (name, activation), block in zip(layer.kind.gates, acts):
            result[f"{label} {name}"] = float(_saturated(block, activation).sum()) / max(block.size, 1)
    return result


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
