"""What the evaluation scripts share: the facts recorded with every result, atomic JSON, summary
statistics, and `--set KEY=VALUE` training options."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path

import numpy as np

import rnnkit
from rnnkit.nn import backend

# The benchmarks that time torch import this module first, so that rnnkit's compiled kernels start
# numba's OpenMP threads before torch loads: the two libraries' libgomp.so.1 are one library once
# loaded, started with the settings of whichever came first, and rnnkit's (a short spin after each
# parallel region, nn/kernels) is what `rnnkit` gives its users. Measured: torch's own LM step did not
# change with it (median 244 against 248 ms, 9 runs each, idle machine).
if backend.current() == "numba":
    import rnnkit.nn.kernels  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent


def git_commit() -> dict:
    """The commit the results come from, and whether tracked files differed from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": dirty}


def machine_info(**extra) -> dict:
    """Platform, CPUs, versions, thread variables, load and niceness at the start; ``extra`` adds versions."""
    return {
        "platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
        "numpy": np.__version__, "rnnkit": rnnkit.__version__, **extra, "nice": os.nice(0),
        "thread_env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(("OMP_", "OPENBLAS_", "MKL_"))},
        "load_average_1min_at_start": os.getloadavg()[0],
    }


def write(path: Path, payload: dict) -> None:
    """JSON written to a temporary name and renamed: a killed run never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=float) + "\n")
    tmp.replace(path)


def merge(*dicts) -> dict:
    """Options: later dictionaries win."""
    out = {}
    for d in dicts:
        out.update(d)
    return out


def stats(values) -> dict:
    """Mean, sample standard deviation, min, max and count of the values that are not None."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
            "min": float(v.min()), "max": float(v.max()), "n": int(v.size)}


def parse_override(items: list[str]) -> dict:
    """KEY=VALUE options for rnnkit.train, typed by the value: int, float, true/false, else text."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise argparse.ArgumentTypeError(f"--set {item!r}: expected KEY=VALUE")
        low = value.lower()
        if low in ("true", "false"):
            out[key] = low == "true"
            continue
        for kind in (int, float):
            try:
                out[key] = kind(value)
                break
            except ValueError:
                pass
        else:
            out[key] = value
    return out


def quick_output(path: Path, default: Path, prefix: str) -> Path:
    """Where a --quick smoke test writes: ``path`` if the user chose it, else the default file's
    name in a new temporary folder, so a smoke test never replaces the measured results."""
    return Path(tempfile.mkdtemp(prefix=prefix)) / default.name if path == default else path
