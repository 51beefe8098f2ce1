"""Initialisers for recurrent layers and cells, beyond PyTorch's default U(−1/√H, 1/√H).

Each acts on every matching parameter of a module (all layers and directions) in place, gate
block by gate block, since each gate is its own map from input or state to hidden units.
"""

from __future__ import annotations

import numpy as np

from .module import Module, as_rng


def _gate_blocks(module: Module, prefix: str):
    """(name, [block views]) for each parameter whose name starts with ``prefix``."""
    H = module.hidden_size
    for name, p in module.named_parameters():
        if name.split(".")[-1].startswith(prefix):
            yield name, [p.data[k * H : (k + 1) * H] for k in range(p.shape[0] // H)]


def orthogonal(shape: tuple[int, int], rng: np.random.Generator, gain: float = 1.0) -> np.ndarray:
    """A (semi-)orthogonal matrix: Q of the QR of a Gaussian matrix, signs fixed so Q is uniform."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return gain * (q if rows >= cols else q.T)


def orthogonal_recurrent_(module: Module, gain: float = 1.0, rng=None) -> Module:
    """Each gate block of every ``weight_hh`` becomes orthogonal (Saxe et al. 2014)."""
    rng = as_rng(rng)
    for _, blocks in _gate_blocks(module, "weight_hh"):
        for block in blocks:
            block[...] = orthogonal(block.shape, rng, gain)
    return module


def xavier_input_(module: Module, gain: float = 1.0, rng=None) -> Module:
    """Each gate block of every ``weight_ih`` ~ U(±gain·√(6 / (fan_in + fan_out))) (Glorot & Bengio 2010)."""
    rng = as_rng(rng)
    for _, blocks in _gate_blocks(module, "weight_ih"):
        for block in blocks:
            bound = gain * np.sqrt(6.0 / sum(block.shape))
            block[...] = rng.uniform(-bound, bound, size=block.shape)
    return module


def _gate_names(module: Module) -> list[str]:
    kind = getattr(module, "kind", None)
    return [name for name, _ in kind.gates] if kind is not None and kind.blocks else []


def forget_gate_bias_(module: Module, value: float = 1.0) -> Module:
    """The forget gate's total bias (b_if + b_hf) becomes ``value`` (Jozefowicz et al. 2015), for
    a layer or cell whose kind has a gate named "forget" (LSTM and its variants)."""
    gates = _gate_names(module)
    if "forget" not in gates:
        raise TypeError(f"module: expected an LSTM (a layer or cell with a forget gate), got {type(module).__name__}")
    if not module.bias:
        raise ValueError("module: has no biases (bias=False), so there is no forget-gate bias to set")
    f = gates.index("forget")
    for name, blocks in _gate_blocks(module, "bias_"):
        blocks[f][...] = value if "bias_ih" in name else 0.0
    return module


def identity_recurrent_(module: Module, scale: float = 1.0) -> Module:
    """IRNN (Le et al. 2015): recurrent weights scale·I and zero biases, for a plain RNN (one
    gate block, no gates)."""
    if _gate_names(module) != ["hidden"]:
        raise TypeError(f"module: expected an RNN layer or cell, got {type(module).__name__}")
    if getattr(module, "proj_size", 0):
        raise ValueError("module: identity recurrence needs a square weight_hh")
    for name, blocks in _gate_blocks(module, "weight_hh"):
        blocks[0][...] = scale * np.eye(module.hidden_size)
    for _, blocks in _gate_blocks(module, "bias_"):
        blocks[0][...] = 0.0
    return module
