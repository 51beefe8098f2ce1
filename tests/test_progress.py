"""Progress: plain lines when stderr is not a terminal (a pipe, a log), --quiet, callbacks."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit.progress import Progress, duration, on_terminal, reporting

TINY = ["--hidden", "8", "--embed", "4", "--layers", "1", "--steps", "12", "--batch-size", "2", "--seq-len", "8",
        "--valid-every", "6", "--log-every", "3"]


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question"]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choice(words, size=6)) for _ in range(60)), encoding="utf-8")
    return path


def run_cli(*args, seconds="0"):
    """The command in a fresh process, its stderr a pipe (as under `2>&1 | tee log`)."""
    env = dict(os.environ, RNNKIT_PROGRESS_SECONDS=seconds, OPENBLAS_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "rnnkit.cli.main", *map(str, args)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)


def test_training_through_a_pipe_prints_plain_progress_lines_and_samples(tmp_path, corpus):
    result = run_cli("train", "lm", "--data", corpus, "--out", tmp_path / "m", *TINY)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    progress = [line for line in lines if line.startswith("training: ")]
    assert progress and all("/12 steps" in line and "elapsed" in line for line in progress)
    assert any("loss " in line and "tokens/s " in line and "ETA " in line for line in progress)
    assert progress[-1].startswith("training: 12/12 steps (100%)")
    assert any(line.startswith("validation at step 6: loss ") for line in lines)
    sample_at = lines.index(next(line for line in lines if line.startswith("validation at step 12")))
    assert lines[sample_at + 1].startswith("    ")  # the sample, indented under the validation line
    assert "\r" not in result.stderr  # no bar redrawn in a log


def test_quiet_silences_progress(tmp_path, corpus):
    result = run_cli("train", "lm", "--data", corpus, "--out", tmp_path / "m", *TINY, "--quiet")
    assert result.returncode == 0 and result.stderr == ""
    assert run_cli("--quiet", "evaluate", tmp_path / "m").stderr == ""


def test_evaluate_through_a_pipe_reports_progress(tmp_path, corpus):
    run_cli("train", "lm", "--data", corpus, "--out", tmp_path / "m", *TINY, "--quiet")
    result = run_cli("evaluate", tmp_path / "m")
    assert result.returncode == 0 and "bits_per_char" in result.stdout
    assert "evaluation: " in result.stderr and "windows" in result.stderr


def test_a_plain_line_every_interval_with_eta():
    out = io.StringIO()
    with reporting():
        progress = Progress("backtest", 4, unit="origin", stream=out)
        progress.interval = 0.0
        progress.update(1)
        progress.close()
    assert out.getvalue().startswith("backtest: 1/4 origins (25%), 0:00 elapsed, ETA 0:00")


def test_short_operations_print_nothing_but_training_keeps_its_last_line():
    out = io.StringIO()
    with Progress("beam search", 3, unit="sentence", stream=out) as progress:  # the interval is 30 s
        progress.update(3)
    assert out.getvalue() == ""
    with Progress("training", 3, stream=out, keep=True) as progress:
        progress.update(3)
    assert out.getvalue().startswith("training: 3/3 steps (100%)")


def test_callbacks_get_each_logged_step_and_each_validation(tmp_path, corpus):
    records = []
    rnnkit.train("lm", tmp_path / "m", data=str(corpus), hidden=8, embed=4, layers=1, steps=12, batch_size=2,
                 seq_len=8, valid_every=6, log_every=3, callbacks=[records.append], quiet=True)
    logged = [r for r in records if "train_loss" in r]
    validations = [r for r in records if "valid_loss" in r]
    assert [r["step"] for r in logged] == [3, 6, 9, 12] and [r["step"] for r in validations] == [6, 12]
    assert {"lr", "grad_norm", "tokens_per_s"} <= set(logged[0])
    assert isinstance(validations[0]["valid_sample"], str) and validations[0]["valid_sample"]


def test_the_sample_is_written_to_the_metrics(tmp_path, corpus):
    from rnnkit.training import model_dir as md

    rnnkit.train("lm", tmp_path / "m", data=str(corpus), hidden=8, embed=4, layers=1, steps=6, batch_size=2,
                 seq_len=8, valid_every=6, quiet=True)
    assert [r["valid_sample"] for r in md.read_metrics(tmp_path / "m") if "valid_loss" in r][0]


def test_a_pipe_or_a_file_is_not_a_terminal():
    assert not on_terminal(io.StringIO())
    assert duration(62) == "1:02" and duration(3723) == "1:02:03"
