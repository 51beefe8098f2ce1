"""RNN, LSTM and GRU layers and cells, with PyTorch's names, shapes, gate order and equations.

Layers (L layers, D = 2 if bidirectional else 1, P = proj_size or hidden_size):

    x       (T, B, input_size), or (B, T, input_size) with batch_first, or (T, input_size) unbatched
    h0      (L·D, B, P);  LSTM also c0 (L·D, B, hidden_size)
    out     (T, B, D·P): the last layer's h_t, both directions concatenated
    h_n     (L·D, B, P);  LSTM also c_n

Parameters per layer k and direction (suffix "_reverse" for the backward one), G = 1, 4, 3:
``weight_ih_l{k}`` (G·H, in), ``weight_hh_l{k}`` (G·H, P), ``bias_ih_l{k}``, ``bias_hh_l{k}``
(G·H,), and for a projected LSTM ``weight_hr_l{k}`` (P, H).

``backward(d_out, d_h_n)`` (LSTM: ``backward(d_out, (d_h_n, d_c_n))``) undoes the most recent
forward: it returns ``dx`` shaped like x and the gradient of the initial state (of the zeros,
when none was given), and adds every parameter's gradient into its ``.grad``.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

from . import backend, cells, init, onnx_forms
from . import functional as F
from .cells import CellKind
from .module import Module, Parameter, as_dtype, as_rng, is_grad_enabled
from .validation import all_finite, expect_shape, float_array, non_finite_error, positive_int, probability, sequence_lengths

# A cell's compiled step (dot products over W's rows) serves up to this many rows (streaming, a
# beam), at any size: under the thread policy (BLAS on one thread, the kernels' rows shared
# between the free cores) it was as fast as the reference's BLAS products or faster at every size
# measured (session 15, µs a step at batch 1, two threads: LSTMCell-512 94–152 against 151–204,
# LSTMCell-1024 746–1036 against 2270–2470, GRUCell-1024 323–405 against 1671–1677; one thread:
# within 5% or faster). Until then it stopped at 2²⁰ weights, measured when its rows were not shared.
FUSED_MAX_ROWS = 8


class _DirectionWeights:
    """The parameters of one direction of one layer, as the sequence functions read them."""

    def __init__(self, W_ih, W_hh, b_ih, b_hh, W_hr, kind: CellKind, extra: dict | None = None, module=None):
        self.W_ih, self.W_hh, self.b_ih, self.b_hh, self.W_hr = W_ih, W_hh, b_ih, b_hh, W_hr
        self.extra = extra or {}  # the kind's own parameters (CellKind.extra_parameters), by name
        # the layer or cell these weights belong to: the options of a kind whose equations need
        # them (its rates, ``training``, ``rng``)
        self.module = module
        # the bias added to the input projection before the loop
        self.bias_x = None if b_ih is None else kind.input_bias(b_ih.data, b_hh.data)


def _init_uniform(module: Module, hidden_size: int, rng: np.random.Generator) -> None:
    # PyTorch's default for recurrent layers and cells: every parameter ~ U(−1/√H, 1/√H).
    bound = 1.0 / math.sqrt(hidden_size)
    for _, p in module.named_parameters():
        p.data[...] = rng.uniform(-bound, bound, size=p.shape)


class RecurrentLayer(Module):
    """What every recurrent layer shares (RNN/LSTM/GRU here, minGRU/minLSTM in ``minimal``):
    the layout of directions, the checks of x, states, lengths and d_out, so that their
    errors read the same, and the switch for recording the gradient's flow.

    A subclass sets input_size, hidden_size, num_layers, batch_first, bidirectional, dtype and
    ``output_size``; its backward fills ``grad_norms`` (L·D, T) with ‖∂L/∂h_t‖ per layer·direction
    and step, in time order, when ``record_grad_norms`` is True.
    """

    record_grad_norms = False
    grad_norms = None

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _suffixes(self) -> tuple[str, ...]:
        return ("", "_reverse") if self.bidirectional else ("",)

    def direction_labels(self) -> list[str]:
        """The names of the layer·direction rows of ``grad_norms`` and ``gate_activations()``:
        "layer 0", "layer 0 reverse", "layer 1", …"""
        D = self.num_directions
        return [f"layer {j // D}{' reverse' if j % D else ''}" for j in range(self.num_layers * D)]

    # ---- input checks --------------------------------------------------------------------
    def _check_input(self, x):
        X = float_array(x, "x", self.dtype, ndims=(2, 3))
        unbatched = X.ndim == 2
        if unbatched:
            X = X[:, None, :]
        elif self.batch_first:
            X = X.transpose(1, 0, 2)
        if X.shape[2] != self.input_size:
            raise ValueError(f"x: expected input_size={self.input_size} features in the last dimension, got {X.shape[2]} (shape {np.shape(x)})")
        if X.shape[0] == 0:
            raise ValueError(f"x: expected at least one time step, got shape {np.shape(x)}")
        return np.ascontiguousarray(X), unbatched

    def _state_shape(self, B: int, size: int, unbatched: bool) -> tuple[int, ...]:
        LD = self.num_layers * self.num_directions
        return (LD, size) if unbatched else (LD, B, size)

    def _check_state(self, value, name: str, B: int, size: int, unbatched: bool) -> np.ndarray:
        expected = self._state_shape(B, size, unbatched)
        arr = float_array(value, name, self.dtype, ndims=(len(expected),))
        expect_shape(arr, expected, name, "num_layers * num_directions, batch, size" if not unbatched else "num_layers * num_directions, size")
        return arr if not unbatched else arr[:, None, :]

    def _check_lengths(self, lengths, T: int, B: int):
        """Returns (order, bs): the sort by decreasing length (None if already sorted) and the
        number of active rows at each step."""
        lengths = sequence_lengths(lengths, T, B)
        if lengths is None:
            return None, [B] * T
        order = None
        if np.any(np.diff(lengths) > 0):
            order = np.argsort(-lengths, kind="stable")
            lengths = lengths[order]
        bs = (lengths[None, :] > np.arange(T)[:, None]).sum(axis=1).tolist()
        return order, bs

    def _gather_d_out(self, d_out, T, B, unbatched, order):
        P = self.output_size * self.num_directions
        if d_out is None:
            return np.zeros((T, B, P), self.dtype)
        expected = (T, P) if unbatched else ((B, T, P) if self.batch_first else (T, B, P))
        d = float_array(d_out, "d_out", self.dtype)
        expect_shape(d, expected, "d_out", "the shape of out")
        if unbatched:
            d = d[:, None]
        elif self.batch_first:
            d = d.transpose(1, 0, 2)
        return np.ascontiguousarray(d if order is None else d[:, order])


class RNNBase(RecurrentLayer):
    """A layer of any kind registered with equations (``CellKind.sequence``): the kind says how
    many gate blocks its weights have, which state parts it carries and how one direction of
    one layer runs; this class stacks layers and directions, sorts rows by length, checks
    states and gradients, and keeps what backward needs."""

    kind: CellKind

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        dropout: float = 0.0,
        bidirectional: bool = False,
        proj_size: int = 0,
        learn_init: bool = False,
        dtype=np.float32,
        rng=None,
    ):
        super().__init__()
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.dropout = probability(dropout, "dropout")
        if proj_size and not self.kind.projection:
            projected = sorted({k.layer.__name__ for k in cells.kinds() if k.projection})
            raise ValueError(f"proj_size: only {', '.join(projected)} layers have a projection, got proj_size={proj_size} "
                             f"for {type(self).__name__}")
        if proj_size and not 0 < proj_size < hidden_size:
            raise ValueError(f"proj_size: expected 0 <= proj_size < hidden_size={hidden_size}, got {proj_size}")
        if dropout and num_layers == 1:
            warnings.warn("dropout acts between layers; with num_layers=1 it does nothing", stacklevel=2)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.proj_size = int(proj_size)
        self.learn_init = bool(learn_init)
        self.dtype = as_dtype(dtype)
        self.rng = as_rng(rng)

        H, G, D = self.hidden_size, self.kind.blocks, self.num_directions
        P = self.output_size
        for k in range(self.num_layers):
            in_size = self.input_size if k == 0 else D * P
            for sfx in self._suffixes:
                setattr(self, f"weight_ih_l{k}{sfx}", Parameter(np.empty((G * H, in_size), self.dtype)))
                setattr(self, f"weight_hh_l{k}{sfx}", Parameter(np.empty((G * H, P), self.dtype)))
                if self.bias:
                    setattr(self, f"bias_ih_l{k}{sfx}", Parameter(np.empty(G * H, self.dtype)))
                    setattr(self, f"bias_hh_l{k}{sfx}", Parameter(np.empty(G * H, self.dtype)))
                if self.proj_size:
                    setattr(self, f"weight_hr_l{k}{sfx}", Parameter(np.empty((P, H), self.dtype)))
                for name, shape in self.kind.extra_parameters(self).items():
                    setattr(self, f"{name}_l{k}{sfx}", Parameter(np.empty(shape, self.dtype)))
        _init_uniform(self, H, self.rng)
        if self.learn_init:  # a trained initial state per part (h0, c0…), shared by every sequence of a batch
            for part, size in self._state_sizes():
                setattr(self, f"{part}0", Parameter(np.zeros((self.num_layers * D, size), self.dtype)))

    @property
    def output_size(self) -> int:
        """P: the size of h (proj_size for a projected LSTM)."""
        return self.proj_size or self.hidden_size

    def _state_sizes(self) -> list[tuple[str, int]]:
        """(part, size) for each state part: h has the output size P, the others H."""
        return [(part, self.output_size if part == "h" else self.hidden_size) for part in self.kind.states]

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        for name in ("batch_first", "bidirectional", "learn_init"):
            if getattr(self, name):
                s += f", {name}=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s + f", dtype={np.dtype(self.dtype).name}"

    def _weights(self, k: int, sfx: str) -> _DirectionWeights:
        get = lambda name: getattr(self, f"{name}_l{k}{sfx}", None)  # noqa: E731
        extra = {name: get(name) for name in self.kind.extra_parameters(self)}
        return _DirectionWeights(get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr"), self.kind, extra,
                                 self)

    def _unpack(self, value, prefix: str, suffix: str, what: str) -> list:
        """The parts of a state given as the kind carries it: one array, or a tuple (h, c…)."""
        parts = self.kind.states
        if len(parts) == 1:
            return [value]
        if value is None:
            return [None] * len(parts)
        if not isinstance(value, (tuple, list)) or len(value) != len(parts):
            names = ", ".join(f"{prefix}{p}{suffix}" for p in parts)
            raise TypeError(f"{what}: expected a tuple ({names}) for {type(self).__name__}, got {type(value).__name__}")
        return list(value)

    def _state_names(self, prefix: str, suffix: str, single: str) -> list[str]:
        parts = self.kind.states
        return [single] if len(parts) == 1 else [f"{prefix}{p}{suffix}" for p in parts]

    def _initial_state(self, hx, B: int, unbatched: bool) -> tuple[list[np.ndarray], bool]:
        """The initial states as (L·D, B, ·) arrays, and whether the caller gave them."""
        sizes = self._state_sizes()
        if hx is None:
            LD = self.num_layers * self.num_directions
            if self.learn_init:
                states = [np.repeat(getattr(self, f"{part}0").data[:, None, :], B, axis=1) for part, _ in sizes]
            else:
                states = [np.zeros((LD, B, size), self.dtype) for _, size in sizes]
            return states, False
        values = self._unpack(hx, "", "0", "hx")
        names = self._state_names("", "0", "hx")
        return [self._check_state(v, n, B, s, unbatched) for v, n, (_, s) in zip(values, names, sizes)], True

    # ---- forward and backward --------------------------------------------------------------
    def forward(self, x, hx=None, lengths=None):
        """Run the whole sequence; returns ``(out, h_n)`` (LSTM: ``(out, (h_n, c_n))``)."""
        X, unbatched = self._check_input(x)
        T, B, _ = X.shape
        states0, given = self._initial_state(hx, B, unbatched)
        order, bs = self._check_lengths(lengths, T, B)
        if order is not None:
            X = X[:, order]
            states0 = [s[:, order] for s in states0]
        keep = is_grad_enabled()
        P, D = self.output_size, self.num_directions
        alone = self._steps_alone(T, B, keep)
        layer_input, caches, masks = X, [], []
        finals = [np.empty_like(s) for s in states0]
        for k in range(self.num_layers):
            out = np.empty((T, B, D * P), self.dtype) if D == 2 else None
            jobs = [functools.partial(self._direction, inputs=layer_input, states0=states0, k=k, d=d, bs=bs, keep=keep)
                    for d in range(D)]
            done = [job(self._single_step) for job in jobs] if alone else backend.side_by_side(self.kind, jobs, "sequence")
            for d, (Y, state, cache) in enumerate(done):
                j = k * D + d
                caches.append(cache)
                for final, s in zip(finals, state):
                    final[j] = s
                if D == 2:
                    out[:, :, d * P : (d + 1) * P] = Y
                else:
                    out = Y
            if self.dropout and self.training and k < self.num_layers - 1:
                mask = (self.rng.random(out.shape) >= self.dropout).astype(self.dtype) / (1 - self.dropout)
                out *= mask
                masks.append(mask)
            layer_input = out
        self._push_cache((order, bs, unbatched, given, caches, masks))
        return self._present(out, finals, order, unbatched)

    def _direction(self, sequence, inputs, states0, k: int, d: int, bs, keep: bool):
        """Direction d of layer k: ``sequence`` (a kind's, or ``_single_step``) on its weights and initial state."""
        j = k * self.num_directions + d
        return sequence(inputs, [s[j] for s in states0], self._weights(k, self._suffixes[d]), d == 1, bs, keep)

    def _direction_backward(self, sequence_backward, dY, d_finals, caches, k: int, d: int, bs, norms):
        """The backward of direction d of layer k, its ‖∂L/∂h_t‖ into its row of ``norms`` (or None)."""
        j = k * self.num_directions + d
        return sequence_backward(dY, [s[j] for s in d_finals], caches[j], self._weights(k, self._suffixes[d]), d == 1, bs,
                                 None if norms is None else norms[j])

    def _steps_alone(self, T: int, B: int, keep: bool) -> bool:
        """Whether this call is a step a cell's compiled step serves: one step of few rows, nothing
        kept for a gradient, no projection (generating and streaming token by token). The layer's
        own loop would first pack W_hh for its threads, which costs a step many times over."""
        return (T == 1 and B <= FUSED_MAX_ROWS and not keep and not self.proj_size
                and backend.cell_step(self.kind) is not None)

    def _single_step(self, X, states, w: _DirectionWeights, reverse, bs, keep):
        """``sequence`` for one step (``_steps_alone``): (Y (1, B, H), new states, no cache)."""
        new, _, _ = backend.cell_step(self.kind)(np.ascontiguousarray(X[0]), states, (w.W_ih, w.W_hh, w.b_ih, w.b_hh),
                                                 keep=False)
        return new[0][None], new, None

    def _present(self, out, states, order, unbatched):
        """From time-major, length-sorted arrays back to the caller's layout."""
        if order is not None:
            inverse = np.argsort(order)
            out = out[:, inverse]
            states = [s[:, inverse] for s in states]
        if unbatched:
            out = out[:, 0]
            states = [s[:, 0] for s in states]
        elif self.batch_first:
            out = out.transpose(1, 0, 2)
        return out, (tuple(states) if len(states) > 1 else states[0])

    def backward(self, d_out=None, d_state=None):
        """Gradients for the most recent forward: returns ``(dx, dh0)`` (LSTM: ``(dx, (dh0, dc0))``).

        d_out: shaped like ``out``; d_state: like ``h_n`` (LSTM: a tuple (d_h_n, d_c_n));
        any of them may be None (no gradient flows from there).
        """
        order, bs, unbatched, given, caches, masks = self._pop_cache()
        X0 = caches[0][0]
        T, B, _ = X0.shape
        P, D, L = self.output_size, self.num_directions, self.num_layers
        d_layer = self._gather_d_out(d_out, T, B, unbatched, order)
        d_finals = self._gather_d_state(d_state, B, unbatched, order)
        d_initial = [np.empty_like(s) for s in d_finals]
        norms = np.zeros((L * D, T)) if self.record_grad_norms else None
        for k in reversed(range(L)):
            d_input = None
            jobs = [functools.partial(self._direction_backward, dY=d_layer[:, :, d * P : (d + 1) * P], d_finals=d_finals, caches=caches,
                                      k=k, d=d, bs=bs, norms=norms)
                    for d in range(D)]
            for d, (dX, d_state0) in enumerate(backend.side_by_side(self.kind, jobs, "sequence_backward")):
                j = k * D + d
                for d0, s in zip(d_initial, d_state0):
                    d0[j] = s
                d_input = dX if d_input is None else d_input + dX
            if k > 0 and masks:
                d_input *= masks[k - 1]
            d_layer = d_input
        self.grad_norms = norms
        dx, d_init = self._present(d_layer, d_initial, order, unbatched)
        if self.learn_init and not given:
            for part, g in zip(self.kind.states, d_init if len(d_initial) > 1 else (d_init,)):
                getattr(self, f"{part}0").grad += g.sum(axis=-2) if not unbatched else g
        if not unbatched and self.batch_first:
            dx = np.ascontiguousarray(dx)
        return dx, d_init

    def _gather_d_state(self, d_state, B, unbatched, order):
        values = self._unpack(d_state, "d_", "_n", "d_state")
        names = self._state_names("d_", "_n", "d_h_n")
        result = []
        for value, name, (_, size) in zip(values, names, self._state_sizes()):
            if value is None:
                arr = np.zeros(self._state_shape(B, size, False), self.dtype)
            else:
                arr = self._check_state(value, name, B, size, unbatched)
                arr = arr if order is None else arr[:, order]
            result.append(np.ascontiguousarray(arr))
        return result

    def gate_activations(self) -> list[np.ndarray]:
        """The gate activations of the most recent forward (outside no_grad, before its backward):
        one (G, N, H) array per layer·direction, the kind's gates in order, N = the steps inside
        the sequences (all rows and steps, without padding)."""
        if not self._caches:
            raise RuntimeError(f"gate_activations: run a forward pass of the {type(self).__name__} (outside no_grad) first")
        _, bs, _, _, caches, _ = self._caches[-1]
        result = []
        for cache in caches:
            acts = cache[1]  # (T, B, G·H), rows sorted by length
            T, B = acts.shape[:2]
            active = np.arange(B)[None, :] < np.asarray(bs)[:, None]  # (T, B): steps inside each sequence
            result.append(acts[active].reshape(-1, self.kind.blocks, self.hidden_size).transpose(1, 0, 2))
        return result


def _check_nonlinearity(nonlinearity: str) -> CellKind:
    """The kind an RNN's nonlinearity selects: tanh → rnn, relu → irnn."""
    kind = {"tanh": RNN_KIND, "relu": IRNN_KIND}.get(nonlinearity)
    if kind is None:
        raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
    return kind


class RNN(RNNBase):
    """Elman RNN: ``h_t = f(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh)``, f = tanh or relu.

    Shapes and arguments as ``torch.nn.RNN``; see the module docstring.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", **kwargs):
        self.kind = _check_nonlinearity(nonlinearity)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, **kwargs)


class LSTM(RNNBase):
    """Long short-term memory, as ``torch.nn.LSTM`` (gates i, f, g, o; optional proj_size).

        i, f, g, o = σ, σ, tanh, σ of (x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh)
        c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)   (h_t ← h_t W_hrᵀ when proj_size > 0)
    """


class GRU(RNNBase):
    """Gated recurrent unit, as ``torch.nn.GRU`` (gates r, z, n).

        r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr),  z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
        n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn)),  h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
    """


# ---- cells ------------------------------------------------------------------------------------


class RNNCellBase(Module):
    """One step at a time: x (B, input_size) or (input_size,), each state part (B, H) or (H,).

    ``forward(x, hx)`` returns the new state (a tuple (h', c') for a kind with two parts);
    each forward pushes its cache; each backward undoes the most recent unprocessed step, so a
    loop of T forward calls is differentiated by T backward calls in reverse order.
    """

    kind: CellKind

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=np.float32, rng=None):
        super().__init__()
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.bias = bool(bias)
        self.dtype = as_dtype(dtype)
        G, H = self.kind.blocks, self.hidden_size
        self.weight_ih = Parameter(np.empty((G * H, self.input_size), self.dtype))
        self.weight_hh = Parameter(np.empty((G * H, H), self.dtype))
        if self.bias:
            self.bias_ih = Parameter(np.empty(G * H, self.dtype))
            self.bias_hh = Parameter(np.empty(G * H, self.dtype))
        extra = self.kind.extra_parameters(self)
        for name, shape in extra.items():
            setattr(self, name, Parameter(np.empty(shape, self.dtype)))
        self._extra_names = tuple(extra)  # a step is short: its weights are gathered without asking the kind
        _init_uniform(self, H, as_rng(rng))
        self._array_dtype = np.dtype(self.dtype)  # a streamed input's dtype, compared by identity (cheaper than ==)
        self._returned = (None, None)  # the state last returned and the arrays behind it (``_carried``)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}, dtype={np.dtype(self.dtype).name}"

    def _weights(self) -> _DirectionWeights:
        extra = {name: getattr(self, name) for name in self._extra_names} if self._extra_names else None
        return _DirectionWeights(self.weight_ih, self.weight_hh, getattr(self, "bias_ih", None), getattr(self, "bias_hh", None), None,
                                 self.kind, extra, self)

    def _check_input(self, x, finite: bool = True):
        if (not finite and type(x) is np.ndarray and x.dtype is self._array_dtype and x.ndim == 2
                and x.shape[1] == self.input_size and x.flags.c_contiguous):
            return x, False  # a streamed step's input, every call: what the checks below pass as it is
        X = float_array(x, "x", self.dtype, ndims=(1, 2), finite=finite)
        if X.shape[-1] != self.input_size:
            raise ValueError(f"x: expected input_size={self.input_size} features in the last dimension, got shape {X.shape}")
        return (X[None], True) if X.ndim == 1 else (X, False)

    def _check_state(self, value, name: str, B: int, unbatched: bool) -> np.ndarray:
        H = self.hidden_size
        if value is None:
            return np.zeros((B, H), self.dtype)
        arr = float_array(value, name, self.dtype, ndims=(1,) if unbatched else (2,))
        expect_shape(arr, (H,) if unbatched else (B, H), name, "hidden_size" if unbatched else "batch, hidden_size")
        return arr[None] if unbatched else arr

    def _check_states(self, value, prefix: str, single: str, B: int, unbatched: bool) -> tuple[np.ndarray, ...]:
        """Each state part checked, from one array or a tuple (h, c…) as the kind carries it."""
        parts = self.kind.states
        if len(parts) == 1:
            return (self._check_state(value, single, B, unbatched),)
        if value is not None and (not isinstance(value, (tuple, list)) or len(value) != len(parts)):
            names = ", ".join(prefix + p for p in parts)
            raise TypeError(f"{single}: expected a tuple ({names}) for {type(self).__name__}, got {type(value).__name__}")
        values = (None,) * len(parts) if value is None else value
        return tuple(self._check_state(v, prefix + p, B, unbatched) for v, p in zip(values, parts))

    @staticmethod
    def _present(states: tuple, unbatched: bool):
        """The state as the caller gives it: one array or a tuple (h, c…), (H,) parts when unbatched."""
        if unbatched:
            states = tuple(s[0] for s in states)
        return states if len(states) > 1 else states[0]

    def _carried(self, hx, B: int):
        """The state arrays behind ``hx`` when it is exactly what this cell returned last step.

        That state came out of checked inputs, so streaming (``state = cell(x, state)``) skips
        checking it again: at batch 1 the checks would cost as much as the step itself.
        """
        returned, arrays = self._returned
        if hx is returned and hx is not None and arrays[0].shape[0] == B:
            return arrays
        return None

    def __call__(self, x, hx=None):  # Module's, without packing *args and **kwargs: a streamed step is a few µs
        return self.forward(x, hx)

    def forward(self, x, hx=None):
        """hx: the state (LSTM: a tuple (h, c)), each part (B, H), or None for zeros.
        Returns the new state, likewise ((H,) parts for an unbatched x)."""
        X, unbatched = self._check_input(x, finite=False)  # finite: below, in the compiled step where it serves
        B = X.shape[0]
        prev = self._carried(hx, B) or self._check_states(hx, "", "hx", B, unbatched)
        fused = backend.cell_step(self.kind) if B <= FUSED_MAX_ROWS and self._fused_step_fits else None
        keep = is_grad_enabled()
        if fused is not None:  # the compiled whole step: products, biases, gates and x's check in one call
            weights = ((self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh) if self.bias
                       else (self.weight_ih, self.weight_hh, None, None))
            new, gates, cache = fused(X, prev, weights, check_x="x", keep=keep)
            input_cache = None
        else:
            if not all_finite(X):
                raise non_finite_error(X, "x")
            w = self._weights()
            gates, input_cache = self._input_gates(X, w)
            new, cache = self.kind.step(gates, prev, w)
        if keep:  # Module's push, asked only when a gradient is to come (under no_grad a streamed step skips the call)
            self._push_cache((X, prev, gates, input_cache, cache, unbatched))
        returned = self._present(new, unbatched)
        # what was returned, and the arrays behind it (``_carried``): a plain attribute, set past
        # Module's registration of parameters (a step is short)
        self.__dict__["_returned"] = (returned, new)
        return returned

    def backward(self, *d_state):
        """Gradients of the new state's parts in (LSTM: ``backward(dh, dc)``; any may be None or
        left out); returns ``(dx, d_state_prev)``, the latter shaped as the state."""
        X, prev, gates, input_cache, cache, unbatched = self._pop_cache()
        parts = self.kind.states
        if len(d_state) > len(parts):
            raise TypeError(f"backward: expected at most {len(parts)} gradients ({', '.join('d' + p for p in parts)}), got {len(d_state)}")
        d_state = d_state + (None,) * (len(parts) - len(d_state))
        d = tuple(self._check_state(v, "d" + p, X.shape[0], unbatched) for v, p in zip(d_state, parts))
        w = self._weights()
        dgates, dgates_h, d_prev = self.kind.step_backward(d, gates, prev, cache, w)
        dX = self._input_backward(w, X, prev[0], dgates, dgates_h, input_cache)
        return (dX[0] if unbatched else dX), self._present(d_prev, unbatched)

    @functools.cached_property
    def _fused_step_fits(self) -> bool:
        """Whether a compiled whole step may serve: the input side is the plain ``x W_ihᵀ + b``
        (a kind that transforms it, as layer normalisation does, overrides ``_input_gates``)."""
        return type(self)._input_gates is RNNCellBase._input_gates

    def _input_gates(self, X, w) -> tuple[np.ndarray, object]:
        """The step's input side, ``x W_ihᵀ`` and the biases (B, G·H), and what its backward needs
        (a cell whose kind transforms the projection, as layer normalisation does, overrides both)."""
        return F.affine(X, w.W_ih.data, w.bias_x), None

    def _input_backward(self, w, X, h_prev, dgates, dgates_h, input_cache) -> np.ndarray:
        """dx (B, I); adds the weights' and biases' gradients: one product each."""
        return F.accumulate_weight_grads(w, X[None], h_prev[None], dgates[None], None if dgates_h is None else dgates_h[None])[0]


class RNNCell(RNNCellBase):
    """``h' = f(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)``, as ``torch.nn.RNNCell``."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float32, rng=None):
        self.kind = _check_nonlinearity(nonlinearity)
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, dtype, rng)


