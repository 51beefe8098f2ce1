"""Train the same character-level language model with rnnkit and with PyTorch, side by side.

The model: Embedding(V, 64) → 2-layer LSTM(hidden 256) → Linear(256, V), no dropout, on
Shakespeare's works (``rnnkit.data.shakespeare_corpus()``). Both libraries get

* the same data: rnnkit's own data functions, as ``rnnkit train lm`` uses them — a character
  tokenizer fitted on the training part, the last 5% held out as one contiguous block;
* the same initial weights: rnnkit's ``LanguageModel`` built with a seed, its ``state_dict``
  loaded into an equivalent torch module with the same parameter names;
* the same batches in the same order: ``StreamBatches`` (32 contiguous streams, windows of
  100 characters), the state carried from window to window (torch: detached);
* the same optimisation: Adam, lr 2e-3, gradients clipped to global norm 5.

rnnkit trains through ``rnnkit.tasks.lm.LMRun.train_step`` and is evaluated by
``rnnkit.tasks.lm.evaluate_ids``; torch's evaluation reads the validation text in the same
streams and windows under ``torch.no_grad()``.

Each library trains for a wall-clock budget (``--minutes``), one after the other in one
process. Every ``--eval-every-seconds`` of training the clock stops, the validation bits per
character are measured, and the point (training seconds, tokens seen, valid bpc) is recorded;
evaluation time never counts as training time. rnnkit runs under its thread policy, as the
command does (``rnnkit.threads``: one BLAS thread, the compiled kernels on the cores the load
leaves free), on its default backend; torch at its default threads. The header prints them.

The table reports valid bpc at each quarter of the budget, tokens/s, bpc at equal tokens
(both curves interpolated, in log tokens, at the token count the slower library reached) and at equal time
(the final points). Results go to ``benchmarks/results/lm_shakespeare.json`` with a plot
``lm_shakespeare.png``.

Run from the repository root (about 2 × --minutes plus evaluations):
    python benchmarks/bench_lm.py --minutes 20
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import common  # noqa: F401  (first: starts rnnkit's kernels before torch; see there)
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench_core import machine_info, print_header  # this folder is on sys.path when run as a script
from common import git_commit
from rnnkit.threads import apply_thread_policy
from rnnkit.data import StreamBatches, make_tokenizer, shakespeare_corpus, split_contiguous
from rnnkit.models.language_model import LanguageModel
from rnnkit.nn import Adam, clip_grad_norm_, no_grad
from rnnkit.tasks.lm import LMRun, evaluate_ids

RESULTS = Path(__file__).resolve().parent / "results" / "lm_shakespeare.json"
LIBRARIES = ("rnnkit", "torch")


@dataclass(frozen=True)
class Config:
    embed: int = 64
    hidden: int = 256
    layers: int = 2
    batch_size: int = 32
    seq_len: int = 100
    lr: float = 2e-3
    clip: float = 5.0
    valid_fraction: float = 0.05
    seed: int = 0
    minutes: float = 20.0
    tokens: int = 0  # 0: no cap
    eval_every_seconds: float = 60.0


# ---- data and models ------------------------------------------------------------------------------


def load_data(cfg: Config) -> tuple[int, np.ndarray, np.ndarray]:
    """(vocabulary size, training ids, validation ids), split as rnnkit's lm task splits them."""
    text = shakespeare_corpus()
    tokenizer = make_tokenizer("char", split_contiguous(text, cfg.valid_fraction)[0])
    train, valid = split_contiguous(tokenizer.encode(text), cfg.valid_fraction)
    return len(tokenizer), train, valid


class TorchLM(nn.Module):
    """rnnkit's LanguageModel in torch, with the same parameter names."""

    def __init__(self, vocab: int, embed: int, hidden: int, layers: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, layers, batch_first=False)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids: torch.Tensor, state=None):
        """ids: (T, B) → logits (T, B, V) and the final (h, c), each (layers, B, hidden)."""
        out, state = self.rnn(self.embedding(ids), state)
        return self.head(out), state


def build_models(cfg: Config, vocab: int) -> tuple[LanguageModel, TorchLM]:
    ours = LanguageModel(vocab, cfg.embed, cfg.hidden, cfg.layers, "lstm", dropout=0.0, rng=np.random.default_rng(cfg.seed))
    ref = TorchLM(vocab, cfg.embed, cfg.hidden, cfg.layers)
    weights = ours.state_dict()
    if set(weights) != set(ref.state_dict()):
        raise RuntimeError(f"parameter names differ: rnnkit {sorted(weights)}, torch {sorted(ref.state_dict())}")
    ref.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
    return ours, ref


