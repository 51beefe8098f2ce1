"""The registry of cell kinds: each kind of recurrent cell is one object, defined once.

A ``CellKind`` knows its own facts — its name, its state parts, its gates, its layer and
cell classes, the initialisation that suits it — and, for the layers built on
``recurrent.RNNBase``, its equations: the step and its backward (for cells) and the sequence
loop and its backward (for layers). Everything else asks the registry: layers and cells,
task models (``make_recurrent``), the tasks' ``--cell`` choices and help, diagnostics, the
speed experiment and the shared test suite. A kind's own module builds it and calls
``register``; importing ``rnnkit.nn`` imports every such module.

The equations' contract (the shapes of ``functional``: B rows, H hidden, P = output size,
T steps, G gate blocks; ``w`` the parameters of one direction, ``_DirectionWeights``: W_ih,
W_hh, b_ih, b_hh, W_hr, bias_x (the biases folded into the input projection), extra (the kind's
own parameters by name) and module (the layer or cell: its options, ``training``, ``rng``)):

    sequence(X (T, B, I), states [(B, P), (B, H)…], w, reverse, bs, keep)
        → Y (T, B, P), final states (tuple), cache: None when keep is False, else a tuple
          whose second entry is the activated gates (T, B, G·H) — what diagnostics read
    sequence_backward(dY, d_states, cache, w, reverse, bs, norms)
        → dX (T, B, I), d_states of the initial state (tuple); adds into the .grad of w's
    step(gates (B, G·H), states (tuple), w) → new states (tuple), cache
        (gates holds the input projection; it becomes the activations, in place)
    step_backward(d_states (tuple), gates, states, cache, w)
        → dgates (B, G·H), dgates_h (the hidden side's, or None when the same), d_states

A state part named ``h`` has size P (the layer's output), every other part size H.

A kind's ``settings`` are the keyword arguments of its layer and cell that a user may tune
(zoneout's rates): declared once, with their defaults, help and checks, and passed through
``make_layer`` / ``make_cell``; the tasks' ``--cell-option NAME=VALUE`` reads them from here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from .module import as_rng

# make_layer's own arguments: not the layer's keyword arguments a caller may add
_MAKE_LAYER_ARGUMENTS = {"self", "input_size", "hidden_size", "num_layers", "bidirectional", "dropout", "dtype", "rng"}


def _sum_biases(b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    return b_ih + b_hh


def _no_extra_parameters(module) -> dict[str, tuple[int, ...]]:
    return {}


@dataclass(frozen=True)
class Setting:
    """A keyword argument of a kind's layer and cell that a user may tune: its default, one line
    of help, and ``check(value, name) → value``, which raises a ValueError naming the setting,
    what it expects and what came (``validation.probability``)."""

    default: object
    about: str
    check: Callable

    def parse(self, value, name: str):
        """``value`` checked; text (from the command line) is first read as the default's type,
        and text that does not read so goes to ``check`` as it is, to be refused there."""
        if isinstance(value, str) and not isinstance(self.default, str):
            if isinstance(self.default, bool):
                value = {"true": True, "false": False}.get(value.strip().lower(), value)
            else:
                try:
                    value = type(self.default)(value)
                except ValueError:
                    pass
        return self.check(value, name)


def _layer_arguments(layer: type) -> set[str]:
    """The keyword arguments a layer class takes, following ``**kwargs`` up to its bases."""
    names: set[str] = set()
    for cls in layer.__mro__:
        if "__init__" not in vars(cls):
            continue
        parameters = inspect.signature(cls.__init__).parameters.values()
        names.update(p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return names


@dataclass(frozen=True, eq=False)
class CellKind:
    """One kind of recurrent cell.

    name: what ``--cell`` and ``make_recurrent`` call it; about: one line for the help;
    states: the state parts, ``("h",)`` or ``("h", "c")``; gates: ``(name, activation)`` per
    gate block, in the order of the parameters' rows (activation "sigmoid", "tanh", "relu" or
    "positive" — minGRU's g — for the saturation count of diagnostics);
    layer, cell: the classes (cell None when the kind has no step-by-step cell);
    options: the keyword arguments that select this kind from its classes
    (``nonlinearity="relu"``); init: ``(module, rng)``, the initialisation that suits the kind,
    applied by ``make_layer`` and ``make_cell`` after PyTorch's default;
    torch: the name of the ``torch.nn`` class with the same equations and parameter names
    (taking the same options), for the tests, or None;
    projection: whether ``proj_size`` is supported; layer_dropout: whether the layer takes
    ``dropout`` between stacked layers; modes: the ways the layer can compute the same numbers
    (``mode=``), the first the default; settings: ``{name: Setting}``, the keyword arguments of
    both the layer and the cell that a user may tune (``--cell-option``), none for most kinds;
    onnx: the kind's ONNX form (``nn/onnx_forms.py``), ``(g, layer, k, x, states, lens) → (y,
    final states)``: layer k of an evaluating layer as ONNX nodes built through the graph ``g``
    (``export/onnx.py``'s ``Graph``), or None when ONNX cannot express it (the export then says so).

    For layers on ``RNNBase``: blocks, the number of H-sized blocks in ``weight_ih`` and
    ``weight_hh``; extra_parameters, ``layer or cell → {name: shape}`` (from its hidden_size and
    options), the parameters of a direction beyond PyTorch's (named ``{name}_l{k}`` in a layer, ``{name}`` in a cell, in ``w.extra[name]`` for
    the equations; initialised like the others); input_bias, ``(b_ih, b_hh) → the bias added
    to the input projection`` before the loop; sequence, sequence_backward, step, step_backward
    as in the module docstring.
    """

    name: str
    about: str
    states: tuple[str, ...]
    gates: tuple[tuple[str, str], ...]
    layer: type
    cell: type | None = None
    options: Mapping = field(default_factory=dict)
    init: Callable | None = None
    torch: str | None = None
    projection: bool = False
    layer_dropout: bool = True
    modes: tuple[str, ...] = ()
    settings: Mapping[str, Setting] = field(default_factory=dict)
    blocks: int = 0
    extra_parameters: Callable = _no_extra_parameters
    input_bias: Callable = _sum_biases
    sequence: Callable | None = None
    sequence_backward: Callable | None = None
    step: Callable | None = None
    step_backward: Callable | None = None
    onnx: Callable | None = None

    def __post_init__(self):
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        object.__setattr__(self, "settings", MappingProxyType(dict(self.settings)))

    def __repr__(self) -> str:
        return f"CellKind({self.name!r})"

    def check_settings(self, given: Mapping) -> dict:
        """Every setting of this kind: ``given``'s values checked (text read as the default's
        type), the defaults for the rest. A name the kind does not have is a ValueError listing
        the kind's settings (without a prefix: the caller names its argument)."""
        for name in given:
            if name not in self.settings:
                if not self.settings:
                    tunable = ", ".join(k.name for k in kinds() if k.settings)
                    raise ValueError(f"{self.name} has no settings, got {name!r} (kinds with settings: {tunable})")
                raise ValueError(f"{self.name} has no setting {name!r}; expected one of {', '.join(self.settings)}")
        return {name: s.parse(given[name], name) if name in given else s.default for name, s in self.settings.items()}

    def make_layer(self, input_size: int, hidden_size: int, num_layers: int = 1, bidirectional: bool = False,
                   dropout: float = 0.0, dtype=np.float32, rng=None, kind_init: bool = True, **kwargs):
        """The layer of this kind, with the initialisation that suits it (``kind_init=False``:
        PyTorch's default alone, every parameter U(−1/√H, 1/√H)); dropout acts between
        stacked layers (and is ignored for one layer). kwargs: the kind's settings and the
        layer's own keyword arguments (``bias``, ``batch_first``, ``mode``…); anything else is a
        ValueError naming it."""
        arguments = _layer_arguments(self.layer) - _MAKE_LAYER_ARGUMENTS - set(self.options) - set(self.settings)
        for name in kwargs:
            if name not in self.settings and name not in arguments:
                raise ValueError(f"{name}: {self.name} has no setting {name!r} (its settings: "
                                 f"{', '.join(self.settings) or 'none'}) nor a layer argument of that name "
                                 f"(those: {', '.join(sorted(arguments))})")
        settings = self.check_settings({k: v for k, v in kwargs.items() if k in self.settings})
        rng = as_rng(rng)
        kw = dict(self.options, num_layers=num_layers, bidirectional=bidirectional, dtype=dtype, rng=rng,
                  **{k: v for k, v in kwargs.items() if k not in self.settings}, **settings)
        if num_layers > 1 and dropout:
            if not self.layer_dropout:
                raise ValueError(f"dropout: {self.name} layers have no dropout between layers, got dropout={dropout}")
            kw["dropout"] = dropout
        layer = self.layer(input_size, hidden_size, **kw)
        return self.init(layer, rng) if self.init and kind_init else layer

    def make_cell(self, input_size: int, hidden_size: int, dtype=np.float32, rng=None, kind_init: bool = True,
                  **settings):
        """One step of this kind (for a decoder loop), with the initialisation that suits it
        (``kind_init=False``: PyTorch's default alone); settings: the kind's (``settings``), any
        other name a ValueError naming it."""
        if self.cell is None:
            raise ValueError(f"cell: {self.name} has no step-by-step cell; choose one of {', '.join(names(step=True))}")
        try:
            settings = self.check_settings(settings)
        except ValueError as exc:
            unknown = next((name for name in settings if name not in self.settings), None)
            raise ValueError(f"{unknown}: {exc}" if unknown else str(exc)) from None
        rng = as_rng(rng)
        cell = self.cell(input_size, hidden_size, dtype=dtype, rng=rng, **self.options, **settings)
        return self.init(cell, rng) if self.init and kind_init else cell


_REGISTRY: dict[str, CellKind] = {}


def register(kind: CellKind) -> CellKind:
    """Add a kind to the registry (its module calls this once, at import); returns it."""
    if kind.name in _REGISTRY:
        raise ValueError(f"cell kind {kind.name!r} is registered twice")
    _REGISTRY[kind.name] = kind
    return kind


def kinds(step: bool = False) -> tuple[CellKind, ...]:
    """Every registered kind, in the order registered; with ``step``, those that have a cell."""
    return tuple(k for k in _REGISTRY.values() if k.cell is not None or not step)


def names(step: bool = False) -> tuple[str, ...]:
    return tuple(k.name for k in kinds(step))


def get(name: str, step: bool = False) -> CellKind:
    """The kind called ``name``; the error lists the choices."""
    kind = _REGISTRY.get(name)
    if kind is None or (step and kind.cell is None):
        raise ValueError(f"cell: expected one of {', '.join(names(step))}, got {name!r}")
    return kind
