"""The per-step matrix product, written for the kernels' loops, and the split of units into chunks.

A kernel's step runs inside a parallel region (one chunk of hidden units per thread), where
BLAS cannot be called (OpenBLAS detects the OpenMP region and serialises: measured 10–100×
slower), so the product is written here, BLIS's way: B (a weight, the same at every step) is
packed once per call into panels of ``NR`` columns, each panel's K rows contiguous (``panels``);
a tile of 4 rows × NR columns of the output is summed over the whole of k in accumulators kept
on the stack (``_tile``, which LLVM keeps in vector registers: numba's own arrays live on the heap,
where LLVM must assume that the stores may change A or B and goes through memory at every k).
Each k then costs one load of the panel's row and four broadcasts of A for 4·NR multiply-adds.
On one AVX-512 core: 100–110 GFLOP/s at the kernels' shapes, where the earlier loop over rows of
B that summed into ``out`` reached 50–75 and OpenBLAS 64–95. The sums run k in order with fused
multiply-adds (``FASTMATH``); the tests hold the kernels to the reference's bound.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, register_jitable

FASTMATH = {"contract"}  # fused multiply-add: one rounding instead of two; nothing else of fastmath
# columns per panel: the 4 × NR accumulators fill half the vector registers (32 zmm with
# AVX-512, 16 ymm without), leaving the rest for the panel's row and A's broadcasts
NR = 32 if llvm.get_host_cpu_features().get("avx512f", False) else 16
MR = 4  # rows per tile (written out below: a0 … a3)


@intrinsic
def _tile(typingctx, like):
    """A scratch vector of MR·NR elements of like's dtype on the stack (an alloca: LLVM knows that
    nothing else points into it, so it keeps the elements in registers)."""
    dtype = like.dtype
    array = types.Array(dtype, 1, "C")

    def codegen(context, builder, signature, args):
        element = context.get_value_type(dtype)
        data = cgutils.alloca_once(builder, element, size=MR * NR)
        size = context.get_abi_sizeof(element)
        tile = context.make_array(array)(context, builder)
        context.populate_array(tile, data=data, shape=[context.get_constant(types.intp, MR * NR)],
                               strides=[context.get_constant(types.intp, size)],
                               itemsize=context.get_constant(types.intp, size), meminfo=None, parent=None)
        return tile._getvalue()

    return array(like), codegen


def panels(B: np.ndarray) -> np.ndarray:
    """B (K, N) → (⌈N/NR⌉, K, NR): panel p holds columns [p·NR, (p+1)·NR), zeros past N."""
    K, N = B.shape
    count = -(-N // NR)
    padded = np.zeros((K, count * NR), B.dtype)
    padded[:, :N] = B
    return np.ascontiguousarray(padded.reshape(K, count, NR).transpose(1, 0, 2))


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def matmul_into(A, B_panels, out, rows, k0):
    """out[:rows] = A[:rows, k0:k0 + K] @ B: A (≥rows, ≥k0 + K) and out (≥rows, N) C-contiguous,
    B_panels = panels(B) (K rows)."""
    N = out.shape[1]
    K = B_panels.shape[1]
    acc = _tile(A)
    for p in range(B_panels.shape[0]):
        Bp, j0 = B_panels[p], p * NR
        n = min(NR, N - j0)
        for r in range(0, rows - rows % MR, MR):
            for j in range(MR * NR):
                acc[j] = 0
            for k in range(K):
                a0, a1, a2, a3 = A[r, k0 + k], A[r + 1, k0 + k], A[r + 2, k0 + k], A[r + 3, k0 + k]
                for j in range(NR):
                    b = Bp[k, j]
                    acc[j] += a0 * b
                    acc[NR + j] += a1 * b
                    acc[2 * NR + j] += a2 * b
                    acc[3 * NR + j] += a3 * b
            if n == NR:  # constant indices: the tile never leaves the registers (8–27% faster)
                for j in range(NR):
                    out[r, j0 + j] = acc[j]
                    out[r + 1, j0 + j] = acc[NR + j]
                    out[r + 2, j0 + j] = acc[2 * NR + j]
                    out[r + 3, j0 + j] = acc[3 * NR + j]
            else:  # the last panel, past N
                for i in range(MR):
                    out[r + i, j0 : j0 + n] = acc[i * NR : i * NR + n]
        for r in range(rows - rows % MR, rows):  # the last rows, one at a time
            for j in range(NR):
                acc[j] = 0
            for k in range(K):
                a0 = A[r, k0 + k]
                for j in range(NR):
                    acc[j] += a0 * Bp[k, j]
            out[r, j0 : j0 + n] = acc[:n]


@register_jitable  # plain Python where Python calls it, compiled into the kernels that call it
def chunk_width(H, chunks):
    """Units per chunk: the H hidden units split as evenly as possible (the last may be short)."""
    return -(-H // chunks)


@register_jitable
def chunk_units(k, Hk, H):
    """Chunk k's units [u0, u1): Hk of them, fewer in the last, none past H (with more cores than
    a small layer has units to share, the last chunks are empty: H = 5 in 4 chunks of 2)."""
    return min(H, k * Hk), min(H, (k + 1) * Hk)


def gate_columns(W: np.ndarray, blocks: int, chunks: int) -> np.ndarray:
    """W (G·H, P), gate blocks stacked, → (chunks, ⌈G·Hk/NR⌉, P, NR): chunk c's columns are its
    units' rows of every gate block, transposed, [g0 of its units | g1 … ] (missing units are
    zeros), in panels; ``matmul_into(h, packed[c], out, rows, 0)`` is then chunk c's share of h Wᵀ."""
    return input_and_hidden_columns(W, W[:, :0], blocks, chunks)


