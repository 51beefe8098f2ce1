"""Data-parallel training on MPI: real `mpiexec` jobs (MPICH's, from the [mpi] extra) against one process.

K ranks must reach one process's parameters (float32 round-off through the command, 1e-12 in
float64 through the Trainer); a fault on one rank must end the whole job with a message, and
leave a model directory that resumes.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from datetime import date

import numpy as np
import pytest
from safetensors.numpy import load_file

from rnnkit.cli.main import main

# the mpiexec of the mpich wheel beside this Python (the [mpi] extra), else the one on PATH
MPIEXEC = next((str(p) for p in [Path(sys.executable).parent / "mpiexec"] if p.exists()), None) or shutil.which("mpiexec")
# one BLAS and one kernel thread per rank: the tests run beside each other on two cores
THREADS = dict(OPENBLAS_NUM_THREADS="1", RNNKIT_THREADS="1", PYTHONWARNINGS="ignore")
RNNKIT = [sys.executable, "-m", "rnnkit"]


def run(command, timeout=240, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **THREADS), **kwargs)


def job(k: int, *args, timeout=240):
    """`mpiexec -n k python -m rnnkit ARGS`; k = 1: the command in this process (no launcher)."""
    if k == 1:
        return subprocess.CompletedProcess(args, main(list(args)), "", "")
    return run([MPIEXEC, "-n", str(k), *RNNKIT, *args], timeout)


def relative_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.max(np.abs(a[k] - b[k]))) / max(float(np.max(np.abs(a[k]))), 1e-30) for k in a)


def checkpoint_weights(out):
    return load_file(str(out / "checkpoint" / "weights.safetensors"))


# ---- small data sets of every task ---------------------------------------------------------------
def write_text(path, seed=0):
    rng = np.random.default_rng(seed)
    words = "the cat sat on a mat and then ran far away from home to see the sea".split()
    path.write_text("\n".join(" ".join(rng.choice(words, 8)) for _ in range(300)) + "\n", encoding="utf-8")
    return path


def write_reviews(path, seed=0):
    rng = np.random.default_rng(seed)
    lines = [f"{label}\t{' '.join(rng.choice(['the', 'film', 'was', 'very', word], 5))}"
             for label, word in (("pos", "good"), ("neg", "bad")) * 60]
    path.write_text("\n".join(rng.permutation(lines)) + "\n", encoding="utf-8")
    return path


def write_updown(path, seed=0):
    """Series of 5–14 steps that rise ("up") or fall ("down"), as CSV lines label,values… (a .csv file)."""
    path, rng = path.with_suffix(".csv"), np.random.default_rng(seed)
    lines = []
    for _ in range(80):
        slope = rng.uniform(-1, 1)
        series = slope * np.arange(T := int(rng.integers(5, 15))) / T + 0.05 * rng.standard_normal(T)
        lines.append(",".join(["up" if slope > 0 else "down", *(f"{v:.4f}" for v in series)]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_conll(path, seed=0):
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(120):
        tokens = [f"{rng.choice(['alice', 'bob'])} B-PER" if rng.random() < 0.3 else f"{rng.choice(['went', 'to', 'the'])} O"
                  for _ in range(int(rng.integers(2, 7)))]
        sentences.append("\n".join(tokens))
    path.write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    return path


def write_monthly(path, seed=0, n=120):
    rng = np.random.default_rng(seed)
    rows = ["month,sales"] + [f"{date(2000 + i // 12, i % 12 + 1, 1)},{10 + 0.05 * i + 2 * np.sin(2 * np.pi * i / 12) + 0.2 * rng.standard_normal():.4f}"
                              for i in range(n)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_sine(path, seed=0, n=600):
    rng = np.random.default_rng(seed)
    y = np.sin(2 * np.pi * np.arange(n) / 25) + 0.05 * rng.standard_normal(n)
    path.write_text("t,v\n" + "\n".join(f"{i},{v:.5f}" for i, v in enumerate(y)) + "\n", encoding="utf-8")
    return path


def write_pairs(path, seed=0):
    rng = np.random.default_rng(seed)
    words = {"dog": "perro", "cat": "gato", "red": "rojo", "big": "grande", "sees": "ve", "has": "tiene"}
    lines = []
    for _ in range(200):
        subject, verb, adjective = rng.choice(["dog", "cat"]), rng.choice(["sees", "has"]), rng.choice(["red", "big"])
        lines.append(f"the {subject} {verb} a {adjective} cat\tel {words[subject]} {words[verb]} un gato {words[adjective]}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_speech(path, seed=0):
    """A folder of clips whose characters are tones (a, b, c: three pitches) and a transcripts.tsv."""
    import soundfile

    folder, rng, rate = path.with_suffix(""), np.random.default_rng(seed), 8000
    folder.mkdir()
    lines = []
    for k in range(24):
        text = "".join(rng.choice(list("abc"), size=int(rng.integers(1, 4))))
        tones = [0.4 * np.sin(2 * np.pi * {"a": 400, "b": 900, "c": 1700}[ch] * np.arange(rate // 8) / rate) for ch in text]
        soundfile.write(str(folder / f"clip{k}.wav"), np.concatenate([*tones, np.zeros(rate // 20)]).astype(np.float32), rate)
        lines.append(f"clip{k}.wav\t{text}\tscene{k % 6}")
    (folder / "transcripts.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def write_chorales(path, seed=0):
    """Eight four-voice chorales in MusicXML (music21 writes them)."""
    from rnnkit.music.notation import music21

    m21, folder, rng = music21(), path.with_suffix(""), np.random.default_rng(seed)
    folder.mkdir()
    for k in range(8):
        score = m21.stream.Score()
        for base in (67, 60, 52, 43):
            part = m21.stream.Part()
            for pitch, length in zip(base + rng.integers(0, 8, 8), rng.choice([0.5, 1.0], 8)):
                part.append(m21.note.Note(int(pitch), quarterLength=float(length)))
            score.insert(0, part)
        score.write("musicxml", fp=str(folder / f"c{k}.musicxml"))
    return folder


def write_stamps(path, seed=0):
    """Stamps laid out as Tux Paint's: a coloured square per picture, captioned with its colour."""
    from PIL import Image

    folder, rng = path.with_suffix(""), np.random.default_rng(seed)
    colours = {"red": (220, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 220)}
    for k in range(24):
        name = list(colours)[k % 3]
        (folder / "shapes").mkdir(parents=True, exist_ok=True)
        pixels = np.zeros((24, 24, 4), np.uint8)
        pixels[4:20, 4:20] = (*np.clip(np.array(colours[name]) + rng.integers(-20, 20, 3), 0, 255), 255)
        Image.fromarray(pixels).save(folder / "shapes" / f"s{k}.png")
        (folder / "shapes" / f"s{k}.txt").write_text(f"A {name} square.\n", encoding="utf-8")
    return folder


