"""Compiled kernels (numba): the fast path beside the NumPy reference.

Each module compiles the time loop of one cell kind, with the reference's equations, shapes and
cache, so that a layer can run either and the two are tested equal. ``KERNELS`` maps a kind's
registered name to its compiled equations: ``sequence`` and ``sequence_backward`` (as
``CellKind``'s), and ``cell_step(X, states, (W_ih, W_hh, b_ih, b_hh), threads, check_x, keep) →
(new states, activated gates, cache)``, a whole step (products, biases, gates) in one call
(``threads``: a function giving the thread count, asked only where the step would share its rows),
returning what the kind's reference ``step`` does so that its ``step_backward`` serves (a cell's
steps, and a layer's single steps without a gradient; without ``keep``, the gates and cache are
None); for the minimal layers (minGRU, minLSTM), ``fused_forward`` and ``fused_backward``, the
whole recurrence each way (``kernels/minimal.py``). A kind without an entry runs its reference
equations on every backend.
Adding a kernel: a module here, and its line in the table.

Importing this package imports numba (about 0.4 s) and loads compiled code from numba's cache
(``cache=True``: only the first run after an install, or after a change to any kernel source,
compiles: ``forget_stale_caches``). ``backend`` imports it only when the numba backend is chosen.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba

# OpenMP first: a parallel region costs ~2 µs there against ~60 µs in numba's own workqueue,
# and the kernels open one per step. The user's $NUMBA_THREADING_LAYER is left to rule.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

# After a parallel region, libgomp's threads spin before they sleep (GOMP_SPINCOUNT: 300 000 turns
# by default, milliseconds). Between two time loops the big products run on the kernels' Python
# threads, and an OpenMP thread still spinning took a core from them: in a 2-layer LSTM-256 LM step
# the products waited 25–29 ms for their second half; with 10 000 turns (still longer than the gap
# between two steps' regions) 4–8 ms, and the step 280 → 242 ms (medians of 9 runs each). libgomp
# reads the variable once, when it loads: so numba's threads start here, and the user's own
# GOMP_SPINCOUNT or OMP_WAIT_POLICY rules. Where libgomp is already loaded (torch imported first), this changes nothing.
SPIN = "GOMP_SPINCOUNT"
if not any(os.environ.get(name, "").strip() for name in (SPIN, "OMP_WAIT_POLICY")):
    os.environ[SPIN] = "10000"
    try:
        numba.get_num_threads()  # starts the threading layer, which loads libgomp
    finally:
        del os.environ[SPIN]


def forget_stale_caches(folder: Path) -> bool:
    """Drops numba's cached kernels in ``folder/__pycache__`` when any ``folder/*.py`` changed since
    they were written; returns whether it did. numba keys a cached function on its own file's time
    and size, but the machine code it keeps includes the helpers it calls from the other files
    (``matmul_into``, the activations): after a change to matmul.py, lstm.py's cached loop would
    still run the old product. A digest of every source, kept beside numba's files, notices. Where
    the folder is read-only (an installed package), numba caches elsewhere and an install renews
    every file's time, which numba notices itself."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.glob("*.py")))).hexdigest()
    cache, stamp = folder / "__pycache__", folder / "__pycache__" / "rnnkit-kernels.sha256"
    try:
        if stamp.read_text() == digest:
            return False
    except OSError:
        pass  # no stamp yet
    try:
        for stale in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:  # numba's index and code files
            stale.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        fresh = stamp.with_suffix(f".{os.getpid()}.tmp")
        fresh.write_text(digest)
        fresh.replace(stamp)
    except OSError:
        pass  # read-only: see above
    return True


forget_stale_caches(Path(__file__).parent)

from . import gru, lstm, minimal, rnn, steps  # noqa: E402  (after the threading layer is chosen and stale caches are gone)

KERNELS = {
    "rnn": dict(rnn.equations(relu=False), cell_step=steps.rnn_cell_step),
    "irnn": dict(rnn.equations(relu=True), cell_step=steps.relu_rnn_cell_step),
    "lstm": dict(sequence=lstm.lstm_sequence, sequence_backward=lstm.lstm_sequence_backward, cell_step=steps.lstm_cell_step),
    "gru": dict(sequence=gru.gru_sequence, sequence_backward=gru.gru_sequence_backward, cell_step=steps.gru_cell_step),
    "mingru": minimal.MINGRU_KERNELS,
    "minlstm": minimal.MINLSTM_KERNELS,
}
