"""Training into a model directory through the command line, as a careless user or an attacker
would: what --overwrite may delete, who may write a directory, hostile files, dead ends."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.tasks.base import TASKS
from rnnkit.training import model_dir as md

TINY = ["--steps", "6", "--hidden", "8", "--embed", "4", "--layers", "1", "--batch-size", "2",
        "--seq-len", "8", "--valid-every", "3", "--log-every", "3", "--quiet"]


def write_text(path, seed=0, words=600):
    rng = np.random.default_rng(seed)
    path.write_text(" ".join(rng.choice(["alas", "poor", "yorick", "i", "knew", "him"], size=words)), encoding="utf-8")
    return path


def cli(*args):
    return [sys.executable, "-m", "rnnkit.cli.main", *map(str, args)]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("rnnkit: error: "), err
    return err


def snapshot(directory):
    """{relative path: bytes} of every file below ``directory``."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def corpus(tmp_path):
    return write_text(tmp_path / "corpus.txt")


@pytest.fixture
def model(tmp_path, corpus):
    out = tmp_path / "model"
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), *TINY]) == 0
    return out


# ---- 1. --overwrite deletes only what rnnkit wrote, and only after everything is checked ------


def test_overwrite_with_missing_data_keeps_the_model(model, tmp_path, capsys):
    before = snapshot(model)
    assert main(["train", "classify", "--data", str(tmp_path / "missing.txt"), "--out", str(model), "--overwrite", "--quiet"]) == 2
    assert "missing.txt" in one_error_line(capsys)
    assert snapshot(model) == before


def test_overwrite_refuses_a_directory_with_the_users_files(model, corpus, capsys):
    (model / "NOTES.md").write_text("my notes")
    before = snapshot(model)
    assert main(["train", "lm", "--data", str(corpus), "--out", str(model), "--overwrite", *TINY]) == 2
    err = one_error_line(capsys)
    assert "NOTES.md" in err and "did not write" in err
    assert snapshot(model) == before


def test_a_project_folder_with_a_foreign_config_is_never_wiped(tmp_path, corpus, capsys, monkeypatch):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "config.json").write_text('{"name": "my app"}')
    (project / "main.py").write_text("print('hello')")
    (project / "src" / "lib.py").write_text("x = 1")
    before = snapshot(project)
    monkeypatch.chdir(project)
    for out in (".", str(project), "/"):
        assert main(["train", "lm", "--data", str(corpus), "--out", out, "--overwrite", *TINY]) == 2
        assert "current directory" in one_error_line(capsys)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert main(["train", "lm", "--data", str(corpus), "--out", str(tmp_path / "home"), *TINY]) == 2
    assert "home" in one_error_line(capsys)
    # a sub-directory of the project holding the user's files is refused too, without --overwrite
    assert main(["train", "lm", "--data", str(corpus), "--out", "src", *TINY]) == 2
    assert "lib.py" in one_error_line(capsys)
    assert snapshot(project) == before and not (tmp_path / "home" / "config.json").exists()


def test_overwrite_replaces_an_rnnkit_model_whole(model, corpus):
    (model / "checkpoint.old").mkdir()  # as a crash between two checkpoint renames leaves it
    (model / ".metrics.jsonl.abc.tmp").write_text("partial")
    assert main(["train", "lm", "--data", str(corpus), "--out", str(model), "--overwrite", *TINY[:-1], "--steps", "3"]) == 0
    assert not (model / "checkpoint.old").exists() and not (model / ".metrics.jsonl.abc.tmp").exists()
    assert max(r["step"] for r in md.read_metrics(model)) == 3  # the old run's lines are gone


def test_a_damaged_model_directory_can_be_overwritten(model, corpus, capsys):
    (model / "config.json").write_text("{broken")
    assert main(["train", "lm", "--data", str(corpus), "--out", str(model), *TINY]) == 2
    assert "--overwrite" in one_error_line(capsys)
    assert main(["train", "lm", "--data", str(corpus), "--out", str(model), "--overwrite", *TINY]) == 0


# ---- 2. one writer at a time --------------------------------------------------------------------


