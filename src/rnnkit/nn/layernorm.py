"""The layer-normalised LSTM and GRU (Ba, Kiros & Hinton 2016) in the formulation of haste's
``LayerNormLSTM`` and ``LayerNormGRU`` (LMNT 2020): the input and the recurrent projections are
normalised apart, each over its whole G·H vector with a gain and no shift (the biases follow);
the LSTM's cell state is normalised, with gain and shift, before the output tanh:

    a_t = LN(x_t W_ihᵀ; γ_ih) + LN(h_{t−1} W_hhᵀ; γ_hh) + b_ih + b_hh
    i, f, g, o = σ, σ, tanh, σ of a_t's blocks (PyTorch's order; haste's is i g f o)
    c_t = f ⊙ c_{t−1} + i ⊙ g
    h_t = o ⊙ tanh(LN(c_t; γ_c, β_c))

    GRU (PyTorch's gate order r z n; haste's is z r n):
    a^x_t = LN(x_t W_ihᵀ; γ_ih) + b_ih,   a^h_t = LN(h_{t−1} W_hhᵀ; γ_hh) + b_hh
    r, z = σ(a^x_r + a^h_r), σ(a^x_z + a^h_z),   n = tanh(a^x_n + r ⊙ a^h_n)
    h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}

    LN(z; γ, β) = γ ⊙ (z − mean(z)) / √(var(z) + ε) + β,   ε = 1e-5, over the last axis

Parameters as ``LSTM`` / ``GRU`` (``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``,
``bias_hh_l{k}``), and ``ln_ih_gain_l{k}``, ``ln_hh_gain_l{k}`` (G·H,), for the LSTM also
``ln_c_gain_l{k}``, ``ln_c_bias_l{k}`` (H,); started at 1 and 0. ``layer_norm=False`` drops the
normalisation (and its parameters): the layer is then ``LSTM`` / ``GRU`` exactly. The
normalisation of x W_ihᵀ runs for all steps before the loop, as the input projection does.
Shapes and states as ``LSTM`` / ``GRU`` (no proj_size); the cells take one step.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import cells, onnx_forms
from . import functional as F
from .functional import accumulate_weight_grads, affine, buffers, sigmoid_, store_state, sum_rows, time_steps
from .recurrent import GRU, LSTM, RNNBase, RNNCellBase

EPS = 1e-5


def normalize(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ẑ, 1/s) over the last axis: ẑ = (z − mean z) / s, s = √(var z + ε); 1/s keeps its axis."""
    z_hat = z - z.mean(axis=-1, keepdims=True)
    inv = 1.0 / np.sqrt(np.mean(z_hat * z_hat, axis=-1, keepdims=True) + EPS)
    z_hat *= inv
    return z_hat, inv


