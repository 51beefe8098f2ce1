"""The per-step matrix product, written for the kernels' loops, and the split of units into chunks.

A kernel's step runs inside a parallel region (one chunk of hidden units per thread), where
BLAS cannot be called (OpenBLAS detects the OpenMP region and serialises: measured 10–100×
slower), so the product is written here: four rows of A share each load of B, k is unrolled by
four and blocked so that B's rows stay in the cache, which keeps the loads per multiply-add low
enough for LLVM's vectorised loop over j to run at 40–55 GFLOP/s on one core of this machine
(OpenBLAS: 45–70 at the same shapes). Its sums group the terms four at a time and fuse
multiply-adds (``FASTMATH``); the tests hold the kernels to the reference's bound.
"""

from __future__ import annotations

import numpy as np
from numba import njit

FASTMATH = {"contract"}  # fused multiply-add: one rounding instead of two; nothing else of fastmath


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def matmul_into(A, B, out, rows):
    """out[:rows] = A[:rows] @ B: A (≥rows, K), B (K, N), out (≥rows, N), all C-contiguous.

    Four rows of A at a time share each load of B, k is unrolled by four, and k runs in blocks
    whose rows of B stay in the cache while every row of A passes over them."""
    K, N = B.shape
    KB = max(4, min(K, (16384 // max(N, 1)) // 4 * 4))  # 64 KB of B per block
    r4 = rows - rows % 4
    out[:rows] = 0
    for kb in range(0, K, KB):
        ke = min(K, kb + KB)
        k4 = ke - (ke - kb) % 4
        for r in range(0, r4, 4):
            for k in range(kb, k4, 4):
                a0, a1, a2, a3 = A[r, k], A[r, k + 1], A[r, k + 2], A[r, k + 3]
                c0, c1, c2, c3 = A[r + 1, k], A[r + 1, k + 1], A[r + 1, k + 2], A[r + 1, k + 3]
                d0, d1, d2, d3 = A[r + 2, k], A[r + 2, k + 1], A[r + 2, k + 2], A[r + 2, k + 3]
                e0, e1, e2, e3 = A[r + 3, k], A[r + 3, k + 1], A[r + 3, k + 2], A[r + 3, k + 3]
                for j in range(N):
                    b0, b1, b2, b3 = B[k, j], B[k + 1, j], B[k + 2, j], B[k + 3, j]
                    out[r, j] += a0 * b0 + a1 * b1 + a2 * b2 + a3 * b3
                    out[r + 1, j] += c0 * b0 + c1 * b1 + c2 * b2 + c3 * b3
                    out[r + 2, j] += d0 * b0 + d1 * b1 + d2 * b2 + d3 * b3
                    out[r + 3, j] += e0 * b0 + e1 * b1 + e2 * b2 + e3 * b3
            for k in range(k4, ke):
                for rr in range(r, r + 4):
                    a0 = A[rr, k]
                    for j in range(N):
                        out[rr, j] += a0 * B[k, j]
        for r in range(r4, rows):  # the last rows, one at a time
            for k in range(kb, k4, 4):
                a0, a1, a2, a3 = A[r, k], A[r, k + 1], A[r, k + 2], A[r, k + 3]
                for j in range(N):
                    out[r, j] += a0 * B[k, j] + a1 * B[k + 1, j] + a2 * B[k + 2, j] + a3 * B[k + 3, j]
            for k in range(k4, ke):
                a0 = A[r, k]
                for j in range(N):
                    out[r, j] += a0 * B[k, j]


def chunk_width(H: int, chunks: int) -> int:
    """Units per chunk: the H hidden units split as evenly as possible (the last may be short)."""
    return -(-H // chunks)


def gate_columns(W: np.ndarray, blocks: int, chunks: int) -> np.ndarray:
    """W (G·H, P), gate blocks stacked, → (chunks, P, G·Hk): chunk c's columns are its units'
    rows of every gate block, transposed, [g0 of its units | g1 … ]; missing units are zeros.
    ``matmul_into(h, packed[c], out)`` is then chunk c's share of h Wᵀ."""
    GH, P = W.shape
    H = GH // blocks
    Hk = chunk_width(H, chunks)
    padded = np.zeros((blocks, chunks * Hk, P), W.dtype)
    padded[:, :H] = W.reshape(blocks, H, P)
    return np.ascontiguousarray(padded.reshape(blocks, chunks, Hk, P).transpose(1, 3, 0, 2).reshape(chunks, P, blocks * Hk))


def gate_rows(W: np.ndarray, blocks: int, chunks: int) -> np.ndarray:
    """W (G·H, P) → (chunks, G·Hk, P): chunk c's units' rows of every gate block, for the
    backward's product dG W (each chunk's share of it, summed after)."""
    return np.ascontiguousarray(gate_columns(W, blocks, chunks).transpose(0, 2, 1))