def wait_for(predicate, proc, what, timeout=60):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline and proc.poll() is None, f"{what} did not happen"
        time.sleep(0.01)


def test_a_second_run_into_the_same_directory_is_refused_naming_the_first(tmp_path, corpus):
    out = tmp_path / "m"
    first = subprocess.Popen(cli("train", "lm", "--data", corpus, "--out", out, *TINY, "--steps", "100000"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: (out / "config.json").exists(), first, "the first run's start")
        for args in (("train", "lm", "--data", corpus, "--out", out, *TINY), ("train", "lm", "--data", corpus, "--out", out,
                     "--overwrite", *TINY), ("train", "--resume", out, "--quiet")):
            second = subprocess.run(cli(*args), capture_output=True, text=True, timeout=60)
            assert second.returncode == 2, second.stderr
            assert f"being written by another rnnkit run (PID {first.pid})" in second.stderr
            assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.kill()
        first.wait()
    # the kernel released the killed run's lock: the directory is usable at once
    done = subprocess.run(cli("train", "--resume", out, "--quiet", "--steps", "9"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# ---- 3. hostile files in a model directory --------------------------------------------------------


@pytest.mark.parametrize("verb", [["info"], ["generate", "--length", "3"], ["evaluate"]])
def test_weights_that_are_a_device_or_a_fifo_are_refused_without_reading(model, verb):
    weights = model / "model.safetensors"
    for make, kind in ((lambda: weights.symlink_to("/dev/zero"), "character device"), (lambda: os.mkfifo(weights), "FIFO")):
        weights.unlink()
        make()
        proc = subprocess.run(cli(verb[0], model, *verb[1:]), capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and kind in proc.stderr and "Traceback" not in proc.stderr


def test_a_safetensors_header_that_promises_more_than_the_file_is_refused(model, capsys):
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [10**6, 10**6]
    text = json.dumps(header).encode()
    weights.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + n :])
    assert main(["info", str(model)]) == 2
    assert f"tensor {name!r}" in one_error_line(capsys)
    weights.write_bytes((2**62).to_bytes(8, "little") + data[8:])
    assert main(["info", str(model)]) == 2
    assert "header claims" in one_error_line(capsys)


# ---- 7, 8. malformed JSON: one error naming the file and the field ---------------------------


def edit_json(path, change):
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def test_malformed_config_fields_are_named(model, capsys):
    config = model / "config.json"
    original = config.read_text()
    cases = [
        (lambda c: c.pop("vocabulary"), "vocabulary"),
        (lambda c: c.update(metrics="oops"), "metrics"),
        (lambda c: c["task_options"].update(hidden="big"), "task_options.hidden"),
        (lambda c: c["task_options"].update(hidden=-3), "hidden"),
        (lambda c: c["training"].update(lr=float("nan")), "training.lr"),
        (lambda c: c["task_options"].update(surprise=1), "surprise"),
    ]
    for change, field in cases:
        config.write_text(original)
        edit_json(config, change)
        assert main(["info", str(model)]) == 2, field
        err = one_error_line(capsys)
        assert "config.json in" in err and field in err, err
    config.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["generate", str(model)]) == 2
    assert "nested too deeply" in one_error_line(capsys)


def test_malformed_checkpoint_state_is_named_before_training(model, capsys):
    state = model / "checkpoint" / "state.json"
    original = state.read_text()
    for change, field in ((lambda s: s["state"].pop("run"), "'run'"), (lambda s: s["state"].update(step="5"), "state.step"),
                          (lambda s: s["state"].update(rng="PCG64"), "state.rng")):
        state.write_text(original)
        edit_json(state, change)
        assert main(["train", "--resume", str(model), "--quiet", "--steps", "9"]) == 2
        err = one_error_line(capsys)
        assert "state.json in" in err and field in err, err


# ---- 10. a loss that explodes is divergence, not "finished" ---------------------------------------


def test_a_loss_far_above_a_uniform_guess_stops_the_run(tmp_path, corpus, capsys):
    out = tmp_path / "m"
    args = ["train", "lm", "--data", str(corpus), "--out", str(out), *TINY, "--steps", "80", "--valid-every", "40",
            "--lr", "1000", "--cell", "lstm"]
    assert main(args) == 2
    err = one_error_line(capsys)
    assert "the loss exploded at step" in err and "training diverged" in err and f"--resume {out}" in err
    assert json.loads((out / "config.json").read_text())["status"] == "diverged"


# ---- 12, 13. no dead ends ---------------------------------------------------------------------------


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_the_start(tmp_path, corpus, capsys):
    out = tmp_path / "m"
    proc = subprocess.Popen(cli("train", "lm", "--data", corpus, "--out", out, *TINY, "--steps", "100000",
                                "--valid-every", "100000"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: (out / "config.json").exists(), proc, "the run's start")
    proc.kill()
    proc.wait()
    # the step-0 checkpoint follows config.json at once: a kill between the two leaves none
    shutil.rmtree(out / "checkpoint", ignore_errors=True)
    assert not md.has_checkpoint(out)
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), *TINY]) == 2
    err = one_error_line(capsys)
    assert f"rnnkit train --resume {out}" in err and "--overwrite" in err
    assert main(["train", "--resume", str(out), "--quiet", "--steps", "6", "--valid-every", "3"]) == 0
    reference = tmp_path / "reference"
    assert main(["train", "lm", "--data", str(corpus), "--out", str(reference), *TINY]) == 0
    a, b = md.load_model_weights(out), md.load_model_weights(reference)
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_a_resumed_run_may_change_its_step_size_and_says_so_in_its_history(model, capsys):
    assert main(["train", "--resume", str(model), "--quiet", "--steps", "9", "--lr", "0.01", "--clip", "1",
                 "--schedule", "cosine", "--patience", "3"]) == 0
    config = json.loads((model / "config.json").read_text())
    assert config["training"]["lr"] == 0.01 and config["training"]["schedule"] == "cosine"
    assert config["history"] == [{"step": 6, "changed": {"steps": [6, 9], "lr": [0.002, 0.01], "clip": [5.0, 1.0],
                                                           "schedule": ["constant", "cosine"], "patience": [0, 3]}}]
    lrs = [r["lr"] for r in md.read_metrics(model) if "lr" in r and r["step"] > 6]
    assert lrs and all(lr <= 0.01 for lr in lrs) and lrs[-1] < 0.01  # the cosine from the new lr
    capsys.readouterr()
    assert main(["train", "--resume", str(model), "--quiet", "--steps", "12", "--hidden", "9"]) == 2
    err = one_error_line(capsys)
    assert "--hidden 9 (stored: 8)" in err and "--lr" in err  # what may change is listed


