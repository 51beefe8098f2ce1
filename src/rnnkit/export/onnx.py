"""ONNX graphs of rnnkit's layers and task models, for onnxruntime.

Opset 21 and IR version 10: every operator used here (the RNN/GRU/LSTM operators, Scan,
LayerNormalization, ReduceMax with axes as an input) has its current form there, and
onnxruntime runs them from 1.17 on (the ``[export]`` extra pins 1.31, with which the tests run).

A recurrent layer is its cell kind's ONNX form (``CellKind.onnx``, ``nn/onnx_forms.py``), layer
after layer; the rest of a task model (embedding, pooling, heads) is written here. Graphs are
what an evaluating model computes: dropout is the identity, zoneout its expectation.

The task models' graphs are batch-first (B rows, T steps):

    language model   ids (B, T) int64, h0 (L, B, P) [, c0 (L, B, H)]
                       → logits (B, T, V), h_n [, c_n]
                     the state goes in and comes out, so one graph serves a window (zeros in)
                     and a stream: T = 1 per call, the state fed back, equals the whole sequence
    classifier       x: ids (B, T) int64, or raw values (B, T, C) float32 (standardised inside),
                     lengths (B,) int64  → probabilities (B, K), or value (B,) for a regressor

``onnx`` is imported when a graph is built, not before.
"""

from __future__ import annotations

import itertools
import json

import numpy as np

from ..models.classifier import SequenceClassifier
from ..models.language_model import LanguageModel
from ..models.sequence_model import INPUT_BOUND
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

    def const(self, array, hint: str = "const") -> str:
        """A constant: floats as float32, integers as int64."""
        array = np.asarray(array)
        array = array.astype(np.int64 if array.dtype.kind in "iub" else np.float32)
        name = self.fresh(hint)
        self.root.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C"), name))  # 0-d stays 0-d
        return name

    def ints(self, values) -> str:
        return self.const(np.asarray(values, np.int64), "ints")

    def cast(self, x: str, to: str) -> str:
        """x as "float", "int32" or "int64"."""
        return self.op("Cast", x, to={"float": 1, "int32": 6, "int64": 7}[to])  # TensorProto's numbers

    def scan(self, body, states: list[str], scans: list[str], reverse: bool, scan_types: tuple[str, ...]) -> list[str]:
        """A Scan over axis 0 of ``scans`` (from the end with ``reverse``), carrying ``states``.
        body(sub, states, scan slices) → (new states, per-step outputs); returns the final
        states, then the stacked outputs (in time order either way)."""
        sub, T = Graph(self), self.onnx.TensorProto
        elem = {"float": T.FLOAT, "bool": T.BOOL}
        carried = [sub.fresh("carried") for _ in states]
        slices = [sub.fresh("slice") for _ in scans]
        new, outs = body(sub, carried, slices)
        info = lambda name, kind: self.onnx.helper.make_tensor_value_info(name, elem[kind], None)  # noqa: E731
        graph = self.onnx.helper.make_graph(
            sub.nodes, self.fresh("step"), [info(n, "float") for n in carried] + [info(n, t) for n, t in zip(slices, scan_types)],
            [info(n, "float") for n in (*new, *outs)])
        return self.op("Scan", *states, *scans, n=len(states) + len(outs), body=graph, num_scan_inputs=len(scans),
                       scan_input_directions=[int(reverse)] * len(scans), scan_output_directions=[int(reverse)] * len(outs))

    def model(self, inputs: list[tuple], outputs: list[tuple], metadata: dict[str, str], name: str):
        """The checked ModelProto. inputs, outputs: (name, "float" | "int64", shape with names for
        the free dimensions); metadata: the ``metadata_props`` a consumer reads."""
        onnx, T = self.onnx, self.onnx.TensorProto
        elem = {"float": T.FLOAT, "int64": T.INT64}
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