class LSTMCell(RNNCellBase):
    """One LSTM step, as ``torch.nn.LSTMCell``: ``h', c' = cell(x, (h, c))``."""


class GRUCell(RNNCellBase):
    """One GRU step, as ``torch.nn.GRUCell``: ``h' = cell(x, h)``."""


# ---- the kinds: each one's equations (in functional) and facts, registered once ----------------


def _rnn_equations(relu: bool) -> dict:
    def step(gates, states, w):
        return (F.rnn_step(gates, states[0], w.W_hh.data, relu),), None  # gates become h_t, its own cache

    def step_backward(d, gates, states, cache, w):
        da, dh_prev = F.rnn_step_backward(d[0], gates, w.W_hh.data, relu)
        return da, None, (dh_prev,)

    return dict(blocks=1, sequence=functools.partial(F.rnn_sequence, relu=relu),
                sequence_backward=functools.partial(F.rnn_sequence_backward, relu=relu), step=step, step_backward=step_backward)


RNN_KIND = cells.register(cells.CellKind(
    name="rnn", about="tanh RNN (Elman 1990)", states=("h",), gates=(("hidden", "tanh"),),
    layer=RNN, cell=RNNCell, torch="RNN", onnx=onnx_forms.RNN_TANH, **_rnn_equations(relu=False)))