def initial_logit_diff(ours: LanguageModel, ref: TorchLM, batches: StreamBatches) -> float:
    """max |logits_rnnkit − logits_torch| on the first training window: the two models are one."""
    x = batches.window(0).x
    with no_grad():
        a, _ = ours(x)
    with torch.no_grad():
        b, _ = ref(torch.tensor(x))
    return float(np.abs(a - b.numpy()).max())


# ---- the two trainers, each one step and one evaluation --------------------------------------------


class RnnkitTrainer:
    """rnnkit's own training step (LMRun, as the trainer runs it) and its evaluation."""

    def __init__(self, model: LanguageModel, batches: StreamBatches, valid: np.ndarray, cfg: Config):
        self.model, self.valid, self.cfg = model, valid, cfg
        self.run = LMRun(model, batches, {None: valid}, cfg.batch_size, cfg.seq_len, tokenizer=None)  # no samples here
        self.params = model.parameters()
        self.optimizer = Adam(self.params, lr=cfg.lr)

    def step(self) -> tuple[float, int]:
        self.model.train()
        self.optimizer.zero_grad()
        loss, n, _ = self.run.train_step()
        clip_grad_norm_(self.params, self.cfg.clip)
        self.optimizer.step()
        return float(loss), n

    def valid_nats(self) -> float:
        return evaluate_ids(self.model, self.valid, self.cfg.batch_size, self.cfg.seq_len)[0]


