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
Shapes and states as ``LSTM`` / ``GRU`` (no proj_size); no step-by-step cell.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import cells
from . import functional as F
from .functional import accumulate_weight_grads, affine, buffers, lstm_gate_affine, sigmoid_, store_state, sum_rows, time_steps
from .recurrent import GRU, LSTM, RNNBase

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


def _gains(w):
    e = w.extra
    return e["ln_ih_gain"].data, e["ln_hh_gain"].data, e["ln_c_gain"].data, e["ln_c_bias"].data


def normalized_input(X, w, gain):
    """(G, X̂, 1/s): LN(X W_ihᵀ; γ_ih) for every step at once, plus the input-side bias."""
    X_hat, inv_x = normalize(affine(X, w.W_ih.data, None))
    G = X_hat * gain
    if w.bias_x is not None:
        G += w.bias_x
    return G, X_hat, inv_x


def layer_norm_lstm_sequence(X, states, w, reverse, bs, keep):
    if not w.module.layer_norm:
        return F.lstm_sequence(X, states, w, reverse, bs, keep)
    g_ih, g_hh, g_c, b_c = _gains(w)
    T, B, _ = X.shape
    H = states[1].shape[1]
    h, c = (s.copy() for s in states)
    G, X_hat, inv_x = normalized_input(X, w, g_ih)
    scale, shift = lstm_gate_affine(H, G.dtype.type)
    alloc = buffers(bs, B)
    Y = alloc((T, B, H), X.dtype)
    if keep:
        H_prev, C_prev, N_hat, TN = (alloc(Y.shape, X.dtype) for _ in range(4))
        Zh_hat, inv_h, inv_c = alloc(G.shape, X.dtype), alloc((T, B, 1), X.dtype), alloc((T, B, 1), X.dtype)
    for t in time_steps(T, reverse):
        b = bs[t]
        zh_hat, ih = normalize(h[:b] @ w.W_hh.data.T)
        gates = G[t, :b]
        gates += zh_hat * g_hh
        gates *= scale  # i, f, g, o in one tanh pass, as lstm_step
        np.tanh(gates, out=gates)
        gates *= scale
        gates += shift
        i, f, g, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
        c_new = f * c[:b]
        c_new += i * g
        n_hat, ic = normalize(c_new)
        tn = np.tanh(n_hat * g_c + b_c)
        h_new = o * tn
        if keep:
            H_prev[t, :b], C_prev[t, :b], Zh_hat[t, :b], inv_h[t, :b] = h[:b], c[:b], zh_hat, ih
            N_hat[t, :b], inv_c[t, :b], TN[t, :b] = n_hat, ic, tn
        Y[t, :b] = h_new
        h = store_state(h, h_new, b, B)
        c = store_state(c, c_new, b, B)
    cache = (X, G, X_hat, inv_x, H_prev, C_prev, Zh_hat, inv_h, N_hat, inv_c, TN) if keep else None
    return Y, (h, c), cache


def layer_norm_lstm_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    if not w.module.layer_norm:
        return F.lstm_sequence_backward(dY, dstate, cache, w, reverse, bs, norms)
    X, G, X_hat, inv_x, H_prev, C_prev, Zh_hat, inv_h, N_hat, inv_c, TN = cache
    g_ih, g_hh, g_c, _ = _gains(w)
    T, B, _ = X.shape
    H = C_prev.shape[2]
    alloc = buffers(bs, B)
    dG, dZh, dN = alloc(G.shape, G.dtype), alloc(G.shape, G.dtype), alloc(C_prev.shape, G.dtype)
    dh, dc = (a.copy() for a in dstate)
    for t in time_steps(T, not reverse):
        b = bs[t]
        dh_t = dh[:b] + dY[t, :b]
        if norms is not None:
            norms[t] = np.linalg.norm(dh_t.astype(np.float64))  # float32 squares underflow below ~1e-22
        gates, c_prev, tn = G[t, :b], C_prev[t, :b], TN[t, :b]
        i, f, g, o = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H : 3 * H], gates[:, 3 * H :]
        dn = dN[t, :b]  # ∂L/∂(γ_c ⊙ n̂ + β_c)
        np.multiply(dh_t, o * (1 - tn * tn), out=dn)
        dct = normalize_backward(dn * g_c, N_hat[t, :b], inv_c[t, :b])
        dct += dc[:b]
        da = dG[t, :b]
        np.multiply(dct, g, out=da[:, :H])
        np.multiply(dct, c_prev, out=da[:, H : 2 * H])
        np.multiply(dct, i, out=da[:, 2 * H : 3 * H])
        np.multiply(dh_t, tn, out=da[:, 3 * H :])
        slope = 1 - gates  # σ' = σ(1 − σ); tanh' = 1 − g² for the g block
        slope *= gates
        slope[:, 2 * H : 3 * H] = 1 - g * g
        da *= slope
        dzh = dZh[t, :b]
        dzh[...] = normalize_backward(da * g_hh, Zh_hat[t, :b], inv_h[t, :b])
        dh[:b] = dzh @ w.W_hh.data
        dc[:b] = dct * f
    # the gains, and the weights behind each normalisation, one product each after the loop
    flat = lambda a: a.reshape(T * B, -1)  # noqa: E731
    e = w.extra
    e["ln_ih_gain"].grad += sum_rows(flat(dG * X_hat))
    e["ln_hh_gain"].grad += sum_rows(flat(dG * Zh_hat))
    e["ln_c_gain"].grad += sum_rows(flat(dN * N_hat))
    e["ln_c_bias"].grad += sum_rows(flat(dN))
    if w.b_ih is not None:
        db = sum_rows(flat(dG))
        w.b_ih.grad += db
        w.b_hh.grad += db
    dZx = normalize_backward(dG * g_ih, X_hat, inv_x)
    weights = SimpleNamespace(W_ih=w.W_ih, W_hh=w.W_hh, b_ih=None, b_hh=None)  # the biases were done above
    return accumulate_weight_grads(weights, X, H_prev, dZx, dZh), (dh, dc)


