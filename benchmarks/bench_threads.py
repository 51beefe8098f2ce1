"""The main job's speed with the default thread policy against one thread, on an idle machine
and beside competing processes that this benchmark starts itself.

Each run is ``rnnkit train lm`` (the README's first command: 2-layer character LSTM-256 on
Shakespeare) for ``--steps`` steps in a fresh process, with either rnnkit's default threads
(BLAS one; the compiled kernels automatic: the cores the load leaves free) or ``--threads 1``;
the speed is the trainer's tokens/s at the last step (all steps, loading the compiled kernels
included; reading the data is not). The competing processes are busy loops (``--busy``, 3 by
default, on this 2-core machine: load 3–4). The issue's goal: beside them, the default keeps at
least 0.7× the tokens/s of one thread; alone, it uses the cores.

Run from the repository root:  python benchmarks/bench_threads.py [--steps 40] [--busy 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import git_commit, machine_info, write  # this folder is on sys.path when run as a script

RESULTS = Path(__file__).resolve().parent / "results" / "threads.json"
BUSY_LOOP = "while True: pass"


def train(steps: int, threads: str | None, workdir: Path) -> dict:
    """One `rnnkit train lm` run: its tokens/s, wall time and the load before and after."""
    out = workdir / f"lm-{threads or 'default'}-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "rnnkit.cli.main", *(["--threads", threads] if threads else []), "--quiet",
               "train", "lm", "--out", str(out), "--steps", str(steps), "--valid-every", str(steps * 10), "--log-every", "5"]
    env = {k: v for k, v in os.environ.items() if k not in ("RNNKIT_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in records if "tokens_per_s" in r]
    return {"threads": threads or "default", "tokens_per_s": speeds[-1], "wall_s": wall,
            "load_before": load_before, "load_after": os.getloadavg()[0]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (default 40)")
    parser.add_argument("--busy", type=int, default=3, help="competing busy-loop processes in the busy runs (default 3)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    info = machine_info(**git_commit())
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for busy in (0, args.busy):
            loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(busy)]
            try:
                time.sleep(5 if busy else 0)  # let the load average see them
                for threads in (None, "1"):
                    run = dict(train(args.steps, threads, Path(tmp)), busy_processes=busy)
                    runs.append(run)
                    print(f"busy {busy}  threads {run['threads']:<8} {run['tokens_per_s']:>8.0f} tokens/s  "
                          f"({run['wall_s']:.0f} s, load {run['load_before']:.1f} → {run['load_after']:.1f})", flush=True)
            finally:
                for p in loops:
                    p.kill()
                    p.wait()
    speed = {(r["busy_processes"], r["threads"]): r["tokens_per_s"] for r in runs}
    ratios = {"idle_default_over_one_thread": speed[(0, "default")] / speed[(0, "1")],
              "busy_default_over_one_thread": speed[(args.busy, "default")] / speed[(args.busy, "1")]}
    print(f"default / one thread: idle {ratios['idle_default_over_one_thread']:.2f}, "
          f"beside {args.busy} busy processes {ratios['busy_default_over_one_thread']:.2f} (goal >= 0.7)")
    write(args.out, {"machine": info, "options": vars(args) | {"out": str(args.out)}, "runs": runs, "ratios": ratios})
    return 0


if __name__ == "__main__":
    sys.exit(main())