SMALL = ["--steps", "6", "--valid-every", "3", "--log-every", "1", "--hidden", "12", "--quiet", "--seed", "3"]
TASKS = {  # task[_case]: (data writer, its options); batches of 8 split 2 ways, some uneven (tags, pairs)
    "lm": (write_text, ["--embed", "8", "--batch-size", "8", "--seq-len", "12", "--dropout", "0"]),
    "classify": (write_reviews, ["--embed", "6", "--batch-size", "8", "--dropout", "0", "--cv-folds", "2"]),
    # series of several lengths, so each rank pads its share to another length: --augment's draws must not care
    "classify_series": (write_updown, ["--batch-size", "8", "--cv-folds", "0", "--augment", "0.2"]),
    "tag": (write_conll, ["--embed", "6", "--batch-size", "7", "--dropout", "0"]),
    "forecast": (write_monthly, ["--horizon", "6", "--season", "12", "--window", "24", "--origins", "2", "--batch-size", "8"]),
    "detect": (write_sine, ["--window", "16", "--batch-size", "9"]),
    "translate": (write_pairs, ["--embed", "8", "--batch-size", "7", "--dropout", "0"]),
    "music": (write_chorales, ["--batch-size", "3", "--valid-fraction", "0.25", "--test-fraction", "0.25"]),
    "caption": (write_stamps, ["--embed", "8", "--batch-size", "5", "--dropout", "0", "--valid-fraction", "0.2",
                               "--test-fraction", "0.2"]),
    "transcribe": (write_speech, ["--layers", "1", "--batch-size", "5", "--n-mels", "16", "--dropout", "0"]),
}


