"""Truncated-BPTT batches over contiguous streams, as char-rnn and AWD-LSTM train.

The token ids are cut into ``batch_size`` contiguous streams laid side by side, time-major:

    ids  a b c d e f g h i j k l            batch_size 3 → data (n, B) = (4, 3)
         └─ s0 ─┘└─ s1 ─┘└─ s2 ─┘              a e i
                                               b f j        window p (seq_len T):
                                               c g k          x = data[p·T : p·T+T]
                                               d h l          y = data[p·T+1 : p·T+T+1]

Window k+1 of a stream continues where window k stopped, so the trainer carries the recurrent
state from one batch to the next (detached: gradients stop at the window edge) and starts a
fresh state only when ``reset`` says a new epoch begins. The last window of an epoch may be
shorter than ``seq_len``. ``position`` and ``epoch`` say which window comes next; together with
``state_dict``/``load_state_dict`` a resumed run sees exactly the windows it would have seen.

``ConditionedStreams`` is the same with one class per stream, for a conditional language model:
each batch also carries the class of every stream.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator, Mapping, Sequence

import numpy as np

from .errors import DataError


@dataclass(frozen=True)
class Batch:
    """One window of every stream.

    x: (T, B) int64 inputs, time-major.  y: (T, B) int64 targets, the token after each input.
    condition: (B,) int64 class of each stream, or None.  reset: the first window of an epoch —
    start from a fresh state (or the condition's).  epoch, index: where this window lies.
    """

    x: np.ndarray
    y: np.ndarray
    condition: np.ndarray | None
    reset: bool
    epoch: int
    index: int


def _positive(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _ids(ids, name: str) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise DataError(f"{name}: expected a 1-D array of token ids, got dtype {arr.dtype} and shape {arr.shape}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise DataError(f"{name}: token ids must be >= 0, got {int(arr.min())}")
    return arr


def _too_short(name: str, have: int, batch_size: int, seq_len: int) -> DataError:
    need = batch_size * (seq_len + 1)
    return DataError(
        f"{name} has {have} tokens, too few for batch_size {batch_size} × seq_len {seq_len}: it needs at least "
        f"{need} ({batch_size} streams of {seq_len + 1}); give more text or lower batch_size or seq_len"
    )


class StreamBatches:
    """Truncated-BPTT windows over ``batch_size`` contiguous streams of ``ids`` (n,) int.

    Iterating yields the remaining windows of the current epoch as ``Batch``es and moves on to
    the next epoch; ``next()`` gives one window at a time and rolls over epochs by itself.
    ``name`` says which text error messages talk about ("training text", "validation text").
    """

    def __init__(self, ids, batch_size: int, seq_len: int, name: str = "the text"):
        ids = _ids(ids, "ids")
        self.batch_size = _positive(batch_size, "batch_size")
        self.seq_len = _positive(seq_len, "seq_len")
        n = len(ids) // self.batch_size
        if n < self.seq_len + 1:
            raise _too_short(name, len(ids), self.batch_size, self.seq_len)
        # Tokens beyond a whole number of streams (fewer than batch_size) are dropped.
        self._set_data(ids[: n * self.batch_size].reshape(self.batch_size, n).T, None)

    def _set_data(self, data: np.ndarray, condition: np.ndarray | None) -> None:
        self.data = np.ascontiguousarray(data)  # (n, B): row t holds token t of every stream
        self.data.flags.writeable = False
        self.condition = condition
        if condition is not None:
            condition.flags.writeable = False
        self.position = 0  # the window the next batch is
        self.epoch = 0
        self._fingerprint: int | None = None

    # ---- the layout ----------------------------------------------------------------------
    @property
    def stream_length(self) -> int:
        return self.data.shape[0]

    def __len__(self) -> int:
        """Windows per epoch: a stream of n tokens gives n − 1 (input, target) pairs."""
        return -(-(self.stream_length - 1) // self.seq_len)

    @property
    def tokens_per_epoch(self) -> int:
        """Target tokens per epoch (what the loss is averaged over)."""
        return (self.stream_length - 1) * self.batch_size

    @property
    def reset_state(self) -> bool:
        """True when the next batch starts an epoch: the trainer must start from a fresh state."""
        return self.position == 0

    def window(self, index: int) -> Batch:
        """Window ``index`` of the current epoch, without moving ``position``."""
        if not 0 <= index < len(self):
            raise IndexError(f"window: expected an index in [0, {len(self)}), got {index}")
        p = index * self.seq_len
        T = min(self.seq_len, self.stream_length - 1 - p)
        return Batch(self.data[p : p + T], self.data[p + 1 : p + 1 + T], self.condition, index == 0, self.epoch, index)

    # ---- walking through it --------------------------------------------------------------
    def next(self) -> Batch:
        """The window at ``position``; then ``position`` moves on (to 0 of the next epoch after the last)."""
        batch = self.window(self.position)
        self.position += 1
        if self.position == len(self):
            self.position, self.epoch = 0, self.epoch + 1
        return batch

    def __iter__(self) -> Iterator[Batch]:
        """The rest of the current epoch (all of it from ``position`` 0)."""
        for _ in range(len(self) - self.position):
            yield self.next()

    # ---- resuming ------------------------------------------------------------------------
    def _layout(self) -> dict:
        if self._fingerprint is None:
            crc = zlib.crc32(self.data.tobytes())
            if self.condition is not None:
                crc = zlib.crc32(self.condition.tobytes(), crc)
            self._fingerprint = crc
        return {"batch_size": self.batch_size, "seq_len": self.seq_len, "stream_length": self.stream_length,
                "fingerprint": self._fingerprint}

    def state_dict(self) -> dict:
        """Plain JSON: the position, the epoch and the layout they refer to."""
        return {"position": self.position, "epoch": self.epoch, **self._layout()}

    def load_state_dict(self, state: dict) -> None:
        """Continue at the saved window; the layout (data, batch_size, seq_len) must be the same."""
        layout = self._layout()
        try:
            diff = {k: (state[k], v) for k, v in layout.items() if state[k] != v}
            position, epoch = int(state["position"]), int(state["epoch"])
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"data position: the checkpoint's entry is incomplete ({exc}); the checkpoint may be damaged") from None
        if diff:
            what = ", ".join(f"{k} {saved} (now {now})" for k, (saved, now) in diff.items())
            raise DataError(
                f"data position: the checkpoint was saved with different data or batching ({what}); "
                "resume with the same data, batch_size and seq_len"
            )
        if not 0 <= position < len(self) or epoch < 0:
            raise DataError(f"data position: window {position} of epoch {epoch} is out of range; the checkpoint may be damaged")
        self.position, self.epoch = position, epoch


def allocate_streams(sizes: Sequence[int], batch_size: int) -> tuple[list[int], int]:
    """(streams per class, common stream length n) for classes of ``sizes`` tokens.

    A class smaller than one stream's share (size · batch_size < total) gets one stream, which
    it fills by repeating itself if it must. The other streams go out by D'Hondt's rule —
    proportional, and it maximises the shortest min(size / k) — so those classes fill theirs
    without repeating anything, and n is that shortest length.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    total = int(sizes.sum())
    k = np.ones(len(sizes), dtype=np.int64)
    large = sizes * batch_size >= total  # at least one class: the shares sum to batch_size
    while k.sum() < batch_size:
        share = np.where(large, sizes / (k + 1), -np.inf)
        k[int(np.argmax(share))] += 1
    return k.tolist(), int((sizes[large] // k[large]).min())


class ConditionedStreams(StreamBatches):
    """Streams that each come from one class's text, for a conditional language model.

    classes: ``{label: ids}`` (class index = order of the mapping) or a sequence of id arrays.
    Streams go to classes in proportion to their sizes, at least one each, so batch_size must be
    at least the number of classes (see ``allocate_streams``). All streams have one length n; a
    class's k streams hold its first k·n tokens, and only a class smaller than one stream is
    repeated from its start to fill it. ``streams_per_class``, ``repeated`` and ``unused`` give
    the counts per label. Each ``Batch.condition`` is (B,): the class of each stream.
    """

    def __init__(self, classes: Mapping[str, np.ndarray] | Sequence[np.ndarray], batch_size: int, seq_len: int,
                 name: str = "the text"):
        if isinstance(classes, Mapping):
            labels, arrays = [str(k) for k in classes], list(classes.values())
        else:
            arrays = list(classes)
            labels = [str(i) for i in range(len(arrays))]
        arrays = [_ids(a, f"classes[{label!r}]") for label, a in zip(labels, arrays)]
        self.labels = labels
        self.batch_size = _positive(batch_size, "batch_size")
        self.seq_len = _positive(seq_len, "seq_len")
        if len(arrays) < 1:
            raise DataError("classes: expected at least one class")
        if self.batch_size < len(arrays):
            raise DataError(
                f"batch_size {self.batch_size} is smaller than the number of classes ({len(arrays)}): every class "
                f"needs at least one stream; use batch_size >= {len(arrays)}"
            )
        small = [label for label, a in zip(labels, arrays) if len(a) < 2]
        if small:
            raise DataError(f"classes {small} have fewer than 2 tokens; give each class some text")
        total = sum(len(a) for a in arrays)
        k, n = allocate_streams([len(a) for a in arrays], self.batch_size)
        if n < self.seq_len + 1:
            short = [f"{label} ({len(a)} tokens for {kc} streams)" for label, kc, a in zip(labels, k, arrays) if len(a) // kc < self.seq_len + 1]
            raise DataError(
                f"{name} is too short for batch_size {self.batch_size} × seq_len {self.seq_len}: every stream needs "
                f"{self.seq_len + 1} tokens, and these classes cannot fill theirs: {', '.join(short)} "
                f"({total} tokens in all); give more text or lower batch_size or seq_len"
            )
        self.streams_per_class = dict(zip(labels, k))
        self.repeated = {label: max(0, kc * n - len(a)) for label, kc, a in zip(labels, k, arrays)}
        self.unused = {label: max(0, len(a) - kc * n) for label, kc, a in zip(labels, k, arrays)}
        streams = [np.resize(a, kc * n).reshape(kc, n) for kc, a in zip(k, arrays)]  # np.resize repeats cyclically
        condition = np.repeat(np.arange(len(arrays), dtype=np.int64), k)
        self._set_data(np.concatenate(streams, axis=0).T, condition)