def normalize_backward(d_hat: np.ndarray, z_hat: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """∂L/∂z from ∂L/∂ẑ: (1/s)(dẑ − mean dẑ − ẑ ⊙ mean(dẑ ⊙ ẑ))."""
    dz = d_hat - d_hat.mean(axis=-1, keepdims=True)
    dz -= z_hat * np.mean(d_hat * z_hat, axis=-1, keepdims=True)
    dz *= inv
    return dz


# ---- the input side, shared by LSTM and GRU, layers and cells --------------------------------------


def normalized_input(X, w):
    """(G, X̂, 1/s): LN(x W_ihᵀ; γ_ih) plus the input-side biases, every row (and step) at once."""
    X_hat, inv_x = normalize(affine(X, w.W_ih.data, None))
    G = X_hat * w.extra["ln_ih_gain"].data
    if w.bias_x is not None:
        G += w.bias_x
    return G, X_hat, inv_x


def input_grads(w, X, H_prev, X_hat, inv_x, dG, dZh) -> np.ndarray:
    """dX (T, B, I) from dG (T, B, G·H), the gradient of the input side, and dZh, that of
    h_{t−1} W_hhᵀ; adds the gradients of γ_ih, b_ih, W_ih and W_hh, one product each."""
    T, B, _ = X.shape
    w.extra["ln_ih_gain"].grad += sum_rows((dG * X_hat).reshape(T * B, -1))
    if w.b_ih is not None:
        w.b_ih.grad += sum_rows(dG.reshape(T * B, -1))
    dZx = normalize_backward(dG * w.extra["ln_ih_gain"].data, X_hat, inv_x)
    weights = SimpleNamespace(W_ih=w.W_ih, W_hh=w.W_hh, b_ih=None, b_hh=None)  # b_ih above, b_hh in hidden_grads
    return accumulate_weight_grads(weights, X, H_prev, dZx, dZh)


def hidden_grads(w, Zh_hat, dA_h) -> None:
    """γ_hh's and b_hh's gradients from dA_h (N, G·H), that of the hidden side LN(h W_hhᵀ)γ_hh + b_hh."""
    w.extra["ln_hh_gain"].grad += sum_rows(dA_h * Zh_hat)
    if w.b_hh is not None:
        w.b_hh.grad += sum_rows(dA_h)


def cell_state_grads(w, N_hat, dN) -> None:
    """γ_c's and β_c's gradients from dN (N, H), that of γ_c ⊙ n̂ + β_c."""
    w.extra["ln_c_gain"].grad += sum_rows(dN * N_hat)
    w.extra["ln_c_bias"].grad += sum_rows(dN)


# ---- LSTM ----------------------------------------------------------------------------------------------


def ln_lstm_step(gates, h_prev, c_prev, w):
    """One step. gates: (B, 4H) the normalised input side, becomes [i f g o]; h_prev, c_prev (B, H).
    Returns h, c and the step's cache (ẑ_h, 1/s_h, n̂, 1/s_c, tanh(γ_c n̂ + β_c))."""
    e, H = w.extra, c_prev.shape[1]
    zh_hat, inv_h = normalize(h_prev @ w.W_hh.data.T)
    gates += zh_hat * e["ln_hh_gain"].data
    c = F.lstm_cell_update(gates, c_prev)
    n_hat, inv_c = normalize(c)
    tn = np.tanh(n_hat * e["ln_c_gain"].data + e["ln_c_bias"].data)
    return gates[:, 3 * H :] * tn, c, (zh_hat, inv_h, n_hat, inv_c, tn)  # h = o ⊙ tanh(LN(c))


def ln_lstm_step_backward(dh, dc, gates, c_prev, cache, w, out=None, out_z=None, out_n=None):
    """Backward of ``ln_lstm_step``: dh, dc (B, H) the gradients of h_t and c_t (from step t+1).
    Returns da (B, 4H), the gates' pre-activations (both sides'); dzh (B, 4H), that of
    h_{t−1} W_hhᵀ; dn (B, H), that of γ_c n̂ + β_c; dh_prev; dc_prev."""
    zh_hat, inv_h, n_hat, inv_c, tn = cache
    e, H = w.extra, c_prev.shape[1]
    f, o = gates[:, H : 2 * H], gates[:, 3 * H :]
    dn = np.multiply(dh, o * (1 - tn * tn), out=out_n)
    dct = normalize_backward(dn * e["ln_c_gain"].data, n_hat, inv_c)
    dct += dc
    da = F.lstm_gate_gradients(dct, dh, gates, c_prev, tn, out)
    dzh = normalize_backward(da * e["ln_hh_gain"].data, zh_hat, inv_h)
    if out_z is not None:
        out_z[...] = dzh
    return da, dzh, dn, dzh @ w.W_hh.data, dct * f


def layer_norm_lstm_sequence(X, states, w, reverse, bs, keep):
    if not w.module.layer_norm:
        return F.lstm_sequence(X, states, w, reverse, bs, keep)
    T, B, _ = X.shape
    h, c = (s.copy() for s in states)
    H = c.shape[1]
    G, X_hat, inv_x = normalized_input(X, w)
    alloc = buffers(bs, B)
    Y = alloc((T, B, H), X.dtype)
    if keep:
        H_prev, C_prev, N_hat, TN = (alloc(Y.shape, X.dtype) for _ in range(4))
        Zh_hat, inv_h, inv_c = alloc(G.shape, X.dtype), alloc((T, B, 1), X.dtype), alloc((T, B, 1), X.dtype)
    for t in time_steps(T, reverse):
        b = bs[t]
        if keep:
            H_prev[t, :b], C_prev[t, :b] = h[:b], c[:b]
        h_new, c_new, step = ln_lstm_step(G[t, :b], h[:b], c[:b], w)
        if keep:
            Zh_hat[t, :b], inv_h[t, :b], N_hat[t, :b], inv_c[t, :b], TN[t, :b] = step
        Y[t, :b] = h_new
        h = store_state(h, h_new, b, B)
        c = store_state(c, c_new, b, B)
    cache = (X, G, X_hat, inv_x, H_prev, C_prev, Zh_hat, inv_h, N_hat, inv_c, TN) if keep else None
    return Y, (h, c), cache


def layer_norm_lstm_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    if not w.module.layer_norm:
        return F.lstm_sequence_backward(dY, dstate, cache, w, reverse, bs, norms)
    X, G, X_hat, inv_x, H_prev, C_prev, Zh_hat, inv_h, N_hat, inv_c, TN = cache
    T, B, _ = X.shape
    alloc = buffers(bs, B)
    dG, dZh, dN = alloc(G.shape, G.dtype), alloc(G.shape, G.dtype), alloc(C_prev.shape, G.dtype)
    dh, dc = (a.copy() for a in dstate)
    for t in time_steps(T, not reverse):
        b = bs[t]
        dh_t = F.step_gradient(dh, dY, t, b, norms)
        step = (Zh_hat[t, :b], inv_h[t, :b], N_hat[t, :b], inv_c[t, :b], TN[t, :b])
        *_, dh[:b], dc[:b] = ln_lstm_step_backward(dh_t, dc[:b], G[t, :b], C_prev[t, :b], step, w,
                                                   out=dG[t, :b], out_z=dZh[t, :b], out_n=dN[t, :b])
    flat = lambda a: a.reshape(T * B, -1)  # noqa: E731
    hidden_grads(w, flat(Zh_hat), flat(dG))  # an LSTM's two sides share their pre-activations' gradient
    cell_state_grads(w, flat(N_hat), flat(dN))
    return input_grads(w, X, H_prev, X_hat, inv_x, dG, dZh), (dh, dc)


def _lstm_step(gates, states, w):
    if not w.module.layer_norm:
        return LSTM.kind.step(gates, states, w)
    h, c, cache = ln_lstm_step(gates, states[0], states[1], w)
    return (h, c), cache


def _lstm_step_backward(d, gates, states, cache, w):
    if not w.module.layer_norm:
        return LSTM.kind.step_backward(d, gates, states, cache, w)
    da, dzh, dn, dh_prev, dc_prev = ln_lstm_step_backward(d[0], d[1], gates, states[1], cache, w)
    hidden_grads(w, cache[0], da)
    cell_state_grads(w, cache[2], dn)
    return da, dzh, (dh_prev, dc_prev)


# ---- GRU -----------------------------------------------------------------------------------------------


def ln_gru_step(gates, h_prev, w):
    """One step. gates: (B, 3H) the normalised input side (with b_hr, b_hz), becomes [r z n].
    Returns h and the step's cache (ẑ_h, 1/s_h, a^h_n: the hidden side of n, with b_hn)."""
    H = h_prev.shape[1]
    zh_hat, inv_h = normalize(h_prev @ w.W_hh.data.T)
    a_h = zh_hat * w.extra["ln_hh_gain"].data
    rz = gates[:, : 2 * H]
    rz += a_h[:, : 2 * H]
    sigmoid_(rz)
    r, z, n = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
    hn = a_h[:, 2 * H :]
    if w.b_hh is not None:
        hn += w.b_hh.data[2 * H :]
    n += r * hn
    np.tanh(n, out=n)
    h = h_prev - n
    h *= z
    h += n
    return h, (zh_hat, inv_h, hn)


def ln_gru_step_backward(dh, gates, h_prev, cache, w, out=None, out_h=None, out_z=None):
    """Backward of ``ln_gru_step``: dh (B, H). Returns da (B, 3H), the input side's
    pre-activations; da_h, the hidden side's (n's behind the reset gate); dzh, that of
    h_{t−1} W_hhᵀ; dh_prev."""
    zh_hat, inv_h, hn = cache
    H = h_prev.shape[1]
    z = gates[:, H : 2 * H]
    da, da_h = F.gru_gate_gradients(dh, gates, hn, h_prev, out, out_h)
    dzh = normalize_backward(da_h * w.extra["ln_hh_gain"].data, zh_hat, inv_h)
    if out_z is not None:
        out_z[...] = dzh
    dh_prev = dzh @ w.W_hh.data
    dh_prev += dh * z
    return da, da_h, dzh, dh_prev


def layer_norm_gru_sequence(X, states, w, reverse, bs, keep):
    if not w.module.layer_norm:
        return F.gru_sequence(X, states, w, reverse, bs, keep)
    T, B, _ = X.shape
    h = states[0].copy()
    G, X_hat, inv_x = normalized_input(X, w)
    alloc = buffers(bs, B)
    Y = alloc((T, B, h.shape[1]), X.dtype)
    if keep:
        H_prev, HN = alloc(Y.shape, X.dtype), alloc(Y.shape, X.dtype)
        Zh_hat, inv_h = alloc(G.shape, X.dtype), alloc((T, B, 1), X.dtype)
    for t in time_steps(T, reverse):
        b = bs[t]
        if keep:
            H_prev[t, :b] = h[:b]
        h_new, step = ln_gru_step(G[t, :b], h[:b], w)
        if keep:
            Zh_hat[t, :b], inv_h[t, :b], HN[t, :b] = step
        Y[t, :b] = h_new
        h = store_state(h, h_new, b, B)
    return Y, (h,), ((X, G, X_hat, inv_x, H_prev, HN, Zh_hat, inv_h) if keep else None)


def layer_norm_gru_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    if not w.module.layer_norm:
        return F.gru_sequence_backward(dY, dstate, cache, w, reverse, bs, norms)
    X, G, X_hat, inv_x, H_prev, HN, Zh_hat, inv_h = cache
    T, B, _ = X.shape
    alloc = buffers(bs, B)
    dG, dA_h, dZh = (alloc(G.shape, G.dtype) for _ in range(3))
    dh = dstate[0].copy()
    for t in time_steps(T, not reverse):
        b = bs[t]
        dh_t = F.step_gradient(dh, dY, t, b, norms)
        *_, dh[:b] = ln_gru_step_backward(dh_t, G[t, :b], H_prev[t, :b], (Zh_hat[t, :b], inv_h[t, :b], HN[t, :b]), w,
                                          out=dG[t, :b], out_h=dA_h[t, :b], out_z=dZh[t, :b])
    hidden_grads(w, Zh_hat.reshape(T * B, -1), dA_h.reshape(T * B, -1))
    return input_grads(w, X, H_prev, X_hat, inv_x, dG, dZh), (dh,)


def _gru_step(gates, states, w):
    if not w.module.layer_norm:
        return GRU.kind.step(gates, states, w)
    h, cache = ln_gru_step(gates, states[0], w)
    return (h,), cache


def _gru_step_backward(d, gates, states, cache, w):
    if not w.module.layer_norm:
        return GRU.kind.step_backward(d, gates, states, cache, w)
    da, da_h, dzh, dh_prev = ln_gru_step_backward(d[0], gates, states[0], cache, w)
    hidden_grads(w, cache[0], da_h)
    return da, dzh, (dh_prev,)


# ---- layers and cells ------------------------------------------------------------------------------------


def _start_layer_norm(module) -> None:
    """LN's gains start at 1 and its shift at 0 (haste's initialisation): LN starts as the identity map."""
    for name, p in module.named_parameters():
        if name.startswith("ln_"):
            p.data[...] = 0.0 if name.startswith("ln_c_bias") else 1.0


class _LayerNormLayer(RNNBase):
    def __init__(self, input_size, hidden_size, num_layers=1, layer_norm=True, **kwargs):
        self.layer_norm = bool(layer_norm)
        super().__init__(input_size, hidden_size, num_layers, **kwargs)
        _start_layer_norm(self)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.layer_norm else ", layer_norm=False")


