r"""Multi-head self-attention, with the names, shapes and numbers of ``torch.nn.MultiheadAttention``.

With E = embed_dim, H = num_heads, d = E / H, and x at one batch row (T, E):

    q, k, v = x W_qᵀ + b_q,  x W_kᵀ + b_k,  x W_vᵀ + b_v     (W_q; W_k; W_v = in_proj_weight's row blocks)
    A_h = softmax(q_h k_hᵀ / √d + M)                          (q_h, k_h, v_h: head h's d columns)
    y = [A_1 v_1, …, A_H v_H]                                 (the heads side by side)
    out = y W_oᵀ + b_o                                        (out_proj)
    weights = (1/H) Σ_h A_h

M is 0 where query t may see key s and −∞ where it may not: s > t when ``causal``, and
s ≥ lengths[b] when ``lengths`` are given (key padding).

Backward, in the reverse order of the lines above (S = the scores before the softmax):

    dy = out_proj.backward(d_out)
    dA_h = dy_h v_hᵀ,   dv_h = A_hᵀ dy_h
    dS_h = A_h ⊙ (dA_h − rowsum(dA_h ⊙ A_h))
    dq_h = dS_h k_h / √d,   dk_h = dS_hᵀ q_h / √d
    dx = [dq dk dv] W_in,   dW_in += [dq dk dv]ᵀ x,   db_in += Σ_rows [dq dk dv]
"""

from __future__ import annotations

import numpy as np

from .functional import affine, sum_rows
from .linear import Linear
from .module import Module, Parameter, as_dtype, as_rng
from .validation import expect_shape, float_array, positive_int, sequence_lengths


