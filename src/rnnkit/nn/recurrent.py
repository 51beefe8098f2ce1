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

import math
import warnings

import numpy as np

from . import functional as F
from .module import Module, Parameter, as_dtype, as_rng, is_grad_enabled
from .validation import expect_shape, float_array, positive_int, probability, sequence_lengths

_GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}


class _DirectionWeights:
    """The parameters of one direction of one layer, as the sequence functions read them."""

    def __init__(self, W_ih, W_hh, b_ih, b_hh, W_hr, mode: str):
        self.W_ih, self.W_hh, self.b_ih, self.b_hh, self.W_hr = W_ih, W_hh, b_ih, b_hh, W_hr
        self.bias_x = None  # the bias added to the input projection before the loop
        if b_ih is not None:
            self.bias_x = b_ih.data + b_hh.data
            if mode == "GRU":  # b_hn stays inside the reset gate's product
                H = b_hh.data.shape[0] // 3
                self.bias_x[2 * H :] = b_ih.data[2 * H :]


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
    mode = ""

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
        if proj_size and (self.mode != "LSTM"):
            raise ValueError(f"proj_size: only LSTM supports a projection, got proj_size={proj_size} for {self.mode}")
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

        H, G, D = self.hidden_size, _GATES[self.mode], self.num_directions
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
        _init_uniform(self, H, self.rng)
        if self.learn_init:  # a trained initial state, shared by every sequence of a batch
            self.h0 = Parameter(np.zeros((self.num_layers * D, P), self.dtype))
            if self.mode == "LSTM":
                self.c0 = Parameter(np.zeros((self.num_layers * D, H), self.dtype))

    @property
    def output_size(self) -> int:
        """P: the size of h (proj_size for a projected LSTM)."""
        return self.proj_size or self.hidden_size

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
        return _DirectionWeights(get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr"), self.mode)

    def _initial_state(self, hx, B: int, unbatched: bool) -> tuple[list[np.ndarray], bool]:
        """The initial states as (L·D, B, ·) arrays, and whether the caller gave them."""
        sizes = [("h0", self.output_size)] + ([("c0", self.hidden_size)] if self.mode == "LSTM" else [])
        if hx is None:
            LD = self.num_layers * self.num_directions
            if self.learn_init:
                states = [np.repeat(getattr(self, n).data[:, None, :], B, axis=1) for n, _ in sizes]
            else:
                states = [np.zeros((LD, B, size), self.dtype) for _, size in sizes]
            return states, False
        if self.mode == "LSTM":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: expected a tuple (h0, c0) for LSTM, got {type(hx).__name__}")
            parts = list(hx)
        else:
            parts = [hx]
        return [self._check_state(v, n if self.mode == "LSTM" else "hx", B, s, unbatched) for v, (n, s) in zip(parts, sizes)], True

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
        layer_input, caches, masks = X, [], []
        finals = [np.empty_like(s) for s in states0]
        for k in range(self.num_layers):
            out = np.empty((T, B, D * P), self.dtype) if D == 2 else None
            for d, sfx in enumerate(self._suffixes):
                j = k * D + d
                Y, state, cache = self._sequence(layer_input, [s[j] for s in states0], self._weights(k, sfx), d == 1, bs, keep)
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
        return out, (tuple(states) if self.mode == "LSTM" else states[0])

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
            for d, sfx in enumerate(self._suffixes):
                j = k * D + d
                dY = d_layer[:, :, d * P : (d + 1) * P]
                dX, d_state0 = self._sequence_backward(dY, [s[j] for s in d_finals], caches[j], self._weights(k, sfx), d == 1, bs,
                                                       None if norms is None else norms[j])
                for d0, s in zip(d_initial, d_state0):
                    d0[j] = s
                d_input = dX if d_input is None else d_input + dX
            if k > 0 and masks:
                d_input *= masks[k - 1]
            d_layer = d_input
        self.grad_norms = norms
        dx, d_init = self._present(d_layer, d_initial, order, unbatched)
        if self.learn_init and not given:
            names = ("h0", "c0") if self.mode == "LSTM" else ("h0",)
            for name, g in zip(names, d_init if self.mode == "LSTM" else (d_init,)):
                getattr(self, name).grad += g.sum(axis=-2) if not unbatched else g
        if not unbatched and self.batch_first:
            dx = np.ascontiguousarray(dx)
        return dx, d_init

    def _gather_d_state(self, d_state, B, unbatched, order):
        sizes = [("d_h_n", self.output_size)] + ([("d_c_n", self.hidden_size)] if self.mode == "LSTM" else [])
        if self.mode == "LSTM":
            if d_state is None:
                d_state = (None, None)
            if not isinstance(d_state, (tuple, list)) or len(d_state) != 2:
                raise TypeError(f"d_state: expected a tuple (d_h_n, d_c_n) for LSTM, got {type(d_state).__name__}")
        else:
            d_state = (d_state,)
        result = []
        for value, (name, size) in zip(d_state, sizes):
            if value is None:
                arr = np.zeros(self._state_shape(B, size, False), self.dtype)
            else:
                arr = self._check_state(value, name, B, size, unbatched)
                arr = arr if order is None else arr[:, order]
            result.append(np.ascontiguousarray(arr))
        return result


class RNN(RNNBase):
    """Elman RNN: ``h_t = f(x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh)``, f = tanh or relu.

    Shapes and arguments as ``torch.nn.RNN``; see the module docstring.
    """

    mode = "RNN"

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, **kwargs)

    def _sequence(self, X, state, w, reverse, bs, keep):
        return F.rnn_sequence(X, state[0], w, reverse, bs, keep, self.nonlinearity == "relu")

    def _sequence_backward(self, dY, dstate, cache, w, reverse, bs, norms=None):
        return F.rnn_sequence_backward(dY, dstate, cache, w, reverse, bs, self.nonlinearity == "relu", norms)


