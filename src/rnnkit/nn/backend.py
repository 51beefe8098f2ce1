"""Which implementation runs the recurrent equations: ``numpy``, the readable reference, or
``numba``, compiled kernels (``nn/kernels``) with the same equations, tested equal to it.

The default is ``numba`` where numba imports, else ``numpy``; ``$RNNKIT_BACKEND`` overrides it
at start, ``set_backend`` and ``use_backend`` in a program. A kind without a kernel runs its
reference equations on either backend (``accelerated`` lists the kinds that have one).

Threads. A kernel cuts each step's hidden units into ``chunks()``, one per core, and runs them
on its threads (numba's OpenMP layer): the cut is fixed, the threads vary, so results do not
depend on how many threads ran them. BLAS, outside the kernels, keeps the count
``rnnkit.threads`` gave it (one by default); where that policy never ran (a program that uses
``rnnkit.nn`` alone), the kernels hold BLAS at one thread when they first run, unless the user
set its count: OpenBLAS's threads spinning beside the kernels' made an LSTM's forward 1.5–1.8×
slower (64 × 100 steps, 128 → 256: 66.7 ms against 37.7). The kernels' count is
``set_threads(n)`` where the user chose one (``--threads``, $RNNKIT_THREADS), else automatic:
the cores that the rest of the machine leaves free — the load average less what this process
itself used lately, looked at every few seconds — so that an idle machine's cores are all used
and a busy one's threads do not wait for each other (a step's threads meet at its end: one of
them descheduled stalls the others). A bidirectional layer's two directions then run side by
side, one thread each (``side_by_side``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import os
import time
from types import SimpleNamespace

BACKENDS = ("numpy", "numba")
ENV = "RNNKIT_BACKEND"
BLAS_ENVS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")  # a user's own BLAS thread count

_chosen: str | None = None  # None until first asked: the environment decides then
_fast: dict = {}  # kind name → its compiled equations, once loaded
_steps: dict = {}  # kind name → its compiled cell step, once asked for
_products: dict = {}  # threads → the products cut for them, once asked for
_threads: int | None = None  # the kernels' threads, None: automatic
_blas_chosen = False  # whether BLAS's thread count was set in this process (the policy, or the kernels' hold)
_memory_kept = False  # whether the kernels set the allocator to reuse freed arrays (once, where they first run)
LOOK_EVERY_S = 5.0  # how often the automatic count looks at the load again


def available() -> tuple[str, ...]:
    """The backends this installation can run."""
    return BACKENDS if importlib.util.find_spec("numba") is not None else ("numpy",)


def _check(name: str, source: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"{source}: expected one of {', '.join(BACKENDS)}, got {name!r}")
    if name not in available():
        raise ValueError(f"{source}: the numba backend needs numba, which does not import here (pip install numba)")
    return name


def current() -> str:
    """The backend in use."""
    global _chosen
    if _chosen is None:
        wanted = os.environ.get(ENV, "").strip()
        _chosen = _check(wanted, f"${ENV}") if wanted else available()[-1]
    return _chosen


def set_backend(name: str) -> None:
    """Use ``name`` ("numpy" or "numba") from now on."""
    global _chosen
    _chosen = _check(name, "backend")


@contextlib.contextmanager
def use_backend(name: str):
    """``with use_backend("numpy"):`` runs the block on that backend, then restores the previous."""
    previous = current()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def set_threads(count: int | None) -> None:
    """The kernels' threads: a count >= 1, or None for the automatic choice."""
    global _threads
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"threads: expected a number of threads >= 1 or None, got {count!r}")
    _threads = count


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_look = {"at": -LOOK_EVERY_S, "cpu": 0.0, "count": 1}


def free_cores() -> int:
    """The cores the rest of the machine leaves free (at least 1): the 1-minute load average
    less this process's own recent use of the CPU; looked at every LOOK_EVERY_S seconds."""
    now = time.monotonic()
    elapsed = now - _look["at"]
    if elapsed >= LOOK_EVERY_S:
        cpu = time.process_time()  # a system call: only when a look is due (a streamed step asks every call)
        own = (cpu - _look["cpu"]) / elapsed if elapsed < 10 * LOOK_EVERY_S else 0.0
        others = max(0.0, os.getloadavg()[0] - own) if hasattr(os, "getloadavg") else 0.0
        # a core counts as taken when a whole process's worth of load sits on it
        _look.update(at=now, cpu=cpu, count=max(1, min(cores(), cores() - math.floor(others))))
    return _look["count"]


def explicit_threads() -> int | None:
    """The count the user set, or None where it is automatic."""
    return _threads


def threads() -> int:
    """The kernels' threads now: the user's count, or ``free_cores()``."""
    return _threads if _threads is not None else free_cores()


def limit_blas(count: int) -> None:
    """BLAS (NumPy's, and any other loaded) at ``count`` threads from now on."""
    global _blas_chosen
    import numpy  # noqa: F401  (threadpoolctl limits the BLAS libraries already loaded)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=count, user_api="blas")
    _blas_chosen = True


def user_set_blas() -> bool:
    """Whether the user gave BLAS a thread count of their own ($OPENBLAS_NUM_THREADS …)."""
    return any(os.environ.get(name, "").strip() for name in BLAS_ENVS)


def _hold_blas() -> None:
    """BLAS at one thread where the compiled kernels first run, unless its count was chosen already
    (by the thread policy, or in the user's environment: $OPENBLAS_NUM_THREADS …): its threads must
    not spin beside theirs. A count set in the program itself (threadpoolctl) before the kernels
    first run is not seen; after, it is left alone."""
    global _blas_chosen
    if not _blas_chosen:
        if user_set_blas():
            _blas_chosen = True  # theirs: looked at once
        else:
            limit_blas(1)


