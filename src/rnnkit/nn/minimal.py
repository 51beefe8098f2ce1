"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?"): gates that see only the
input, so a whole sequence is one linear recurrence, which a scan in log space (Heinsen 2023)
solves for all steps with cumulative sums instead of a step-by-step loop.

    minGRU                                    minLSTM
    z_t = σ(x_t W_zᵀ + b_z)                   f_t = σ(x_t W_fᵀ + b_f),  i_t = σ(x_t W_iᵀ + b_i)
    h̃_t = g(x_t W_hᵀ + b_h)                   h̃_t = g(x_t W_hᵀ + b_h)
                                              f'_t = f_t / (f_t + i_t),  i'_t = i_t / (f_t + i_t)
    h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t     h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ h̃_t

with the paper's positive candidate activation (its appendix, "log-space" versions)

    g(k) = k + ½ for k ≥ 0,  σ(k) for k < 0        (continuous, > 0, linear growth)

Both are ``h_t = a_t ⊙ h_{t−1} + b_t`` with a_t ∈ (0, 1) and b_t > 0 known in advance. The
scan needs log a, which has a closed form that never takes the log of a rounded-off number
(k = the pre-activations, log σ(k) = −log(1 + e⁻ᵏ)), and b itself:

    minGRU:   log a = log(1 − z) = log σ(−k_z),          b = z ⊙ h̃,   z = 1 − e^{log a}
    minLSTM:  d = log i − log f = log σ(k_i) − log σ(k_f),
              log a = log f' = log σ(−d),                b = i' ⊙ h̃,  i' = 1 − e^{log a}

The scan:  a*_t = Σ_{s≤t} log a_s,   h_t = e^{a*_t} ⊙ h_0 + exp(a*_t + logcumsumexp_{s≤t}(log b_s − a*_s)),

where exp(logcumsumexp(log b_s − a*_s)) = Σ_{s≤t} b_s e^{−a*_s}: computed that way (below),
the scan never needs log b, only b.

The initial state enters linearly, so its term stays outside the logarithms: h0 may be any
real array and defaults to zeros, as for the other layers. (The paper folds log h_0 into the
scan, which needs h_0 > 0; for positive h_0 the two are the same numbers.)

Shapes (L layers, D = 2 if bidirectional else 1), as ``rnnkit.nn.GRU``:

    x     (T, B, input_size), or (B, T, input_size) with batch_first, or (T, input_size) unbatched
    h0    (L·D, B, H), any sign; zeros when not given
    out   (T, B, D·H): the last layer's h_t, both directions concatenated; zero past each length
    h_n   (L·D, B, H): each sequence's state at its own last step

Parameters per layer k and direction (suffix "_reverse"): ``weight_l{k}`` (G·H, in) and
``bias_l{k}`` (G·H,), G = 2 for minGRU (blocks [z, h]) and 3 for minLSTM ([f, i, h]);
in = input_size for k = 0 and D·H above.

Variable lengths: a step past a sequence's end becomes a_t = 1, b_t = 0, so the state passes
through unchanged. Scanning forward, h_n is then each row's state at its own last step;
scanning the reversed sequence, the padding comes first and each row starts from h0 at its
own last step, as PyTorch's packed sequences do.

Backward is the same recurrence run from the end: G_t = ∂L/∂h_t = dY_t + a_{t+1} ⊙ G_{t+1},
whose inputs (upstream gradients) have either sign, solved with the forward's block decays
e^{a*} (kept for it). Then one matrix product per weight, as for the other layers.

How the scan is computed (``linear_scan``, whose segments the layers call directly): in
blocks of 16 steps, all blocks at once, the formula above with the sum of exponentials as a
plain cumulative sum (a product with a triangle of ones), in float64 with a* measured from the
block's middle step, so that a floor on log a (e^{−60}) keeps every exponential in range — and
the block ends joined by
recursive doubling over the blocks. That is the chunked form GPU scan kernels use; it needs no
logarithm of b, so the backward's signed inputs work the same way. It agrees with the
step-by-step loop to about 1e-13.

The pre-activations are kept gate by gate, (G, T, B, H), not (T, B, G·H) as in the other
layers: every element-wise pass then runs over one contiguous block, 3× faster than over the
strided slice of one gate when B·H is small.

Speed: on parallel hardware the scan's depth is log T, which is where the paper's speed-ups
come from. On a CPU every element is still visited, about ten times (exp, divisions, two
cumulative sums) against twice for a plain loop; what the scan removes is the per-step Python
and matrix-product overhead of GRU and LSTM, which dominates when batch and hidden are small.
The activations avoid ``np.where`` (see ``g``) and the scan works in segments that stay in
cache: both cost more than the arithmetic.
``mode="sequential"`` (two vectorised calls per step, forward and backward) gives the same
numbers and is the faster of the two when B·H is large; ``benchmarks/results/speed/``
has the measurements.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from . import backend, cells, onnx_forms
from .functional import filled_like, sum_rows
from .module import Parameter, as_dtype, as_rng, is_grad_enabled
from .recurrent import RecurrentLayer, _init_uniform
from .validation import float_array, positive_int