def _irnn_init(module, rng):
    """Le et al. 2015: recurrent weights I and zero biases, input weights ~ N(0, 0.001²)."""
    init.identity_recurrent_(module)
    for name, p in module.named_parameters():
        if name.split(".")[-1].startswith("weight_ih"):
            p.data[...] = rng.normal(0.0, 0.001, p.shape)
    return module


IRNN_KIND = cells.register(cells.CellKind(
    name="irnn", about="ReLU RNN started at the identity (Le et al. 2015)", states=("h",), gates=(("hidden", "relu"),),
    layer=RNN, cell=RNNCell, options={"nonlinearity": "relu"}, init=_irnn_init, torch="RNN", onnx=onnx_forms.RNN_RELU,
    **_rnn_equations(relu=True)))


def _lstm_step(gates, states, w):
    h, c, tc = F.lstm_step(gates, states[0], states[1], w.W_hh.data)
    return (h, c), tc


def _lstm_step_backward(d, gates, states, tc, w):
    dgates, dh_prev, dc_prev = F.lstm_step_backward(d[0], d[1], gates, states[1], tc, w.W_hh.data)
    return dgates, None, (dh_prev, dc_prev)


LSTM.kind = LSTMCell.kind = cells.register(cells.CellKind(
    name="lstm", about="LSTM (Hochreiter & Schmidhuber 1997), forget-gate bias 1", states=("h", "c"),
    gates=(("input", "sigmoid"), ("forget", "sigmoid"), ("cell", "tanh"), ("output", "sigmoid")),
    layer=LSTM, cell=LSTMCell, init=lambda module, rng: init.forget_gate_bias_(module, 1.0), torch="LSTM", projection=True,
    blocks=4, sequence=F.lstm_sequence, sequence_backward=F.lstm_sequence_backward, step=_lstm_step, step_backward=_lstm_step_backward,
    onnx=onnx_forms.PROJECTABLE_LSTM))