def _kernels() -> dict:
    if not _fast:
        from .kernels import KERNELS

        _fast.update({name: SimpleNamespace(**functions) for name, functions in KERNELS.items()})
    return _fast


def _compiled() -> dict:
    """The kernels, where they are about to run: BLAS held first (``_hold_blas``), and freed
    arrays reused (``allocator.keep_freed_memory``, once: a compiled LSTM's training step at
    32 × 100, 64 → 128 took 1.4× the time without it, faulting its caches in afresh)."""
    global _memory_kept
    _hold_blas()
    if not _memory_kept:
        from .allocator import keep_freed_memory

        keep_freed_memory()
        _memory_kept = True
    return _kernels()


def chunks() -> int:
    """How many chunks a kernel cuts each step's hidden units into, and the products outside its
    loop: the cores, whatever the threads that run them. The chunks' partial sums are added in a
    fixed order, so a result does not depend on the thread count, which follows the load: a run
    resumed on a busy machine continues exactly as it would have on an idle one (with chunks
    following the threads it drifted in the last bits)."""
    return cores()


def _numba_threads(count: int) -> None:
    """The calling thread's numba threads: ``count``, at most one a chunk and numba's own limit."""
    import numba

    numba.set_num_threads(max(1, min(count, chunks(), numba.config.NUMBA_NUM_THREADS)))


def _with_threads(kernels, count: int):
    """The kernels' sequence functions, their ``chunks()`` run on ``count`` threads."""
    parts = chunks()
    _numba_threads(count)
    return SimpleNamespace(sequence=functools.partial(kernels.sequence, chunks=parts, threads=count),
                           sequence_backward=functools.partial(kernels.sequence_backward, chunks=parts, threads=count))


def products():
    """What makes the big products outside the time loops (a ``Linear`` over every step) on the
    current backend: an object with ``affine(X, W, bias)`` and ``affine_backward(dY, X, W, dW, db)``
    (``functional``'s); on numba they are cut into ``chunks()`` parts run on the kernels' threads."""
    from . import functional

    if current() == "numpy":
        return functional
    count = threads()
    if count not in _products:  # kept: a Linear at batch 1 (a generated step) asks on every call
        from .kernels import products as cut

        _hold_blas()
        parts = chunks()
        _products[count] = SimpleNamespace(affine=functools.partial(cut.affine, parts=parts, threads=count),
                                           affine_backward=functools.partial(cut.affine_backward, parts=parts, threads=count))
    return _products[count]


def accelerated() -> tuple[str, ...]:
    """The kinds with compiled kernels (loads them: numba's import and cache)."""
    return tuple(_kernels()) if "numba" in available() else ()


def cell_step(kind):
    """The compiled whole step of ``kind``'s cell on the current backend:
    ``step(X, states, weights, check_x=None, keep=True)`` (see ``kernels.KERNELS``), or None. It
    asks ``threads()`` itself, and only for weights big enough to share between threads: at
    batch 1 a small cell's step is a few µs, and asking would be a tenth of it."""
    if current() == "numpy":
        return None
    if kind.name not in _steps:  # kept: a streamed step asks on every call
        step = getattr(_compiled().get(kind.name), "cell_step", None)
        _steps[kind.name] = None if step is None else _on_threads(step)
    return _steps[kind.name]


def _on_threads(step):
    """``step`` given ``threads``, the function that tells the kernels' thread count now (a closure:
    a partial that adds a keyword costs 0.3 µs a call, this one 0.1)."""
    def on_threads(X, states, weights, check_x=None, keep=True):
        return step(X, states, weights, threads, check_x, keep)

    return on_threads


def recurrence(kind):
    """A minimal layer's ``kind`` compiled whole on the current backend (an object with
    ``fused_forward`` and ``fused_backward``, see ``kernels.minimal``), or None: the layer then
    runs its NumPy equations and scans."""
    if current() == "numpy":
        return None
    kernels = _compiled().get(kind.name)
    return kernels if hasattr(kernels, "fused_forward") else None


@functools.lru_cache(maxsize=1)
def _beside():
    """The thread that runs a bidirectional layer's second direction beside the first."""
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnkit-direction")


def side_by_side(kind, jobs: list, name: str) -> list:
    """[job(f) for job in jobs], f the kind's ``name`` ("sequence" or "sequence_backward") on the
    current backend. On the compiled one with two threads or more and two jobs (a bidirectional
    layer's directions, independent of each other), each job runs on its own thread with its
    kernel on one: the chunks are the same, so are the numbers, and the threads do not meet at
    every step (a bidirectional LSTM-128's training step at 32 × 100: 0.92 of the time)."""
    kernels = None if current() == "numpy" else _compiled().get(kind.name)
    if len(jobs) != 2 or threads() < 2 or not hasattr(kernels, "sequence"):
        f = getattr(equations(kind), name)
        return [job(f) for job in jobs]
    def alone(job):
        return job(getattr(_with_threads(kernels, 1), name))  # numba's count is the calling thread's own

    other = _beside().submit(alone, jobs[1])
    try:
        first = alone(jobs[0])
    finally:
        _numba_threads(threads())
        second = other.result()
    return [first, second]


def equations(kind):
    """What runs ``kind``'s sequence and its backward on the current backend: an object with
    ``sequence`` and ``sequence_backward`` (the kind itself on the reference path)."""
    if current() == "numpy":
        return kind
    kernels = _compiled().get(kind.name)
    if kernels is None or not hasattr(kernels, "sequence"):
        return kind
    return _with_threads(kernels, threads())