def layer_norm_gru_sequence(X, states, w, reverse, bs, keep):
    if not w.module.layer_norm:
        return F.gru_sequence(X, states, w, reverse, bs, keep)
    e = w.extra
    g_ih, g_hh = e["ln_ih_gain"].data, e["ln_hh_gain"].data
    T, B, _ = X.shape
    h = states[0].copy()
    H = h.shape[1]
    b_hn = None if w.b_hh is None else w.b_hh.data[2 * H :]
    G, X_hat, inv_x = normalized_input(X, w, g_ih)
    alloc = buffers(bs, B)
    Y = alloc((T, B, H), X.dtype)
    if keep:
        H_prev, HN = alloc(Y.shape, X.dtype), alloc(Y.shape, X.dtype)
        Zh_hat, inv_h = alloc(G.shape, X.dtype), alloc((T, B, 1), X.dtype)
    for t in time_steps(T, reverse):
        b = bs[t]
        zh_hat, ih = normalize(h[:b] @ w.W_hh.data.T)
        a_h = zh_hat * g_hh
        gates = G[t, :b]
        rz = gates[:, : 2 * H]
        rz += a_h[:, : 2 * H]
        sigmoid_(rz)
        r, z, n = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
        hn = a_h[:, 2 * H :]
        if b_hn is not None:
            hn += b_hn
        n += r * hn
        np.tanh(n, out=n)
        h_new = h[:b] - n
        h_new *= z
        h_new += n
        if keep:
            H_prev[t, :b], HN[t, :b], Zh_hat[t, :b], inv_h[t, :b] = h[:b], hn, zh_hat, ih
        Y[t, :b] = h_new
        h = store_state(h, h_new, b, B)
    return Y, (h,), ((X, G, X_hat, inv_x, H_prev, HN, Zh_hat, inv_h) if keep else None)


