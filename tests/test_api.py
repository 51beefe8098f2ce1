"""The Python API agrees with the command line: generate's text, progress by default, errors in its own words."""

import subprocess
import sys

import numpy as np
import pytest

import rnnkit

SNIPPET = dict(steps=6, hidden=8, embed=4, layers=1, batch_size=2, seq_len=8, valid_every=6)


@pytest.fixture
def corpus(tmp_path):
    rng = np.random.default_rng(0)
    words = ["ROMEO:", "to", "be", "or", "not", "that", "is", "the", "question"]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choice(words, size=6)) for _ in range(60)), encoding="utf-8")
    return path


def test_the_readme_snippet_runs_twice_and_shows_progress(tmp_path, corpus, capsys, monkeypatch):
    monkeypatch.setenv("RNNKIT_PROGRESS_SECONDS", "0")
    for _ in range(2):
        model = rnnkit.train("lm", out=tmp_path / "tiny", data=str(corpus), overwrite=True, **SNIPPET)
        assert model.generate("ROMEO:", length=20, seed=0).startswith("ROMEO:")
        err = capsys.readouterr().err
        assert "training: 6/6 steps (100%)" in err and "validation at step 6" in err


def test_a_second_run_names_the_python_arguments(tmp_path, corpus):
    rnnkit.train("lm", out=tmp_path / "tiny", data=str(corpus), quiet=True, **SNIPPET)
    with pytest.raises(ValueError) as error:
        rnnkit.train("lm", out=tmp_path / "tiny", data=str(corpus), quiet=True, **SNIPPET)
    message = str(error.value)
    assert "overwrite=True" in message and f"rnnkit.train('lm', '{tmp_path / 'tiny'}', resume=True)" in message
    assert "--" not in message


def test_generate_returns_what_the_command_prints(tmp_path, corpus):
    model = rnnkit.train("lm", out=tmp_path / "m", data=str(corpus), quiet=True, **SNIPPET)
    printed = subprocess.run([sys.executable, "-m", "rnnkit.cli.main", "generate", str(tmp_path / "m"), "--prime",
                              "ROMEO:", "--length", "30", "--seed", "3"], capture_output=True, text=True, check=True).stdout
    assert printed == model.generate("ROMEO:", length=30, seed=3) + "\n"
    assert model.generate("ROMEO:", length=30, seed=3).startswith("ROMEO:")


def test_a_rejected_sampling_option_prints_nothing(tmp_path, corpus):
    rnnkit.train("lm", out=tmp_path / "m", data=str(corpus), quiet=True, **SNIPPET)
    result = subprocess.run([sys.executable, "-m", "rnnkit.cli.main", "generate", str(tmp_path / "m"), "--temperature",
                             "-1"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("rnnkit: error: ") and "temperature" in result.stderr
