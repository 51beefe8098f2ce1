"""The thread policy, applied once where a process starts: the `rnnkit` command and the
Python API (`rnnkit.train`, `rnnkit.load`); a program that uses ``rnnkit.nn`` alone gets its
default from the compiled kernels, which hold BLAS at one thread when they first run. Two pools:
BLAS's (the NumPy path's products and the products outside the compiled kernels) and the
kernels' own (``nn.backend``).

OpenBLAS starts a thread per core and spins while it waits for them. rnnkit's matrices are small
(a 2-layer LSTM-256 on batches of 32), so a second thread gains little on an idle machine and costs
ten times over on a busy one: 40 steps of `rnnkit train lm` took 138 s at OpenBLAS's default and
14.4 s at one thread, at load 3–4 on 2 cores (the measurements: README, "Threads and progress").
One BLAS thread is the default. The kernels' threads meet once a step, where one thread
descheduled stalls the other: by default they use the cores the load leaves free
(``nn.backend.free_cores``), and never run while BLAS's threads do.

Order of precedence (BLAS): ``--threads N`` (or ``threads=``), then $RNNKIT_THREADS; a user's own
$OPENBLAS_NUM_THREADS, $OMP_NUM_THREADS or $MKL_NUM_THREADS is left as it is; otherwise one thread.
On the compiled backend BLAS keeps one thread whatever N: the kernels cut the products outside
their loops between their own N threads, a one-thread BLAS call each, and BLAS's threads spinning
beside theirs made an LSTM training step (32×100, 64 → 128) 2.3× slower (150 ms against 65 ms,
BLAS and kernels at 2 threads against BLAS at 1 and kernels at 2).
The kernels: the user's count, else automatic, except in a job of K processes on one machine
(``mpiexec -n K``), where each process takes its share of the cores.
"""

from __future__ import annotations

import os

from .nn import allocator, backend
from .training.parallel import processes_per_machine

THREADS_ENV = "RNNKIT_THREADS"
BLAS_ENVS = backend.BLAS_ENVS
DEFAULT_THREADS = 1

_applied = False


def parse_threads(text: str, name: str) -> int:
    """A thread count >= 1 from ``text``; the error names the flag or variable."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name}: expected a number of threads >= 1, got {text!r}")
    return value


def user_threads(threads: int | str | None = None) -> int | None:
    """The count the user gave (``threads``: --threads as given, else $RNNKIT_THREADS), or None."""
    if threads is not None:
        return parse_threads(str(threads), "--threads")
    if os.environ.get(THREADS_ENV, "").strip():
        return parse_threads(os.environ[THREADS_ENV].strip(), THREADS_ENV)
    return None


def chosen_threads(threads: int | str | None = None) -> int | None:
    """The BLAS thread count the policy picks (``threads``: --threads as given), or None to leave
    the user's BLAS settings alone; one on the compiled backend, whose kernels take the count."""
    count = user_threads(threads)
    if count is not None:
        return count if backend.current() == "numpy" else DEFAULT_THREADS
    if backend.user_set_blas():
        return None
    return DEFAULT_THREADS


def apply_thread_policy(threads: int | None = None, once: bool = False) -> int | None:
    """Limit BLAS to the policy's thread count; returns it (None: left to the user's variables).

    once: do nothing if the policy was applied before in this process (the Python API calls it on
    every `train`/`load`, and must not undo a limit the user set in between).
    """
    global _applied
    if once and _applied:
        return None
    _applied = True
    count = chosen_threads(threads)
    kernels = user_threads(threads)
    sharing = processes_per_machine()
    if kernels is None and sharing > 1:  # a job's processes on this machine split its cores between them
        kernels = max(1, backend.cores() // sharing)
    backend.set_threads(kernels)  # the kernels: the user's count, else automatic
    if count is not None:
        backend.limit_blas(count)
    return count


def describe() -> str:
    """One line on the backend, the threads and the allocator's setting in use, for `rnnkit info`."""
    from threadpoolctl import threadpool_info

    # NumPy's BLAS: the one rnnkit calls (numba may load SciPy's, which no rnnkit code uses)
    blas = sorted({str(lib.get("num_threads")) for lib in threadpool_info() if lib.get("user_api") == "blas" and "numpy" in lib.get("filepath", "")})
    line = f"backend: {backend.current()}"
    if backend.current() == "numba":
        automatic = "" if backend.explicit_threads() else f", automatic: {backend.cores()} cores, load {os.getloadavg()[0]:.1f}"
        count = backend.threads()
        line += f" (compiled kernels for {', '.join(backend.accelerated())}; {count} thread{'s' if count > 1 else ''}{automatic})"
    memory = "reused" if allocator.reusing() else "given back (glibc's own way)"
    return line + f"; BLAS threads: {'/'.join(blas) or 'unknown'}; freed arrays: {memory}"