def layer_norm_gru_sequence_backward(dY, dstate, cache, w, reverse, bs, norms=None):
    if not w.module.layer_norm:
        return F.gru_sequence_backward(dY, dstate, cache, w, reverse, bs, norms)
    X, G, X_hat, inv_x, H_prev, HN, Zh_hat, inv_h = cache
    e = w.extra
    g_ih, g_hh = e["ln_ih_gain"].data, e["ln_hh_gain"].data
    T, B, _ = X.shape
    H = H_prev.shape[2]
    alloc = buffers(bs, B)
    dG, dA_h, dZh = alloc(G.shape, G.dtype), alloc(G.shape, G.dtype), alloc(G.shape, G.dtype)
    (dh,) = (a.copy() for a in dstate)
    for t in time_steps(T, not reverse):
        b = bs[t]
        dh_t = dh[:b] + dY[t, :b]
        if norms is not None:
            norms[t] = np.linalg.norm(dh_t.astype(np.float64))  # float32 squares underflow below ~1e-22
        gates, h_prev = G[t, :b], H_prev[t, :b]
        r, z, n = gates[:, :H], gates[:, H : 2 * H], gates[:, 2 * H :]
        da = dG[t, :b]  # the input side's pre-activations [r z n]
        dr, dz, dn = da[:, :H], da[:, H : 2 * H], da[:, 2 * H :]
        np.multiply(dh_t, 1 - z, out=dn)
        dn *= 1 - n * n
        np.multiply(dn, HN[t, :b], out=dr)
        dr *= r * (1 - r)
        np.subtract(h_prev, n, out=dz)
        dz *= dh_t
        dz *= z * (1 - z)
        da_h = dA_h[t, :b]  # the hidden side's: the same but for n, behind the reset gate
        da_h[...] = da
        da_h[:, 2 * H :] *= r
        dzh = dZh[t, :b]
        dzh[...] = normalize_backward(da_h * g_hh, Zh_hat[t, :b], inv_h[t, :b])
        dh[:b] = dzh @ w.W_hh.data + dh_t * z
    flat = lambda a: a.reshape(T * B, -1)  # noqa: E731
    e["ln_ih_gain"].grad += sum_rows(flat(dG * X_hat))
    e["ln_hh_gain"].grad += sum_rows(flat(dA_h * Zh_hat))
    if w.b_ih is not None:
        w.b_ih.grad += sum_rows(flat(dG))
        w.b_hh.grad += sum_rows(flat(dA_h))
    dZx = normalize_backward(dG * g_ih, X_hat, inv_x)
    weights = SimpleNamespace(W_ih=w.W_ih, W_hh=w.W_hh, b_ih=None, b_hh=None)  # the biases were done above
    return accumulate_weight_grads(weights, X, H_prev, dZx, dZh), (dh,)


def _start_layer_norm(layer) -> None:
    """LN's gains start at 1 and its shift at 0 (haste's initialisation): LN starts as the identity map."""
    for name, p in layer.named_parameters():
        if name.startswith("ln_"):
            p.data[...] = 0.0 if name.startswith("ln_c_bias") else 1.0


class LayerNormLSTM(RNNBase):
    """LSTM with layer normalisation, as haste's ``LayerNormLSTM`` (see the module docstring);
    arguments as ``LSTM`` but for proj_size, and ``layer_norm`` (False: a plain LSTM)."""

    def __init__(self, input_size, hidden_size, num_layers=1, layer_norm=True, **kwargs):
        self.layer_norm = bool(layer_norm)
        super().__init__(input_size, hidden_size, num_layers, **kwargs)
        _start_layer_norm(self)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.layer_norm else ", layer_norm=False")


class LayerNormGRU(RNNBase):
    """GRU with layer normalisation, as haste's ``LayerNormGRU`` (see the module docstring);
    arguments as ``GRU``, and ``layer_norm`` (False: a plain GRU)."""

    def __init__(self, input_size, hidden_size, num_layers=1, layer_norm=True, **kwargs):
        self.layer_norm = bool(layer_norm)
        super().__init__(input_size, hidden_size, num_layers, **kwargs)
        _start_layer_norm(self)

    def extra_repr(self) -> str:
        return super().extra_repr() + ("" if self.layer_norm else ", layer_norm=False")


def _lstm_ln_parameters(module) -> dict[str, tuple[int, ...]]:
    H = module.hidden_size
    return {"ln_ih_gain": (4 * H,), "ln_hh_gain": (4 * H,), "ln_c_gain": (H,), "ln_c_bias": (H,)} if module.layer_norm else {}


def _gru_ln_parameters(module) -> dict[str, tuple[int, ...]]:
    H = module.hidden_size
    return {"ln_ih_gain": (3 * H,), "ln_hh_gain": (3 * H,)} if module.layer_norm else {}


LayerNormLSTM.kind = cells.register(cells.CellKind(
    name="lnlstm", about="layer-normalised LSTM (Ba et al. 2016) as haste's LayerNormLSTM, forget-gate bias 1",
    states=("h", "c"), gates=LSTM.kind.gates, layer=LayerNormLSTM, init=LSTM.kind.init, blocks=4, extra_parameters=_lstm_ln_parameters,
    sequence=layer_norm_lstm_sequence, sequence_backward=layer_norm_lstm_sequence_backward))
LayerNormGRU.kind = cells.register(cells.CellKind(
    name="lngru", about="layer-normalised GRU (Ba et al. 2016) as haste's LayerNormGRU", states=("h",), gates=GRU.kind.gates,
    layer=LayerNormGRU, blocks=3, extra_parameters=_gru_ln_parameters, input_bias=GRU.kind.input_bias,
    sequence=layer_norm_gru_sequence, sequence_backward=layer_norm_gru_sequence_backward))