class LSTM(RNNBase):
    """Long short-term memory, as ``torch.nn.LSTM`` (gates i, f, g, o; optional proj_size).

        i, f, g, o = σ, σ, tanh, σ of (x_t W_ihᵀ + b_ih + h_{t−1} W_hhᵀ + b_hh)
        c_t = f ⊙ c_{t−1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)   (h_t ← h_t W_hrᵀ when proj_size > 0)
    """

    mode = "LSTM"

    def _sequence(self, X, state, w, reverse, bs, keep):
        return F.lstm_sequence(X, state[0], state[1], w, reverse, bs, keep)

    def _sequence_backward(self, dY, dstate, cache, w, reverse, bs, norms=None):
        return F.lstm_sequence_backward(dY, dstate, cache, w, reverse, bs, norms)


class GRU(RNNBase):
    """Gated recurrent unit, as ``torch.nn.GRU`` (gates r, z, n).

        r = σ(x W_irᵀ + b_ir + h W_hrᵀ + b_hr),  z = σ(x W_izᵀ + b_iz + h W_hzᵀ + b_hz)
        n = tanh(x W_inᵀ + b_in + r ⊙ (h W_hnᵀ + b_hn)),  h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
    """

    mode = "GRU"

    def _sequence(self, X, state, w, reverse, bs, keep):
        return F.gru_sequence(X, state[0], w, reverse, bs, keep)

    def _sequence_backward(self, dY, dstate, cache, w, reverse, bs, norms=None):
        return F.gru_sequence_backward(dY, dstate, cache, w, reverse, bs, norms)


# ---- cells ------------------------------------------------------------------------------------


class RNNCellBase(Module):
    """One step at a time: x (B, input_size) or (input_size,), h (B, H) or (H,).

    Each forward pushes its cache; each backward undoes the most recent unprocessed step, so a
    loop of T forward calls is differentiated by T backward calls in reverse order.
    """

    mode = ""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=np.float32, rng=None):
        super().__init__()
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.bias = bool(bias)
        self.dtype = as_dtype(dtype)
        G, H = _GATES[self.mode], self.hidden_size
        self.weight_ih = Parameter(np.empty((G * H, self.input_size), self.dtype))
        self.weight_hh = Parameter(np.empty((G * H, H), self.dtype))
        if self.bias:
            self.bias_ih = Parameter(np.empty(G * H, self.dtype))
            self.bias_hh = Parameter(np.empty(G * H, self.dtype))
        _init_uniform(self, H, as_rng(rng))

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias}, dtype={np.dtype(self.dtype).name}"

    def _weights(self) -> _DirectionWeights:
        return _DirectionWeights(self.weight_ih, self.weight_hh, getattr(self, "bias_ih", None), getattr(self, "bias_hh", None), None, self.mode)

    def _check_input(self, x):
        X = float_array(x, "x", self.dtype, ndims=(1, 2))
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

    def _input_gates(self, X, w: _DirectionWeights) -> np.ndarray:
        return F.affine(X, w.W_ih.data, w.bias_x)

    def _carried(self, hx, B: int):
        """The state arrays behind ``hx`` when it is exactly what this cell returned last step.

        That state came out of checked inputs, so streaming (``state = cell(x, state)``) skips
        checking it again: at batch 1 the checks would cost as much as the step itself.
        """
        if hx is not None and hx is self.__dict__.get("_returned") and self._state_arrays[0].shape[0] == B:
            return self._state_arrays
        return None

    def _remember(self, returned, *arrays):
        self._returned, self._state_arrays = returned, arrays
        return returned

    def _finish_backward(self, w, x, h_prev, dgates, dgates_h=None, unbatched=False):
        dX = F.accumulate_weight_grads(w, x[None], h_prev[None], dgates[None], None if dgates_h is None else dgates_h[None])[0]
        return dX[0] if unbatched else dX


