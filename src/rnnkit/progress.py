"""Progress of long operations: a tqdm bar on a terminal, otherwise a plain line every few seconds.

Training, evaluation, diagnostics, backtests, beam search over a file and data installs all
report through `Progress`, so a pipe (``2>&1 | tee log``, where tqdm would switch itself off and
leave silence), ``--quiet`` and the Python API's callbacks are handled here, once.

Callbacks (``rnnkit.train(..., callbacks=[f])``) receive each line the trainer writes to
metrics.jsonl as a dict: every ``--log-every`` steps ``{"step", "train_loss", "lr",
"grad_norm", "clipped_fraction", "tokens_per_s"}``, and at each validation ``{"step",
"valid_loss", ...}`` with the task's other metrics (a language model adds ``valid_sample``,
a generated passage).
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterable

INTERVAL_ENV = "RNNKIT_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 30.0  # a 40-minute run gives about 80 lines in a log: enough to follow, few enough to read


@dataclass(frozen=True)
class Reporting:
    """How this process (or this `rnnkit.train` call) reports progress."""

    quiet: bool = False
    callbacks: tuple[Callable[[dict], object], ...] = ()


_reporting = contextvars.ContextVar("rnnkit_reporting", default=Reporting())


@contextlib.contextmanager
def reporting(quiet: bool = False, callbacks: Iterable[Callable[[dict], object]] = ()):
    """Within this block every `Progress` is silent when ``quiet`` and passes training records to ``callbacks``."""
    token = _reporting.set(Reporting(quiet, tuple(callbacks)))
    try:
        yield
    finally:
        _reporting.reset(token)


def on_terminal(stream) -> bool:
    """True when ``stream`` is a terminal with a width (a 0-column one cannot draw a bar)."""
    try:
        return stream.isatty() and os.get_terminal_size(stream.fileno()).columns > 0
    except (AttributeError, OSError, ValueError):
        return False


def interval_seconds() -> float:
    """Seconds between plain progress lines: $RNNKIT_PROGRESS_SECONDS, or 30."""
    text = os.environ.get(INTERVAL_ENV, "")
    try:
        value = float(text)
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value >= 0 and math.isfinite(value) else DEFAULT_INTERVAL


def duration(seconds: float) -> str:
    """1:02 or 1:02:03."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Progress of ``what`` over ``total`` units (counting from ``initial``).

    update(n) after each unit; show(**fields) sets what the line shows beside the count (loss,
    tokens/s); note(text) prints a line without breaking the bar; close() at the end (or use
    ``with``). Training adds log(record) and validated(record), which also go to the callbacks.

    An operation shorter than a second shows no bar, and one shorter than the interval no line
    (translating one sentence stays as it was); ``keep``: the bar stays on screen when done, and a
    last line is printed when not on a terminal (training's summary).
    """

    def __init__(self, what: str, total: int, initial: int = 0, unit: str = "step", quiet: bool = False,
                 keep: bool = False, stream=None):
        settings = _reporting.get()
        self.what, self.total, self.n, self.initial, self.unit = what, total, initial, initial, unit
        self.quiet, self.callbacks, self.keep = quiet or settings.quiet, settings.callbacks, keep
        self.stream = stream or sys.stderr
        self.fields: dict[str, str] = {}
        self.started = self.last_line = time.monotonic()
        self.interval = interval_seconds()
        self.bar = None
        if not self.quiet and on_terminal(self.stream):
            from tqdm.auto import tqdm  # only when a bar is drawn, so `import rnnkit` stays light

            self.bar = tqdm(total=total, initial=initial, desc=what, unit=unit, dynamic_ncols=True, leave=keep,
                            delay=1.0, file=self.stream, disable=False)

    @classmethod
    def over(cls, items, what: str, unit: str = "step"):
        """Yield each of ``items`` (a sized collection), counting it done when the loop comes back."""
        with cls(what, len(items), unit=unit) as progress:
            for item in items:
                yield item
                progress.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.quiet and time.monotonic() - self.last_line >= self.interval:
            self._print_line()

    def show(self, **fields: str) -> None:
        self.fields.update(fields)
        if self.bar is not None:
            self.bar.set_postfix(self.fields, refresh=False)

    def note(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def log(self, record: dict) -> None:
        """A logged training step (a metrics.jsonl line): shown on the line, passed to the callbacks."""
        self.show(**{"loss": f"{record['train_loss']:.3f}", "tokens/s": f"{record['tokens_per_s']:,.0f}"})
        self._call_back(record)

    def validated(self, record: dict) -> None:
        """A validation record (``valid_*`` keys): its metrics, and a sample if it has one, under the line."""
        shown = ", ".join(f"{k[6:].replace('_', ' ')} {v:.4f}" for k, v in record.items()
                          if k.startswith("valid_") and isinstance(v, float))
        text = f"validation at step {record['step']}: {shown}"
        if isinstance(record.get("valid_sample"), str):
            text += "\n" + "\n".join("    " + line for line in record["valid_sample"].splitlines())
        self.note(text)
        self._call_back(record)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif not self.quiet and self.keep and self.n > self.initial:
            self._print_line()
        self.quiet = True  # closed: nothing more

    def _call_back(self, record: dict) -> None:
        for callback in self.callbacks:
            callback(dict(record))

    def _print_line(self) -> None:
        self.last_line = now = time.monotonic()
        elapsed = now - self.started
        parts = [f"{self.what}: {self.n:,}/{self.total:,} {self.unit}s ({100 * self.n / max(self.total, 1):.0f}%)"]
        parts += [f"{k} {v}" for k, v in self.fields.items()]
        parts.append(f"{duration(elapsed)} elapsed")
        done = self.n - self.initial
        if 0 < done and self.n < self.total:
            parts.append(f"ETA {duration(elapsed / done * (self.total - self.n))}")
        print(", ".join(parts), file=self.stream, flush=True)