MODES = ("parallel", "sequential")

# ---- the equations as functions ------------------------------------------------------------


# NumPy's float32 log1p and expm1 run one element at a time (about 8 ns an element, where its exp
# and log take 1.3–2): the activations below are written with exp and log only, as exact.


def exp_neg_abs(k: np.ndarray) -> np.ndarray:
    """e^{−|k|} ∈ (0, 1]: what log σ(k), log σ(−k), σ(k) and σ(−k) share."""
    u = np.abs(k)
    np.negative(u, out=u)
    return np.exp(u, out=u)


def log1p_unit(u: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """log(1 + u) for 0 ≤ u ≤ 1: the log of the rounded w = 1 + u, less what the rounding added,
    (w − 1 − u)/w; within an ulp or two of log1p, also where 1 + u rounds to 1."""
    w = u + 1
    added = w - 1
    added -= u
    added /= w
    out = np.log(w, out=out)
    return np.subtract(out, added, out=out)


def log_sigmoid(k: np.ndarray, out: np.ndarray | None = None, u: np.ndarray | None = None) -> np.ndarray:
    """log σ(k) = min(k, 0) − log(1 + e^{−|k|}), exact for large |k| (np.logaddexp is 15× slower);
    u: e^{−|k|} when already at hand (``exp_neg_abs``)."""
    out = log1p_unit(exp_neg_abs(k) if u is None else u, out=out)
    return np.subtract(np.minimum(k, filled_like(k, 0)), out, out=out)


def sigmoid(k: np.ndarray, u: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """σ(k) = e^{min(k, 0)} / (1 + e^{−|k|}), exact in both tails (σ(k) near 0 and near 1);
    u: e^{−|k|} when already at hand."""
    out = np.exp(np.minimum(k, filled_like(k, 0)), out=out)
    return np.divide(out, (exp_neg_abs(k) if u is None else u) + 1, out=out)


# g and g_slope are sums and minima rather than np.where: a select on a mask of random signs
# costs about 3.5 ns an element, ten times an exp.


def g(k: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The candidate activation: k + ½ for k ≥ 0, σ(k) below, as σ(m) + (k − m) with m = min(k, 0)."""
    m = np.minimum(k, filled_like(k, 0))
    e = np.exp(m)  # e^m ≤ 1: no overflow
    e /= e + 1
    np.subtract(k, m, out=m)  # max(k, 0), exactly
    return np.add(e, m, out=e if out is None else out)


def g_slope(h: np.ndarray) -> np.ndarray:
    """g'(k) from h = g(k): σ'(k) = h(1 − h) where k < 0 (h < ½), 1 from k = 0 on (h ≥ ½)."""
    s = np.minimum(h, filled_like(h, 0.5))
    s *= 1 - s  # at most ¼
    return np.maximum(s, h >= 0.5, out=s)


CHUNK = 16  # steps per block of the scan
LOG_A_FLOOR = -60.0  # log a_t below this is taken as this (see linear_scan)
SEGMENT = 2**16  # elements (steps × lanes) per pass of the scan: its temporaries stay in cache and
# are reused by malloc (at 2**18 fresh pages are mapped for each, and the scan runs 2.5× slower)
MATMUL_LANES = 4096  # below this many lanes a block's cumulative sum is a matrix product


def segment_steps(lanes: int) -> int:
    """Steps per segment for ``lanes`` elements a step: about SEGMENT elements, whole blocks."""
    return max(CHUNK, SEGMENT // max(1, lanes) // CHUNK * CHUNK)


@functools.lru_cache(maxsize=4)
def _ones_triangle(n: int, upper: bool) -> np.ndarray:
    return np.triu(np.ones((n, n))) if upper else np.tri(n)


def _cumsum_blocks(v: np.ndarray, reverse: bool = False) -> np.ndarray:
    """Cumulative sum along axis 1 of (blocks, CHUNK, lanes...), from the end if ``reverse``: the
    product with a triangle of ones, one BLAS call for all blocks; with many lanes, CHUNK − 1
    vector adds in place (BLAS then gains nothing). NumPy's own cumsum walks one lane at a time,
    3–10× slower."""
    n, lanes = v.shape[1], math.prod(v.shape[2:])
    if lanes < MATMUL_LANES:
        flat = v.reshape(v.shape[0], n, lanes)
        return np.matmul(_ones_triangle(n, reverse), flat).reshape(v.shape)
    for c in (range(n - 2, -1, -1) if reverse else range(1, n)):
        v[:, c] += v[:, c + 1 if reverse else c - 1]
    return v


def _padded(v: np.ndarray, blocks: int) -> np.ndarray:
    """v (T, lanes...) in float64 as (blocks, CHUNK, lanes...), zero past T."""
    T, lanes = v.shape[0], v.shape[1:]
    out = np.empty((blocks * CHUNK, *lanes))
    out[:T] = v
    if T < len(out):
        out[T:] = 0
    return out.reshape(blocks, CHUNK, *lanes)


def _block_decay(log_a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The scan's exponentials, block by block: (e^{a*_t − c}, e^{c}).

    a*_t = Σ log a_s from the start of t's block; c = a* at its middle step, so that
    a* − c stays within ±8·|LOG_A_FLOOR| = ±480 (each log a_t is floored) where a* itself would
    reach −960: e^{±480} and what it multiplies stay inside float64's range. Shapes (blocks,
    CHUNK, lanes...) and (blocks, lanes...); a = 1 past T."""
    x = _padded(log_a, -(-log_a.shape[0] // CHUNK))
    np.maximum(x, filled_like(x, LOG_A_FLOOR), out=x)
    a_star = _cumsum_blocks(x)
    centre = a_star[:, (CHUNK - 1) // 2].copy()
    a_star -= centre[:, None]
    return np.exp(a_star, out=a_star), np.exp(centre, out=centre)


def _join_blocks(a: np.ndarray, b: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """h_j = a_j h_{j−1} + b_j for the block ends (a_j ∈ [0, 1] a block's product of a, b_j its
    solution from a zero start), by recursive doubling (Hillis & Steele 1986): after the round
    of stride k, (a_j, b_j) spans the 2k blocks up to j. ⌈log₂ n⌉ rounds of vector operations;
    products of a only shrink, so nothing overflows."""
    a, b = a.copy(), b.copy()
    b[0] += a[0] * h0
    k = 1
    while k < len(b):
        b[k:] += a[k:] * b[:-k]  # the product is formed before b changes
        if 2 * k < len(b):
            a[k:] *= a[:-k]  # NumPy copies an overlapping operand first
        k *= 2
    return b


def _scan_segment(log_a: np.ndarray, b: np.ndarray, h0: np.ndarray, out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``linear_scan`` of a segment into ``out`` (T, ...), computed in float64; returns the
    exponentials of ``_block_decay``, which the backward scan reuses.

    With r = a* − c and e^{c} per block, the paper's formula reads
    h_t = e^{r_t} (e^{c}·h_start + Σ_{s≤t} b_s e^{−r_s})."""
    T, lanes = b.shape[0], b.shape[1:]
    decay, scale = _block_decay(log_a)
    blocks = decay.shape[0]
    y = _padded(b, blocks)
    y /= decay  # b_s e^{−r_s}, ≤ |b_s|·e^{480}
    y = _cumsum_blocks(y)  # Σ_{s≤t} b_s e^{−r_s} within each block
    # The state entering each block: the block ends follow the same recurrence over the blocks,
    # end_j = (Π a over block j)·end_{j−1} + (block j's solution from a zero start), with
    # Π a = e^{r_end} e^{c} and that solution e^{r_end} Σ_s b_s e^{−r_s}.
    starts = np.empty((blocks, *lanes))
    starts[0] = h0
    if blocks > 1:
        starts[1:] = _join_blocks(decay[:-1, -1] * scale[:-1], decay[:-1, -1] * y[:-1, -1], h0)
    starts *= scale
    y += starts[:, None]
    np.multiply(y.reshape(-1, *lanes)[:T], decay.reshape(-1, *lanes)[:T], out=out)  # h_t
    return decay, scale


def _reverse_scan_segment(decay: np.ndarray, scale: np.ndarray, v: np.ndarray, carry: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``reverse_linear_scan`` of a segment into ``out``, given the segment's exponentials (from
    ``_block_decay``, as the forward scan returns them) and ``carry`` = a_T G_T, what the last
    step receives from after the segment; returns a_0 G_0, what the step before it receives.

    With r = a* − c as in the forward, Π_{t<q≤s} a_q = e^{r_s − r_t}, so within a block

        G_t = e^{−r_t} (Σ_{s≥t} e^{r_s} v_s + e^{r_end} C),   C = what the block's end receives,

    and E_j = a G at block j's first step = e^{c} Σ_{s in j} e^{r_s} v_s + (Π a over j)·E_{j+1}:
    the block ends follow the forward recurrence over the blocks taken in reverse. e^{r_s} v_s
    is at least e^{−480}|v_s|: only a |v_s| below 1e-99 loses digits."""
    T, lanes = v.shape[0], v.shape[1:]
    w = _padded(v, decay.shape[0])
    w *= decay
    w = _cumsum_blocks(w, reverse=True)  # Σ_{s≥t} e^{r_s} v_s within each block
    end = decay[:, -1]
    ends = _join_blocks((end * scale)[::-1], (w[:, 0] * scale)[::-1], carry)[::-1]  # E_j
    received = np.empty_like(ends)  # C_j = E_{j+1}, and the carry for the last block
    received[:-1] = ends[1:]
    received[-1] = carry
    received *= end
    w += received[:, None]
    np.divide(w.reshape(-1, *lanes)[:T], decay.reshape(-1, *lanes)[:T], out=out)
    return ends[0]


def linear_scan(log_a: np.ndarray, b: np.ndarray, h0: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Solve ``h_t = a_t ⊙ h_{t−1} + b_t`` for every t (axis 0 is time) with the log-space scan.

    log_a: (T, ...) the logarithms of a_t ∈ (0, 1]; b: (T, ...) of either sign, |b| < 1e99;
    h0: (...) the state before the first step, any sign (None for zeros). Returns h (T, ...)
    in b's dtype, or written into ``out``.

    Within blocks of CHUNK steps it is the paper's formula, with a*_t = Σ_{s≤t} log a_s from
    the block's start and the sum of exponentials taken as a plain cumulative sum:

        h_t = e^{a*_t} ⊙ (h_start + Σ_{s≤t} e^{−a*_s} ⊙ b_s)

    with a* measured from its value at the block's middle step, so that every exponential
    stays in float64's range (``_block_decay``): accurate to about 1e-13 relative. An a_t below
    e^{−60} ≈ 9·10⁻²⁷ is taken as e^{−60}, which adds at most 9·10⁻²⁷·|h_{t−1}| to h_t (the
    floor bounds a* within a block). The blocks are all solved at once; their ends follow the same
    recurrence with a block's product of a as its coefficient, which recursive doubling solves
    in log₂ of the number of blocks rounds: the "chunked" form of GPU scan kernels. With no
    logarithm of b, inputs of either sign work, which the backward pass needs.
    """
    T, lanes = b.shape[0], b.shape[1:]
    steps = segment_steps(math.prod(lanes))
    h = np.empty(b.shape, b.dtype) if out is None else out
    prev = np.zeros(lanes) if h0 is None else h0
    for s in range(0, T, steps):
        _scan_segment(log_a[s : s + steps], b[s : s + steps], prev, out=h[s : s + steps])
        prev = h[min(s + steps, T) - 1]
    return h


def reverse_linear_scan(log_a: np.ndarray, v: np.ndarray, init: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Solve ``G_t = v_t + a_{t+1} ⊙ G_{t+1}`` backwards from ``G_{T−1} = v_{T−1} + init``.

    The backward of ``linear_scan``: with v = ∂L/∂h_t from the outputs and init = ∂L/∂h_n, G_t
    is the whole ∂L/∂h_t. Segments are solved last first, each with the block decays the
    forward computes (see ``_reverse_scan_segment``). Written into ``out`` when given.
    """
    T, lanes = v.shape[0], v.shape[1:]
    steps = segment_steps(math.prod(lanes))
    G = np.empty(v.shape, v.dtype) if out is None else out
    carry = init
    for s in reversed(range(0, T, steps)):
        e = slice(s, s + steps)
        carry = _reverse_scan_segment(*_block_decay(log_a[e]), v[e], carry, out=G[e])
    return G


def sequential_scan(a: np.ndarray, b: np.ndarray, h0: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The same recurrence one step at a time: the reference the scan must equal."""
    h = np.empty(b.shape, np.result_type(b, h0)) if out is None else out
    prev = h0
    for t in range(b.shape[0]):
        np.multiply(a[t], prev, out=h[t])
        h[t] += b[t]
        prev = h[t]
    return h


def sequential_reverse_scan(a: np.ndarray, v: np.ndarray, carry: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``reverse_linear_scan`` one step at a time into ``out``, where ``carry`` = a_T G_T is what
    the last step receives from after the segment; returns a_0 G_0, what the step before receives."""
    g = carry
    for t in range(v.shape[0] - 1, -1, -1):
        np.add(v[t], g, out=out[t])
        g = a[t] * out[t]
    return g


def _active(mask: np.ndarray | None) -> np.ndarray:
    """A kernel's (T, B) flags of the steps inside each sequence, or an empty array: all are."""
    return np.zeros((0, 0), bool) if mask is None else np.ascontiguousarray(mask[..., 0])


def _record_norms(G: np.ndarray, mask: np.ndarray | None, norms: np.ndarray, reverse: bool) -> None:
    """‖∂L/∂h_t‖ of the steps inside the sequences, into ``norms`` in time order (G in scan order)."""
    active = (G if mask is None else G * mask).astype(np.float64)  # float32 squares underflow below ~1e-22
    n = np.sqrt(np.einsum("tbh,tbh->t", active, active))
    norms[:] = n[::-1] if reverse else n


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode: expected 'parallel' or 'sequential', got {mode!r}")
    return mode


# ---- layers ------------------------------------------------------------------------------------


class _MinimalRNN(RecurrentLayer):
    """Shared by MinGRU and MinLSTM; a subclass gives its number of gate blocks, ``_coefficients``
    (pre-activations → log a, b) and ``_coefficients_backward``."""

    gates = 0

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        mode: str = "parallel",
        learn_init: bool = False,
        dtype=np.float32,
        rng=None,
    ):
        super().__init__()
        self.mode = _check_mode(mode)
        self.learn_init = bool(learn_init)
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = as_dtype(dtype)
        H, D = self.hidden_size, self.num_directions
        for k in range(self.num_layers):
            in_size = self.input_size if k == 0 else D * H
            for sfx in self._suffixes:
                setattr(self, f"weight_l{k}{sfx}", Parameter(np.empty((self.gates * H, in_size), self.dtype)))
                if self.bias:
                    setattr(self, f"bias_l{k}{sfx}", Parameter(np.empty(self.gates * H, self.dtype)))
        _init_uniform(self, H, as_rng(rng))
        if self.learn_init:  # a trained initial state, shared by every sequence of a batch
            self.h0 = Parameter(np.zeros((self.num_layers * D, H), self.dtype))

    @property
    def output_size(self) -> int:
        return self.hidden_size

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        for name in ("batch_first", "bidirectional", "learn_init"):
            if getattr(self, name):
                s += f", {name}=True"
        if not self.bias:
            s += ", bias=False"
        if self.mode != "parallel":
            s += f", mode={self.mode!r}"
        return s + f", dtype={np.dtype(self.dtype).name}"

    def _weights(self, k: int, sfx: str) -> tuple[Parameter, Parameter | None]:
        return getattr(self, f"weight_l{k}{sfx}"), getattr(self, f"bias_l{k}{sfx}", None)

    def _project(self, X, w) -> np.ndarray:
        """X (T, B, I) → the pre-activations gate by gate, (G, T, B, H): each gate's block is
        contiguous, which element-wise passes over it need to run at full speed."""
        W, b = w
        (T, B, I), G, H = X.shape, self.gates, self.hidden_size
        K = np.matmul(X.reshape(1, T * B, I), W.data.reshape(G, H, I).transpose(0, 2, 1))
        if b is not None:
            K += b.data.reshape(G, 1, H)
        return K.reshape(G, T, B, H)

    def _mask(self, lengths, T: int, B: int):
        """(T, B, 1), True at the steps inside each sequence; None when every sequence is full."""
        order, bs = self._check_lengths(lengths, T, B)
        if bs[-1] == B:
            return None
        active = np.arange(B)[None, :] < np.asarray(bs)[:, None]  # rows sorted by decreasing length
        if order is not None:
            active = active[:, np.argsort(order)]
        return active[:, :, None]

    # ---- forward and backward ----------------------------------------------------------------------
    def forward(self, x, h0=None, lengths=None, mode: str | None = None):
        """Run the whole sequence; returns ``(out, h_n)``.

        mode: overrides the layer's ``mode`` for this call. "parallel" solves each layer and
        direction with the log-space scan, the paper's training method; "sequential" loops over
        time, forward and in backward (the same numbers; on a CPU the faster when B·H is large,
        see the module docstring). For step-by-step inference with a carried state, see ``step``.
        """
        mode = self.mode if mode is None else _check_mode(mode)
        X, unbatched = self._check_input(x)
        T, B, _ = X.shape
        H, D = self.hidden_size, self.num_directions
        given = h0 is not None
        if given:
            h0 = self._check_state(h0, "h0", B, H, unbatched)
        elif self.learn_init:
            h0 = np.repeat(self.h0.data[:, None, :], B, axis=1)
        else:
            h0 = np.zeros(self._state_shape(B, H, False), self.dtype)
        mask = self._mask(lengths, T, B)
        keep = is_grad_enabled()
        h_n = np.empty_like(h0)
        layer_input, caches = X, []
        for k in range(self.num_layers):
            outs = []
            for d, sfx in enumerate(self._suffixes):
                j = k * D + d
                Y, h_n[j], cache = self._sequence(layer_input, h0[j], self._weights(k, sfx), d == 1, mask, mode, keep)
                outs.append(Y)
                caches.append(cache)
            layer_input = outs[0] if D == 1 else np.concatenate(outs, axis=2)
        self._push_cache((unbatched, given, caches))
        return self._present(layer_input, h_n, unbatched)

    def _sequence(self, X, h0, w, reverse, mask, mode, keep):
        """One direction of one layer, in scan order (reversed time for the reverse direction)."""
        if reverse:
            X = X[::-1]
            mask = None if mask is None else mask[::-1]
        compiled = backend.recurrence(self.kind)  # None on the reference path
        if compiled is not None:
            Y, h_n, cache = self._fused_sequence(compiled, X, h0, w, mask, keep)
            return (Y[::-1] if reverse else Y), h_n, cache
        K = self._project(X, w)
        T, B = K.shape[1:3]
        log_a = np.empty((T, B, self.hidden_size), K.dtype)
        states = np.empty((T + 1, B, self.hidden_size), K.dtype)  # h_{−1} = h0, then h_t: backward reads h_{t−1}
        states[0] = h0
        Hs = states[1:]
        piece, decays = segment_steps(B * self.hidden_size), []
        for s in range(0, T, piece):  # a piece's activations and scan run back to back, in cache
            e = slice(s, s + piece)
            b = self._coefficients(K[:, e], log_a[e])  # K becomes the activations backward reads
            if mask is not None:  # past a sequence's end: a = 1, b = 0, the state passes through
                np.copyto(log_a[e], 0, where=~mask[e])
                np.copyto(b, 0, where=~mask[e])
            if mode == "parallel":  # a piece is one segment of the scan
                exponentials = _scan_segment(log_a[e], b, states[s], out=Hs[e])
                if keep:  # for the backward scan
                    decays.append(exponentials)
            else:  # step by step
                sequential_scan(np.exp(log_a[e]), b, states[s], out=Hs[e])
        Y = Hs.copy() if mask is None else Hs * mask  # the cache keeps Hs whatever the caller does to out
        cache = (X, K, log_a, states, mask, mode, decays) if keep else None
        return (Y[::-1] if reverse else Y), Hs[-1], cache

    def _fused_sequence(self, compiled, X, h0, w, mask, keep):
        """One direction in scan order on the compiled backend, where the kind's whole recurrence is
        one kernel (``kernels.minimal``): every gate's pre-activations from one product, (T, B, G·H),
        then the kernel, in either mode (on a CPU the loop is the faster, with the scan's numbers).
        The cache keeps the activations as (G, T, B, H), as the reference does, and the kernels, so
        that its backward does not depend on the backend chosen by then."""
        (W, b), (T, B, _), H = w, X.shape, self.hidden_size
        K = backend.products().affine(X, W.data, None if b is None else b.data)
        states, Z = np.empty((T + 1, B, H), K.dtype), np.empty_like(K)
        A = compiled.fused_forward(K, _active(mask), np.ascontiguousarray(h0, K.dtype), states, Z)  # the kind's coefficients
        Hs = states[1:]
        Y = Hs.copy() if mask is None else Hs * mask
        if not keep:
            return Y, Hs[-1], None
        gates = Z.reshape(T, B, self.gates, H).transpose(2, 0, 1, 3)  # (G, T, B, H), a view
        return Y, Hs[-1], (X, gates, A, states, mask, "fused", compiled)

    def _present(self, out, h_n, unbatched):
        if unbatched:
            return out[:, 0], h_n[:, 0]
        if self.batch_first:
            out = out.transpose(1, 0, 2)
        return out, h_n

    def backward(self, d_out=None, d_h_n=None):
        """Gradients for the most recent forward: returns ``(dx, dh0)``.

        d_out: shaped like ``out``; d_h_n: like ``h_n``; either may be None. dh0 is the gradient
        of the initial state (of the zeros, when none was given); parameter gradients are added
        into each ``.grad``.
        """
        unbatched, given, caches = self._pop_cache()
        T, B = caches[0][0].shape[:2]
        H, D, L = self.hidden_size, self.num_directions, self.num_layers
        d_layer = self._gather_d_out(d_out, T, B, unbatched, None)
        if d_h_n is None:
            d_final = np.zeros(self._state_shape(B, H, False), self.dtype)
        else:
            d_final = self._check_state(d_h_n, "d_h_n", B, H, unbatched)
        d_initial = np.empty_like(d_final)
        norms = np.zeros((L * D, T)) if self.record_grad_norms else None
        for k in reversed(range(L)):
            d_input = None
            for d, sfx in enumerate(self._suffixes):
                j = k * D + d
                dX, d_initial[j] = self._sequence_backward(
                    d_layer[:, :, d * H : (d + 1) * H], d_final[j], caches[j], self._weights(k, sfx), d == 1,
                    None if norms is None else norms[j],
                )
                d_input = dX if d_input is None else d_input + dX
            d_layer = d_input
        self.grad_norms = norms
        dx, dh0 = self._present(d_layer, d_initial, unbatched)
        if self.learn_init and not given:
            self.h0.grad += dh0.sum(axis=-2) if not unbatched else dh0
        if not unbatched and self.batch_first:
            dx = np.ascontiguousarray(dx)
        return dx, dh0

    def _sequence_backward(self, dY, dh_n, cache, w, reverse, norms=None):
        X, K, log_a, states, mask, mode, decays = cache
        if reverse:
            dY = dY[::-1]
        if mask is not None:  # outputs past a sequence's end are constant zeros
            dY = dY * mask
        if mode == "fused":
            dX, dh0 = self._fused_sequence_backward(dY, dh_n, cache, w, norms, reverse)
            return (dX[::-1] if reverse else dX), dh0
        T, B, I = X.shape
        G, dK = np.empty(log_a.shape, np.result_type(dY, states)), np.empty_like(K)
        carry, piece = dh_n, segment_steps(B * self.hidden_size)
        for s in reversed(range(0, T, piece)):  # the forward's pieces, last first
            end = min(s + piece, T)
            e = slice(s, end)
            # ∂L/∂h_t at every step, by the scan the forward used; carry = a_s ∂L/∂h_s, what
            # h_{s−1} receives through h_s
            if mode == "parallel":
                carry = _reverse_scan_segment(*decays[s // piece], dY[e], carry, out=G[e])
            else:
                carry = sequential_reverse_scan(np.exp(log_a[e]), dY[e], carry, out=G[e])
            self._coefficients_backward(G[e], states[e], K[:, e], log_a[e], out=dK[:, e])  # states[e]: h_{t−1}
        dh0 = carry
        if norms is not None:
            _record_norms(G, mask, norms, reverse)
        if mask is not None:  # the gates of padding steps were replaced, so they get no gradient
            dK *= mask
        dX = self._weight_gradients(dK, X, w)
        return (dX[::-1] if reverse else dX), dh0

    def _fused_sequence_backward(self, dY, dh_n, cache, w, norms, reverse):
        """The backward of ``_fused_sequence`` (dY in scan order, zero past each end) → (dX, dh0)."""
        X, gates, A, states, mask, _, compiled = cache
        (W, b), (T, B, I), H = w, X.shape, self.hidden_size
        K = gates.transpose(1, 2, 0, 3).reshape(T, B, -1)  # the kernel's (T, B, G·H) array again, no copy
        dh, G, dK = np.array(dh_n, K.dtype), np.empty((T, B, H), K.dtype), np.empty_like(K)
        compiled.fused_backward(np.ascontiguousarray(dY, K.dtype), K, A, states, _active(mask), dh, G, dK)
        if norms is not None:
            _record_norms(G, mask, norms, reverse)
        dX = backend.products().affine_backward(dK.reshape(T * B, -1), X.reshape(T * B, I), W.data, W.grad,
                                                None if b is None else b.grad)
        return dX.reshape(T, B, I), dh

    def _weight_gradients(self, dK, X, w) -> np.ndarray:
        """dK (G, T, B, H) pre-activation gradients, X (T, B, I) → dX (T, B, I); adds into the
        weight's and bias's ``.grad``: one matrix product for each."""
        (W, b), gates, H = w, self.gates, self.hidden_size
        T, B, I = X.shape
        dK = dK.reshape(gates, T * B, H)
        W.grad += (dK.transpose(0, 2, 1) @ X.reshape(T * B, I)).reshape(W.grad.shape)
        if b is not None:
            b.grad += sum_rows(dK).reshape(b.grad.shape)
        W_gates = W.data.reshape(gates, H, I)
        dX = dK[0] @ W_gates[0]
        for k in range(1, gates):
            dX += dK[k] @ W_gates[k]
        return dX.reshape(T, B, I)

    def gate_activations(self) -> list[np.ndarray]:
        """The gate activations of the most recent forward (outside no_grad, before its backward):
        one (G, N, H) array per layer·direction in the kind's gate order, N = the steps inside the
        sequences. minGRU: [z, h̃]; minLSTM: [1 − f, 1 − i, h̃] (1 − σ saturates where σ does)."""
        if not self._caches:
            raise RuntimeError(f"gate_activations: run a forward pass of the {type(self).__name__} (outside no_grad) first")
        _, _, caches = self._caches[-1]
        G, H = self.gates, self.hidden_size
        return [K.reshape(G, -1, H) if mask is None else K[:, mask[..., 0]] for _, K, _, _, mask, _, _ in caches]

    # ---- step by step ---------------------------------------------------------------------------
    def step(self, x, h=None):
        """One time step, for inference with a carried state; keeps nothing for backward.

        x: (B, input_size) or (input_size,); h: (L, B, H) or (L, H), zeros when None.
        Returns ``(y, h')``: y (B, H) the last layer's new state, h' (L, B, H) every layer's.
        Feeding h' back in step after step gives forward's ``out`` and ``h_n``.
        """
        if self.bidirectional:
            raise ValueError("step: a bidirectional layer needs the whole sequence (its reverse direction starts "
                             "at the end); use forward")
        X = float_array(x, "x", self.dtype, ndims=(1, 2))
        if X.shape[-1] != self.input_size:
            raise ValueError(f"x: expected input_size={self.input_size} features in the last dimension, got shape {X.shape}")
        unbatched = X.ndim == 1
        X = X.reshape(1, -1, self.input_size)  # a sequence of one step
        B, H = X.shape[1], self.hidden_size
        if h is None:
            h = np.repeat(self.h0.data[:, None, :], B, axis=1) if self.learn_init else np.zeros((self.num_layers, B, H), self.dtype)
        else:
            h = self._check_state(h, "h", B, H, unbatched)
        new = np.empty_like(h)
        layer_input = X
        compiled = backend.recurrence(self.kind)  # a sequence of one step: a streamed minGRU-64's 23 µs → 14, minLSTM's 36 → 14
        for k in range(self.num_layers):
            w = self._weights(k, "")
            if compiled is not None:
                _, new[k], _ = self._fused_sequence(compiled, layer_input, h[k], w, None, keep=False)
            else:
                K = self._project(layer_input, w)
                log_a = np.empty((1, B, H), K.dtype)
                b = self._coefficients(K, log_a)
                new[k] = np.exp(log_a[0]) * h[k] + b[0]
            layer_input = new[k][None]
        return (new[-1, 0], new[:, 0]) if unbatched else (new[-1], new)


class MinGRU(_MinimalRNN):
    """minGRU: ``h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ g(x_t W_hᵀ + b_h)``, ``z_t = σ(x_t W_zᵀ + b_z)``.

    Shapes and arguments as ``rnnkit.nn.GRU`` (no dropout or proj_size); see the module docstring.
    """

    gates = 2

    def _coefficients(self, K, log_a):
        """K (2, T, B, H) pre-activations [k_z, k_h] → log a (into ``log_a``) and b; K becomes [z, h̃]."""
        kz, kh = K
        u = exp_neg_abs(kz)  # the same for −k_z
        log_sigmoid(-kz, out=log_a, u=u)  # log(1 − z)
        sigmoid(kz, u, out=kz)  # z, exact also near 0 and 1
        g(kh, out=kh)
        return kz * kh

    def _coefficients_backward(self, G, H_prev, K, log_a, out):
        """G = ∂L/∂h_t → the pre-activation gradients [dk_z, dk_h], into ``out``."""
        z, h_tilde = K
        dK = out
        dz, dh = dK
        # h = (1 − z) h_prev + z h̃:  ∂h/∂z = h̃ − h_prev,  ∂h/∂h̃ = z
        np.subtract(h_tilde, H_prev, out=dz)
        dz *= G
        dz *= z * (1 - z)
        np.multiply(G, z, out=dh)
        dh *= g_slope(h_tilde)
        return dK


class MinLSTM(_MinimalRNN):
    """minLSTM: ``h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ g(x_t W_hᵀ + b_h)``, with f', i' = f, i / (f + i).

    Shapes and arguments as ``rnnkit.nn.GRU`` (no dropout or proj_size); see the module docstring.
    """

    gates = 3

    def _coefficients(self, K, log_a):
        """K (3, T, B, H) pre-activations [k_f, k_i, k_h] → log a (into ``log_a``) and b; K becomes [1 − f, 1 − i, h̃]."""
        kf, ki, kh = K
        log_f, log_i = log_sigmoid(kf), log_sigmoid(ki)
        d = log_i - log_f
        u = exp_neg_abs(d)  # the same for −d
        log_sigmoid(-d, out=log_a, u=u)  # log f' = −log(1 + i/f)
        b = sigmoid(d, u)  # i' = σ(d) = 1 − f', exact also when f' is near 1
        log_f -= kf  # log(1 − f) = log f − k_f
        np.exp(log_f, out=kf)
        log_i -= ki
        np.exp(log_i, out=ki)
        g(kh, out=kh)
        b *= kh  # i' h̃
        return b

    def _coefficients_backward(self, G, H_prev, K, log_a, out):
        """G = ∂L/∂h_t → the pre-activation gradients [dk_f, dk_i, dk_h], into ``out``."""
        not_f, not_i, h_tilde = K
        f = np.exp(log_a)  # f'
        i = -np.expm1(log_a)  # i' = 1 − f', exact also when f' is near 1
        dK = out
        # f' = σ(−d), i' = σ(d) with d = log i − log f, so ∂h/∂d = f' i' (h̃ − h_prev);
        # ∂d/∂k_f = −(1 − f), ∂d/∂k_i = 1 − i
        dd = h_tilde - H_prev
        dd *= G
        dd *= f * i
        np.multiply(dd, not_f, out=dK[0])
        np.negative(dK[0], out=dK[0])
        np.multiply(dd, not_i, out=dK[1])
        dh = dK[2]
        np.multiply(G, i, out=dh)
        dh *= g_slope(h_tilde)
        return dK



MinGRU.kind = cells.register(cells.CellKind(
    name="mingru", about="minGRU (Feng et al. 2024), a parallel scan", states=("h",),
    gates=(("update", "sigmoid"), ("candidate", "positive")), layer=MinGRU, layer_dropout=False, modes=MODES,
    onnx=onnx_forms.scanned(onnx_forms.linear_recurrence_step, onnx_forms.min_gru_coefficients)))
MinLSTM.kind = cells.register(cells.CellKind(
    name="minlstm", about="minLSTM (Feng et al. 2024), a parallel scan", states=("h",),
    gates=(("forget", "sigmoid"), ("input", "sigmoid"), ("candidate", "positive")), layer=MinLSTM, layer_dropout=False, modes=MODES,
    onnx=onnx_forms.scanned(onnx_forms.linear_recurrence_step, onnx_forms.min_lstm_coefficients)))
