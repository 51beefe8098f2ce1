"""ONNX graphs of rnnkit's layers and task models, for onnxruntime.

Opset 21 and IR version 10: every operator used here (the RNN/GRU/LSTM operators, Scan,
LayerNormalization, ReduceMax with axes as an input) has its current form there, and the newer
opsets add nothing used here; onnxruntime 1.31, the ``[export]`` extra's pin, runs them (the tests do).

A recurrent layer is its cell kind's ONNX form (``CellKind.onnx``, ``nn/onnx_forms.py``), layer
after layer; the rest of a task model (embedding, pooling, heads) is written here. Graphs are
what an evaluating model computes: dropout is the identity, zoneout its expectation.

The task models' graphs are batch-first (B rows, T steps):

    language model   ids (B, T) int64, h0 (L, B, P) [, c0 (L, B, H)]
                       → logits (B, T, V), h_n [, c_n]
    piano roll       frames (B, T, P) float32, h0 [, c0] → logits (B, T, P) of the next frames, h_n [, c_n]
                     the state goes in and comes out, so one graph serves a window (zeros in)
                     and a stream: T = 1 per call, the state fed back, equals the whole sequence;
                     a conditional model's class state: condition (B,) int64 → h0 [, c0]
    classifier       x: ids (B, T) int64, or raw values (B, T, C) float32 (z-normalised per series,
                     averaged down and standardised inside), lengths (B,) int64
                       → probabilities (B, K), or value (B,) for a regressor
    tagger           ids (B, T), lengths (B,) → emissions (B, T, K), tags (B, T) (Viterbi for a CRF)
    transcriber      features (B, T, n_mels) log-mel frames, lengths (B,) → log_probs (B, T', V),
                     steps (B,), labels (B, T') the greedy CTC labels, label_lengths (B,)
    forecaster       history (B, N, C) [, origin (B,) int64] [, noise (B, H, paths, C)]
                       → mean, sigma, lower, upper (B, H, C): seasonal naive, lags, calendar,
                     blend and intervals inside; a recursive model's sampled paths in a Scan,
                     its standard normal draws given as ``noise``
    detector         window (B, W + K + S − 2, C), value (B, C) → score (B,), anomaly (B,), mean, sigma
    translation      encoder: src (B, S), src_lengths → the decoder's first state, keys, proj;
                     decoder step: y (B,), the state, keys, proj, src_lengths → logits, the next state, alpha
    captioner        encoder: features (B, F) an image's → the decoder's first state h [, c];
                     decoder step: translation's, without attention

``onnx`` is imported when a graph is built, not before.
"""

from __future__ import annotations

import itertools
import json

import numpy as np

from ..data.series_prep import input_width
from ..models.captioner import Captioner
from ..models.classifier import SequenceClassifier
from ..models.forecaster import SIGMA_MIN, Forecaster
from ..models.language_model import LanguageModel
from ..models.piano_roll import PianoRollModel
from ..models.seq2seq import Decoder, Seq2Seq
from ..models.sequence_model import INPUT_BOUND
from ..models.tagger import SequenceTagger
from ..models.transcriber import BLANK, Transcriber
from ..nn import cells

OPSET, IR_VERSION = 21, 10


class NotExportable(ValueError):
    """A model, or a part of it, that ONNX cannot express; the message names the part."""


def _onnx():
    try:
        import onnx
    except ImportError:  # an optional dependency: say how to get it
        raise NotExportable("export: the onnx package is not installed; pip install 'rnnkit[export]'") from None
    return onnx


class Graph:
    """An ONNX graph being built: ``op`` adds a node and returns its output names, ``const`` a
    weight (an initializer of the outermost graph, which a Scan's body reads from outside), and
    ``scan`` a Scan over time whose body another ``Graph`` builds."""

    def __init__(self, parent: Graph | None = None):
        self.onnx = _onnx()
        self.root = parent.root if parent else self
        self.nodes = []
        if parent is None:
            self.initializers, self._count = [], itertools.count()

    def fresh(self, hint: str) -> str:
        """A name not used anywhere in the model."""
        return f"{hint}_{next(self.root._count)}"

    def op(self, op_type: str, *inputs: str, n: int = 1, **attributes):
        """A node; its output name, or a list of ``n`` of them."""
        outputs = [self.fresh(op_type) for _ in range(n)]
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), outputs, name=self.fresh(op_type + "_node"),
                                                     **attributes))
        return outputs[0] if n == 1 else outputs

    def const(self, array, hint: str = "const", double: bool = False) -> str:
        """A constant: floats as float32 (float64 with ``double``), integers as int64."""
        array = np.asarray(array)
        array = array.astype(np.int64 if array.dtype.kind in "iub" else np.float64 if double else np.float32)
        name = self.fresh(hint)
        self.root.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C"), name))  # 0-d stays 0-d
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(values, np.int64), "ints")

    def cast(self, x: str, to: str) -> str:
        """x as "float", "double", "int32" or "int64"."""
        return self.op("Cast", x, to={"float": 1, "double": 11, "int32": 6, "int64": 7}[to])  # TensorProto's numbers

    def steps_inside(self, x: str, lens: str, time_axis: int = 0) -> str:
        """(T, B) bool: whether step t is inside row b, for x with its T steps on ``time_axis`` and
        lengths (B,) of any integer type."""
        T = self.op("Shape", x, start=time_axis, end=time_axis + 1)
        steps = self.op("Range", self.ints(0), self.op("Squeeze", T, self.ints([0])), self.ints(1))
        return self.op("Less", self.op("Unsqueeze", steps, self.ints([1])), self.op("Unsqueeze", self.cast(lens, "int64"), self.ints([0])))

    def scan(self, body, states: list[str], scans: list[str], reverse: bool = False, types: dict | None = None) -> list[str]:
        """A Scan over axis 0 of ``scans`` (from the end with ``reverse``), carrying ``states``.
        body(sub, states, scan slices) → (new states, per-step outputs); returns the final
        states, then the stacked outputs (in time order either way). types: "states", "scans",
        "outputs", each a tuple of "float" | "int64" | "bool" (float where not given)."""
        sub, T = Graph(self), self.onnx.TensorProto
        elem = {"float": T.FLOAT, "int64": T.INT64, "bool": T.BOOL}
        carried = [sub.fresh("carried") for _ in states]
        slices = [sub.fresh("slice") for _ in scans]
        new, outs = body(sub, carried, slices)
        types = types or {}
        info = lambda names, which: [self.onnx.helper.make_tensor_value_info(  # noqa: E731
            name, elem[kind], None) for name, kind in zip(names, types.get(which, ("float",) * len(names)))]
        graph = self.onnx.helper.make_graph(sub.nodes, self.fresh("step"), info(carried, "states") + info(slices, "scans"),
                                            info(new, "states") + info(outs, "outputs"))
        return self.op("Scan", *states, *scans, n=len(states) + len(outs), body=graph, num_scan_inputs=len(scans),
                       scan_input_directions=[int(reverse)] * len(scans), scan_output_directions=[int(reverse)] * len(outs))

    def model(self, inputs: list[tuple], outputs: list[tuple], metadata: dict[str, str], name: str):
        """The checked ModelProto. inputs, outputs: (name, "float" | "int64", shape with names for
        the free dimensions); metadata: the ``metadata_props`` a consumer reads."""
        onnx, T = self.onnx, self.onnx.TensorProto
        elem = {"float": T.FLOAT, "int64": T.INT64, "bool": T.BOOL}
        info = lambda n, kind, shape: onnx.helper.make_tensor_value_info(n, elem[kind], shape)  # noqa: E731
        graph = onnx.helper.make_graph(self.nodes, name, [info(*i) for i in inputs], [info(*o) for o in outputs],
                                       self.initializers)
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="rnnkit",
                                       ir_version=IR_VERSION)
        onnx.helper.set_model_props(model, {k: str(v) for k, v in metadata.items()})
        onnx.checker.check_model(model, full_check=True)
        return model

    def output(self, value: str, name: str) -> None:
        """Give the graph output ``name`` the value ``value``."""
        self.nodes.append(self.onnx.helper.make_node("Identity", [value], [name], name=self.fresh("output")))