# ---- 14. SIGINT and SIGTERM keep the work and say how to continue -----------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_and_the_resumed_run_ends_exactly_as_an_uninterrupted_one(tmp_path, corpus, signum):
    options = [*TINY, "--steps", "200", "--valid-every", "100", "--log-every", "7", "--dropout", "0.3", "--layers", "2"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    subprocess.run(cli("train", "lm", "--data", corpus, "--out", whole, *options), check=True, capture_output=True)
    proc = subprocess.Popen(cli("train", "lm", "--data", corpus, "--out", broken, *options),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(md.read_metrics(broken)) >= 3, proc, "three metrics lines")
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    stopped = json.loads((broken / "checkpoint" / "state.json").read_text())["state"]["step"]
    assert 21 <= stopped < 200 and stopped % 100  # a checkpoint of the step it stopped at, not of the last validation
    assert f"at step {stopped} of 200" in err and f"`rnnkit train --resume {broken}`" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert json.loads((broken / "config.json").read_text())["status"] == "interrupted"
    subprocess.run(cli("train", "--resume", broken), check=True, capture_output=True)
    for name in ("model.safetensors", "checkpoint/weights.safetensors"):
        a, b = md.load_weights(whole / name), md.load_weights(broken / name)
        assert all(np.array_equal(a[k], b[k]) for k in a), name
    lines = lambda d: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in md.read_metrics(d)]  # noqa: E731
    assert lines(broken) == lines(whole)  # the window across the interruption is averaged as if there were none