def _gru_input_bias(b_ih, b_hh):
    """b_ih + b_hh but for the n block, where b_hn stays inside the reset gate's product."""
    H = b_hh.shape[0] // 3
    bias = b_ih + b_hh
    bias[2 * H :] = b_ih[2 * H :]
    return bias


def _b_hn(w):
    return None if w.b_hh is None else w.b_hh.data[2 * w.b_hh.data.shape[0] // 3 :]


def _gru_step(gates, states, w):
    h, hn = F.gru_step(gates, states[0], w.W_hh.data, _b_hn(w))
    return (h,), hn


def _gru_step_backward(d, gates, states, hn, w):
    dgates, dgates_h, dh_prev = F.gru_step_backward(d[0], gates, hn, states[0], w.W_hh.data)
    return dgates, dgates_h, (dh_prev,)


GRU.kind = GRUCell.kind = cells.register(cells.CellKind(
    name="gru", about="GRU (Cho et al. 2014)", states=("h",), gates=(("reset", "sigmoid"), ("update", "sigmoid"), ("new", "tanh")),
    layer=GRU, cell=GRUCell, torch="GRU", blocks=3, input_bias=_gru_input_bias,
    sequence=F.gru_sequence, sequence_backward=F.gru_sequence_backward, step=_gru_step, step_backward=_gru_step_backward,
    onnx=onnx_forms.GRU))