# ---- the recurrent stack ---------------------------------------------------------------------------


def check_exportable(layer) -> None:
    """A layer whose kind ONNX can express; the error names the kind and those that export."""
    kind = getattr(layer, "kind", None)
    if kind is None or kind.onnx is None:
        name = kind.name if kind is not None else type(layer).__name__
        exportable = ", ".join(k.name for k in cells.kinds() if k.onnx is not None)
        raise NotExportable(f"not exportable: {name} layers have no ONNX form (no ONNX operator or Scan step computes "
                            f"them yet); the kinds that export: {exportable}")


def state_parts(layer) -> list[tuple[str, int]]:
    """(part, size) of each state part: h has the layer's output size, the others hidden_size."""
    return [(part, layer.output_size if part == "h" else layer.hidden_size) for part in layer.kind.states]


def recurrent(g: Graph, layer, x: str, states: list[str], lens: str) -> tuple[str, list[str]]:
    """The stack: x (T, B, I) time-major, states [(L·D, B, size)…], lens (B,) int32 →
    y (T, B, D·P), the final states [(L·D, B, size)…]."""
    check_exportable(layer)
    D = layer.num_directions
    finals = [[] for _ in states]
    for k in range(layer.num_layers):
        mine = [g.op("Slice", s, g.ints([k * D]), g.ints([(k + 1) * D]), g.ints([0])) for s in states]
        x, last = layer.kind.onnx(g, layer, k, x, mine, lens)
        for part, value in zip(finals, last):
            part.append(value)
    return x, [part[0] if len(part) == 1 else g.op("Concat", *part, axis=0) for part in finals]


def initial_states(g: Graph, layer, batch: str) -> list[str]:
    """The state a layer starts from without one given: zeros, or its learnt h0, c0 (``learn_init``)."""
    LD = layer.num_layers * layer.num_directions
    result = []
    for part, size in state_parts(layer):
        shape = g.op("Concat", g.ints([LD]), batch, g.ints([size]), axis=0)
        if getattr(layer, "learn_init", False):
            result.append(g.op("Expand", g.op("Unsqueeze", g.const(getattr(layer, f"{part}0").data, f"{part}0"), g.ints([1])), shape))
        else:
            result.append(g.op("ConstantOfShape", shape, value=g.onnx.numpy_helper.from_array(np.zeros(1, np.float32))))
    return result


def _dim(g: Graph, x: str, axis: int) -> str:
    """x.shape[axis] as a (1,) int64 tensor."""
    return g.op("Shape", x, start=axis, end=axis + 1)


def _full_lengths(g: Graph, x: str) -> str:
    """(B,) int32 lengths T for a time-major x with no padding."""
    return g.cast(g.op("Expand", _dim(g, x, 0), _dim(g, x, 1)), "int32")


def _linear(g: Graph, x: str, linear) -> str:
    y = g.op("MatMul", x, g.const(np.asarray(linear.weight.data).T, "weight_t"))
    bias = getattr(linear, "bias", None)
    return y if bias is None else g.op("Add", y, g.const(bias.data, "bias"))


def _state_names(layer, suffix: str) -> list[str]:
    return [f"{part}{suffix}" for part, _ in state_parts(layer)]


# ---- graphs -----------------------------------------------------------------------------------------


def layer_graph(layer, metadata: dict | None = None):
    """A recurrent layer alone: x in the layer's layout ((B, T, I) with batch_first, else (T, B, I)),
    lengths (B,) int64, h0 [, c0] (L·D, B, size) → out (as x's layout, D·P features), h_n [, c_n]."""
    check_exportable(layer)
    g = Graph()
    x = g.op("Transpose", "x", perm=[1, 0, 2]) if layer.batch_first else "x"
    lens = g.cast("lengths", "int32")
    y, finals = recurrent(g, layer, x, _state_names(layer, "0"), lens)
    g.output(g.op("Transpose", y, perm=[1, 0, 2]) if layer.batch_first else y, "out")
    for final, name in zip(finals, _state_names(layer, "_n")):
        g.output(final, name)
    LD, D = layer.num_layers * layer.num_directions, layer.num_directions
    xs = ["batch", "time", layer.input_size] if layer.batch_first else ["time", "batch", layer.input_size]
    ys = [*xs[:2], D * layer.output_size]
    states = [(name, "float", [LD, "batch", size]) for name, (_, size) in zip(_state_names(layer, "0"), state_parts(layer))]
    outs = [(name, "float", [LD, "batch", size]) for name, (_, size) in zip(_state_names(layer, "_n"), state_parts(layer))]
    meta = {"kind": layer.kind.name, "batch_first": json.dumps(layer.batch_first), **(metadata or {})}
    return g.model([("x", "float", xs), ("lengths", "int64", ["batch"]), *states], [("out", "float", ys), *outs], meta,
                   f"{layer.kind.name}_layer")


def _stepped_graph(g: Graph, model, x: str, inputs: list[tuple], metadata: dict, name: str):
    """A recurrent stack and its Linear head, the state in and out: x (T, B, I) time-major, built
    from ``inputs`` → logits (B, T, V), h_n [, c_n] (the language model's and the piano roll's)."""
    rnn = model.rnn
    y, finals = recurrent(g, rnn, x, _state_names(rnn, "0"), _full_lengths(g, x))
    g.output(g.op("Transpose", _linear(g, y, model.head), perm=[1, 0, 2]), "logits")
    for final, state_name in zip(finals, _state_names(rnn, "_n")):
        g.output(final, state_name)
    LD, V = rnn.num_layers * rnn.num_directions, model.head.weight.shape[0]
    states = lambda suffix: [(state_name, "float", [LD, "batch", size])  # noqa: E731
                             for state_name, (_, size) in zip(_state_names(rnn, suffix), state_parts(rnn))]
    meta = {**metadata, "state": json.dumps({state_name: [LD, "batch", size] for state_name, (_, size) in
                                             zip(_state_names(rnn, "0"), state_parts(rnn))})}
    return g.model([*inputs, *states("0")], [("logits", "float", ["batch", "time", V]), *states("_n")], meta, name)


def language_model_graph(model: LanguageModel, metadata: dict):
    """The language model with its state in and out (see the module docstring): logits for a
    window, or one step of a stream."""
    g = Graph()
    x = g.op("Gather", g.const(model.embedding.weight.data, "embedding"), g.op("Transpose", "ids", perm=[1, 0]))  # (T, B, E)
    return _stepped_graph(g, model, x, [("ids", "int64", ["batch", "time"])], metadata, "language_model")


def piano_roll_graph(model: PianoRollModel, metadata: dict):
    """The piano-roll model with its state in and out: frames (B, T, P) float32 → logits (B, T, P)
    of the frames after them (σ: each pitch's probability); T = 1 per call, the state fed back,
    composes frame by frame."""
    g = Graph()
    x = g.op("Transpose", "frames", perm=[1, 0, 2])  # (T, B, P)
    return _stepped_graph(g, model, x, [("frames", "float", ["batch", "time", model.pitches])], metadata, "piano_roll")