# ---- 15. --cell-option: a kind's settings, from the command line to the layer and back -------------


def test_a_cell_option_reaches_the_layer_and_config_json_keeps_every_setting(tmp_path, corpus, capsys):
    out = tmp_path / "zoneout"
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), *TINY, "--cell", "zoneout",
                 "--cell-option", "zoneout_h=0.2"]) == 0
    stored = json.loads((out / "config.json").read_text())["task_options"]
    assert stored["cell"] == "zoneout" and stored["cell_option"] == {"zoneout_h": 0.2, "zoneout_c": 0.5}
    rnn = rnnkit.load(out).model.rnn
    assert (rnn.zoneout_h, rnn.zoneout_c) == (0.2, 0.5)
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert "1-layer ZONEOUT (zoneout_h 0.2, zoneout_c 0.5)" in capsys.readouterr().out
    # a resumed run rebuilds the same layer; the same option again is no contradiction, another one is
    assert main(["train", "--resume", str(out), "--steps", "8", "--cell-option", "zoneout_h=0.2", "--quiet"]) == 0
    assert rnnkit.load(out).model.rnn.zoneout_h == 0.2
    assert main(["train", "--resume", str(out), "--steps", "9", "--cell-option", "zoneout_c=0.1", "--quiet"]) == 2
    assert "--cell-option {'zoneout_h': 0.05, 'zoneout_c': 0.1} (stored:" in one_error_line(capsys)


def test_the_python_api_takes_cell_option_as_a_dict_or_text(tmp_path, corpus):
    small = dict(hidden=8, embed=4, layers=2, batch_size=2, seq_len=8, steps=2, valid_every=2, quiet=True)
    model = rnnkit.train("lm", tmp_path / "a", data=str(corpus), cell="variational",
                         cell_option="dropout_x=0.1,weight_drop=0.3", **small)
    assert (model.model.rnn.dropout_x, model.model.rnn.dropout_y, model.model.rnn.weight_drop) == (0.1, 0.2, 0.3)
    model = rnnkit.train("lm", tmp_path / "b", data=str(corpus), cell="zoneout", cell_option={"zoneout_c": 0.25}, **small)
    assert model.model.rnn.zoneout_c == 0.25
    with pytest.raises(ValueError, match=r"^cell_option: zoneout_c: expected a number in \[0, 1\), got 2.0$"):
        rnnkit.train("lm", tmp_path / "c", data=str(corpus), cell="zoneout", cell_option={"zoneout_c": 2.0}, **small)
    assert not (tmp_path / "c").exists()


BAD_CELL_OPTIONS = [
    ("zoneout", ["p=0.1"], "zoneout has no setting 'p'; expected one of zoneout_h, zoneout_c"),
    ("zoneout", ["zoneout_h=1.5"], "zoneout_h: expected a number in [0, 1), got 1.5"),
    ("zoneout", ["zoneout_h=abc"], "zoneout_h: expected a number in [0, 1), got 'abc'"),
    ("zoneout", ["zoneout_h"], "expected NAME=VALUE, got 'zoneout_h'"),
    ("zoneout", ["zoneout_h=0.1", "zoneout_h=0.2"], "zoneout_h is given twice ('0.1' and '0.2')"),
    ("lstm", ["zoneout_h=0.1"], "lstm has no settings, got 'zoneout_h' (kinds with settings: zoneout, variational"),
]


