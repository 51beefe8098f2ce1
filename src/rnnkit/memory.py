"""How the process gets its memory back (``keep_freed_memory``, defined in ``nn/allocator.py``
beside the kernels, which apply it too), and how much memory a model may take.

``within_memory`` builds a model and refuses, with one line naming the size options, a model whose
arrays do not fit in the memory available (``available_bytes``: MemAvailable), or whose training
would hold more than that. Linux lets a process allocate more than it has (overcommit) and kills it
when the pages are touched, with no word; so the model is built under an address-space limit of
what is available (``RLIMIT_AS``), which turns that kill into a MemoryError.
"""

from __future__ import annotations

import contextlib
import os

from .nn.allocator import keep_freed_memory  # noqa: F401  (the command's and the API's setting, defined beside the kernels)

# ---- whether a model fits ----------------------------------------------------------------------------

#: the bytes a training run holds for each byte of weights: the weights and their gradients
#: (both made with the model), Adam's two moments, and a copy of the weights for a checkpoint
TRAINING_COPIES = 5
#: the options that size a task's model, named when it does not fit
SIZE_OPTIONS = ("hidden", "embed", "layers")


def available_bytes() -> int | None:
    """The memory a new allocation can have without swapping (Linux's MemAvailable, else the free
    physical pages); None when the system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@contextlib.contextmanager
def _address_space_limit(extra: int | None):
    """Within the block, allocations beyond ``extra`` more bytes of address space raise
    MemoryError (Linux; elsewhere, or with ``extra`` None, nothing changes)."""
    try:
        import resource

        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        before = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError, IndexError):
        before = None
    if extra is None or before is None:
        yield
        return
    limit = size + extra if before[0] == resource.RLIM_INFINITY else min(before[0], size + extra)
    resource.setrlimit(resource.RLIMIT_AS, (limit, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, before)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def within_memory(build, options, training: bool = False):
    """``build()``, the model of a task's ``options``, or a ValueError naming the size options
    (``--hidden 100000, --embed 64: …``) when it does not fit: building it needs more than the
    memory available (a MemoryError, under ``_address_space_limit``), or, for ``training``,
    ``TRAINING_COPIES`` times its weights exceed the memory available with its weights and
    gradients counted in."""
    sizes = [name for name in SIZE_OPTIONS if hasattr(options, name)]
    given = ", ".join(f"--{name} {getattr(options, name)}" for name in sizes)
    lower = "lower " + ", ".join(f"--{name}" for name in sizes)
    try:
        with _address_space_limit(available_bytes()):
            model = build()
    except MemoryError as exc:
        available = available_bytes()
        have = f"; {_gib(available)} of memory are available" if available is not None else ""
        raise ValueError(f"{given}: the model does not fit in memory ({str(exc) or 'out of memory'}{have}); "
                         f"{lower}") from None
    available = available_bytes()
    if training and available is not None:
        weights = sum(p.data.nbytes for p in model.parameters())
        needed, have = TRAINING_COPIES * weights, available + 2 * weights
        if needed > have:
            raise ValueError(f"{given}: training this model needs about {_gib(needed)} ({model.num_parameters():,} "
                             f"parameters: weights, gradients, Adam's two moments, a checkpoint copy), but "
                             f"{_gib(have)} of memory are available; {lower}")
    return model