def condition_graph(model: LanguageModel, metadata: dict):
    """A conditional language model's first state: condition (B,) int64, the class's index →
    h0 [, c0] (L, B, H), tanh of its row of the condition embedding (LanguageModel._condition_state),
    which the language model's graph then takes."""
    rnn = model.rnn
    g = Graph()
    L, H, parts = rnn.num_layers, rnn.hidden_size, state_parts(rnn)
    emb = g.op("Tanh", g.op("Gather", g.const(model.condition.weight.data, "condition_embedding"), "condition"))  # (B, parts·L·H)
    states = g.op("Transpose", g.op("Reshape", emb, g.ints([0, len(parts), L, H])), perm=[1, 2, 0, 3])  # (parts, L, B, H)
    names = _state_names(rnn, "0")
    for i, name in enumerate(names):
        g.output(g.op("Gather", states, g.ints(i), axis=0), name)
    return g.model([("condition", "int64", ["batch"])], [(name, "float", [L, "batch", H]) for name in names], metadata,
                   "condition_state")


def _pool(g: Graph, pooling, y: str, lens64: str) -> str:
    """classifier.Pooling in ONNX: y (T, B, F) zero past each length → (B, F)."""
    inside = g.steps_inside(y, lens64)  # (T, B)
    inside3 = g.op("Unsqueeze", inside, g.ints([2]))
    if pooling.kind == "last":
        one_step = g.op("Concat", g.ints([1]), g.op("Shape", y, start=1), axis=0)  # (1, B, F)
        index = g.op("Expand", g.op("Reshape", g.op("Sub", lens64, g.ints([1])), g.ints([1, -1, 1])), one_step)
        last = g.op("Squeeze", g.op("GatherElements", y, index, axis=0), g.ints([0]))  # each row's step len − 1
        if pooling.directions == 1:
            return last
        H = pooling.features // 2  # the reverse direction read step 0 last
        first = g.op("Gather", y, g.ints(0), axis=0)
        return g.op("Concat", g.op("Slice", last, g.ints([0]), g.ints([H]), g.ints([1])),
                    g.op("Slice", first, g.ints([H]), g.ints([2 * H]), g.ints([1])), axis=1)
    if pooling.kind == "mean":
        total = g.op("ReduceSum", g.op("Where", inside3, y, g.const(np.zeros(1), "zero")), g.ints([0]), keepdims=0)
        return g.op("Div", total, g.op("Unsqueeze", g.cast(lens64, "float"), g.ints([1])))
    if pooling.kind == "max":
        return g.op("ReduceMax", g.op("Where", inside3, y, g.const(np.full(1, -np.inf), "minus_inf")), g.ints([0]), keepdims=0)
    a = g.op("Tanh", _linear(g, y, pooling.score))  # attention: (T, B, A)
    s = g.op("Squeeze", g.op("MatMul", a, g.const(pooling.u.data[:, None], "u")), g.ints([2]))  # (T, B)
    alpha = g.op("Softmax", g.op("Where", inside, s, g.const(np.full(1, -np.inf), "minus_inf")), axis=0)
    return g.op("ReduceSum", g.op("Mul", g.op("Unsqueeze", alpha, g.ints([2])), y), g.ints([0]), keepdims=0)


def _z_normalised(g: Graph, x: str, inside: str, lengths: str, scaled: bool = False):
    """series_prep.z_normalise per row: x (B, T, C) float64, inside (B, T, 1) bool, lengths (B, 1, 1)
    float64 → each channel less its mean over the row's steps, over their standard deviation; a
    flat channel (std ≤ 1e-8·max(|mean|, 1)) zeros. ``scaled``: also series_prep.level_and_scale
    per row, (B, 1, 2C): log std (floored there), asinh(mean / std)."""
    zero = g.const(np.zeros(1), "zero", double=True)
    over_steps = lambda v: g.op("Div", g.op("ReduceSum", g.op("Where", inside, v, zero), g.ints([1]), keepdims=1), lengths)  # noqa: E731
    mean = over_steps(x)
    d = g.op("Sub", x, mean)
    std = g.op("Sqrt", over_steps(g.op("Mul", d, d)))
    one = g.const(np.ones(1), "one", double=True)
    floor = g.op("Mul", g.op("Max", g.op("Abs", mean), one), g.const(np.full(1, 1e-8), "flat", double=True))
    flat = g.op("LessOrEqual", std, floor)
    z = g.op("Div", d, g.op("Where", flat, g.const(np.full(1, np.inf), "inf", double=True), std))
    if not scaled:
        return z
    spread = g.op("Max", std, floor)
    v = g.op("Div", mean, spread)  # asinh(v) = sign(v)·log(|v| + √(v² + 1)), in ops every runtime has for doubles
    a = g.op("Abs", v)
    asinh = g.op("Mul", g.op("Sign", v), g.op("Log", g.op("Add", a, g.op("Sqrt", g.op("Add", g.op("Mul", a, a), one)))))
    return z, g.op("Concat", g.op("Log", spread), asinh, axis=2)


def _averaged_down(g: Graph, x: str, inside: str, lengths: str, max_steps: int, extremes: bool = False) -> tuple[str, str]:
    """series_prep.average_down per row: x (B, T, C) float64, inside (B, T) bool, lengths (B,) int64
    → (B, min(T, max_steps), C), zeros past each new length, and the new lengths (B,) int64. Step t
    of a row of n > max_steps steps falls in segment ⌊((t + 1)·max_steps − 1) / n⌋ (the j with
    ⌊j·n/max_steps⌋ ≤ t, average_down's segment starts), added there by ScatterElements.
    ``extremes``: summarise_down's (B, T', 3C), each segment's minimum and maximum beside its mean
    (ScatterElements' min and max reductions; empty slots zeroed)."""
    M = g.ints(max_steps)
    n = g.op("Unsqueeze", lengths, g.ints([1]))  # (B, 1)
    t = g.op("Range", g.ints(0), g.op("Squeeze", _dim(g, x, 1), g.ints([0])), g.ints(1))  # (T,)
    segment = g.op("Div", g.op("Sub", g.op("Mul", g.op("Add", t, g.ints(1)), M), g.ints(1)), n)  # (B, T), non-negative
    out_steps = g.op("Min", _dim(g, x, 1), g.ints([max_steps]))
    j = g.op("Min", g.op("Where", g.op("Greater", n, M), segment, t), g.op("Sub", out_steps, g.ints(1)))  # padding: any kept slot
    shape = g.op("Concat", _dim(g, x, 0), out_steps, _dim(g, x, 2), axis=0)
    zeros = lambda dims: g.op("ConstantOfShape", dims, value=g.onnx.numpy_helper.from_array(np.zeros(1)))  # noqa: E731  float64
    sums = g.op("ScatterElements", zeros(shape), g.op("Expand", g.op("Unsqueeze", j, g.ints([2])), g.op("Shape", x)),
                g.op("Where", g.op("Unsqueeze", inside, g.ints([2])), x, g.const(np.zeros(1), "zero", double=True)),
                axis=1, reduction="add")
    counts = g.op("ScatterElements", zeros(g.op("Slice", shape, g.ints([0]), g.ints([2]))), j, g.cast(inside, "double"), axis=1,
                  reduction="add")
    averaged = g.op("Div", sums, g.op("Unsqueeze", g.op("Max", counts, g.const(np.ones(1), "one", double=True)), g.ints([2])))
    new_lengths = g.op("Min", lengths, M)
    if not extremes:
        return averaged, new_lengths
    index = g.op("Expand", g.op("Unsqueeze", j, g.ints([2])), g.op("Shape", x))
    steps = g.op("Unsqueeze", inside, g.ints([2]))
    slot = g.op("Range", g.ints(0), g.op("Squeeze", out_steps, g.ints([0])), g.ints(1))  # (T',)
    kept = g.op("Unsqueeze", g.op("Less", g.op("Unsqueeze", slot, g.ints([0])), g.op("Unsqueeze", new_lengths, g.ints([1]))),
                g.ints([2]))  # (B, T', 1): slots within the new length
    zero = g.const(np.zeros(1), "zero", double=True)
    parts = [averaged]
    for reduction, bound in (("min", np.inf), ("max", -np.inf)):
        start = g.op("ConstantOfShape", shape, value=g.onnx.numpy_helper.from_array(np.full(1, bound)))
        values = g.op("Where", steps, x, g.const(np.full(1, bound), f"{reduction}_bound", double=True))
        reduced = g.op("ScatterElements", start, index, values, axis=1, reduction=reduction)
        parts.append(g.op("Where", kept, reduced, zero))
    return g.op("Concat", *parts, axis=2), new_lengths


