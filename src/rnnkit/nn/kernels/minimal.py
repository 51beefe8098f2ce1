"""The minimal layers' linear recurrence compiled (the kinds mingru and minlstm).

``h_t = a_t ⊙ h_{t−1} + b_t`` and its backward ``G_t = v_t + a_{t+1} ⊙ G_{t+1}`` are what
``nn.minimal``'s ``sequential_scan`` and ``sequential_reverse_scan`` compute; here each is one
compiled pass over the steps, the state carried in float64 as the reference's log-space scan
does, so that both modes of the NumPy layer (the parallel scan and the loop) agree with it to
about 1e-13. On a CPU the loop is the fast way: every element is visited once with one multiply-
add, where the parallel scan visits it about ten times; what the scan buys is depth log T on
parallel hardware. The activations stay NumPy's (written with its vectorised exp and log, which
beat libm's scalar calls that a compiled loop would make).

Shapes: a, b, v, out (T, lanes) and h0, init (lanes,), any dtype; the layer flattens (T, B, H).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def sequential_scan(a, b, h0, out):
    """h_t = a_t h_{t−1} + b_t for every t into ``out`` (T, lanes), from h0 (lanes,)."""
    h = h0.astype(np.float64)
    for t in range(b.shape[0]):
        for j in range(b.shape[1]):
            h[j] = a[t, j] * h[j] + b[t, j]
            out[t, j] = h[j]
    return out


@njit(cache=True, error_model="numpy")
def sequential_reverse_scan(a, v, carry, out):
    """G_t = v_t + a_{t+1} G_{t+1} backwards into ``out``, where ``carry`` = a_T G_T is what the
    last step receives from after the segment; returns a_0 G_0, what the step before receives."""
    g = carry.astype(np.float64)
    for t in range(v.shape[0] - 1, -1, -1):
        for j in range(v.shape[1]):
            g[j] += v[t, j]
            out[t, j] = g[j]
            g[j] *= a[t, j]
    return g.astype(out.dtype)


KERNELS = dict(sequential_scan=sequential_scan, sequential_reverse_scan=sequential_reverse_scan)