# One job trains the nine tasks one after another, each a `main([...])` in the same two rank
# processes: starting ranks (Python, rnnkit, numba's cached kernels, mpi4py) cost more than a
# task's six steps, and a library user may run several commands in one job the same way.
SEVERAL_COMMANDS_JOB = """
    import json, sys
    from rnnkit.cli.main import main
    from rnnkit.training import parallel

    codes = {}
    for task, argv in json.loads(open(sys.argv[1]).read()).items():
        if parallel.launched()[0] == 0:
            print(f"== {task}", file=sys.stderr, flush=True)  # this task's messages follow
        codes[task] = main(argv)
    if parallel.world().first:
        open(sys.argv[2], "w").write(json.dumps(codes))
"""


def two_rank_runs_equal_one_process_runs(task: str, runs: dict) -> None:
    """The checks of one task: its one-process and two-rank model directories (``runs[k]``)."""
    # float32 round-off (≤ 1e-6 of each tensor's largest entry); the captioner's bridge reaches 2.6e-6,
    # the translator's attention 1.8–3.5e-6 on AVX2 cores and 5.04e-6 on AVX-512 ones (the kernels
    # vectorise for the host, so the round-off differs): Adam's step lr·m/√v turns the round-off of a
    # gradient near zero into a step-sized difference
    bound = 1e-5 if task in ("caption", "translate") else 1e-6
    assert relative_difference(checkpoint_weights(runs[1]), checkpoint_weights(runs[2])) <= bound
    records = {k: [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] for k, out in runs.items()}
    losses = {k: [r["train_loss"] for r in rs if "train_loss" in r] for k, rs in records.items()}
    assert len(losses[1]) == 6 and np.allclose(losses[1], losses[2], rtol=1e-5)
    # validation shared out (lm, classify, tag, translate, transcribe) or repeated (forecast, detect): the same metrics
    valid = {k: [r["valid_loss"] for r in rs if "valid_loss" in r] for k, rs in records.items()}
    assert len(valid[1]) == 2 and np.allclose(valid[1], valid[2], rtol=1e-5)
    config = json.loads((runs[2] / "config.json").read_text())
    assert config["status"] == "finished"
    assert not any(p.name.startswith("rank") for p in runs[2].iterdir())  # one writer


def test_two_ranks_train_every_task_to_one_process_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path / "cache"))  # music caches its piano rolls there
    commands = {k: {} for k in (1, 2)}
    for task, (write, options) in sorted(TASKS.items()):
        (tmp_path / task).mkdir()
        data = write(tmp_path / task / "data.txt")
        for k in (1, 2):
            commands[k][task] = ["train", task.split("_")[0], "--data", str(data), "--out", str(tmp_path / task / f"k{k}"), *SMALL,
                                 *options]
    failed = {}
    for task, argv in commands[1].items():
        result = job(1, *argv)
        if result.returncode != 0:
            failed[task] = f"one process: exit {result.returncode}"
    (tmp_path / "commands.json").write_text(json.dumps(commands[2]), encoding="utf-8")
    codes = tmp_path / "codes.json"
    result = run([MPIEXEC, "-n", "2", sys.executable, str(script(tmp_path, SEVERAL_COMMANDS_JOB)), str(tmp_path / "commands.json"),
                  str(codes)], timeout=600)
    messages = dict(re.findall(r"^== (\w+)\n(.*?)(?=^== |\Z)", result.stderr, re.S | re.M))
    assert result.returncode == 0 and codes.exists(), f"the job ended in {list(messages)[-1:]}: {result.stderr[-3000:]}"
    for task, code in json.loads(codes.read_text()).items():
        if task in failed or code != 0:
            failed.setdefault(task, f"two ranks: exit {code}: {messages.get(task, '')[-2000:]}")
            continue
        try:
            two_rank_runs_equal_one_process_runs(task, {k: tmp_path / task / f"k{k}" for k in (1, 2)})
        except AssertionError as exc:
            failed[task] = str(exc)[:600]  # pytest's explanation, less the arrays' reprs
    assert not failed, "\n".join(f"{task}: {why}" for task, why in failed.items())


