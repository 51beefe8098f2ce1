"""Which implementation runs the recurrent equations: ``numpy``, the readable reference, or
``numba``, compiled kernels (``nn/kernels``) with the same equations, tested equal to it.

The default is ``numba`` where numba imports, else ``numpy``; ``$RNNKIT_BACKEND`` overrides it
at start, ``set_backend`` and ``use_backend`` in a program. A kind without a kernel runs its
reference equations on either backend (``accelerated`` lists the kinds that have one).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from types import SimpleNamespace

BACKENDS = ("numpy", "numba")
ENV = "RNNKIT_BACKEND"

_chosen: str | None = None  # None until first asked: the environment decides then
_fast: dict = {}  # kind name → its compiled equations, once loaded


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


def _kernels() -> dict:
    if not _fast:
        from .kernels import KERNELS

        _fast.update({name: SimpleNamespace(**functions) for name, functions in KERNELS.items()})
    return _fast


def accelerated() -> tuple[str, ...]:
    """The kinds with compiled kernels (loads them: numba's import and cache)."""
    return tuple(_kernels()) if "numba" in available() else ()


def equations(kind):
    """What runs ``kind``'s sequence and its backward on the current backend: an object with
    ``sequence`` and ``sequence_backward`` (the kind itself on the reference path)."""
    if current() == "numpy":
        return kind
    return _kernels().get(kind.name, kind)