class RNNCell(RNNCellBase):
    """``h' = f(x W_ihᵀ + b_ih + h W_hhᵀ + b_hh)``, as ``torch.nn.RNNCell``."""

    mode = "RNN"

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", dtype=np.float32, rng=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity: expected 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, dtype, rng)

    def forward(self, x, hx=None):
        """Returns h' (B, H) (or (H,) for an unbatched x)."""
        X, unbatched = self._check_input(x)
        (h_prev,) = self._carried(hx, X.shape[0]) or (self._check_state(hx, "hx", X.shape[0], unbatched),)
        w = self._weights()
        h = F.rnn_step(self._input_gates(X, w), h_prev, w.W_hh.data, self.nonlinearity == "relu")
        self._push_cache((X, h_prev, h, unbatched))
        return self._remember(h[0] if unbatched else h, h)

    def backward(self, dh):
        """Returns (dx, dh_prev) for the most recent unprocessed step."""
        X, h_prev, h, unbatched = self._pop_cache()
        dh = self._check_state(dh, "dh", X.shape[0], unbatched)
        w = self._weights()
        da, dh_prev = F.rnn_step_backward(dh, h, w.W_hh.data, self.nonlinearity == "relu")
        dx = self._finish_backward(w, X, h_prev, da, unbatched=unbatched)
        return dx, dh_prev[0] if unbatched else dh_prev


class LSTMCell(RNNCellBase):
    """One LSTM step, as ``torch.nn.LSTMCell``: ``h', c' = cell(x, (h, c))``."""

    mode = "LSTM"

    def forward(self, x, hx=None):
        """hx: (h, c), each (B, H), or None for zeros. Returns (h', c')."""
        X, unbatched = self._check_input(x)
        B = X.shape[0]
        if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
            raise TypeError(f"hx: expected a tuple (h, c) for LSTMCell, got {type(hx).__name__}")
        carried = self._carried(hx, B)
        if carried:
            h_prev, c_prev = carried
        else:
            h_prev = self._check_state(None if hx is None else hx[0], "h", B, unbatched)
            c_prev = self._check_state(None if hx is None else hx[1], "c", B, unbatched)
        w = self._weights()
        gates = self._input_gates(X, w)
        h, c, tc = F.lstm_step(gates, h_prev, c_prev, w.W_hh.data)
        self._push_cache((X, h_prev, c_prev, gates, tc, unbatched))
        return self._remember((h[0], c[0]) if unbatched else (h, c), h, c)

    def backward(self, dh=None, dc=None):
        """Gradients of h' and c' in (either may be None); returns (dx, (dh_prev, dc_prev))."""
        X, h_prev, c_prev, gates, tc, unbatched = self._pop_cache()
        B = X.shape[0]
        dh = self._check_state(dh, "dh", B, unbatched)
        dc = self._check_state(dc, "dc", B, unbatched)
        w = self._weights()
        dgates, dh_prev, dc_prev = F.lstm_step_backward(dh, dc, gates, c_prev, tc, w.W_hh.data)
        dx = self._finish_backward(w, X, h_prev, dgates, unbatched=unbatched)
        return dx, ((dh_prev[0], dc_prev[0]) if unbatched else (dh_prev, dc_prev))


class GRUCell(RNNCellBase):
    """One GRU step, as ``torch.nn.GRUCell``: ``h' = cell(x, h)``."""

    mode = "GRU"

    def forward(self, x, hx=None):
        X, unbatched = self._check_input(x)
        (h_prev,) = self._carried(hx, X.shape[0]) or (self._check_state(hx, "hx", X.shape[0], unbatched),)
        w = self._weights()
        H = self.hidden_size
        gates = self._input_gates(X, w)
        h, hn = F.gru_step(gates, h_prev, w.W_hh.data, None if w.b_hh is None else w.b_hh.data[2 * H :])
        self._push_cache((X, h_prev, gates, hn, unbatched))
        return self._remember(h[0] if unbatched else h, h)

    def backward(self, dh):
        """Returns (dx, dh_prev) for the most recent unprocessed step."""
        X, h_prev, gates, hn, unbatched = self._pop_cache()
        dh = self._check_state(dh, "dh", X.shape[0], unbatched)
        w = self._weights()
        dgates, dgates_h, dh_prev = F.gru_step_backward(dh, gates, hn, h_prev, w.W_hh.data)
        dx = self._finish_backward(w, X, h_prev, dgates, dgates_h, unbatched)
        return dx, dh_prev[0] if unbatched else dh_prev