def test_a_run_resumed_with_another_number_of_ranks_reaches_the_uninterrupted_weights(tmp_path):
    data = write_text(tmp_path / "text.txt")
    lm = ["--data", str(data), *SMALL, *TASKS["lm"][1]]
    whole = tmp_path / "whole"
    assert job(1, "train", "lm", "--out", str(whole), *lm, "--steps", "8").returncode == 0
    parts = tmp_path / "parts"
    first = job(2, "train", "lm", "--out", str(parts), *lm, "--steps", "4")
    assert first.returncode == 0, first.stderr[-2000:]
    # three ranks share 8 streams as 3, 3, 2; the carried state of each stream follows it
    second = job(3, "train", "--resume", str(parts), "--steps", "8", "--quiet")
    assert second.returncode == 0, second.stderr[-2000:]
    assert relative_difference(checkpoint_weights(whole), checkpoint_weights(parts)) <= 1e-5


def test_a_killed_rank_ends_the_job_with_a_message_and_the_directory_resumes_on_one_process(tmp_path):
    out = tmp_path / "m"
    command = [MPIEXEC, "-n", "2", *RNNKIT, "train", "lm", "--data", str(write_text(tmp_path / "t.txt")), "--out", str(out),
               *TASKS["lm"][1], "--hidden", "12", "--steps", "100000", "--valid-every", "2"]
    with subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ, **THREADS)) as job_:
        first_line = job_.stderr.readline()
        pids = dict(re.findall(r"rank (\d): pid (\d+)", first_line))
        assert set(pids) == {"0", "1"}, first_line
        deadline = time.monotonic() + 120
        while not (out / "checkpoint" / "state.json").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(0.5)
        os.kill(int(pids["1"]), signal.SIGKILL)
        killed = time.monotonic()
        said = "".join(job_.communicate(timeout=60))  # Hydra reports on stdout
        assert time.monotonic() - killed < 20  # the launcher stops the others: no wait for a timeout
    assert job_.returncode != 0
    assert pids["1"] in said and "signal 9" in said  # the launcher names the process (rank 1's pid, printed at the start)
    resumed = job(1, "train", "--resume", str(out), "--steps", "12", "--valid-every", "4", "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["status"] == "finished"


def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step_with_a_checkpoint(tmp_path):
    out = tmp_path / "m"
    command = [MPIEXEC, "-n", "2", *RNNKIT, "train", "lm", "--data", str(write_text(tmp_path / "t.txt")), "--out", str(out),
               *TASKS["lm"][1], "--hidden", "12", "--steps", "100000", "--valid-every", "50"]
    with subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(os.environ, **THREADS)) as job_:
        pids = dict(re.findall(r"rank (\d): pid (\d+)", job_.stderr.readline()))
        deadline = time.monotonic() + 120
        while not (out / "metrics.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(int(pids["1"]), signal.SIGTERM)  # one rank only: the flag travels in the step's sum
        _, err = job_.communicate(timeout=60)
    assert job_.returncode == 128 + signal.SIGTERM, err
    stopped = re.findall(r"SIGTERM at step (\d+)", err)
    assert len(stopped) == 1, err  # said once, by rank 0
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["state"]["step"] == int(stopped[0])
    assert json.loads((out / "config.json").read_text())["status"] == "interrupted"


def test_an_error_on_one_rank_is_one_message_naming_it_and_ends_every_rank(tmp_path):
    good = write_text(tmp_path / "t.txt")
    common = ["--out", str(tmp_path / "m"), *SMALL, *TASKS["lm"][1]]
    # MPMD: rank 1 is given a file that does not exist
    result = run([MPIEXEC, "-n", "1", *RNNKIT, "train", "lm", "--data", str(good), *common,
                  ":", "-n", "1", *RNNKIT, "train", "lm", "--data", str(tmp_path / "missing.txt"), *common], timeout=120)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("rnnkit: error")]
    assert len(errors) == 1 and "rank 1:" in errors[0] and "missing.txt" in errors[0], result.stderr
    # and ranks started with different options
    result = run([MPIEXEC, "-n", "1", *RNNKIT, "train", "lm", "--data", str(good), *common,
                  ":", "-n", "1", *RNNKIT, "train", "lm", "--data", str(good), *common, "--embed", "4"], timeout=120)
    assert result.returncode == 2
    assert "different settings: rank 1 against rank 0: task_options.embed 4 (rank 0: 8)" in result.stderr, result.stderr
    assert not (tmp_path / "m" / "model.safetensors").exists()
    # too small a batch to share, and a command that does not run as a job
    result = job(3, "train", "lm", "--data", str(good), *common, "--batch-size", "2")
    assert result.returncode == 2 and result.stderr.count("--batch-size: 2 is fewer than the 3 processes") == 1
    result = job(2, "evaluate", str(tmp_path / "m"))
    assert result.returncode == 2 and "only `rnnkit train` runs as a job" in result.stderr


