"""Cell kinds as ONNX: each kind's form (``CellKind.onnx``), built through a graph builder.

A form is ``(g, layer, k, x, states, lens) → (y, finals)``: layer k of ``layer`` in eval mode.
Every tensor is a name in the graph ``g`` (``rnnkit.export.onnx.Graph``: ``g.op``,
``g.const``, ``g.ints``, ``g.cast``, ``g.steps_inside``, ``g.scan``); this module only reorders NumPy parameters and names operators, so
``rnnkit.nn`` still imports nothing but NumPy.

    x       (T, B, I)           time-major, float32
    states  [(D, B, size)…]     the layer's initial state parts for layer k (h, then c)
    lens    (B,) int32          each row's length (T for a row without padding)
    y       (T, B, D·P)         zero past each row's length
    finals  [(D, B, size)…]     each row's state at its own last step (the reverse direction: at step 0)

Two ways to build a layer:

- ``native``: ONNX's own RNN / GRU / LSTM operator, one node for both directions. ONNX orders
  the gates i, o, f, c (LSTM) and z, r, h (GRU, with ``linear_before_reset = 1``, PyTorch's
  equation for n), and takes ``B = [W_b; R_b]``, peepholes as ``P`` = [p_i, p_o, p_f];
  ``sequence_lens`` gives PyTorch's packed semantics (a reverse direction starts at each row's
  own last step). The operator is time-major: ``layout = 1`` is refused by onnxruntime's CPU
  kernels, so a batch-first graph transposes around it.
- ``scanned``: a ``Scan`` over time of the kind's step written in ONNX operators, for the kinds
  that no operator computes (an LSTM with ``proj_size``, zoneout, layer normalisation, minGRU and
  minLSTM, whose coefficients a_t, b_t are computed for all steps before the Scan). A Scan,
  not the step unrolled: the graph stays the same size for any T and T is chosen at run time.
  Lengths act through a mask: past a row's end the state is carried unchanged and the output is
  zero, so a reverse scan over all T starts each row at its own last step, as ``sequence_lens`` does.
"""

from __future__ import annotations

import numpy as np

from .module import Parameter

#: rnnkit's (PyTorch's) gate blocks in ONNX's order: LSTM i f g o → i o f c; GRU r z n → z r h
LSTM_ORDER, GRU_ORDER = (0, 3, 1, 2), (1, 0, 2)


def direction_parameters(layer, k: int) -> list[dict[str, np.ndarray]]:
    """Layer k's parameters by PyTorch's names without the ``_l{k}`` suffix (``weight_ih``,
    ``bias_hh``, ``weight_hr``, the kind's own; a minimal RNN's ``weight``, ``bias``), one dict per
    direction, forward first."""
    own = list(layer.kind.extra_parameters(layer))
    result = []
    for sfx in ("", "_reverse")[: layer.num_directions]:
        params = {}
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr", "weight", "bias", *own):
            p = getattr(layer, f"{name}_l{k}{sfx}", None)
            if isinstance(p, Parameter):  # a cell read as a layer (export's _CellAsLayer) has bias, a flag
                params[name] = np.asarray(p.data, np.float32)
        result.append(params)
    return result


def _reorder(w: np.ndarray, order: tuple[int, ...]) -> np.ndarray:
    """The gate blocks of w (rows, or entries of a bias) in ``order``."""
    blocks = np.split(w, len(order))
    return np.concatenate([blocks[i] for i in order])


def _merge_directions(g, y_onnx, finals):
    """ONNX's Y (T, D, B, H) → (T, B, D·H), the directions side by side as rnnkit lays them."""
    y = g.op("Reshape", g.op("Transpose", y_onnx, perm=[0, 2, 1, 3]), g.ints([0, 0, -1]))
    return y, finals


def native(op: str, order: tuple[int, ...] = (0,), **attributes):
    """The form of a kind that ONNX's ``op`` (RNN, GRU or LSTM) computes: weights reordered to
    ONNX's gates, one node for every direction. attributes: the operator's own (``activations``
    a per-direction list, ``linear_before_reset``)."""

    def form(g, layer, k, x, states, lens):
        dirs = direction_parameters(layer, k)
        D, H = len(dirs), layer.hidden_size
        W = g.const(np.stack([_reorder(p["weight_ih"], order) for p in dirs]), "W")
        R = g.const(np.stack([_reorder(p["weight_hh"], order) for p in dirs]), "R")
        B = (g.const(np.stack([np.concatenate([_reorder(p["bias_ih"], order), _reorder(p["bias_hh"], order)]) for p in dirs]), "B")
             if "bias_ih" in dirs[0] else "")
        inputs = [x, W, R, B, lens, *states]
        if "weight_peephole" in dirs[0]:  # rnnkit keeps it in ONNX's order already: [p_i, p_o, p_f]
            inputs.append(g.const(np.stack([p["weight_peephole"] for p in dirs]), "P"))
        attrs = {key: value * D if isinstance(value, list) else value for key, value in attributes.items()}
        outs = g.op(op, *inputs, n=1 + len(states), hidden_size=H,
                    direction="bidirectional" if D == 2 else "forward", **attrs)
        return _merge_directions(g, outs[0], list(outs[1:]))

    return form


