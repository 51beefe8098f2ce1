import json

import numpy as np
import pytest

from rnnkit.cli.main import main
from rnnkit.experiments import speed


def test_a_steps_memory_grows_with_the_sequence_for_a_sequential_rnn():
    """What backpropagation keeps grows with T. (That the time grows too is what the experiment
    measures; a test comparing timings failed on a busy machine: the short case's fastest step
    took 18 ms instead of 0.3.)"""
    short = speed.step_time("gru", 8, 2, 8, repeats=1)
    long = speed.step_time("gru", 256, 2, 8, repeats=1)
    assert long["peak_bytes"] > 4 * short["peak_bytes"] > 0


def test_a_case_is_timed_for_its_repeats_and_its_minimum_time_and_the_fastest_step_is_reported():
    r = speed.step_time("mingru", 16, 1, 4, repeats=2, min_time=0.5)
    assert r["steps_timed"] > 2  # a step takes well under 250 ms even on a busy machine: min_time asks for more than 2
    assert 0 < r["seconds"] <= r["median_seconds"]
    assert speed.step_time("mingru", 16, 1, 4, repeats=2)["steps_timed"] == 2


def test_speed_command_prints_a_table(tmp_path, capsys):
    kinds = "gru,lstm,mingru-seq,attention"
    assert main(["experiment", "speed", "--kinds", kinds, "--lengths", "4,8", "--sizes", "2x4", "--repeats", "1", "--min-time", "0", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "batch 2, hidden 4" in out and all(k in out for k in kinds.split(","))
    assert out.count("x]") == 2 * 3  # the speed-up over gru of every other kind at both lengths
    report = json.loads((tmp_path / "results.json").read_text())
    assert {r["kind"] for r in report["results"]} == set(kinds.split(","))
    assert (tmp_path / "speed.png").read_bytes()[:4] == b"\x89PNG"


def test_sequential_kinds_run_the_minimal_layer_in_its_sequential_mode():
    rng = np.random.default_rng(0)
    assert speed.make_layer("minlstm-seq", 8, rng).mode == "sequential"
    assert speed.make_layer("minlstm", 8, rng).mode == "parallel"


@pytest.mark.parametrize("args,match", [(["--sizes", "8by128"], "--sizes"), (["--kinds", "rwkv"], "--kinds: unknown")])
def test_bad_speed_options(args, match, capsys):
    assert main(["experiment", "speed", *args]) == 2
    assert match in capsys.readouterr().err


def test_cases_predicted_to_be_too_slow_are_skipped_and_shown(tmp_path, capsys):
    args = ["experiment", "speed", "--kinds", "gru,attention", "--lengths", "8,512", "--sizes", "2x4", "--repeats", "1", "--min-time", "0",
            "--max-seconds", "1e-5", "--out", str(tmp_path)]
    assert main(args) == 0
    report = json.loads((tmp_path / "results.json").read_text())
    long = [r for r in report["results"] if r["T"] == 512]
    assert all("skipped" in r for r in long) and all("seconds" in r for r in report["results"] if r["T"] == 8)
    assert "skipped" in capsys.readouterr().out