def test_a_rank_without_mpi4py_is_a_clear_error(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None\n"  # as where mpi4py is not installed
            "from rnnkit.cli.main import main\n"
            f"sys.exit(main(['train', 'lm', '--data', {str(write_text(tmp_path / 't.txt'))!r}, '--out', {str(tmp_path / 'm')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, **THREADS, PMI_SIZE="2", PMI_RANK="1"))
    assert result.returncode == 2
    assert "rank 1 of 2 processes, but mpi4py is not installed" in result.stderr and "Traceback" not in result.stderr


# ---- the collectives and the Trainer, through scripts that mpiexec runs --------------------------
def script(tmp_path, body: str):
    path = tmp_path / "job.py"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_the_collectives_share_sum_gather_and_check(tmp_path):
    path = script(tmp_path, """
        import numpy as np
        from rnnkit.nn.module import Parameter
        from rnnkit.training import parallel
        g = parallel.world()
        assert g.size == 3
        # shares: every row once, in order, sizes within one of each other
        for n in range(3, 12):
            rows = np.concatenate(g.comm.allgather(np.arange(n)[g.share(n)]))
            assert rows.tolist() == list(range(n)), (n, rows)
        # a batch of fewer rows than ranks: the last rank has none
        try:
            assert parallel.share_of(np.array([7, 8])).tolist() == [[7], [8]][g.rank]
        except parallel.EmptyShare:
            assert g.rank == 2
        # the step's sum: sum_r n_r g_r / sum_r n_r, and the numbers summed
        n_r = [2, 3, 0][g.rank]
        grads = [np.full((2, 2), g.rank + 1.0), np.full(3, -(g.rank + 1.0))]
        summed = g.reduce_step(grads, [n_r, 10.0 * n_r, 1.0])
        assert summed == [5.0, 50.0, 3.0], summed
        assert np.allclose(grads[0], (2 * 1 + 3 * 2) / 5) and np.allclose(grads[1], -(2 * 1 + 3 * 2) / 5)
        # rows joined in rank order
        mine = np.full((2, [1, 2, 1][g.rank], 3), float(g.rank))
        assert g.gather_rows(mine, axis=1)[0, :, 0].tolist() == [0.0, 1.0, 1.0, 2.0]
        # parameters that drifted apart
        params = [Parameter(np.ones(4, np.float32))]
        g.check_same(params, 7)
        if g.rank == 2:
            params[0].data[1] += 1e-7
        try:
            g.check_same(params, 7)
            raise SystemExit("drift not found")
        except parallel.ParallelError as exc:
            assert "at step 7 the parameters of rank(s) 2 differ" in str(exc) and exc.everywhere
        # one rank's error raised on every rank, naming it
        def fails_on_one():
            if g.rank == 1:
                raise ValueError("--data: cannot read it")
            return "fine"
        try:
            g.settled(fails_on_one)
            raise SystemExit("error not passed on")
        except ValueError as exc:
            assert str(exc) == "rank 1: --data: cannot read it", str(exc)
        assert g.settled(lambda: g.rank) == g.rank
        print("ok", g.rank)
    """)
    result = run([MPIEXEC, "-n", "3", sys.executable, str(path)], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.count("ok") == 3  # every rank got through (their lines may interleave)


TRAINER_JOB = """
    import sys
    import numpy as np
    from rnnkit.nn import LSTM, Linear, MSELoss, Module
    from rnnkit.training import parallel
    from rnnkit.training.trainer import Trainer, TrainingOptions

    class Model(Module):
        def __init__(self):
            super().__init__()
            rng = np.random.default_rng(0)
            self.rnn = LSTM(3, 5, num_layers=2, dtype=np.float64, rng=rng)
            self.head = Linear(5, 2, dtype=np.float64, rng=rng)

        def forward(self, x):
            out, _ = self.rnn(x)
            return self.head(out[-1])

        def backward(self, d):
            d_out = np.zeros(self.out_shape)
            d_out[-1] = self.head.backward(d)
            self.rnn.backward(d_out)

    class Run:
        data = np.random.default_rng(1).standard_normal((9, 40, 3))
        target = np.random.default_rng(2).standard_normal((40, 2))

        def __init__(self, model, fail_at=0):
            self.model, self.loss_fn, self.step, self.fail_at = model, MSELoss(), 0, fail_at

        def train_step(self):
            self.step += 1
            if self.step == self.fail_at and parallel.world().rank == 1:
                raise RuntimeError("a fault on this rank")
            # a global batch of 11, of 2 at step 3: on 3 ranks one has none (EmptyShare, nothing to add)
            rows = np.random.default_rng([5, self.step]).choice(40, 2 if self.step == 3 else 11, replace=False)
            rows = parallel.share_of(rows)
            x = self.data[:, rows]
            self.model.out_shape = (9, len(rows), 5)
            loss = self.loss_fn(self.model(x), self.target[rows])
            self.model.backward(self.loss_fn.backward())
            return loss, len(rows), self.target[rows].size

        def evaluate(self):
            return {"loss": float(np.mean((self.model(self.data) - self.target) ** 2))}

        def state_dict(self):
            return {}

        def load_state_dict(self, d):
            pass

    out, fail_at = sys.argv[1], int(sys.argv[2])
    model = Model()
    options = TrainingOptions(steps=8, lr=0.01, clip=0.5, valid_every=4, log_every=2)
    try:
        Trainer(model, Run(model, fail_at), out, {"task": "test"}, options, quiet=True).fit()
    except Exception as exc:
        sys.exit(parallel.fail(f"job: error: {exc}", exc, 3))
    if parallel.world().first:
        np.savez(out + "/params.npz", *[p.data for p in model.parameters()])
"""


def test_the_trainer_on_two_and_three_ranks_equals_one_process_in_float64(tmp_path):
    path = script(tmp_path, TRAINER_JOB)
    params = {}
    for k in (1, 2, 3):  # 11 rows as 6/5 and 4/4/3; at step 3, 2 rows: the third rank has none
        out = tmp_path / f"k{k}"
        out.mkdir()
        command = [sys.executable, str(path), str(out), "0"]
        result = run(command if k == 1 else [MPIEXEC, "-n", str(k), *command], timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        with np.load(out / "params.npz") as f:
            params[k] = {name: f[name] for name in f.files}
    assert relative_difference(params[1], params[2]) <= 1e-12
    assert relative_difference(params[1], params[3]) <= 1e-12
    assert relative_difference(params[1], {n: np.zeros_like(v) for n, v in params[1].items()}) == 1.0  # it compares


def test_a_fault_on_one_rank_mid_training_aborts_the_job_naming_the_rank(tmp_path):
    path = script(tmp_path, TRAINER_JOB)
    out = tmp_path / "m"
    out.mkdir()
    started = time.monotonic()
    result = run([MPIEXEC, "-n", "2", sys.executable, str(path), str(out), "5"], timeout=120)
    assert time.monotonic() - started < 60
    assert result.returncode != 0
    assert "job: error: a fault on this rank (rank 1 of 2; stopping every rank)" in result.stderr, result.stderr
    assert (out / "checkpoint" / "state.json").exists()  # step 4's checkpoint, whole