def scanned(step, input_side=None):
    """The form of a kind computed step by step in a Scan.

    step(g, params, layer, a, states) → (new states, y): one step from ``a``, the input side
    of the gates (B, G·H), and the state parts (B, size); input_side(g, params, layer, x) → a for
    every step at once (T, B, G·H), by default x W_ihᵀ + b_ih + b_hh (the kind's ``input_bias``)."""

    def form(g, layer, k, x, states, lens):
        mask = g.op("Unsqueeze", g.steps_inside(x, lens), g.ints([2]))  # (T, B, 1)
        ys, finals = [], [[] for _ in states]
        for d, params in enumerate(direction_parameters(layer, k)):
            a = (input_side or _input_projection)(g, params, layer, x)
            initial = [g.op("Gather", s, g.ints(d), axis=0) for s in states]

            def body(sub, carried, scans, params=params):
                new, y = step(sub, params, layer, scans[0], carried)
                keep = scans[1]
                return ([sub.op("Where", keep, n, c) for n, c in zip(new, carried)],
                        [sub.op("Where", keep, y, sub.const(np.zeros(1, np.float32), "zero"))])

            outs = g.scan(body, initial, [a, mask], reverse=d == 1, types={"scans": ("float", "bool")})
            for part, final in zip(finals, outs[: len(states)]):
                part.append(g.op("Unsqueeze", final, g.ints([0])))
            ys.append(outs[-1])
        concat = lambda names, axis: names[0] if len(names) == 1 else g.op("Concat", *names, axis=axis)  # noqa: E731
        return concat(ys, 2), [concat(part, 0) for part in finals]

    return form


def _input_projection(g, params, layer, x):
    """x W_ihᵀ + the bias the kind folds into it, for every step: (T, B, G·H)."""
    a = g.op("MatMul", x, g.const(params["weight_ih"].T, "W_ih_t"))
    if "bias_ih" in params:
        a = g.op("Add", a, g.const(layer.kind.input_bias(params["bias_ih"], params["bias_hh"]).astype(np.float32), "b"))
    return a


def _hidden_projection(g, params, h):
    return g.op("MatMul", h, g.const(params["weight_hh"].T, "W_hh_t"))


def lstm_cell(g, a, c_prev, cell_norm=None):
    """LSTM's gates from pre-activations a (B, 4H) in rnnkit's order i f g o: (h, c);
    cell_norm(c) is what the output's tanh reads (c itself by default)."""
    i, f, gg, o = g.op("Split", a, axis=1, num_outputs=4, n=4)
    c = g.op("Add", g.op("Mul", g.op("Sigmoid", f), c_prev), g.op("Mul", g.op("Sigmoid", i), g.op("Tanh", gg)))
    h = g.op("Mul", g.op("Sigmoid", o), g.op("Tanh", cell_norm(c) if cell_norm else c))
    return h, c


def projected_lstm_step(g, params, layer, a, states):
    """An LSTM step whose output h is projected, h = (o ⊙ tanh c) W_hrᵀ: ONNX's LSTM has no projection."""
    h, c = lstm_cell(g, g.op("Add", a, _hidden_projection(g, params, states[0])), states[1])
    h = g.op("MatMul", h, g.const(params["weight_hr"].T, "W_hr_t"))
    return (h, c), h


def zoneout_lstm_step(g, params, layer, a, states):
    """Zoneout in eval: each part the expectation p·previous + (1 − p)·new (nn/zoneout.py)."""
    h_new, c_new = lstm_cell(g, g.op("Add", a, _hidden_projection(g, params, states[0])), states[1])
    mix = lambda old, new, p: g.op("Add", g.op("Mul", old, g.const(np.float32(p), "p")),  # noqa: E731
                                   g.op("Mul", new, g.const(np.float32(1 - p), "q")))
    h, c = mix(states[0], h_new, layer.zoneout_h), mix(states[1], c_new, layer.zoneout_c)
    return (h, c), h


def layer_norm(g, z, gain, bias=None, epsilon=1e-5):
    """LN(z; γ, β) over the last axis (β zero when not given)."""
    bias = np.zeros_like(gain) if bias is None else bias
    return g.op("LayerNormalization", z, g.const(gain, "gamma"), g.const(bias, "beta"), axis=-1, epsilon=epsilon)


def layer_norm_input(g, params, layer, x):
    """LN(x W_ihᵀ; γ_ih) + the folded biases (nn/layernorm.py's ``normalized_input``)."""
    a = layer_norm(g, g.op("MatMul", x, g.const(params["weight_ih"].T, "W_ih_t")), params["ln_ih_gain"])
    if "bias_ih" in params:
        a = g.op("Add", a, g.const(layer.kind.input_bias(params["bias_ih"], params["bias_hh"]).astype(np.float32), "b"))
    return a