class TorchTrainer:
    """The same step in torch: state detached at the window edge, reset at each new epoch."""

    def __init__(self, model: TorchLM, batches: StreamBatches, valid: np.ndarray, cfg: Config):
        self.model, self.batches, self.valid, self.cfg = model, batches, valid, cfg
        self.params = list(model.parameters())
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr)
        self.state = None

    def step(self) -> tuple[float, int]:
        batch = self.batches.next()
        if batch.reset:
            self.state = None
        self.model.train()
        self.optimizer.zero_grad()
        logits, state = self.model(torch.tensor(batch.x), self.state)  # a copy: batches are read-only views
        self.state = tuple(s.detach() for s in state)
        y = torch.tensor(batch.y)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, self.cfg.clip)
        self.optimizer.step()
        return loss.item(), y.numel()

    def valid_nats(self) -> float:
        """evaluate_ids's layout: ``batch`` contiguous streams, windows of seq_len, state carried."""
        ids = self.valid
        batch = max(1, min(self.cfg.batch_size, (len(ids) - 1) // 2))
        n = (len(ids) - 1) // batch
        x_all = torch.from_numpy(np.ascontiguousarray(ids[: n * batch].reshape(batch, n).T))
        y_all = torch.from_numpy(np.ascontiguousarray(ids[1 : n * batch + 1].reshape(batch, n).T))
        total, state = 0.0, None
        self.model.eval()
        with torch.no_grad():
            for p in range(0, n, self.cfg.seq_len):
                logits, state = self.model(x_all[p : p + self.cfg.seq_len], state)
                y = y_all[p : p + self.cfg.seq_len]
                total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
        return total / (n * batch)


# ---- the race -------------------------------------------------------------------------------------


def train_for_budget(name: str, trainer, cfg: Config) -> dict:
    """Train until the budget; evaluate every eval_every_seconds with the clock stopped."""
    budget, cap = cfg.minutes * 60.0, cfg.tokens or math.inf
    points: list[dict] = []
    elapsed, tokens, steps, loss_sum, loss_n = 0.0, 0, 0, 0.0, 0

    def record() -> None:
        t0 = time.perf_counter()
        nats = trainer.valid_nats()
        eval_s = time.perf_counter() - t0
        point = {"train_seconds": elapsed, "tokens": tokens, "steps": steps, "valid_nats": nats,
                 "valid_bpc": nats / math.log(2), "train_bpc": loss_sum / max(loss_n, 1) / math.log(2) if loss_n else None,
                 "eval_seconds": eval_s,
                 "load_average_1min": os.getloadavg()[0]}  # this run counts ~2; more means something else ran
        points.append(point)
        rate = tokens / elapsed if elapsed else 0.0
        train = f"{point['train_bpc']:.4f}" if point["train_bpc"] is not None else "  —   "
        print(f"  {name:<6} {elapsed / 60:6.2f} min {tokens / 1e6:8.3f} M tokens {rate:8.0f} tok/s  "
              f"train bpc {train}  valid bpc {point['valid_bpc']:.4f}  (eval {eval_s:.1f} s)", flush=True)

    record()  # the starting point, identical weights: the two evaluations should agree
    next_eval = cfg.eval_every_seconds
    while elapsed < budget and tokens < cap:
        start = time.perf_counter()
        while True:
            loss, n = trainer.step()
            steps, tokens = steps + 1, tokens + n
            loss_sum, loss_n = loss_sum + loss, loss_n + 1
            now = elapsed + time.perf_counter() - start
            if now >= next_eval or now >= budget or tokens >= cap:
                break
        elapsed = now
        if not math.isfinite(loss):
            raise RuntimeError(f"{name}: non-finite training loss at step {steps}")
        record()
        loss_sum, loss_n = 0.0, 0
        while next_eval <= elapsed:
            next_eval += cfg.eval_every_seconds
    return {"points": points, "train_seconds": elapsed, "tokens": tokens, "steps": steps,
            "tokens_per_second": tokens / elapsed if elapsed else 0.0,
            "final_valid_bpc": points[-1]["valid_bpc"]}


# ---- reading the curves -----------------------------------------------------------------------------


def bpc_at(result: dict, key: str, value: float) -> float | None:
    """The curve's valid bpc at ``value`` of ``key`` (train_seconds or tokens); None beyond the last point.

    Interpolated linearly in log(key) between the evaluated points after the start, where
    learning curves are nearly straight (linear in key itself would overstate the loss of the
    library with the more widely spaced points), and linearly from the starting point.
    """
    xs = np.array([p[key] for p in result["points"]], dtype=float)
    ys = np.array([p["valid_bpc"] for p in result["points"]], dtype=float)
    if value > xs[-1] * (1 + 1e-9):
        return None
    if len(xs) > 1 and value >= xs[1] > 0:
        return float(np.interp(np.log(value), np.log(xs[1:]), ys[1:]))
    return float(np.interp(value, xs, ys))


def summarise(results: dict, cfg: Config) -> dict:
    marks = [cfg.minutes * k / 4 for k in (1, 2, 3, 4)]
    equal_tokens = min(r["tokens"] for r in results.values())
    summary = {
        "minutes_marks": marks,
        "bpc_at_minutes": {lib: [bpc_at(r, "train_seconds", m * 60) for m in marks] for lib, r in results.items()},
        "tokens_per_second": {lib: r["tokens_per_second"] for lib, r in results.items()},
        "equal_tokens": equal_tokens,
        "bpc_at_equal_tokens": {lib: bpc_at(r, "tokens", equal_tokens) for lib, r in results.items()},
        "bpc_at_equal_time": {lib: r["final_valid_bpc"] for lib, r in results.items()},
        "train_seconds": {lib: r["train_seconds"] for lib, r in results.items()},
    }
    return summary


def print_table(summary: dict) -> None:
    libs = list(summary["tokens_per_second"])
    fmt = lambda v: f"{v:.4f}" if v is not None else "—"  # noqa: E731
    width = 12
    print("\nvalidation bits per character (lower is better)")
    print(f"{'':<26}" + "".join(f"{lib:>{width}}" for lib in libs))
    for i, m in enumerate(summary["minutes_marks"]):
        print(f"{f'bpc at {m:g} min':<26}" + "".join(f"{fmt(summary['bpc_at_minutes'][lib][i]):>{width}}" for lib in libs))
    print(f"{'tokens/s':<26}" + "".join(f"{summary['tokens_per_second'][lib]:>{width}.0f}" for lib in libs))
    print(f"{'bpc at equal time (final)':<26}" + "".join(f"{fmt(summary['bpc_at_equal_time'][lib]):>{width}}" for lib in libs))
    label = f"bpc at {summary['equal_tokens'] / 1e6:.2f} M tokens"
    print(f"{label:<26}" + "".join(f"{fmt(summary['bpc_at_equal_tokens'][lib]):>{width}}" for lib in libs))
    ours, ref = summary["bpc_at_equal_time"].get("rnnkit"), summary["bpc_at_equal_time"].get("torch")
    if ours is not None and ref is not None:
        speed = summary["tokens_per_second"]["rnnkit"] / summary["tokens_per_second"]["torch"]
        print(f"\nrnnkit − torch: {ours - ref:+.4f} bpc at equal time, "
              f"{summary['bpc_at_equal_tokens']['rnnkit'] - summary['bpc_at_equal_tokens']['torch']:+.4f} at equal tokens; "
              f"rnnkit trains at {speed:.2f}× torch's tokens/s")


def plot(results: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for lib, r in results.items():
        bpc = [p["valid_bpc"] for p in r["points"]]
        left.plot([p["train_seconds"] / 60 for p in r["points"]], bpc, marker=".", label=lib)
        right.plot([p["tokens"] / 1e6 for p in r["points"]], bpc, marker=".", label=lib)
    left.set(xlabel="training time (minutes, evaluation excluded)", ylabel="validation bits per character")
    right.set(xlabel="training tokens (millions)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    lows = [p["valid_bpc"] for r in results.values() for p in r["points"][1:]]
    if lows:  # the untrained point (~log2 V) would flatten the interesting part
        left.set_ylim(min(lows) - 0.05, max(lows) + 0.1)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- the command line -------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description="Train the same character LSTM language model on Shakespeare with rnnkit and with torch "
        "(same data, initial weights, batches, optimizer and wall-clock budget), one after the other, and "
        "compare validation bits per character at equal time and at equal tokens.",
    )
    parser.add_argument("--minutes", type=float, default=20.0, help="training time of each library, evaluation excluded (default 20)")
    parser.add_argument("--tokens", type=int, default=0, help="also stop each library after this many training tokens (default 0: no cap)")
    parser.add_argument("--eval-every-seconds", type=float, default=60.0,
                        help="evaluate the validation split every this many seconds of training (default 60)")
    parser.add_argument("--seed", type=int, default=0, help="seed of rnnkit's initial weights, copied into torch (default 0)")
    parser.add_argument("--only", choices=LIBRARIES, action="append",
                        help="train only this library (may be given twice; default both, rnnkit first)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"the JSON results; the plot goes beside it as .png (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.eval_every_seconds <= 0 or args.tokens < 0:
        parser.error("--minutes and --eval-every-seconds must be positive, --tokens not negative")
    cfg = Config(minutes=args.minutes, tokens=args.tokens, eval_every_seconds=args.eval_every_seconds, seed=args.seed)
    libraries = [lib for lib in LIBRARIES if lib in (args.only or LIBRARIES)]

    apply_thread_policy()
    info = machine_info()
    print_header(info)
    vocab, train_ids, valid_ids = load_data(cfg)
    print(f"data: Shakespeare, {len(train_ids):,} training and {len(valid_ids):,} validation characters, vocabulary {vocab}")
    ours, ref = build_models(cfg, vocab)
    diff = initial_logit_diff(ours, ref, StreamBatches(train_ids, cfg.batch_size, cfg.seq_len))
    print(f"model: {ours.num_parameters():,} parameters; initial logits max|rnnkit − torch| = {diff:.1e}")
    print(f"budget: {cfg.minutes:g} min each{f', at most {cfg.tokens:,} tokens' if cfg.tokens else ''}; "
          f"evaluation every {cfg.eval_every_seconds:g} s of training\n")

    results = {}
    for lib in libraries:
        batches = StreamBatches(train_ids, cfg.batch_size, cfg.seq_len, name="training text")  # a fresh pass for each
        trainer = RnnkitTrainer(ours, batches, valid_ids, cfg) if lib == "rnnkit" else TorchTrainer(ref, batches, valid_ids, cfg)
        print(f"{lib}:", flush=True)
        results[lib] = train_for_budget(lib, trainer, cfg)

    summary = summarise(results, cfg)
    print_table(summary)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": "character LSTM language model on Shakespeare, rnnkit vs torch, equal wall-clock budget",
        "config": asdict(cfg),
        "data": {"corpus": "rnnkit.data.shakespeare_corpus()", "tokenizer": "char, fitted on the training part",
                 "vocabulary": vocab, "train_tokens": len(train_ids), "valid_tokens": len(valid_ids)},
        "model": {"architecture": f"Embedding({vocab}, {cfg.embed}) → LSTM({cfg.embed}, {cfg.hidden}, layers={cfg.layers}) → Linear({cfg.hidden}, {vocab})",
                  "parameters": ours.num_parameters(), "dropout": 0.0, "initial_logits_max_abs_diff": diff},
        "machine": info,
        "openblas_coretype": info["library_env"].get("OPENBLAS_CORETYPE"),
        "git": git_commit(),
        "order": libraries,
        "summary": summary,
        "results": results,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    png = args.out.with_suffix(".png")
    plot(results, png, f"2-layer LSTM {cfg.hidden}, char-level Shakespeare, batch {cfg.batch_size}×{cfg.seq_len}, "
                       f"{cfg.minutes:g} min each ({info['cpu_count']} CPUs)")
    print(f"\nwrote {args.out} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
