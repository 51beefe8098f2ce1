"""Module and Parameter: named arrays, their gradients, and the cache stack that backward pops.

A module's ``forward`` pushes what its ``backward`` needs onto a stack (nothing under
``no_grad()``); each ``backward`` pops the most recent entry. A module called k times
before its backward therefore runs backward k times, newest first, which is exactly the
order a decoder loop or a shared encoder needs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np

DTYPES = (np.float32, np.float64)

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


@contextlib.contextmanager
def no_grad():
    """Inside this context forward passes keep nothing for backward (inference, streaming)."""
    previous = is_grad_enabled()
    _state.grad_enabled = False
    try:
        yield
    finally:
        _state.grad_enabled = previous


def as_dtype(dtype) -> type:
    """Normalise a dtype argument to np.float32 or np.float64, or say what is allowed."""
    try:
        dt = np.dtype(dtype).type
    except TypeError:
        dt = None
    if dt not in DTYPES:
        raise TypeError(f"dtype: expected np.float32 or np.float64, got {dtype!r}")
    return dt


def as_rng(rng) -> np.random.Generator:
    """Accept a Generator, an integer seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng: expected an int seed, a numpy Generator or None, got {type(rng).__name__}")


class Parameter:
    """A trainable array and the gradient accumulated into it."""

    __slots__ = ("data", "grad")

    def __init__(self, data: np.ndarray):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class: parameters and sub-modules are registered by attribute assignment."""

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "_caches", [])
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            if isinstance(value, (Parameter, Module)):
                raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() before assigning {name!r}")
            object.__setattr__(self, name, value)
            return
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- parameters -------------------------------------------------------------
    def named_parameters(self, prefix: str = "", remove_duplicate: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Every parameter once, under the first name it is reached by (tied weights appear once);
        ``remove_duplicate=False``: under every name (a tied weight once per module that holds it), as torch."""
        seen: set[int] = set()
        for name, p in self._named_parameters_all(prefix):
            if not remove_duplicate or id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters_all(self, prefix: str):
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m._named_parameters_all(prefix + name + ".")

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def modules(self) -> Iterator[Module]:
        yield self
        for m in self._modules.values():
            yield from m.modules()

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad.fill(0)

    def num_parameters(self) -> int:
        return sum(p.data.size for p in self.parameters())

    def state_dict(self) -> dict[str, np.ndarray]:
        """Plain ``{name: array}`` copies, named as PyTorch names them."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict) -> None:
        """Copy arrays into the parameters, cast to each parameter's dtype.

        Names and shapes must match exactly; the error lists every mismatch at once.
        """
        own = dict(self.named_parameters())
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        misshapen = [
            f"{k}: expected shape {own[k].shape}, got {tuple(np.shape(state[k]))}"
            for k in own
            if k in state and tuple(np.shape(state[k])) != own[k].shape
        ]
        problems = []
        if missing:
            problems.append(f"missing keys {missing}")
        if unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if misshapen:
            problems.append("wrong shapes: " + "; ".join(misshapen))
        if problems:
            raise ValueError(f"state_dict does not fit {type(self).__name__}: " + " | ".join(problems))
        for k, p in own.items():
            value = np.asarray(state[k], dtype=p.data.dtype)
            if not np.isfinite(value).all():
                raise ValueError(f"state_dict: entry {k!r} contains NaN or infinite values")
            p.data[...] = value

    # ---- modes ------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # ---- the cache stack ----------------------------------------------------------
    def _push_cache(self, cache) -> None:
        if is_grad_enabled():
            self._caches.append(cache)

    def _pop_cache(self):
        if not self._caches:
            raise RuntimeError(
                f"{type(self).__name__}.backward called more times than forward "
                "(or forward ran under no_grad(), which keeps nothing for backward)"
            )
        return self._caches.pop()

    def clear_caches(self) -> None:
        """Drop every cache kept for backward (after an evaluation run without no_grad())."""
        for m in self.modules():
            m._caches.clear()

    def __repr__(self) -> str:
        extra = self.extra_repr()
        children = "".join(f"\n  ({k}): " + repr(m).replace("\n", "\n  ") for k, m in self._modules.items())
        return f"{type(self).__name__}({extra}{children}{chr(10) if children else ''})"

    def extra_repr(self) -> str:
        return ""
