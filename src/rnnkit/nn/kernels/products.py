"""The big products outside the time loop, shared between the kernels' threads.

A layer's weight gradients and dX, made after its backward loop, are a third of a training step or
more (a 2-layer LSTM-256 language model: 7.5 GFLOP a step of batch 32 × 100 steps; the input
projection is made inside the forward loop's products, ``lstm_loop``); a ``Linear`` over every step
(the model's head) and a minimal layer's x Wᵀ + b make the same kind of products. The reference
(``functional.affine``, ``affine_backward``, ``accumulate_weight_grads``) makes each one BLAS call
at BLAS's thread count, which the thread policy holds at one. Here each product is cut into the
kernels' ``parts`` (``backend.chunks()``) — blocks of the output, so no two parts write the same
numbers — each a one-thread BLAS call, run on ``threads`` Python threads (NumPy releases the GIL
while BLAS runs). Letting OpenBLAS run two threads instead was slower: after each call its threads
spin for a while, against the kernels' threads that run the next time loop. The cut does not follow
the thread count: OpenBLAS rounds a block of rows differently from the same rows inside a bigger
call (its kernels for the edges), so with the cut following the threads, which follow the load, a
resumed run drifted from an uninterrupted one in the last bits. Cut into fixed parts, the numbers
are the same on any number of threads; they equal one call's up to BLAS's blocking (tested within
rounding).

Where the user gave BLAS more than one thread, the products stay single calls (BLAS already
splits them; splitting again would oversubscribe the cores).
"""

from __future__ import annotations

import functools
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import functional as F


@functools.lru_cache(maxsize=1)
def _blas():
    """NumPy's BLAS, to read its thread count cheaply (threadpoolctl's controller, made once)."""
    from threadpoolctl import ThreadpoolController

    libraries = ThreadpoolController().select(user_api="blas").lib_controllers
    ours = [lib for lib in libraries if "numpy" in lib.filepath] or libraries
    return ours[0] if ours else None


@functools.lru_cache(maxsize=1)
def _pool(workers: int = 16) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="rnnkit-products")


# Below this many floating-point operations a product is not cut: handing a part to the pool's
# thread and waiting for it costs 50–150 µs here (a thread woken from sleep), more than the cut
# saves. Measured (one process, medians, one-thread BLAS, 2 cores): cut against one call, forward
# and backward, 0.62–1.06 of the time at 34–67 MFLOP, 1.06–2.4 at 8–17 MFLOP, 3.5× at 1 MFLOP
# (a Linear(64, 64) over 128 steps: 69 µs against 20). A shape decides, never the load, so the
# numbers stay the same on any thread count.
CUT_FROM_FLOPS = 32e6


def _parts(parts: int, n: int, flops: float) -> int:
    """How many parts to cut a product with n output rows and ``flops`` operations into: 1 where
    it is small, or where BLAS has threads of its own."""
    if parts <= 1 or n < 2 * parts or flops < CUT_FROM_FLOPS:
        return 1
    blas = _blas()
    return parts if blas is None or blas.get_num_threads() == 1 else 1


def _block(n: int, parts: int, k: int) -> slice:
    """The k-th of ``parts`` near-equal blocks of range(n)."""
    return slice(k * n // parts, (k + 1) * n // parts)


def _in_parallel(work, parts: int, threads: int) -> None:
    """work(k) for k < parts on ``threads`` threads: this one and the pool's."""
    threads = max(1, min(threads, parts))

    def share(first):
        for k in range(first, parts, threads):
            work(k)

    futures = [_pool().submit(share, first) for first in range(1, threads)]
    share(0)
    for f in futures:
        f.result()


def affine(X, W, bias, parts: int, threads: int):
    """``functional.affine`` (X Wᵀ + bias, (*, I) → (*, O)) in ``parts`` row blocks on ``threads``."""
    X2 = X.reshape(-1, X.shape[-1])
    parts = _parts(parts, len(X2), 2 * X2.size * W.shape[0])
    if parts == 1:
        return F.affine(X, W, bias)
    Y = np.empty((len(X2), W.shape[0]), np.result_type(X, W))

    def rows(k):
        r = _block(len(X2), parts, k)
        np.matmul(X2[r], W.T, out=Y[r])
        if bias is not None:
            Y[r] += bias

    _in_parallel(rows, parts, threads)
    return Y.reshape(*X.shape[:-1], W.shape[0])


def affine_backward(dY, X, W, dW, db, parts: int, threads: int):
    """``functional.affine_backward`` in ``parts``: column blocks of dW (each the whole sum over
    the rows, as one call makes it) and row blocks of dX, on ``threads``."""
    N, I = X.shape
    parts = _parts(parts, min(I, N), 4 * dY.size * I)  # dW and dX
    if parts == 1:
        return F.affine_backward(dY, X, W, dW, db)
    dX = np.empty((N, I), np.result_type(dY, W))

    def share(k):
        c, r = _block(I, parts, k), _block(N, parts, k)
        dW[:, c] += dY.T @ X[:, c]
        np.matmul(dY[r], W, out=dX[r])

    _in_parallel(share, parts, threads)
    if db is not None:
        db += F.sum_rows(dY)
    return dX


def accumulate_weight_grads(w, X, H_prev, dG_x, dG_h=None, parts: int = 1, threads: int = 1):
    """``functional.accumulate_weight_grads`` with each product cut into ``parts`` row blocks (of
    the gate rows for W_ih's and W_hh's gradients, of the T·B rows for dX) on ``threads``."""
    T, B, I = X.shape
    gate_rows = dG_x.shape[-1]
    parts = _parts(parts, min(gate_rows, T * B), 2 * dG_x.size * (2 * I + H_prev.shape[-1]))
    if parts == 1:
        return F.accumulate_weight_grads(w, X, H_prev, dG_x, dG_h)
    dG_x2 = dG_x.reshape(T * B, -1)
    dG_h2 = dG_x2 if dG_h is None else dG_h.reshape(T * B, -1)
    X2, H2 = X.reshape(T * B, I), H_prev.reshape(T * B, -1)
    dX = np.empty((T * B, I), np.result_type(dG_x, w.W_ih.data))

    def share(k):
        g, r = _block(gate_rows, parts, k), _block(T * B, parts, k)
        w.W_ih.grad[g] += dG_x2[:, g].T @ X2
        w.W_hh.grad[g] += dG_h2[:, g].T @ H2
        np.matmul(dG_x2[r], w.W_ih.data, out=dX[r])

    _in_parallel(share, parts, threads)
    if w.b_ih is not None:
        db_x = F.sum_rows(dG_x2)
        w.b_ih.grad += db_x
        w.b_hh.grad += db_x if dG_h is None else F.sum_rows(dG_h2)
    return dX.reshape(T, B, I)