def input_and_hidden_columns(W_ih: np.ndarray, W_hh: np.ndarray, blocks: int, chunks: int) -> np.ndarray:
    """``gate_columns`` of [W_ih | W_hh]: ``matmul_into([x | h], packed[c], out, rows, 0)`` is then
    chunk c's share of x W_ihᵀ + h W_hhᵀ, the input's and the recurrent sums in one product."""
    H = W_ih.shape[0] // blocks
    packed = np.zeros((chunks, -(-blocks * chunk_width(H, chunks) // NR), W_ih.shape[1] + W_hh.shape[1], NR), W_ih.dtype)
    _columns_into(np.ascontiguousarray(W_ih), np.ascontiguousarray(W_hh), blocks, packed)
    return packed


def gate_rows(W: np.ndarray, blocks: int, chunks: int) -> np.ndarray:
    """W (G·H, P) → (chunks, ⌈P/NR⌉, G·Hk, NR): chunk c's units' rows of every gate block, in
    panels, for the backward's product dG W (each chunk's share of it, summed after)."""
    H = W.shape[0] // blocks
    packed = np.zeros((chunks, -(-W.shape[1] // NR), blocks * chunk_width(H, chunks), NR), W.dtype)
    _rows_into(np.ascontiguousarray(W), blocks, packed)
    return packed


# The packing runs at every call of a layer (its weights may have changed since): compiled, one
# pass over W, where NumPy's padding, transposes and copies took 6–7% of a small LSTM's inference.
@register_jitable
def _chunk_row(q, c, Hk, H):
    """The row of W (G·H, P) behind column q of chunk c's packed block, or −1 for a missing unit."""
    u = c * Hk + q % Hk
    return (q // Hk) * H + u if u < H else -1


@njit(cache=True)
def _columns_into(W_left, W_right, blocks, packed):
    """packed[c, q // NR, :, q % NR] = row ``_chunk_row(q, c)`` of [W_left | W_right]."""
    chunks, I = packed.shape[0], W_left.shape[1]
    H = W_left.shape[0] // blocks
    Hk = chunk_width(H, chunks)
    for c in range(chunks):
        for q in range(blocks * Hk):
            row = _chunk_row(q, c, Hk, H)
            if row >= 0:
                panel, j = packed[c, q // NR], q % NR
                for p in range(I):
                    panel[p, j] = W_left[row, p]
                for p in range(W_right.shape[1]):
                    panel[I + p, j] = W_right[row, p]


@njit(cache=True)
def _rows_into(W, blocks, packed):
    """packed[c, p // NR, q, p % NR] = W[``_chunk_row(q, c)``, p]."""
    chunks = packed.shape[0]
    H = W.shape[0] // blocks
    Hk = chunk_width(H, chunks)
    for c in range(chunks):
        for q in range(blocks * Hk):
            row = _chunk_row(q, c, Hk, H)
            if row >= 0:
                for p in range(W.shape[1]):
                    packed[c, p // NR, q, p % NR] = W[row, p]
