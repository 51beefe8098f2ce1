"""Compiled kernels (numba): the fast path beside the NumPy reference.

Each module compiles the time loop of one cell kind, with the reference's equations, shapes and
cache, so that a layer can run either and the two are tested equal. ``KERNELS`` maps a kind's
registered name to its compiled equations (a subset of ``CellKind``'s: ``sequence`` and
``sequence_backward``); a kind without an entry runs its reference equations on every backend.
Adding a kernel: a module here, and its line in the table.

Importing this package imports numba (about 0.4 s) and loads compiled code from numba's cache
(``cache=True``: only the first run after an install compiles). ``backend`` imports it only when
the numba backend is chosen.
"""

from __future__ import annotations

from . import gru, lstm, rnn

KERNELS = {
    "rnn": rnn.equations(relu=False),
    "irnn": rnn.equations(relu=True),
    "lstm": dict(sequence=lstm.lstm_sequence, sequence_backward=lstm.lstm_sequence_backward),
    "gru": dict(sequence=gru.gru_sequence, sequence_backward=gru.gru_sequence_backward),
}