def layer_norm_lstm_step(g, params, layer, a, states):
    """haste's LayerNormLSTM step: a + LN(h W_hhᵀ; γ_hh), and tanh of LN(c; γ_c, β_c)."""
    a = g.op("Add", a, layer_norm(g, _hidden_projection(g, params, states[0]), params["ln_hh_gain"]))
    h, c = lstm_cell(g, a, states[1], lambda c: layer_norm(g, c, params["ln_c_gain"], params["ln_c_bias"]))
    return (h, c), h


def layer_norm_gru_step(g, params, layer, a, states):
    """haste's LayerNormGRU step: r, z from a^x + a^h; n = tanh(a^x_n + r ⊙ a^h_n),
    a^h = LN(h W_hhᵀ; γ_hh) + b_hh."""
    h_prev = states[0]
    ah = layer_norm(g, _hidden_projection(g, params, h_prev), params["ln_hh_gain"])
    H = layer.hidden_size
    if "bias_hh" in params:  # b_hr, b_hz are folded into a; b_hn stays inside the reset gate's product
        ah = g.op("Add", ah, g.const(np.concatenate([np.zeros(2 * H, np.float32), params["bias_hh"][2 * H :]]), "b_hn"))
    ax_r, ax_z, ax_n = g.op("Split", a, axis=1, num_outputs=3, n=3)
    ah_r, ah_z, ah_n = g.op("Split", ah, axis=1, num_outputs=3, n=3)
    r, z = g.op("Sigmoid", g.op("Add", ax_r, ah_r)), g.op("Sigmoid", g.op("Add", ax_z, ah_z))
    n = g.op("Tanh", g.op("Add", ax_n, g.op("Mul", r, ah_n)))
    h = g.op("Add", n, g.op("Mul", z, g.op("Sub", h_prev, n)))  # (1 − z) ⊙ n + z ⊙ h
    return (h,), h


def _candidate(g, k):
    """minimal.py's g(k): k + ½ for k ≥ 0, σ(k) below, as σ(min(k, 0)) + max(k, 0)."""
    return g.op("Add", g.op("Sigmoid", g.op("Min", k, g.const(np.float32(0), "zero"))), g.op("Relu", k))


def _minimal_gates(g, params, x, blocks: int):
    """x W_ᵀ + b of a minimal RNN for every step, split into its ``blocks`` gate blocks (T, B, H)."""
    k = g.op("MatMul", x, g.const(params["weight"].T, "W_t"))
    if "bias" in params:
        k = g.op("Add", k, g.const(params["bias"], "b"))
    return g.op("Split", k, axis=2, num_outputs=blocks, n=blocks)


def min_gru_coefficients(g, params, layer, x):
    """minGRU's a = 1 − z = σ(−k_z) and b = z ⊙ g(k_h), every step at once: [a; b] (T, B, 2H)."""
    kz, kh = _minimal_gates(g, params, x, 2)
    a = g.op("Sigmoid", g.op("Neg", kz))
    return g.op("Concat", a, g.op("Mul", g.op("Sigmoid", kz), _candidate(g, kh)), axis=2)


def min_lstm_coefficients(g, params, layer, x):
    """minLSTM's a = f' = f / (f + i) = σ(log σ(k_f) − log σ(k_i)), as the layer's log space
    computes it (log σ(k) = −softplus(−k)), and b = (1 − a) ⊙ g(k_h): [a; b] (T, B, 2H)."""
    kf, ki, kh = _minimal_gates(g, params, x, 3)
    a = g.op("Sigmoid", g.op("Sub", g.op("Softplus", g.op("Neg", ki)), g.op("Softplus", g.op("Neg", kf))))
    return g.op("Concat", a, g.op("Mul", g.op("Sub", g.const(np.float32(1), "one"), a), _candidate(g, kh)), axis=2)


def linear_recurrence_step(g, params, layer, ab, states):
    """A minimal RNN's step h_t = a_t ⊙ h_{t−1} + b_t, its a and b known in advance: a Scan of the
    step, where the layer itself scans in log space (the same numbers to float32's rounding)."""
    a, b = g.op("Split", ab, axis=1, num_outputs=2, n=2)
    h = g.op("Add", g.op("Mul", a, states[0]), b)
    return (h,), h


def when(choose, *forms):
    """A form chosen per layer: ``choose(layer)`` → the index into ``forms``."""

    def form(g, layer, k, x, states, lens):
        return forms[choose(layer)](g, layer, k, x, states, lens)

    return form


#: the forms of the plain kinds, which ONNX's operators compute as they are
RNN_TANH = native("RNN", activations=["Tanh"])
RNN_RELU = native("RNN", activations=["Relu"])
GRU = native("GRU", GRU_ORDER, linear_before_reset=1)
LSTM = native("LSTM", LSTM_ORDER)
#: an LSTM with proj_size runs in a Scan; without, ONNX's LSTM
PROJECTABLE_LSTM = when(lambda layer: bool(layer.proj_size), LSTM, scanned(projected_lstm_step))
