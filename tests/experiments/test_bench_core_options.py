"""benchmarks/bench_core.py: a bad --seconds is one line naming it, before anything is timed."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_core  # noqa: E402


@pytest.mark.parametrize("args, message", [
    (["--seconds", "0"], "--seconds: expected a positive number of seconds, got 0"),
    (["--seconds", "nan"], "--seconds: expected a positive number of seconds, got nan"),
    (["--seconds", "inf"], "--seconds: expected a positive number of seconds, got inf"),
    (["--seconds", "3", "--quick"], "--seconds and --quick: choose one"),
])
def test_a_bad_seconds_is_refused_in_one_line(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as done:
        bench_core.main([*args, "--only", "RNN infer 32x100", "--out", str(tmp_path / "core.json")])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)
    assert not (tmp_path / "core.json").exists()
