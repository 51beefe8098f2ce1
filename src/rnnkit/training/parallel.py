"""Data-parallel training on MPI: K processes train one model (mpi4py, the ``[mpi]`` extra).

``mpiexec -n K rnnkit train …`` (or ``srun``) starts K copies of the command. Each builds the same
model from the same seed and, at every step, draws the same global batch (a function of the seed
and the step, as in one process); rank r takes its share of it (``share``: contiguous rows), runs
forward and backward on that, and one Allreduce of one flat buffer sums

    [n_r·g_r, n_r·loss_r, n_r, tokens_r, stop_r]          n_r: the terms rank r's mean loss averages

so that every rank holds g = Σ_r n_r g_r / Σ_r n_r, the gradient of the global batch's mean loss,
clips it by its global norm and takes the same optimizer step: the parameters stay identical
(``check_same`` compares them at every validation). Every rank validates, on its share of the
validation data where the task shares it out, and takes rank 0's metrics (``agreed``), so early
stopping decides the same everywhere; rank 0 alone writes the model directory and draws the
progress.

A process that no MPI launcher started, or one started as the only process, gets ``Single``,
whose methods do nothing; mpi4py is then never imported.

Errors: ``settled(fn)`` runs fn on every rank and raises the first failing rank's error on all of
them, so a bad option or file ends every rank cleanly with one message (``everywhere``). An error
on one rank alone in the middle of training cannot reach the others, which wait in a collective:
the command then aborts the job (``fail``), and the launcher stops every rank within seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import zlib

import numpy as np

#: where launchers say how many processes they started, and which one this is: MPICH's Hydra,
#: Intel MPI and Slurm's PMI (PMI_*), Open MPI (OMPI_*), Slurm's srun (SLURM_*)
LAUNCHER_VARIABLES = (("PMI_SIZE", "PMI_RANK"), ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
                      ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"))
LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_STEP_TASKS_PER_NODE")


class ParallelError(RuntimeError):
    """The processes of one job cannot train together (mpi4py missing, options that differ,
    parameters that drifted apart)."""


def launched() -> tuple[int, int]:
    """(rank, size) as the launcher's environment gives them; (0, 1) outside a launcher."""
    for size_name, rank_name in LAUNCHER_VARIABLES:
        size, rank = os.environ.get(size_name, ""), os.environ.get(rank_name, "")
        if size.strip().isdigit() and rank.strip().isdigit():
            return int(rank), max(1, int(size))
    return 0, 1


def processes_per_machine() -> int:
    """How many processes of this job share this machine (1 outside a launcher)."""
    for name in LOCAL_SIZE_VARIABLES:
        value = os.environ.get(name, "").split("(")[0].split(",")[0].strip()  # Slurm: "2(x3),1"
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return 1


#: seconds a failing rank waits between printing its error and aborting the job
ABORT_GRACE_S = 1.0

#: what a rank whose share of a batch is empty adds to the step's sum: nothing
NO_SHARE = (0.0, 0, 0)


class EmptyShare(Exception):
    """This rank has no rows of the batch (fewer rows than ranks): the Trainer counts its step as
    ``NO_SHARE``, and the rank still takes part in the step's sum."""


def share_of(rows):
    """This rank's rows of a global batch (all of them on one process), for a run's ``train_step``;
    raises EmptyShare when there are none."""
    mine = rows[world().share(len(rows))]
    if not len(mine):
        raise EmptyShare
    return mine


def everywhere(exc: BaseException) -> BaseException:
    """Mark ``exc`` as raised on every rank alike (one message is enough)."""
    exc.everywhere = True
    return exc


class Single:
    """One process: every collective is the identity."""

    rank, size, first = 0, 1, True

    def share(self, n: int) -> slice:
        return slice(0, n)

    def reduce_step(self, grads: list[np.ndarray], numbers: list[float]) -> list[float]:
        return numbers

    def settled(self, fn):
        return fn()

    def on_first(self, fn):
        return fn()

    def gather_rows(self, array: np.ndarray, axis: int) -> np.ndarray:
        return array

    def gather_items(self, items: list) -> list:
        return items

    def sum(self, numbers: list[float]) -> list[float]:
        return numbers

    def agreed(self, value):
        return value

    def check_same(self, params, step: int) -> None:
        pass

    def check_config(self, config: dict) -> None:
        pass

    def barrier(self) -> None:
        pass

    @contextlib.contextmanager
    def first_only(self, context):
        """``context`` entered on rank 0 alone (the directory's lock); an error entering it is
        raised on every rank."""
        with contextlib.ExitStack() as stack:
            self.on_first(lambda: stack.enter_context(context))
            yield

    def describe(self) -> str:
        return "one process"


