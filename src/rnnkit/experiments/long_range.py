"""Long-range dependencies, synthetic by design: the adding problem and the copy task.

Adding problem (Hochreiter & Schmidhuber 1997; the set-up of Le et al. 2015): T steps of two
channels, a number in U(0, 1) and a marker; exactly two steps are marked, one in each half.
The target is the sum of the two marked numbers. Always answering 1 gives MSE 1/6 ≈ 0.167.

Copy task (Arjovsky et al. 2016): 10 symbols from an alphabet of 8, then T − 1 blanks, a
delimiter, and 10 more blanks; the model must output blanks until the delimiter and then the
10 symbols. A memoryless model that outputs blanks and then guesses has cross-entropy
10·log 8 / (T + 20).

Each model is trained for the same number of steps on fresh batches and evaluated on one fixed
held-out batch; the gradient flow ‖∂L/∂h_t‖ of the trained model shows why the ones that fail,
fail.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..models.sequence_model import CELLS, SequenceModel
from ..nn import Adam, CrossEntropyLoss, MSELoss, clip_grad_norm_
from ..nn.recurrent import RecurrentLayer
from ..nn.validation import NonFiniteError

ADDING_BASELINE = 1 / 6
COPY_SYMBOLS, COPY_ALPHABET = 10, 8


def adding_batch(rng: np.random.Generator, batch: int, T: int):
    """x: (T, B, 2) float32 [value, marker], y: (B, 1) the sum of the two marked values."""
    values = rng.uniform(0.0, 1.0, (T, batch))
    half = T // 2
    first, second = rng.integers(0, half, batch), rng.integers(half, T, batch)
    markers = np.zeros((T, batch))
    cols = np.arange(batch)
    markers[first, cols] = markers[second, cols] = 1.0
    x = np.stack([values, markers], axis=-1).astype(np.float32)
    y = (values[first, cols] + values[second, cols])[:, None].astype(np.float32)
    return x, y


def copy_batch(rng: np.random.Generator, batch: int, T: int):
    """x, y: (T + 20, B) ints. Inputs: 0 blank, 1–8 symbols, 9 the delimiter; targets 0–8."""
    n = COPY_SYMBOLS
    symbols = rng.integers(1, COPY_ALPHABET + 1, (n, batch))
    x = np.zeros((T + 2 * n, batch), dtype=np.int64)
    y = np.zeros_like(x)
    x[:n] = symbols
    x[T + n - 1] = COPY_ALPHABET + 1  # the delimiter: "now repeat them"
    y[T + n :] = symbols
    return x, y


def copy_baseline(T: int) -> float:
    return COPY_SYMBOLS * math.log(COPY_ALPHABET) / (T + 2 * COPY_SYMBOLS)


@dataclass
class ExperimentOptions:
    lengths: list[int] = field(default_factory=lambda: [50, 100, 200, 400])
    cells: list[str] = field(default_factory=lambda: list(CELLS))
    hidden: int = 128
    batch: int = 50
    steps: int = 2000
    lr: float = 1e-3
    clip: float = 1.0
    seed: int = 0
    eval_batch: int = 1000


PROBLEMS = {
    # name: (batch maker, many_to_one, input size, output size, vocab size)
    "adding": (adding_batch, True, 2, 1, 0),
    "copy": (copy_batch, False, 16, COPY_ALPHABET + 1, COPY_ALPHABET + 2),
}


def baseline(problem: str, T: int) -> float:
    return ADDING_BASELINE if problem == "adding" else copy_baseline(T)


def train_one(problem: str, cell: str, T: int, opts: ExperimentOptions, progress=None) -> dict:
    """Train one model on one length; returns its final loss, curve and gradient flow."""
    make_batch, many_to_one, input_size, output_size, vocab = PROBLEMS[problem]
    rng = np.random.default_rng([opts.seed, T])
    model = SequenceModel(input_size, opts.hidden, output_size, cell, many_to_one=many_to_one, vocab_size=vocab,
                          rng=np.random.default_rng([opts.seed, T, CELLS.index(cell)]))
    loss_fn = MSELoss() if problem == "adding" else CrossEntropyLoss()
    optimizer = Adam(model.parameters(), lr=opts.lr)
    curve, started = [], time.perf_counter()
    diverged = False
    for step in range(1, opts.steps + 1):
        x, y = make_batch(rng, opts.batch, T)
        loss = _loss(model, loss_fn, x, y)
        if not math.isfinite(loss):  # the run diverged: recorded as such, and the next model trains
            curve.append((step, float("nan")))
            diverged = True
            break
        optimizer.zero_grad()
        model.backward(loss_fn.backward())
        if opts.clip:  # 0: no clipping (clipping to a norm of 0 would stop all learning)
            clip_grad_norm_(model.parameters(), opts.clip)
        optimizer.step()
        if step % max(1, opts.steps // 50) == 0:
            curve.append((step, float(loss)))
            if progress:
                progress(f"{problem} T={T} {cell}: step {step}/{opts.steps} loss {loss:.4f}")
    seconds = time.perf_counter() - started

    x, y = make_batch(np.random.default_rng([opts.seed, T, 999]), opts.eval_batch, T)  # the same held-out batch for every model
    recording = isinstance(model.rnn, RecurrentLayer) and not diverged
    model.rnn.record_grad_norms = recording
    test_loss = float("nan") if diverged else _loss(model, loss_fn, x, y)
    flow = None
    if recording and math.isfinite(test_loss):
        model.backward(loss_fn.backward())
        flow = model.rnn.grad_norms[0].tolist()
    base = baseline(problem, T)
    return {"problem": problem, "cell": cell, "T": T, "test_loss": test_loss, "baseline": base,
            "beats_baseline": bool(math.isfinite(test_loss) and test_loss < 0.5 * base),
            "train_seconds": seconds, "curve": curve, "grad_flow": flow}


def _loss(model, loss_fn, x, y) -> float:
    """The loss, or NaN when the weights have overflowed (the forward pass meets inf or NaN)."""
    try:
        return float(loss_fn(model(x), y))
    except NonFiniteError:
        model.clear_caches()  # no backward follows
        return float("nan")


def run(problem: str, opts: ExperimentOptions, progress=None) -> dict:
    if problem not in PROBLEMS:
        raise ValueError(f"problem: expected one of {sorted(PROBLEMS)}, got {problem!r}")
    if min(opts.lengths) < 2:
        raise ValueError(f"--lengths: every length must be >= 2 (one marked step in each half), got {min(opts.lengths)}")
    bad = [c for c in opts.cells if c not in CELLS]
    if bad:
        raise ValueError(f"--cells: unknown {bad}; choose from {', '.join(CELLS)}")
    results = [train_one(problem, cell, T, opts, progress) for T in opts.lengths for cell in opts.cells]
    return {"problem": problem, "options": asdict(opts), "results": results}


def format_table(report: dict) -> str:
    """Final test loss per model (rows) and length (columns); * marks a model that beat the baseline."""
    rows = report["results"]
    lengths = sorted({r["T"] for r in rows})
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    unit = "MSE" if report["problem"] == "adding" else "cross-entropy"
    lines = [f"{report['problem']} problem: test {unit} after {report['options']['steps']} steps "
             f"(* = below half the baseline)",
             f"{'model':<10}" + "".join(f"{'T=' + str(T):>12}" for T in lengths)]
    lines.append(f"{'baseline':<10}" + "".join(f"{baseline(report['problem'], T):>12.4f}" for T in lengths))
    for cell in cells:
        cols = []
        for T in lengths:
            r = next(r for r in rows if r["cell"] == cell and r["T"] == T)
            cols.append(f"{r['test_loss']:>11.4f}{'*' if r['beats_baseline'] else ' '}")
        lines.append(f"{cell:<10}" + "".join(cols))
    return "\n".join(lines)


def plot_gradient_flow(report: dict, path, T: int | None = None):
    """‖∂L/∂h_t‖ against t for every model at one length (the longest by default), log scale."""
    from ..diagnostics import plot_gradient_flow as plot

    rows = [r for r in report["results"] if r["grad_flow"] is not None]
    T = T or max(r["T"] for r in rows)
    rows = [r for r in rows if r["T"] == T]
    norms = np.array([r["grad_flow"] for r in rows])
    return plot(norms, [r["cell"] for r in rows], path, f"{report['problem']} problem, T={T}: gradient flow after training")