def language_model_graph(model: LanguageModel, metadata: dict):
    """The language model with its state in and out (see the module docstring): logits for a
    window, or one step of a stream."""
    if model.num_conditions:
        raise NotExportable("not exportable: a conditional language model's class-conditioned initial state "
                            "(tanh of the condition embedding); export a model trained without classes")
    rnn = model.rnn
    g = Graph()
    x = g.op("Gather", g.const(model.embedding.weight.data, "embedding"), g.op("Transpose", "ids", perm=[1, 0]))  # (T, B, E)
    y, finals = recurrent(g, rnn, x, _state_names(rnn, "0"), _full_lengths(g, x))
    g.output(g.op("Transpose", _linear(g, y, model.head), perm=[1, 0, 2]), "logits")
    for final, name in zip(finals, _state_names(rnn, "_n")):
        g.output(final, name)
    LD, V = rnn.num_layers * rnn.num_directions, model.head.weight.shape[0]
    states = lambda suffix: [(name, "float", [LD, "batch", size])  # noqa: E731
                             for name, (_, size) in zip(_state_names(rnn, suffix), state_parts(rnn))]
    meta = {**metadata, "state": json.dumps({name: [LD, "batch", size] for name, (_, size) in
                                             zip(_state_names(rnn, "0"), state_parts(rnn))})}
    return g.model([("ids", "int64", ["batch", "time"]), *states("0")], [("logits", "float", ["batch", "time", V]), *states("_n")],
                   meta, "language_model")


def _pool(g: Graph, pooling, y: str, lens64: str) -> str:
    """classifier.Pooling in ONNX: y (T, B, F) zero past each length → (B, F)."""
    T = _dim(g, y, 0)
    steps = g.op("Unsqueeze", g.op("Range", g.ints(0), g.op("Squeeze", T, g.ints([0])), g.ints(1)), g.ints([1]))  # (T, 1)
    inside = g.op("Less", steps, g.op("Unsqueeze", lens64, g.ints([0])))  # (T, B)
    inside3 = g.op("Unsqueeze", inside, g.ints([2]))
    if pooling.kind == "last":
        index = g.op("Expand", g.op("Reshape", g.op("Sub", lens64, g.ints([1])), g.ints([1, -1, 1])), g.op("Shape", y))
        last = g.op("Squeeze", g.op("GatherElements", y, g.op("Slice", index, g.ints([0]), g.ints([1]), g.ints([0])), axis=0),
                    g.ints([0]))
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


def classifier_graph(model: SequenceClassifier, encoding: dict, metadata: dict):
    """The classifier (or regressor) with its input's encoding: probabilities (B, K) or values (B,)."""
    rnn = model.rnn
    g = Graph()
    tokens = "embedding" in model._modules
    if tokens:
        x = g.op("Gather", g.const(model.embedding.weight.data, "embedding"), g.op("Transpose", "x", perm=[1, 0]))
        x_info = ("x", "int64", ["batch", "time"])
    else:  # standardised and bounded as classify.encode_inputs does
        z = g.op("Div", g.op("Sub", "x", g.const(encoding["mean"], "mean")), g.const(encoding["std"], "std"))
        x = g.op("Transpose", g.op("Clip", z, g.const(np.float32(-INPUT_BOUND)), g.const(np.float32(INPUT_BOUND))), perm=[1, 0, 2])
        x_info = ("x", "float", ["batch", "time", len(encoding["mean"])])
    lens = g.cast("lengths", "int32")
    y, _ = recurrent(g, rnn, x, initial_states(g, rnn, _dim(g, x, 1)), lens)
    out = _linear(g, _pool(g, model.pool, y, "lengths"), model.head)
    if encoding["values"]:
        value = g.op("Add", g.op("Mul", g.op("Squeeze", out, g.ints([1])), g.const(np.float32(encoding["value_std"]))),
                     g.const(np.float32(encoding["value_mean"])))
        g.output(value, "value")
        outputs = [("value", "float", ["batch"])]
    else:
        g.output(g.op("Softmax", out, axis=1), "probabilities")
        outputs = [("probabilities", "float", ["batch", len(encoding["labels"])])]
    return g.model([x_info, ("lengths", "int64", ["batch"])], outputs, metadata, "classifier")