@pytest.mark.parametrize("cell, options, message", BAD_CELL_OPTIONS, ids=[" ".join(c[1]) + f" ({c[0]})" for c in BAD_CELL_OPTIONS])
def test_a_bad_cell_option_is_one_line_naming_it_before_the_data_is_read_or_a_file_written(tmp_path, capsys, cell, options,
                                                                                         message):
    out = tmp_path / "model"
    given = [a for option in options for a in ("--cell-option", option)]
    # --data names no file: the option is refused before the data is looked for
    assert main(["train", "lm", "--data", str(tmp_path / "missing.txt"), "--out", str(out), "--cell", cell, *given]) == 2
    assert one_error_line(capsys).startswith(f"rnnkit: error: --cell-option: {message}")
    assert not out.exists()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_task_takes_cell_option_and_lists_the_settings_in_its_help(task, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", task, "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--cell-option NAME=VALUE" in shown and "zoneout: zoneout_h=0.05" in shown and "zoneout_c=0.5" in shown
    out = tmp_path / "model"
    assert main(["train", task, "--data", str(tmp_path / "missing"), "--out", str(out), "--cell", "zoneout",
                 "--cell-option", "p=1"]) == 2
    assert one_error_line(capsys).startswith("rnnkit: error: --cell-option: zoneout has no setting 'p'")
    assert not out.exists()


def test_stored_settings_are_checked_when_a_model_is_read(model, capsys):
    config = model / "config.json"
    stored = json.loads(config.read_text())
    assert stored["task_options"]["cell_option"] == {}  # an LSTM has no settings
    cases = [(lambda c: c["task_options"].update(cell_option={"p": 0.1}), "task_options.cell_option: lstm has no settings"),
             (lambda c: c["task_options"].update(cell="zoneout", cell_option={"zoneout_h": 7}),
              "task_options.cell_option: zoneout_h: expected a number in [0, 1), got 7"),
             (lambda c: c["task_options"].update(cell_option="zoneout_h=0.1"), "task_options.cell_option: expected object")]
    for change, message in cases:
        config.write_text(json.dumps(stored))
        edit_json(config, change)
        assert main(["info", str(model)]) == 2, message
        err = one_error_line(capsys)
        assert "config.json in" in err and message in err, err
    # a config.json without the entry (written before --cell-option existed): the kind's defaults
    # (zoneout's weights have an LSTM's names, so the LSTM's weights load)
    config.write_text(json.dumps(stored))
    edit_json(config, lambda c: (c["task_options"].pop("cell_option"), c["task_options"].update(cell="zoneout")))
    loaded = rnnkit.load(model)
    assert loaded.config["task_options"]["cell_option"] == {"zoneout_h": 0.05, "zoneout_c": 0.5}
    assert (loaded.model.rnn.zoneout_h, loaded.model.rnn.zoneout_c) == (0.05, 0.5)


# ---- --init: every task that builds a recurrent layer --------------------------------------------
# the smallest encoding each task's make_model reads
INIT_ENCODINGS = {
    "lm": {"vocabulary": {"tokens": list("<abc")}, "conditions": []},
    "classify": {"values": False, "labels": ["a", "b"], "input": "series", "channels": 2},
    "tag": {"tags": ["O", "B-PER", "I-PER"], "tokens": ["<pad>", "<unk>", "a", "b"]},
    "forecast": {"columns": ["v"], "period": 1},
    "detect": {"columns": ["v"]},
    "music": {"low": 60, "high": 72, "grid": 0.5},
    "translate": {"source": {"tokens": ["<pad>", "<unk>", "<s>", "</s>", "a"]},
                  "target": {"tokens": ["<pad>", "<unk>", "<s>", "</s>", "b"]}},
}


@pytest.mark.parametrize("name", sorted(INIT_ENCODINGS))
@pytest.mark.parametrize("init,forget_bias_is_one", [("rnnkit", True), ("torch", False)])
def test_every_task_builds_its_recurrent_layers_with_the_chosen_init(name, init, forget_bias_is_one):
    task = rnnkit.tasks.get_task(name)
    options = task.Options(init=init, hidden=8, layers=1, cell="lstm")
    model = task.make_model(options, INIT_ENCODINGS[name], seed=0)
    biases = {k: v for k, v in model.state_dict().items() if ".bias_ih" in k}  # decoder cells too
    assert biases and all(np.all(b[8:16] == 1) == forget_bias_is_one for b in biases.values()), biases.keys()


@pytest.mark.parametrize("name", sorted(INIT_ENCODINGS))
def test_every_task_offers_init_and_names_a_bad_one(name, capsys):
    with pytest.raises(SystemExit):
        main(["train", name, "--help"])
    assert "--init INIT" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"^--init: invalid value 'foo' \(how the parameters start: rnnkit: .*; torch: "):
        rnnkit.tasks.get_task(name).Options(init="foo")