class Group(Single):
    """K processes of one MPI job (``comm``: mpi4py's COMM_WORLD)."""

    def __init__(self, comm):
        from mpi4py import MPI

        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.first = self.rank == 0
        self._buffer: np.ndarray | None = None

    def share(self, n: int) -> slice:
        """This rank's rows of a global batch of ``n``: contiguous, sizes differing by one at most
        (``np.array_split``'s), so a batch of n ≥ K gives every rank some."""
        base, extra = divmod(n, self.size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (self.rank < extra))

    def reduce_step(self, grads: list[np.ndarray], numbers: list[float]) -> list[float]:
        """Sum ``numbers[0]·grads`` and ``numbers`` over the ranks in one Allreduce; the grads become
        Σ n_r g_r / Σ n_r (``numbers[0]`` is n_r, the terms of this rank's mean loss); returns the
        summed numbers. One flat buffer in the gradients' dtype (no Python objects)."""
        sizes = [g.size for g in grads]
        total = sum(sizes)
        if self._buffer is None or self._buffer.size != total + len(numbers) or self._buffer.dtype != grads[0].dtype:
            self._buffer = np.empty(total + len(numbers), grads[0].dtype)
        flat, weight, at = self._buffer, numbers[0], 0
        for g, n in zip(grads, sizes):
            np.multiply(g.reshape(-1), weight, out=flat[at : at + n])
            at += n
        flat[total:] = numbers
        self.comm.Allreduce(self.MPI.IN_PLACE, flat, op=self.MPI.SUM)
        summed = [float(v) for v in flat[total:]]
        scale = 1.0 / summed[0] if summed[0] else 0.0
        at = 0
        for g, n in zip(grads, sizes):
            np.multiply(flat[at : at + n], scale, out=g.reshape(-1))
            at += n
        return summed

    def settled(self, fn):
        """fn() on every rank; if it raised on any, the first such rank's error is raised on all
        (``everywhere``), its message naming the rank."""
        try:
            result, error = fn(), None
        except Exception as exc:  # noqa: BLE001 (every error is passed on, then raised again)
            result, error = None, exc
        errors = self.comm.allgather(None if error is None else _portable(error))
        failed = [(r, e) for r, e in enumerate(errors) if e is not None]
        if not failed:
            return result
        rank, exc = failed[0]
        raise everywhere(_named(error if rank == self.rank else exc, rank)) from None

    def on_first(self, fn):
        """fn() on rank 0 alone; every rank gets its result, or raises its error."""
        result = error = None
        if self.first:
            try:
                result = fn()
            except Exception as exc:  # noqa: BLE001
                error = exc
        result, portable = self.comm.bcast((result, None if error is None else _portable(error)), root=0)
        if portable is not None:
            raise everywhere(error if error is not None else portable)
        return result

    def gather_rows(self, array: np.ndarray, axis: int) -> np.ndarray:
        """Every rank's rows of ``array`` (each rank's share along ``axis``) joined in rank order."""
        return np.concatenate(self.comm.allgather(np.ascontiguousarray(array)), axis=axis)

    def gather_items(self, items: list) -> list:
        """Every rank's ``items`` (its share of a list), joined in rank order."""
        return [item for part in self.comm.allgather(items) for item in part]

    def sum(self, numbers: list[float]) -> list[float]:
        """The ``numbers`` summed over the ranks (float64)."""
        values = np.asarray(numbers, np.float64)
        self.comm.Allreduce(self.MPI.IN_PLACE, values, op=self.MPI.SUM)
        return [float(v) for v in values]

    def agreed(self, value):
        """Rank 0's ``value`` on every rank (validation metrics: every rank decides from the same)."""
        return self.comm.bcast(value, root=0)

    def check_same(self, params, step: int) -> None:
        """Raise everywhere if the ranks' parameters are not bit for bit the same."""
        checksum = 0
        for p in params:
            checksum = zlib.crc32(np.ascontiguousarray(p.data).view(np.uint8), checksum)
        sums = self.comm.allgather(checksum)
        differing = [r for r, s in enumerate(sums) if s != sums[0]]
        if differing:
            raise everywhere(ParallelError(
                f"at step {step} the parameters of rank(s) {', '.join(map(str, differing))} differ from rank 0's "
                f"(checksums {', '.join(f'{s:08x}' for s in sums)}); the last checkpoint is kept"))

    def check_config(self, config: dict) -> None:
        """Raise everywhere if the ranks were started with different options or data."""
        mine = json.dumps(config, sort_keys=True, default=str)
        configs = self.comm.allgather(mine)
        for rank, theirs in enumerate(configs):
            if theirs != configs[0]:
                first, other = json.loads(configs[0]), json.loads(theirs)
                keys = sorted(k for k in set(first) | set(other) if first.get(k) != other.get(k))
                detail = "; ".join(_differences(first.get(k), other.get(k), k) for k in keys)
                raise everywhere(ParallelError(f"the processes were started with different settings: rank {rank} "
                                               f"against rank 0: {detail}"))

    def barrier(self) -> None:
        self.comm.Barrier()

    def describe(self) -> str:
        import socket

        where = self.comm.allgather((os.getpid(), socket.gethostname()))
        return f"{self.size} processes (" + ", ".join(f"rank {r}: pid {p} on {h}" for r, (p, h) in enumerate(where)) + ")"

    def abort(self, code: int) -> None:
        sys.stderr.flush()
        # the launcher passes a rank's output on through its proxy, which the abort stops: give it
        # a moment, or the message that says why may be lost with the job
        time.sleep(ABORT_GRACE_S)
        self.comm.Abort(code)