class _LayerNormCell(RNNCellBase):
    """A cell whose input side is normalised (``normalized_input``) and differentiated with it."""

    def __init__(self, input_size, hidden_size, bias=True, layer_norm=True, dtype=np.float32, rng=None):
        self.layer_norm = bool(layer_norm)
        super().__init__(input_size, hidden_size, bias, dtype, rng)
        _start_layer_norm(self)

    def _input_gates(self, X, w):
        if not self.layer_norm:
            return super()._input_gates(X, w)
        G, X_hat, inv_x = normalized_input(X, w)
        return G, (X_hat, inv_x)

    def _input_backward(self, w, X, h_prev, dgates, dgates_h, input_cache):
        if not self.layer_norm:
            return super()._input_backward(w, X, h_prev, dgates, dgates_h, input_cache)
        X_hat, inv_x = input_cache  # dgates_h: the gradient of h W_hhᵀ, behind its normalisation
        return input_grads(w, X[None], h_prev[None], X_hat[None], inv_x[None], dgates[None], dgates_h[None])[0]


class LayerNormLSTM(_LayerNormLayer):
    """LSTM with layer normalisation, as haste's ``LayerNormLSTM`` (see the module docstring);
    arguments as ``LSTM`` but for proj_size, and ``layer_norm`` (False: a plain LSTM)."""


