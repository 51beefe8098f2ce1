"""Data-parallel training on MPI, measured and modelled (issue 18; the write-up is docs/scaling.md).

    python benchmarks/bench_parallel.py allreduce          # α + β·bytes of one Allreduce, 2 ranks here
    python benchmarks/bench_parallel.py lm --minutes 3     # the main job: 1 process × 2 threads
                                                           #   against 2 processes × 1 thread
    python benchmarks/bench_parallel.py compute            # a step's compute against the per-rank batch
                                                           #   (lm and tag, one thread)
    python benchmarks/bench_parallel.py model              # throughput for 2–64 machines, from the above
    python benchmarks/bench_parallel.py lr --steps 150     # the learning-rate rule at K = 4 against K = 1

Every part adds its section to benchmarks/results/parallel.json (with the load average at its
start and end); `model` reads the others'. Run the timed parts on an otherwise idle machine, one
at a time. The runs go through the command (`rnnkit train …`, `mpiexec -n K rnnkit train …`) as a
user runs them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import git_commit, machine_info, write

RESULTS = Path(__file__).resolve().parent / "results" / "parallel.json"
RNNKIT = [sys.executable, "-m", "rnnkit"]
# the mpiexec of the mpich wheel beside this Python (the [mpi] extra), else the one on PATH
MPIEXEC = next((str(p) for p in [Path(sys.executable).parent / "mpiexec"] if p.exists()), None) or shutil.which("mpiexec")
#: the networks the model assumes: bandwidth in bytes/s, and a message's latency over the wire
#: added to the software's own (measured here through shared memory): TCP over 10 Gbit Ethernet,
#: RDMA over 100 Gbit InfiniBand; typical figures, not measured here (no second machine)
NETWORKS = {"10 Gbit/s Ethernet (TCP)": (10e9 / 8, 25e-6), "100 Gbit/s InfiniBand (RDMA)": (100e9 / 8, 2e-6)}
MACHINES = (1, 2, 4, 8, 16, 32, 64)


def load() -> float:
    return os.getloadavg()[0]


def save(section: str, payload: dict) -> None:
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[section] = dict(payload, machine=machine_info(), **git_commit())
    write(RESULTS, results)


# ---- allreduce ------------------------------------------------------------------------------------
ALLREDUCE_JOB = r"""
import json, sys, time
import numpy as np
from mpi4py import MPI
comm = MPI.COMM_WORLD
out = []
for power in range(0, 25, 2):  # 4 bytes to 64 MiB of float32
    buffer = np.ones(2**power, np.float32)
    repeats = max(5, min(300, 2**22 // max(buffer.size, 1)))
    for _ in range(3):
        comm.Allreduce(MPI.IN_PLACE, buffer)
    times = []
    for _ in range(repeats):
        comm.Barrier()
        started = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buffer)
        times.append(time.perf_counter() - started)
    out.append((buffer.nbytes, float(np.median(times))))
if comm.rank == 0:
    print(json.dumps(out))
"""


def allreduce(args) -> None:
    before = load()
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(ALLREDUCE_JOB)
    try:
        result = subprocess.run([MPIEXEC, "-n", str(args.processes), sys.executable, f.name], capture_output=True,
                                text=True, check=True, env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    finally:
        os.unlink(f.name)
    points = json.loads(result.stdout.strip().splitlines()[-1])
    nbytes, seconds = np.array(points).T
    beta, alpha = np.polyfit(nbytes, seconds, 1, w=1 / seconds)  # t = α + β·bytes, least relative squares
    small = float(np.median(seconds[nbytes <= 1024]))
    print(f"{'bytes':>10} {'median µs':>10}")
    for b, s in points:
        print(f"{int(b):>10} {s * 1e6:>10.1f}")
    print(f"α = {small * 1e6:.1f} µs (median of messages ≤ 1 KiB; fit: {alpha * 1e6:.1f} µs), "
          f"1/β = {1 / beta / 1e9:.2f} GB/s; load {before:.2f} → {load():.2f}")
    save("allreduce", {"processes": args.processes, "points": points, "alpha_s": small, "alpha_fit_s": float(alpha),
                       "beta_s_per_byte": float(beta), "load": [before, load()]})


# ---- the main job: 1 × 2 threads against 2 × 1 -----------------------------------------------------
def metrics(out: Path) -> list[dict]:
    """A model directory's metrics.jsonl, a record a line."""
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def bits_per_char(record: dict) -> float:
    """A validation record's bits per character (a character model's bits per token)."""
    return record.get("valid_bits_per_char", record["valid_bits_per_token"])


def _train(out: Path, processes: int, threads: int | None, seconds: float, extra: list[str]) -> dict:
    """`rnnkit train lm` (its defaults: the main job) for ``seconds``; threads None: the thread
    policy's own choice (BLAS 1; the kernels on the free cores, or a share of them per process)."""
    command = [*RNNKIT, *(["--threads", str(threads)] if threads else []), "train", "lm", "--out", str(out),
               "--time-limit", str(seconds), "--valid-every", "100000", "--log-every", "20", "--quiet", "--overwrite", *extra]
    if processes > 1:
        command = [MPIEXEC, "-n", str(processes), *command]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    records = metrics(out)
    steps = [r for r in records if "train_loss" in r]
    valid = [r for r in records if "valid_loss" in r][-1]
    return {"processes": processes, "threads": threads or "policy", "steps": steps[-1]["step"],
            "tokens_per_s": steps[-1]["tokens_per_s"], "valid_bits_per_char": bits_per_char(valid),
            "wall_s": time.perf_counter() - started}


def lm(args) -> None:
    """The main job on this machine's two cores: one process (the thread policy: BLAS 1, the
    compiled kernels on both cores; or --threads 2: BLAS and kernels 2) against two processes of
    one thread each, for the same wall time."""
    configs = {"1 process, policy (kernels on 2 cores)": (1, None), "1 process, --threads 2": (1, 2),
               "2 processes × 1 thread": (2, None)}
    if args.only:
        configs = {label: c for label, c in configs.items() if label.startswith(tuple(args.only))}
    rows = {}
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-parallel-") as tmp:
        for label, (processes, threads) in configs.items():
            before = load()
            row = _train(Path(tmp) / "m", processes, threads, args.minutes * 60, [])
            row["load"] = [before, load()]
            rows[label] = row
            print(f"{label:40} {row['steps']} steps, {row['tokens_per_s']:,.0f} tokens/s, valid "
                  f"{row['valid_bits_per_char']:.4f} bpc at {args.minutes} min; load {before:.2f} → {load():.2f}")
    earlier = json.loads(RESULTS.read_text()).get("lm", {}).get("runs", {}) if RESULTS.exists() else {}
    save("lm", {"minutes": args.minutes, "runs": {**earlier, **rows}})


# ---- compute per step, against the per-rank batch ----------------------------------------------------
def compute(args) -> None:
    """Seconds per optimizer step of one process (one thread) at each per-rank batch size."""
    from rnnkit.tasks.base import get_task
    from rnnkit.threads import apply_thread_policy
    from rnnkit.training.trainer import TrainingOptions, make_optimizer

    apply_thread_policy(1)
    cases = {"lm": {}, "tag": {"data": "peoples-daily-ner"}}  # lm: Shakespeare, its default
    out = {}
    before = load()
    for name, given in cases.items():
        task = get_task(name)
        out[name] = {}
        for batch in args.batches:
            options = task.Options(**given, batch_size=batch)
            training = TrainingOptions()
            model, run, _ = task.build(options, training, Path(tempfile.gettempdir()), quiet=True)
            optimizer, _ = make_optimizer(model.parameters(), training)
            times, tokens = [], []
            for step in range(args.repeats + 2):
                started = time.perf_counter()
                model.train()
                optimizer.zero_grad()
                _, n_tokens, _ = run.train_step()
                optimizer.step()
                if step >= 2:  # the first steps compile and warm the caches
                    times.append(time.perf_counter() - started)
                    tokens.append(n_tokens)
            grad_bytes = sum(p.data.nbytes for p in model.parameters())
            out[name][batch] = {"step_s": float(np.median(times)), "tokens_per_step": float(np.mean(tokens)),
                                "gradient_bytes": grad_bytes}
            print(f"{name} batch {batch:>3}: {np.median(times) * 1e3:8.1f} ms a step, {np.mean(tokens):8.0f} tokens, "
                  f"gradient {grad_bytes / 2**20:.2f} MiB")
    save("compute", {"per_rank_batch": out, "load": [before, load()]})


# ---- the model -------------------------------------------------------------------------------------
def ring_allreduce_s(machines: int, nbytes: float, bandwidth: float, latency: float) -> float:
    """A ring allreduce (MPICH's and NCCL's for large messages): 2(K−1) steps, each moving
    nbytes/K and paying one latency; 0 for one machine."""
    if machines == 1:
        return 0.0
    return 2 * (machines - 1) * latency + 2 * (machines - 1) / machines * nbytes / bandwidth


def model(args) -> None:
    """Tokens/s of K machines, from each per-rank batch's measured rate (tokens/s of one process,
    one thread: a step's token count varies with the sentences drawn, the rate much less) and the
    ring allreduce of the gradient."""
    results = json.loads(RESULTS.read_text())
    alpha = results["allreduce"]["alpha_s"]
    table = {}
    for name, per_batch in results["compute"]["per_rank_batch"].items():
        per_batch = {int(b): v for b, v in per_batch.items()}
        rate = {b: v["tokens_per_step"] / v["step_s"] for b, v in per_batch.items()}  # one process's tokens/s
        largest = max(per_batch)
        tokens = per_batch[largest]["tokens_per_step"] / largest  # a row's tokens, on average
        nbytes = per_batch[largest]["gradient_bytes"]
        for network, (bandwidth, wire) in NETWORKS.items():
            rows = []
            for k in MACHINES:
                reduce_s = ring_allreduce_s(k, nbytes, bandwidth, alpha + wire)
                # weak: each machine a batch of `largest` rows; strong: the `largest` rows shared K ways
                weak_step = largest * tokens / rate[largest] + reduce_s
                share = largest // k
                strong_step = share * tokens / rate[share] + reduce_s if share in rate else None
                rows.append({"machines": k, "allreduce_s": reduce_s,
                             "weak_tokens_per_s": k * largest * tokens / weak_step,
                             "weak_efficiency": largest * tokens / rate[largest] / weak_step,
                             "strong_tokens_per_s": largest * tokens / strong_step if strong_step else None})
            table[f"{name}, {network}"] = {"gradient_bytes": nbytes, "batch": largest, "rows": rows}
            print(f"\n{name} (gradient {nbytes / 2**20:.2f} MiB, batch {largest} per machine), {network}")
            print(f"{'machines':>8} {'allreduce ms':>12} {'weak tok/s':>12} {'efficiency':>10} {'strong tok/s':>12}")
            for r in rows:
                strong = f"{r['strong_tokens_per_s']:12,.0f}" if r["strong_tokens_per_s"] else f"{'—':>12}"
                print(f"{r['machines']:>8} {r['allreduce_s'] * 1e3:12.2f} {r['weak_tokens_per_s']:12,.0f} "
                      f"{r['weak_efficiency']:10.2f} {strong}")
    save("model", {"networks": {k: {"bandwidth_bytes_per_s": b, "wire_latency_s": w} for k, (b, w) in NETWORKS.items()},
                   "alpha_s": alpha, "tables": table})


# ---- the learning-rate rule -----------------------------------------------------------------------------
def lr(args) -> None:
    """The LM at K = 1 (batch 32, lr 2e-3) against K = 4 with each machine keeping batch 32 (global
    128) and the learning rate unchanged, scaled by √K (the rule rnnkit recommends for Adam), or by K;
    equal steps (equal wall time on K machines)."""
    base = ["--steps", str(args.steps), "--valid-every", str(args.steps), "--log-every", "10", "--quiet", "--overwrite",
            "--hidden", str(args.hidden)]  # Shakespeare, the default data
    runs = {"K=1, batch 32, lr 2e-3": (1, 32, 2e-3), "K=4, batch 128, lr 2e-3 (unchanged)": (4, 128, 2e-3),
            "K=4, batch 128, lr 4e-3 (×√K)": (4, 128, 4e-3), "K=4, batch 128, lr 8e-3 (×K)": (4, 128, 8e-3),
            # the same rates at K = 1: is the gain the batch's, or the rate's alone?
            "K=1, batch 32, lr 4e-3": (1, 32, 4e-3), "K=1, batch 32, lr 8e-3": (1, 32, 8e-3)}
    if args.only:
        runs = {label: run for label, run in runs.items() if label.startswith(tuple(args.only))}
    rows = {}
    if args.confirm:  # the √K rule again on 4 real processes: the same figure as one process
        runs["K=4 on 4 processes, batch 128, lr 4e-3 (×√K)"] = (4, 128, 4e-3)
    with tempfile.TemporaryDirectory(prefix="rnnkit-bench-lr-") as tmp:
        for label, (k, batch, rate) in runs.items():
            out = Path(tmp) / "m"
            before = load()
            command = [*RNNKIT, "--threads", "1", "train", "lm", "--out", str(out), *base, "--batch-size", str(batch),
                       "--lr", str(rate), "--warmup", str(args.steps // 10)]
            # one process computes what K do (tests/training/test_data_parallel.py), in less time here
            processes = k if "processes" in label else 1
            if processes > 1:
                command = [MPIEXEC, "-n", str(processes), *command]
            started = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True, text=True)
            valid = [r for r in metrics(out) if "valid_loss" in r][-1]
            rows[label] = {"machines": k, "processes_used": processes, "batch": batch, "lr": rate,
                           "valid_bits_per_char": bits_per_char(valid), "wall_s": time.perf_counter() - started,
                           "load": [before, load()]}
            print(f"{label:40} valid {bits_per_char(valid):.4f} bpc after {args.steps} steps "
                  f"({processes} process(es), {time.perf_counter() - started:.0f} s; load {before:.2f} → {load():.2f})")
    section = f"lr_{args.steps}_steps"
    earlier = json.loads(RESULTS.read_text()).get(section, {}).get("runs", {}) if RESULTS.exists() else {}
    save(section, {"steps": args.steps, "hidden": args.hidden, "runs": {**earlier, **rows}})  # runs added, not lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("allreduce")
    p.add_argument("--processes", type=int, default=2)
    p = sub.add_parser("lm")
    p.add_argument("--minutes", type=float, default=3.0)
    p.add_argument("--only", nargs="+", help="the configurations whose labels start so")
    p = sub.add_parser("compute")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    p.add_argument("--repeats", type=int, default=8)
    sub.add_parser("model")
    p = sub.add_parser("lr")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--only", nargs="+", help="the runs whose labels start so (e.g. 'K=1')")
    p.add_argument("--confirm", action="store_true", help="run the √K case again as 4 processes (the others: one process, the same sums)")
    args = parser.parse_args()
    {"allreduce": allreduce, "lm": lm, "compute": compute, "model": model, "lr": lr}[args.part](args)


if __name__ == "__main__":
    main()