class MultiheadSelfAttention(Module):
    r"""Scaled dot-product self-attention over H heads, as ``torch.nn.MultiheadAttention(E, H)``
    called with ``query = key = value = x``, ``need_weights=True, average_attn_weights=True``.

    Shapes (E = embed_dim):

        x        (T, B, E), or (B, T, E) with batch_first, or (T, E) unbatched
        lengths  (B,) ints in [1, T], or None: key s of row b is hidden from every query when s ≥ lengths[b]
        out      shaped like x
        weights  (B, T, T), attention of query t on key s averaged over heads; (T, T) unbatched

    Parameters, named as in PyTorch so a state_dict moves either way: ``in_proj_weight`` (3E, E),
    ``in_proj_bias`` (3E,), ``out_proj.weight`` (E, E), ``out_proj.bias`` (E,) (no biases with
    ``bias=False``). Initialised as PyTorch does: in_proj_weight Xavier-uniform, out_proj.weight
    U(±1/√E), both biases zero.

    ``causal=True`` hides the future: query t sees keys s ≤ t.

    Padded queries (t ≥ lengths[b]) are not a position of the sequence: their rows of ``out`` and
    of ``weights`` are zero, and ``backward`` ignores ``d_out`` there. (PyTorch's key_padding_mask
    masks keys only and leaves those rows as they come.)

    No dropout. ``weights`` is returned for inspection and has no gradient.
    """

    def __init__(self, embed_dim: int, num_heads: int = 1, bias: bool = True, causal: bool = False,
                 batch_first: bool = False, dtype=np.float32, rng=None):
        super().__init__()
        self.embed_dim = positive_int(embed_dim, "embed_dim")
        self.num_heads = positive_int(num_heads, "num_heads")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"num_heads: expected a divisor of embed_dim={self.embed_dim}, got {num_heads}")
        self.head_dim = self.embed_dim // self.num_heads
        self.causal = bool(causal)
        self.batch_first = bool(batch_first)
        self.dtype = as_dtype(dtype)
        rng = as_rng(rng)
        E = self.embed_dim
        bound = np.sqrt(6.0 / (E + 3 * E))  # Xavier-uniform on the whole (3E, E) matrix, as PyTorch
        self.in_proj_weight = Parameter(rng.uniform(-bound, bound, (3 * E, E)).astype(self.dtype))
        self.in_proj_bias = Parameter(np.zeros(3 * E, self.dtype)) if bias else None
        self.out_proj = Linear(E, E, bias=bias, dtype=self.dtype, rng=rng)
        if bias:
            self.out_proj.bias.data[...] = 0

    def extra_repr(self) -> str:
        s = f"{self.embed_dim}, num_heads={self.num_heads}"
        if self.in_proj_bias is None:
            s += ", bias=False"
        for name in ("causal", "batch_first"):
            if getattr(self, name):
                s += f", {name}=True"
        return s + f", dtype={np.dtype(self.dtype).name}"

    # ---- layouts ------------------------------------------------------------------------
    def _check_input(self, x) -> tuple[np.ndarray, bool]:
        """x in the caller's layout → (B, T, E), and whether it was unbatched."""
        X = float_array(x, "x", self.dtype, ndims=(2, 3))
        unbatched = X.ndim == 2
        if unbatched:
            X = X[None]
        elif not self.batch_first:
            X = X.transpose(1, 0, 2)
        if X.shape[2] != self.embed_dim:
            raise ValueError(f"x: expected embed_dim={self.embed_dim} features in the last dimension, got {X.shape[2]} (shape {np.shape(x)})")
        if X.shape[1] == 0:
            raise ValueError(f"x: expected at least one time step, got shape {np.shape(x)}")
        return np.ascontiguousarray(X), unbatched

    def _present(self, Z: np.ndarray, unbatched: bool) -> np.ndarray:
        """(B, T, E) → the caller's layout."""
        if unbatched:
            return Z[0]
        return Z if self.batch_first else np.ascontiguousarray(Z.transpose(1, 0, 2))

    def _split_heads(self, Z: np.ndarray) -> np.ndarray:
        """(B, T, E) → (B, H, T, d)."""
        B, T, _ = Z.shape
        return Z.reshape(B, T, self.num_heads, self.head_dim).transpose(0, 2, 1, 3)

    def _merge_heads(self, Z: np.ndarray) -> np.ndarray:
        """(B, H, T, d) → (B, T, E)."""
        B, _, T, _ = Z.shape
        return Z.transpose(0, 2, 1, 3).reshape(B, T, self.embed_dim)

    def _mask(self, T: int, lengths: np.ndarray | None) -> np.ndarray | None:
        """M, broadcastable to the scores (B, H, T, T): 0 where visible, −∞ where hidden."""
        M = None
        if self.causal:
            M = np.where(np.triu(np.ones((T, T), bool), 1), -np.inf, 0.0).astype(self.dtype)
        if lengths is not None:
            hidden = np.arange(T)[None, :] >= lengths[:, None]  # (B, T) over keys
            key_mask = np.where(hidden, -np.inf, 0.0).astype(self.dtype)[:, None, None, :]
            M = key_mask if M is None else M + key_mask
        return M

    # ---- forward and backward -------------------------------------------------------------
    def forward(self, x, lengths=None) -> tuple[np.ndarray, np.ndarray]:
        """Returns ``(out, weights)``; see the class docstring for shapes."""
        X, unbatched = self._check_input(x)
        B, T, E = X.shape
        lengths = sequence_lengths(lengths, T, B)
        scale = self.dtype(1.0 / np.sqrt(self.head_dim))

        qkv = affine(X, self.in_proj_weight.data, None if self.in_proj_bias is None else self.in_proj_bias.data)
        q, k, v = (self._split_heads(qkv[:, :, i * E : (i + 1) * E]) for i in range(3))

        S = q @ k.transpose(0, 1, 3, 2)
        S *= scale
        M = self._mask(T, lengths)
        if M is not None:
            S += M
        # softmax over keys, in place; every row keeps key 0, so no row is all −∞
        S -= S.max(axis=-1, keepdims=True)
        A = np.exp(S, out=S)
        A /= A.sum(axis=-1, keepdims=True)

        y = self._merge_heads(A @ v)
        out = self.out_proj(y)
        weights = A.mean(axis=1)

        valid = None if lengths is None else np.arange(T)[None, :] < lengths[:, None]  # (B, T) over queries
        if valid is not None:
            out *= valid[:, :, None]
            weights *= valid[:, :, None]
        self._push_cache((X, q, k, v, A, valid, unbatched))
        return self._present(out, unbatched), (weights[0] if unbatched else weights)

    def backward(self, d_out) -> np.ndarray:
        """d_out: shaped like ``out`` → dx shaped like x; adds into every parameter's ``.grad``."""
        X, q, k, v, A, valid, unbatched = self._pop_cache()
        B, T, E = X.shape
        scale = self.dtype(1.0 / np.sqrt(self.head_dim))
        d = float_array(d_out, "d_out", self.dtype)
        expect_shape(d, (T, E) if unbatched else ((B, T, E) if self.batch_first else (T, B, E)), "d_out", "the shape of out")
        d = d[None] if unbatched else (d if self.batch_first else d.transpose(1, 0, 2))
        if valid is not None:
            d = d * valid[:, :, None]

        dy = self._split_heads(self.out_proj.backward(d))
        dA = dy @ v.transpose(0, 1, 3, 2)
        dv = A.transpose(0, 1, 3, 2) @ dy
        dA -= np.einsum("bhts,bhts->bht", dA, A)[..., None]
        dS = np.multiply(dA, A, out=dA)  # hidden keys have A = 0, so no gradient reaches them
        dq = (dS @ k) * scale
        dk = (dS.transpose(0, 1, 3, 2) @ q) * scale

        dqkv = np.concatenate([self._merge_heads(g) for g in (dq, dk, dv)], axis=-1)  # (B, T, 3E)
        rows = dqkv.reshape(B * T, 3 * E)
        self.in_proj_weight.grad += rows.T @ X.reshape(B * T, E)
        if self.in_proj_bias is not None:
            self.in_proj_bias.grad += sum_rows(rows)
        dx = (rows @ self.in_proj_weight.data).reshape(B, T, E)
        return self._present(dx, unbatched)