class LayerNormLSTMCell(_LayerNormCell):
    """One layer-normalised LSTM step, ``h', c' = cell(x, (h, c))``; ``layer_norm=False``: LSTMCell."""


class LayerNormGRU(_LayerNormLayer):
    """GRU with layer normalisation, as haste's ``LayerNormGRU`` (see the module docstring);
    arguments as ``GRU``, and ``layer_norm`` (False: a plain GRU)."""


class LayerNormGRUCell(_LayerNormCell):
    """One layer-normalised GRU step, ``h' = cell(x, h)``; ``layer_norm=False``: GRUCell."""


def _lstm_ln_parameters(module) -> dict[str, tuple[int, ...]]:
    H = module.hidden_size
    return {"ln_ih_gain": (4 * H,), "ln_hh_gain": (4 * H,), "ln_c_gain": (H,), "ln_c_bias": (H,)} if module.layer_norm else {}


def _gru_ln_parameters(module) -> dict[str, tuple[int, ...]]:
    H = module.hidden_size
    return {"ln_ih_gain": (3 * H,), "ln_hh_gain": (3 * H,)} if module.layer_norm else {}


LayerNormLSTM.kind = LayerNormLSTMCell.kind = cells.register(cells.CellKind(
    name="lnlstm", about="layer-normalised LSTM (Ba et al. 2016) as haste's LayerNormLSTM, forget-gate bias 1",
    states=("h", "c"), gates=LSTM.kind.gates, layer=LayerNormLSTM, cell=LayerNormLSTMCell, init=LSTM.kind.init, blocks=4,
    extra_parameters=_lstm_ln_parameters, sequence=layer_norm_lstm_sequence, sequence_backward=layer_norm_lstm_sequence_backward,
    step=_lstm_step, step_backward=_lstm_step_backward,
    onnx=onnx_forms.when(lambda layer: int(layer.layer_norm), onnx_forms.LSTM,
                         onnx_forms.scanned(onnx_forms.layer_norm_lstm_step, onnx_forms.layer_norm_input))))
LayerNormGRU.kind = LayerNormGRUCell.kind = cells.register(cells.CellKind(
    name="lngru", about="layer-normalised GRU (Ba et al. 2016) as haste's LayerNormGRU", states=("h",), gates=GRU.kind.gates,
    layer=LayerNormGRU, cell=LayerNormGRUCell, blocks=3, extra_parameters=_gru_ln_parameters, input_bias=GRU.kind.input_bias,
    sequence=layer_norm_gru_sequence, sequence_backward=layer_norm_gru_sequence_backward, step=_gru_step, step_backward=_gru_step_backward,
    onnx=onnx_forms.when(lambda layer: int(layer.layer_norm), onnx_forms.GRU,
                         onnx_forms.scanned(onnx_forms.layer_norm_gru_step, onnx_forms.layer_norm_input))))
