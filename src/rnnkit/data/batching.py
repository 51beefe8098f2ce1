"""Mini-batches of variable-length examples: bucketed by length, padded, resumable.

Each epoch's order is a function of (seed, epoch) alone, so a checkpoint needs only the epoch
and the position in it to resume the exact same batches.
"""

from __future__ import annotations

import numpy as np


class BucketBatches:
    """Batches of example indices with similar lengths, in a shuffled order.

    Each epoch: shuffle the examples, cut the shuffled list into pools of ``pool`` batches, sort
    each pool by length and cut it into batches (so a batch pads little), then shuffle the batches.
    """

    def __init__(self, lengths, batch_size: int, seed: int = 0, pool: int = 50):
        self.lengths = np.asarray(lengths, dtype=np.int64)
        if self.lengths.size == 0:
            raise ValueError("data: no training examples")
        self.batch_size, self.seed, self.pool = int(batch_size), int(seed), int(pool)
        self.epoch, self.index = 0, 0
        self._order = self._epoch_batches(0)

    def _epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.lengths.size)
        span = self.batch_size * self.pool
        batches = []
        for s in range(0, order.size, span):
            chunk = order[s : s + span]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches += [chunk[i : i + self.batch_size] for i in range(0, chunk.size, self.batch_size)]
        return [batches[i] for i in rng.permutation(len(batches))]

    def next(self) -> np.ndarray:
        """The indices of the next batch (a new epoch starts when one runs out)."""
        if self.index == len(self._order):
            self.epoch, self.index = self.epoch + 1, 0
            self._order = self._epoch_batches(self.epoch)
        batch = self._order[self.index]
        self.index += 1
        return batch

    def state_dict(self) -> dict:
        return {"epoch": np.array(self.epoch), "index": np.array(self.index)}

    def load_state_dict(self, d: dict) -> None:
        self.epoch, self.index = int(d["epoch"]), int(d["index"])
        self._order = self._epoch_batches(self.epoch)


def pad(sequences: list[np.ndarray], value=0) -> tuple[np.ndarray, np.ndarray]:
    """Time-major padding: sequences of shape (T_i, *) → (T_max, B, *) and lengths (B,)."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    first = np.asarray(sequences[0])
    out = np.full((int(lengths.max()), len(sequences), *first.shape[1:]), value, dtype=first.dtype)
    for b, s in enumerate(sequences):
        out[: len(s), b] = s
    return out, lengths


def decoder_targets(sequences: list[np.ndarray], bos: int, eos: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A decoder's teacher-forced batch: inputs ``bos y`` and outputs ``y eos``, (T, B) each, and the lengths (B,)."""
    tgt_in, lengths = pad([np.concatenate([[bos], y]) for y in sequences])
    tgt_out, _ = pad([np.concatenate([y, [eos]]) for y in sequences])
    return tgt_in, tgt_out, lengths


def batches_in_order(lengths, batch_size: int) -> list[np.ndarray]:
    """Every example once, batched by similar length (for evaluation and prediction)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