def classifier_graph(model: SequenceClassifier | list[SequenceClassifier], encoding: dict, metadata: dict, znorm: str = "none",
                     max_length: int = 0, segments: str = "mean"):
    """The classifier (or regressor) with its input's encoding: probabilities (B, K) or values (B,).
    A series model's x is the raw series: z-normalised on its own (``znorm`` series or scaled),
    averaged down to ``max_length`` steps (``segments`` range: each segment's mean, minimum and
    maximum), with ``znorm`` scaled each channel's level and scale appended at every step
    (classify.prepare_series, in float64 as there), then standardised. A list of models is an
    ensemble (``classify --ensemble``): the input prepared once, each network run on it, and their
    probabilities (a regressor's values) averaged."""
    members = model if isinstance(model, list) else [model]
    extremes, scaled = segments == "range", znorm == "scaled"
    g = Graph()
    tokens = "embedding" in members[0]._modules
    lengths = "lengths"
    if tokens:
        ids = g.op("Transpose", "x", perm=[1, 0])
        x_info = ("x", "int64", ["batch", "time"])
    else:  # prepared, standardised and bounded as classify.encode_inputs does
        inside = g.op("Transpose", g.steps_inside("x", lengths, time_axis=1), perm=[1, 0])  # (B, T)
        # zeros past each length, whatever the padding held (a NaN there would reach a masked sum)
        s = g.op("Where", g.op("Unsqueeze", inside, g.ints([2])), g.cast("x", "double"), g.const(np.zeros(1), "zero", double=True))
        if znorm in ("series", "scaled"):
            s = _z_normalised(g, s, g.op("Unsqueeze", inside, g.ints([2])),
                              g.op("Unsqueeze", g.cast(lengths, "double"), g.ints([1, 2])), scaled)
            if scaled:
                s, level = s
        if max_length:
            s, lengths = _averaged_down(g, s, inside, lengths, max_length, extremes)
        elif extremes:  # nothing shortened: every step its own segment, its mean, minimum and maximum
            s = g.op("Concat", s, s, s, axis=2)
        if scaled:  # (B, 1, 2C) at every step: added to zeros shaped (B, T', 1)
            zeros = g.op("Mul", g.op("Slice", s, g.ints([0]), g.ints([1]), g.ints([2])), g.const(np.zeros(1), "zero", double=True))
            s = g.op("Concat", s, g.op("Add", zeros, level), axis=2)
        z = g.op("Div", g.op("Sub", s, g.const(encoding["mean"], "mean", double=True)), g.const(encoding["std"], "std", double=True))
        z = g.op("Clip", z, g.const(np.float64(-INPUT_BOUND), "low", double=True), g.const(np.float64(INPUT_BOUND), "high", double=True))
        x = g.op("Transpose", g.cast(z, "float"), perm=[1, 0, 2])
        x_info = ("x", "float", ["batch", "time", len(encoding["mean"]) // input_width(segments, znorm)])
    lens = g.cast(lengths, "int32")
    each = []  # each network's values (B, 1) or probabilities (B, K)
    for member in members:
        if tokens:
            x = g.op("Gather", g.const(member.embedding.weight.data, "embedding"), ids)
        rnn = member.rnn
        y, _ = recurrent(g, rnn, x, initial_states(g, rnn, _dim(g, x, 1)), lens)
        out = _linear(g, _pool(g, member.pool, y, lengths), member.head)
        each.append(out if encoding["values"] else g.op("Softmax", out, axis=1))
    mean = each[0] if len(each) == 1 else g.op("Mean", *each)
    if encoding["values"]:
        value = g.op("Add", g.op("Mul", g.op("Squeeze", mean, g.ints([1])), g.const(np.float32(encoding["value_std"]))),
                     g.const(np.float32(encoding["value_mean"])))
        g.output(value, "value")
        outputs = [("value", "float", ["batch"])]
    else:
        g.output(mean, "probabilities")
        outputs = [("probabilities", "float", ["batch", len(encoding["labels"])])]
    return g.model([x_info, ("lengths", "int64", ["batch"])], outputs, metadata, "classifier")


def _viterbi(g: Graph, crf, e: str, inside: str) -> str:
    """crf.CRF.decode in ONNX: emissions e (T, B, K), inside (T, B) → the best paths (T, B) int64,
    −1 past each length. Two Scans over all T steps (onnxruntime refuses a Scan of 0 steps, so
    step 0 is a step of the scan, told apart by a flag): forward, the best score of each tag and
    its backpointer; backward from each row's best final tag, following the backpointers."""
    trans, start = g.const(crf.transitions.data, "transitions"), g.const(crf.start.data, "start")
    mask = g.op("Unsqueeze", inside, g.ints([2]))  # (T, B, 1)
    first = g.op("Unsqueeze", g.op("Equal", g.op("Range", g.ints(0), g.op("Squeeze", _dim(g, e, 0), g.ints([0])), g.ints(1)),
                                   g.ints(0)), g.ints([1, 2]))  # (T, 1, 1)

    def forward(sub, delta, scans):
        e_t, keep, is_first = scans
        s = sub.op("Add", sub.op("Unsqueeze", delta[0], sub.ints([2])), trans)  # (B, i, j): tag i then tag j
        d = sub.op("Add", sub.op("Where", is_first, start, sub.op("ReduceMax", s, sub.ints([1]), keepdims=0)), e_t)
        return [sub.op("Where", keep, d, delta[0])], [sub.op("ArgMax", s, axis=1, keepdims=0)]

    zeros = g.op("Mul", g.op("Gather", e, g.ints(0), axis=0), g.const(np.float32(0), "zero"))  # (B, K)
    delta, backpointers = g.scan(forward, [zeros], [e, mask, first],
                                 types={"scans": ("float", "bool", "bool"), "outputs": ("int64",)})
    last = g.op("ArgMax", g.op("Add", delta, g.const(crf.end.data, "end")), axis=1, keepdims=0)  # (B,)

    def backward(sub, cur, scans):
        bp, keep = scans
        keep = sub.op("Squeeze", keep, sub.ints([1]))
        previous = sub.op("Squeeze", sub.op("GatherElements", bp, sub.op("Unsqueeze", cur[0], sub.ints([1])), axis=1), sub.ints([1]))
        return [sub.op("Where", keep, previous, cur[0])], [sub.op("Where", keep, cur[0], sub.ints(-1))]

    _, path = g.scan(backward, [last], [backpointers, mask], reverse=True,
                     types={"states": ("int64",), "scans": ("int64", "bool"), "outputs": ("int64",)})
    return path


def tagger_graph(model: SequenceTagger, metadata: dict):
    """The tagger: ids (B, T) int64, lengths (B,) int64 → emissions (B, T, K), the per-token tag
    scores, and tags (B, T) int64, −1 past each length: the argmax, or the CRF's Viterbi path."""
    rnn = model.rnn
    g = Graph()
    x = g.op("Gather", g.const(model.embedding.weight.data, "embedding"), g.op("Transpose", "ids", perm=[1, 0]))
    y, _ = recurrent(g, rnn, x, initial_states(g, rnn, _dim(g, x, 1)), g.cast("lengths", "int32"))
    e = _linear(g, y, model.head)  # (T, B, K)
    inside = g.steps_inside(e, "lengths")
    tags = _viterbi(g, model.crf, e, inside) if model.uses_crf else g.op("Where", inside, g.op("ArgMax", e, axis=2, keepdims=0),
                                                                        g.ints(-1))
    g.output(g.op("Transpose", e, perm=[1, 0, 2]), "emissions")
    g.output(g.op("Transpose", tags, perm=[1, 0]), "tags")
    K = model.head.weight.shape[0]
    return g.model([("ids", "int64", ["batch", "time"]), ("lengths", "int64", ["batch"])],
                   [("emissions", "float", ["batch", "time", K]), ("tags", "int64", ["batch", "time"])], metadata, "tagger")


def _greedy_ctc(g: Graph, lp: str, inside: str) -> tuple[str, str]:
    """nn.ctc.greedy_decode in ONNX: log-probabilities lp (T, B, V), inside (T, B) → labels (B, T)
    int64, each row's best path with repeats merged and blanks dropped, left-aligned, −1 after
    them; and their count (B,). A kept label goes to its rank among the kept (a CumSum); the
    others to a spare last column, by ScatterElements' max over −1s, which the Slice then drops."""
    best = g.op("ArgMax", lp, axis=2, keepdims=0)  # (T, B): the first of equal ones, as NumPy's argmax
    T = _dim(g, best, 0)
    before = g.op("Concat", g.op("Expand", g.ints([[-1]]), g.op("Concat", g.ints([1]), _dim(g, best, 1), axis=0)),
                  g.op("Slice", best, g.ints([0]), g.ints([-1]), g.ints([0])), axis=0)  # the step before: −1 at t = 0
    keep = g.op("And", inside, g.op("And", g.op("Not", g.op("Equal", best, before)), g.op("Not", g.op("Equal", best, g.ints(BLANK)))))
    rank = g.op("Sub", g.op("CumSum", g.cast(keep, "int64"), g.ints(0)), g.ints(1))
    column = g.op("Transpose", g.op("Where", keep, rank, T), perm=[1, 0])  # (B, T)
    spare = g.op("Concat", _dim(g, best, 1), g.op("Add", T, g.ints([1])), axis=0)  # (B, T + 1)
    start = g.op("ConstantOfShape", spare, value=g.onnx.numpy_helper.from_array(np.full(1, -1, np.int64)))
    labels = g.op("ScatterElements", start, column, g.op("Transpose", g.op("Where", keep, best, g.ints(-1)), perm=[1, 0]),
                  axis=1, reduction="max")
    return g.op("Slice", labels, g.ints([0]), T, g.ints([1])), g.op("ReduceSum", g.cast(keep, "int64"), g.ints([0]), keepdims=0)


def transcriber_graph(model: Transcriber, encoding: dict, metadata: dict):
    """The acoustic model, as ``rnnkit transcribe`` runs it from a clip's log-mel frames
    (transcribe.clip_log_probs, Transcriber.log_probs): features (B, T, n_mels) float32, the
    frames of data.audio.log_mel, lengths (B,) int64 → log_probs (B, T', V) over the blank (0)
    and the characters, steps (B,) int64 each row's T'_b = ⌈length / k⌉; labels (B, T') int64 the
    greedy decoding's character ids, −1 after each row's label_lengths (B,). Inside: the training
    part's standardisation, zeros past each length, k frames stacked a step (zeros complete the
    last group), the recurrent stack, the head and log_softmax."""
    rnn, k = model.rnn, model.stack
    g = Graph()
    inside = g.op("Transpose", g.steps_inside("features", "lengths", time_axis=1), perm=[1, 0])  # (B, T)
    z = g.op("Where", g.op("Unsqueeze", inside, g.ints([2])), _standardise(g, "features", encoding), g.const(np.zeros(1), "zero"))
    T = _dim(g, z, 1)
    steps = g.op("Div", g.op("Add", T, g.ints([k - 1])), g.ints([k]))  # ⌈T / k⌉
    pads = g.op("Concat", g.ints([0, 0, 0, 0]), g.op("Sub", g.op("Mul", steps, g.ints([k])), T), g.ints([0]), axis=0)
    shape = g.op("Concat", _dim(g, z, 0), steps, g.ints([rnn.input_size]), axis=0)
    stacked = g.op("Reshape", g.op("Pad", z, pads), shape)  # (B, T', k·n_mels): frames kτ … kτ + k − 1 side by side
    lens = g.op("Div", g.op("Add", "lengths", g.ints(k - 1)), g.ints(k))
    x = g.op("Transpose", stacked, perm=[1, 0, 2])
    y, _ = recurrent(g, rnn, x, initial_states(g, rnn, _dim(g, x, 1)), g.cast(lens, "int32"))
    lp = g.op("LogSoftmax", _linear(g, y, model.head), axis=2)  # (T', B, V)
    labels, counts = _greedy_ctc(g, lp, g.steps_inside(lp, lens))
    g.output(g.op("Transpose", lp, perm=[1, 0, 2]), "log_probs")
    g.output(lens, "steps")
    g.output(labels, "labels")
    g.output(counts, "label_lengths")
    V, n_mels = model.head.weight.shape[0], rnn.input_size // k
    return g.model([("features", "float", ["batch", "frames", n_mels]), ("lengths", "int64", ["batch"])],
                   [("log_probs", "float", ["batch", "steps", V]), ("steps", "int64", ["batch"]),
                    ("labels", "int64", ["batch", "steps"]), ("label_lengths", "int64", ["batch"])], metadata, "transcriber")


def _gaussian(g: Graph, p: str, C: int) -> tuple[str, str]:
    """The head's output p (…, 2C) → μ, σ = softplus(s) + σ_min (…, C) (Forecaster.forward)."""
    mu, s = (g.op("Slice", p, g.ints([a]), g.ints([b]), g.ints([-1])) for a, b in ((0, C), (C, 2 * C)))
    return mu, g.op("Add", g.op("Softplus", s), g.const(np.float32(SIGMA_MIN), "sigma_min"))


def _direct_forecast(g: Graph, model: Forecaster, z: str, future: str | None) -> tuple[str, str]:
    """Forecaster's direct mode: z (W, B, C + F) time-major, future (B, H·F) or None → μ, σ
    (B, H, C) in the model's units, σ = softplus(s) + σ_min."""
    rnn, C = model.rnn, model.channels
    y, _ = recurrent(g, rnn, z, initial_states(g, rnn, _dim(g, z, 1)), _full_lengths(g, z))
    last = g.op("Gather", y, g.ints(-1), axis=0)  # (B, hidden): every window has all W steps
    p = _linear(g, last if future is None else g.op("Concat", last, future, axis=1), model.head)
    return _gaussian(g, g.op("Reshape", p, g.ints([0, model.horizon, 2 * C])), C)


def _repeat_rows(g: Graph, x: str, n: int, axis: int) -> str:
    """np.repeat(x, n, axis): each row along ``axis`` n times in a row (axis 0 or 1 of a 2-d or 3-d x)."""
    expanded = g.op("Unsqueeze", x, g.ints([axis + 1]))
    shape = g.op("Concat", g.op("Shape", x, end=axis + 1), g.ints([n]), g.op("Shape", x, start=axis + 1), axis=0)
    merged = g.op("Concat", g.ints([0] * axis + [-1]), g.op("Shape", x, start=axis + 1), axis=0)
    return g.op("Reshape", g.op("Expand", expanded, shape), merged)


def _recursive_forecast(g: Graph, model: Forecaster, z: str, future: str | None, noise: str | None, paths: int,
                        z80: float) -> tuple[str, str, str, str]:
    """Forecaster's recursive mode (Forecaster.forecast): z (W, B, C + F) time-major, future
    (B, H, F) the forecast steps' covariates or None, noise (B, H, paths, C) standard normal
    draws or None → mean, sigma, lower, upper (B, H, C) in the model's units, before widening.

    The window sets the state and the first step's μ, σ; then a Scan over the H steps carries
    the state, μ and σ of ``paths`` rows per forecast: step h's value μ + σ·noise_h is fed back
    with step h + 1's covariates (the last step's run is not used). With paths, the mean and
    standard deviation of the paths and their 10% and 90% quantiles (np.quantile's linear rule,
    on the paths sorted by TopK); without, the means are fed back and the interval is μ ∓ z80·σ."""
    rnn, C, H = model.rnn, model.channels, model.horizon
    y, finals = recurrent(g, rnn, z, initial_states(g, rnn, _dim(g, z, 1)), _full_lengths(g, z))
    mu, sigma = _gaussian(g, _linear(g, g.op("Gather", y, g.ints(-1), axis=0), model.head), C)  # (B, C)
    n = max(paths, 1)
    carried = [_repeat_rows(g, s, n, 1) for s in finals] + [_repeat_rows(g, v, n, 0) for v in (mu, sigma)]  # B·n rows
    if noise is None:  # the means fed back: μ + σ·0
        noise = g.op("ConstantOfShape", g.op("Concat", g.ints([H]), g.op("Shape", mu), axis=0),
                     value=g.onnx.numpy_helper.from_array(np.zeros(1, np.float32)))  # (H, B, C)
    else:
        noise = g.op("Reshape", g.op("Transpose", noise, perm=[1, 0, 2, 3]), g.ints([H, -1, C]))  # (H, B·n, C)
    scans = [noise]
    if future is not None:  # step h reads step h + 1's covariates
        following = g.op("Concat", g.op("Slice", future, g.ints([1]), g.ints([H]), g.ints([1])),
                         g.op("Slice", future, g.ints([H - 1]), g.ints([H]), g.ints([1])), axis=1)
        scans.append(_repeat_rows(g, g.op("Transpose", following, perm=[1, 0, 2]), n, 1))  # (H, B·n, F)

    def step(sub, states, slices):
        *state, m, sd = states
        value = sub.op("Add", m, sub.op("Mul", sd, slices[0]))
        x = sub.op("Unsqueeze", value if future is None else sub.op("Concat", value, slices[1], axis=1), sub.ints([0]))
        out, new = recurrent(sub, rnn, x, state, _full_lengths(sub, x))
        m_next, sd_next = _gaussian(sub, _linear(sub, sub.op("Squeeze", out, sub.ints([0])), model.head), C)
        return [*new, m_next, sd_next], [value, sub.op("Identity", m), sub.op("Identity", sd)]

    *_, values, means, sds = g.scan(step, carried, scans)  # (H, B·n, C) each
    if not paths:
        mean, sd = (g.op("Transpose", v, perm=[1, 0, 2]) for v in (means, sds))
        half = g.op("Mul", sd, g.const(np.float32(z80), "z80"))
        return mean, sd, g.op("Sub", mean, half), g.op("Add", mean, half)
    values = g.op("Transpose", g.op("Reshape", values, g.ints([H, -1, n, C])), perm=[1, 0, 2, 3])  # (B, H, n, C)
    mean = g.op("ReduceMean", values, g.ints([2]), keepdims=0)
    d = g.op("Sub", values, g.op("Unsqueeze", mean, g.ints([2])))
    sd = g.op("Sqrt", g.op("ReduceMean", g.op("Mul", d, d), g.ints([2]), keepdims=0))
    ordered, _ = g.op("TopK", values, g.ints([n]), axis=2, largest=0, sorted=1, n=2)

    def quantile(q):
        position = q * (n - 1)
        i = int(np.floor(position))
        a, b = (g.op("Gather", ordered, g.ints(j), axis=2) for j in (i, min(i + 1, n - 1)))
        return g.op("Add", a, g.op("Mul", g.op("Sub", b, a), g.const(np.float32(position - i), "fraction")))

    return mean, sd, quantile(0.1), quantile(0.9)


def _standardise(g: Graph, values: str, encoding: dict) -> str:
    """(values − the training part's mean) / its standard deviation, per channel."""
    return g.op("Div", g.op("Sub", values, g.const(encoding["mean"], "mean")), g.const(encoding["std"], "std"))


def _bounded(g: Graph, x: str) -> str:
    return g.op("Clip", x, g.const(np.float32(-INPUT_BOUND), "low"), g.const(np.float32(INPUT_BOUND), "high"))


def _rows(g: Graph, x: str, rows) -> str:
    """x (B, N, C) → x[:, rows] (B, len(rows), C) for constant row indices."""
    return g.op("Gather", x, g.ints(np.asarray(rows, np.int64)), axis=1)


def _calendar(g: Graph, origin: str, offsets, frequencies) -> str:
    """The calendar features of the steps origin + offsets, (B, S, F): per period, sin then cos of
    t·ω for its frequencies ω (forecast.calendar_features). t·ω is taken in float64, as rnnkit
    takes it: in float32 a step in the tens of thousands would lose the phase's third digit."""
    t = g.op("Unsqueeze", g.cast(g.op("Add", g.op("Unsqueeze", origin, g.ints([1])), g.ints(offsets)), "double"), g.ints([2]))
    parts = []
    for omega in frequencies:
        angle = g.op("Mul", t, g.const(omega, "frequencies", double=True))  # (B, S, k)
        parts += [g.cast(g.op("Sin", angle), "float"), g.cast(g.op("Cos", angle), "float")]
    return parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=2)


def forecaster_graph(model: Forecaster, encoding: dict, reads: dict, level: str, z80: float, widen: float, blend: float,
                     metadata: dict, paths: int = 0):
    """A forecaster, as ``rnnkit forecast`` computes a forecast from an origin:

    history (B, N, C) float32, the N points before the first forecast step in data units (gaps
    filled), row N − 1 the latest; with calendar features also origin (B,) int64, the index of the
    first forecast step in its series (the features' phase); a recursive model with ``paths``
    also noise (B, H, paths, C) float32, the standard normal draws of its sampled paths (step
    by step: rnnkit's generator's draws, np.random.default_rng(seed).standard_normal((H, paths, C)))
    → mean, sigma, lower, upper (B, H, C) in data units: the network's forecast put back over its
    base (a residual model's seasonal naive), blended with seasonal naive at weight ``blend``;
    direct: σ the network's, the 80% interval mean ± z80·widen·σ; recursive: the paths' mean,
    standard deviation and 10%–90% quantiles widened by ``widen`` about the mean (without paths:
    the means fed back, the one-step σ and mean ± z80·widen·σ).

    ``reads`` (forecast.export_reads) says which rows of the history each part reads: history
    (N), window (W,) and window_base (W,) or None, the network's input values less their base;
    covariate_base ((W,), (H,)) or None, the base of the covariate steps (each window step's next,
    and the forecast steps); lags [((W,), (H,)) …], the seasonal lags' rows at those steps;
    naive (H,), the seasonal-naive forecast's; frequencies [(k,) …] and calendar_offsets ((W,),
    (H,)), the calendar features' ω per period and their steps relative to the origin."""
    g = Graph()
    C, H, N = model.channels, model.horizon, reads["history"]
    scaled = _standardise(g, "history", encoding)  # (B, N, C)

    def modelled(rows, base):
        """The scaled values of these rows less their base (Prepared.modelled)."""
        return _rows(g, scaled, rows) if base is None else g.op("Sub", _rows(g, scaled, rows), _rows(g, scaled, base))

    values = modelled(reads["window"], reads["window_base"])  # (B, W, C)
    level_value = spread = None  # level "none": the values as they are
    if level in ("window", "scale"):  # relative to the window's mean (residual), and its spread (Prepared.read_window)
        level_value = g.op("ReduceMean", values, g.ints([1]), keepdims=1)  # (B, 1, C)
    if level == "scale":
        spread = g.const(encoding["residual_std"], "residual_std") if encoding.get("residual") else g.op(
            "Max", g.op("Sqrt", g.op("ReduceMean", g.op("Mul", *[g.op("Sub", values, level_value)] * 2), g.ints([1]), keepdims=1)),
            g.const(np.float32(1e-3), "floor"))

    def in_units(x):
        """(x − level) / spread, bounded: the window's units."""
        x = x if level_value is None else g.op("Sub", x, level_value)
        return _bounded(g, x if spread is None else g.op("Div", x, spread))

    covariates = []  # [(window part, future part)], Prepared.covariates: the calendar, then each lag
    if reads["frequencies"]:
        covariates.append(tuple(_calendar(g, "origin", offsets, reads["frequencies"]) for offsets in reads["calendar_offsets"]))
    bases = reads["covariate_base"] or (None, None)
    for lag_rows in reads["lags"]:
        covariates.append(tuple(in_units(modelled(rows, base)) for rows, base in zip(lag_rows, bases)))
    z = in_units(values)
    future = None
    if covariates:
        z = g.op("Concat", z, *(w for w, _ in covariates), axis=2)
        future = g.op("Concat", *(f for _, f in covariates), axis=2) if len(covariates) > 1 else covariates[0][1]  # (B, H, F)
    z = g.op("Transpose", z, perm=[1, 0, 2])
    if model.mode == "direct":
        mu, sigma = _direct_forecast(g, model, z, None if future is None else g.op("Reshape", future, g.ints([0, -1])))
        half = g.op("Mul", sigma, g.const(np.float32(z80 * widen), "half_width"))
        low, high = g.op("Sub", mu, half), g.op("Add", mu, half)
    else:  # the interval widened about the mean (forecast_at)
        mu, sigma, low, high = _recursive_forecast(g, model, z, future, "noise" if paths else None, paths, z80)
        low, high = (g.op("Add", mu, g.op("Mul", g.op("Sub", v, mu), g.const(np.float32(widen), "widen"))) for v in (low, high))
    base = None if bases[1] is None else _rows(g, scaled, bases[1])  # (B, H, C)
    std = g.const(encoding["std"], "std")

    def back(x):
        """The window's units → the data's: (x·spread + level + base)·std + mean (forecast_at)."""
        for operation, value in (("Mul", spread), ("Add", level_value), ("Add", base)):
            x = x if value is None else g.op(operation, x, value)
        return g.op("Add", g.op("Mul", x, std), g.const(encoding["mean"], "mean"))

    mean, lower, upper = back(mu), back(low), back(high)
    if blend != 1.0:  # μ = sn + α·(μ_net − sn): everything moves by (1 − α)·(sn − μ_net)
        shift = g.op("Mul", g.op("Sub", _rows(g, "history", reads["naive"]), mean), g.const(np.float32(1 - blend), "one_less_blend"))
        mean, lower, upper = (g.op("Add", x, shift) for x in (mean, lower, upper))
    sd = g.op("Mul", sigma if spread is None else g.op("Mul", sigma, spread), std)
    for value, name in ((mean, "mean"), (sd, "sigma"), (lower, "lower"), (upper, "upper")):
        g.output(value, name)
    inputs = [("history", "float", ["batch", N, C])] + ([("origin", "int64", ["batch"])] if reads["frequencies"] else [])
    inputs += [("noise", "float", ["batch", H, paths, C])] if paths and model.mode == "recursive" else []
    return g.model(inputs, [(name, "float", ["batch", H, C]) for name in ("mean", "sigma", "lower", "upper")], metadata, "forecaster")


def detector_graph(model: Forecaster, encoding: dict, window: int, threshold: float, score: str, smooth: int, metadata: dict):
    """An anomaly detector, as ``rnnkit detect`` scores a point (detect.Detector.scores):

    window (B, W + K + S − 2, C) float32, the points before it in data units, value (B, C) the point
    → score (B,): the mean over the last S points u of e_u = √(mean_k,c ((x_u − μ_u|k) / σ_u|k)²),
    μ_u|k the forecast of u from the W points before u − k (k < K), in standardised units (without
    / σ for ``score`` "error"); anomaly (B,) bool, the score above the threshold; mean and sigma
    (B, C), the value's forecast from the W points just before it, in data units."""
    g = Graph()
    C, K, W, S = model.channels, model.horizon, window, smooth
    M = W + K + S - 1  # the points a score reads, the point itself last
    x = _standardise(g, g.op("Concat", "window", g.op("Unsqueeze", "value", g.ints([1])), axis=1), encoding)  # (B, M, C)
    O = K + S - 1  # the origins W … M − 1: each S point's K forecasts
    windows = g.op("Gather", _bounded(g, x), g.ints(np.arange(W, M)[:, None] - W + np.arange(W)), axis=1)  # (B, O, W, C)
    z = g.op("Transpose", g.op("Reshape", windows, g.ints([-1, W, C])), perm=[1, 0, 2])  # (W, B·O, C)
    mu, sigma = (g.op("Reshape", v, g.ints([-1, O * K, C])) for v in _direct_forecast(g, model, z, None))  # (B, O·K, C)
    j, k = np.arange(S)[:, None], np.arange(K)[None, :]
    pairs = g.ints((K - 1 + j - k) * K + k)  # point M − S + j's forecast k: origin index K − 1 + j − k, step k
    d = g.op("Sub", g.op("Unsqueeze", _rows(g, x, np.arange(M - S, M)), g.ints([2])), g.op("Gather", mu, pairs, axis=1))  # (B, S, K, C)
    if score == "scaled":
        d = g.op("Div", d, g.op("Gather", sigma, pairs, axis=1))
    errors = g.op("Sqrt", g.op("ReduceMean", g.op("Mul", d, d), g.ints([2, 3]), keepdims=0))  # (B, S)
    point = g.op("ReduceMean", errors, g.ints([1]), keepdims=0)
    std = g.const(encoding["std"], "std")
    last = g.ints((O - 1) * K)  # the last origin's first step: the value
    g.output(point, "score")
    g.output(g.op("Greater", point, g.const(np.float32(threshold), "threshold")), "anomaly")
    g.output(g.op("Add", g.op("Mul", g.op("Gather", mu, last, axis=1), std), g.const(encoding["mean"], "mean")), "mean")
    g.output(g.op("Mul", g.op("Gather", sigma, last, axis=1), std), "sigma")
    return g.model([("window", "float", ["batch", M - 1, C]), ("value", "float", ["batch", C])],
                   [("score", "float", ["batch"]), ("anomaly", "bool", ["batch"]), ("mean", "float", ["batch", C]),
                    ("sigma", "float", ["batch", C])], metadata, "detector")


# ---- translation and captions: the encoder, and the decoder's step --------------------------------


class _CellAsLayer:
    """A decoder's cell seen as a one-layer, one-direction layer, which is what a kind's ONNX form
    reads: its parameters under the layer's names (``weight_ih_l0`` is the cell's ``weight_ih``),
    its other attributes (``kind``, ``hidden_size``, a kind's settings) as they are."""

    num_layers = num_directions = 1
    proj_size = 0

    def __init__(self, cell):
        self.cell = cell
        self.output_size = cell.hidden_size

    def __getattr__(self, name: str):
        base, suffix, layer = name.rpartition("_l")
        return getattr(self.cell, base if suffix and layer == "0" else name)


def _tanh_bridge(g: Graph, model: Decoder, name: str, inputs: list[str]) -> str:
    """Decoder._tanh_bridge: layer k's first state tanh(W x_k + b) by the Linear ``{name}_l{k}``;
    inputs: one (B, ·) per layer → (L, B, H)."""
    layers = [g.op("Unsqueeze", g.op("Tanh", _linear(g, x, getattr(model, f"{name}_l{k}"))), g.ints([0])) for k, x in enumerate(inputs)]
    return layers[0] if len(layers) == 1 else g.op("Concat", *layers, axis=0)


def decoder_state(model: Decoder) -> tuple[str, ...]:
    """The decoder's state as the two graphs pass it: h, c where the kind has it, feed for Luong."""
    return ("h", "c")[: len(model.kind.states)] + (("feed",) if model.attention.startswith("luong") else ())


def encoder_graph(model: Seq2Seq, metadata: dict):
    """The encoder: src (B, S) int64, src_lengths (B,) int64 → the decoder's first state h, [c]
    (L, B, H), [feed (B, H), zeros, for Luong's input feeding], and with attention the memory
    keys (B, S, D·H) and proj (B, S, ·), the keys as the score reads them."""
    g = Graph()
    enc, L, H = model.encoder, model.num_layers, model.hidden_size
    x = g.op("Gather", g.const(model.src_embedding.weight.data, "src_embedding"), g.op("Transpose", "src", perm=[1, 0]))
    y, finals = recurrent(g, enc, x, initial_states(g, enc, _dim(g, x, 1)), g.cast("src_lengths", "int32"))
    outputs = []
    for name, final in zip(("h", "c"), finals):  # the bridge (Seq2Seq._encode)
        if model.bidirectional_encoder:
            final = _tanh_bridge(g, model, f"bridge_{name}", [g.op("Concat", *(g.op("Gather", final, g.ints(j), axis=0)
                                                                               for j in (2 * k, 2 * k + 1)), axis=1) for k in range(L)])
        g.output(final, name)
        outputs.append((name, "float", [L, "batch", H]))
    if model.attention.startswith("luong"):
        zeros = g.onnx.numpy_helper.from_array(np.zeros(1, np.float32))  # h̃_0 = 0 (B, H)
        g.output(g.op("ConstantOfShape", g.op("Concat", _dim(g, x, 1), g.ints([H]), axis=0), value=zeros), "feed")
        outputs.append(("feed", "float", ["batch", H]))
    if model.attention != "none":
        keys = g.op("Transpose", y, perm=[1, 0, 2])
        g.output(keys, "keys")
        key = model.attn._modules.get("key")
        g.output(_linear(g, keys, key) if key is not None else g.op("Identity", keys), "proj")
        K = enc.num_directions * H
        proj_size = key.weight.shape[0] if key is not None else K
        outputs += [("keys", "float", ["batch", "source", K]), ("proj", "float", ["batch", "source", proj_size])]
    return g.model([("src", "int64", ["batch", "source"]), ("src_lengths", "int64", ["batch"])], outputs, metadata, "encoder")


def decoder_graph(model: Decoder, metadata: dict):
    """One decoder step (Decoder._step, translation's and the captioner's): y (B,) int64, the
    previous token; the state h, [c], [feed] as the encoder or the last step gave it; with
    attention keys, proj and src_lengths → logits (B, V), the next state h_next, [c_next],
    [feed_next], and alpha (B, S)."""
    g = Graph()
    L, H, attention = model.num_layers, model.hidden_size, model.attention
    parts = decoder_state(model)
    e = g.op("Gather", g.const(model.tgt_embedding.weight.data, "tgt_embedding"), "y")  # (B, E)
    attn = model._modules.get("attn")

    def attend(q):
        """(context (B, K), α (B, S)) for the query q (B, H)."""
        if attention == "bahdanau":
            z = g.op("Tanh", g.op("Add", "proj", g.op("Unsqueeze", _linear(g, q, attn.query), g.ints([1]))))  # (B, S, A)
            scores = g.op("Squeeze", g.op("MatMul", z, g.const(attn.v.data[:, None], "v")), g.ints([2]))
        else:
            scores = g.op("Squeeze", g.op("MatMul", "proj", g.op("Unsqueeze", q, g.ints([2]))), g.ints([2]))
        inside = g.op("Transpose", g.steps_inside("keys", "src_lengths", time_axis=1), perm=[1, 0])  # (B, S)
        alpha = g.op("Softmax", g.op("Where", inside, scores, g.const(np.full(1, -np.inf), "minus_inf")), axis=1)
        context = g.op("Squeeze", g.op("MatMul", g.op("Unsqueeze", alpha, g.ints([1])), "keys"), g.ints([1]))
        return context, alpha

    layer_state = lambda part, k: g.op("Slice", part, g.ints([k]), g.ints([k + 1]), g.ints([0]))  # noqa: E731  (1, B, H)
    alpha = None
    if attention == "bahdanau":
        context, alpha = attend(g.op("Gather", "h", g.ints(L - 1), axis=0))
        x = g.op("Concat", e, context, axis=1)
    else:
        x = g.op("Concat", e, "feed", axis=1) if "feed" in parts else e
    finals = {part: [] for part in parts if part != "feed"}
    for k, cell in enumerate(model._cells):
        step = g.op("Unsqueeze", x, g.ints([0]))  # a sequence of one step
        y, new = recurrent(g, _CellAsLayer(cell), step, [layer_state(part, k) for part in finals], _full_lengths(g, step))
        for part, value in zip(finals, new):
            finals[part].append(value)
        x = g.op("Squeeze", y, g.ints([0]))
    h = x
    if "feed" in parts:
        context, alpha = attend(h)
        o = g.op("Tanh", _linear(g, g.op("Concat", context, h, axis=1), model.combine))
        g.output(o, "feed_next")
    elif attention == "bahdanau":
        o = g.op("Concat", h, context, axis=1)
    else:
        o = h
    g.output(_linear(g, o, model.head), "logits")
    for part, values in finals.items():
        g.output(values[0] if L == 1 else g.op("Concat", *values, axis=0), f"{part}_next")
    inputs = [("y", "int64", ["batch"])] + [(part, "float", [L, "batch", H] if part != "feed" else ["batch", H]) for part in parts]
    outputs = [("logits", "float", ["batch", model.tgt_vocab])] + [
        (f"{part}_next", "float", [L, "batch", H]) for part in finals]
    if "feed" in parts:
        outputs.append(("feed_next", "float", ["batch", H]))
    if attention != "none":
        g.output(alpha, "alpha")
        K = model.encoder.num_directions * H
        proj = attn._modules.get("key")
        inputs += [("keys", "float", ["batch", "source", K]),
                   ("proj", "float", ["batch", "source", proj.weight.shape[0] if proj is not None else K]),
                   ("src_lengths", "int64", ["batch"])]
        outputs.append(("alpha", "float", ["batch", "source"]))
    return g.model(inputs, outputs, metadata, "decoder_step")


def caption_encoder_graph(model: Captioner, encoding: dict, scales: np.ndarray, metadata: dict):
    """The captioner's start (Captioner._encode): features (B, F) float32, an image's feature
    vector as data.images.image_features gives it → the decoder's first state h [, c] (L, B, H),
    which ``decoder_graph`` then steps from. Inside: the training part's standardisation, times
    ``scales`` (F,) (caption.standardise: each block by 1/√size), and each layer's tanh bridge."""
    g = Graph()
    x = g.op("Mul", _standardise(g, "features", encoding), g.const(scales, "block_scales"))
    L, H = model.num_layers, model.hidden_size
    names = decoder_state(model)
    for name in names:
        g.output(_tanh_bridge(g, model, f"bridge_{name}", [x] * L), name)
    return g.model([("features", "float", ["batch", model.feature_size])], [(name, "float", [L, "batch", H]) for name in names],
                   metadata, "caption_encoder")