def _differences(a, b, key: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        return "; ".join(_differences(a.get(k), b.get(k), f"{key}.{k}") for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
    return f"{key} {b!r} (rank 0: {a!r})"


def _portable(exc: BaseException) -> BaseException:
    """``exc``, or a RuntimeError with its message where it cannot be pickled."""
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001
        return RuntimeError(str(exc))


def _named(exc: BaseException, rank: int) -> BaseException:
    """``exc`` with "rank R: " before its message (rank 0's errors are the usual ones)."""
    if rank and exc.args and isinstance(exc.args[0], str):
        exc.args = (f"rank {rank}: {exc.args[0]}", *exc.args[1:])
    return exc


_world: Single | None = None


def world() -> Single:
    """This job's processes: a ``Group`` when a launcher started more than one, else ``Single``."""
    global _world
    if _world is None:
        rank, size = launched()
        if size == 1:
            _world = Single()
        else:
            try:
                from mpi4py import MPI
            except ImportError:
                raise ParallelError(f"started by an MPI launcher as rank {rank} of {size} processes, but mpi4py is not "
                                    "installed here: pip install 'rnnkit[mpi]' on every machine") from None
            _world = Group(MPI.COMM_WORLD) if MPI.COMM_WORLD.Get_size() > 1 else Single()
    return _world


def fail(message: str, exc: BaseException, code: int) -> int:
    """Report a command's error: on one process, print it; in a job, print it once when every rank
    raised it, else name the rank and abort the job (the others wait in a collective)."""
    if _world is None:  # before MPI was started, nothing waits for this rank; each says its own
        rank, size = launched()
        said = size == 1 or f"rank {rank} of {size}" in message  # mpi4py missing: the message names the rank
        print(message if said else f"{message} (rank {rank} of {size})", file=sys.stderr)
        return code
    group = _world
    if group.size == 1:
        print(message, file=sys.stderr)
        return code
    if getattr(exc, "everywhere", False):
        if group.first:
            print(message, file=sys.stderr)
        return code
    print(f"{message} (rank {group.rank} of {group.size}; stopping every rank)", file=sys.stderr)
    group.abort(code)
    return code
