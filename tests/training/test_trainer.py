"""The trainer: exact resume after SIGKILL, divergence detection, early stopping."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import rnnkit
from rnnkit.training import model_dir as md
from rnnkit.training.trainer import TrainingError, TrainingOptions

OPTIONS = ["--steps", "200", "--hidden", "12", "--embed", "6", "--layers", "2", "--dropout", "0.3",
           "--batch-size", "4", "--seq-len", "8", "--valid-every", "25", "--log-every", "5", "--quiet"]


def write_corpus(path):
    rng = np.random.default_rng(0)
    path.write_text(" ".join(rng.choice(["alas", "poor", "yorick", "i", "knew", "him"], size=2000)), encoding="utf-8")
    return path


def cli(*args):
    return [sys.executable, "-m", "rnnkit.cli.main", *map(str, args)]


def test_a_run_killed_and_resumed_ends_with_the_same_weights(tmp_path):
    corpus = write_corpus(tmp_path / "text.txt")
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    subprocess.run(cli("train", "lm", "--data", corpus, "--out", whole, *OPTIONS), check=True, capture_output=True)

    proc = subprocess.Popen(cli("train", "lm", "--data", corpus, "--out", broken, *OPTIONS),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    state = broken / "checkpoint" / "state.json"

    def step_reached() -> int:  # the checkpoint's step (the first, at step 0, carries no moments yet)
        try:
            return json.loads(state.read_text())["state"]["step"]
        except (OSError, ValueError):
            return 0

    while step_reached() < 25:  # wait for a checkpoint of a validation, not a guess
        assert time.time() < deadline and proc.poll() is None, "no checkpoint appeared"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = json.loads((broken / "checkpoint" / "state.json").read_text())["state"]["step"]
    assert killed_at < 200, "the run finished before it could be killed"

    subprocess.run(cli("train", "--resume", broken, "--quiet"), check=True, capture_output=True)
    for name in ("model.safetensors", "checkpoint/weights.safetensors"):
        a, b = md.load_weights(whole / name), md.load_weights(broken / name)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k}")
    steps = [r["step"] for r in md.read_metrics(broken) if "train_loss" in r]
    assert steps == list(range(5, 201, 5))  # the lines after the checkpoint were not written twice


# rnnkit's initialisation: IRNN's recurrent weights start at the identity, which is what explodes
# (torch's default, lm's --init since session 7, draws them uniformly)
EXPLODING = dict(cell="irnn", optimizer="sgd", lr=0.5, steps=300, hidden=32, embed=8, layers=1, batch_size=8,
                 seq_len=32, valid_every=100, init="rnnkit")


def test_exploding_gradients_without_clipping_are_stopped_with_a_clear_message(tmp_path):
    # a ReLU RNN (unbounded) with plain SGD: the gradients explode within a few steps
    corpus = write_corpus(tmp_path / "text.txt")
    with pytest.raises(TrainingError, match=r"(non-finite (loss|gradient norm) detected|the loss exploded) at step \d+.*"
                                            r"training diverged; the last good checkpoint is kept: continue it with .* "
                                            r"and a lower lr .* or clip 1 \(gradient clipping is off\)"):
        rnnkit.train("lm", tmp_path / "m", data=str(corpus), clip=0.0, **EXPLODING)


def test_the_same_run_with_clipping_trains(tmp_path):
    corpus = write_corpus(tmp_path / "text.txt")
    model = rnnkit.train("lm", tmp_path / "m", data=str(corpus), clip=1.0, **EXPLODING)
    validations = [r["valid_loss"] for r in md.read_metrics(model.dir) if "valid_loss" in r]
    assert len(validations) == 3 and all(np.isfinite(validations))
    assert model.config["metrics"]["loss"] < 0.5 * np.log(16)  # 16 characters: far below a uniform guess
    clipped = [r["clipped_fraction"] for r in md.read_metrics(model.dir) if "clipped_fraction" in r]
    assert max(clipped) > 0  # clipping did act


def test_divergence_in_the_command_line_is_one_line_and_exit_code_2(tmp_path, capsys):
    from rnnkit.cli.main import main

    corpus = write_corpus(tmp_path / "text.txt")
    args = [f"--{k.replace('_', '-')}={v}" for k, v in EXPLODING.items()]
    assert main(["train", "lm", "--data", str(corpus), "--out", str(tmp_path / "m"), "--clip", "0", "--quiet", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "training diverged" in err


def test_early_stopping_after_patience_runs_out(tmp_path):
    corpus = write_corpus(tmp_path / "text.txt")
    model = rnnkit.train("lm", tmp_path / "m", data=str(corpus), steps=400, hidden=8, embed=4, layers=1,
                         batch_size=4, seq_len=8, lr=0.5, optimizer="sgd", valid_every=2, patience=2)
    validations = [r for r in md.read_metrics(model.dir) if "valid_loss" in r]
    assert model.config["status"] == "stopped early"
    assert len(validations) < 200
    best = min(r["valid_loss"] for r in validations)
    assert all(r["valid_loss"] >= best for r in validations[-2:])
    assert model.config["metrics"]["loss"] == best  # the best weights are what the directory holds


@pytest.mark.parametrize("field,value", [("steps", 0), ("lr", -1.0), ("optimizer", "adagrad"), ("schedule", "cyclic"), ("clip", -1.0),
                                         ("ema", 1.0), ("ema", -0.5)])
def test_bad_training_options_are_named(field, value):
    with pytest.raises(ValueError, match=f"--{field.replace('_', '-')}: invalid value"):
        TrainingOptions(**{field: value})


def test_diagnose_every_logs_gradient_flow_and_clipping(tmp_path):
    corpus = write_corpus(tmp_path / "text.txt")
    model = rnnkit.train("lm", tmp_path / "m", data=str(corpus), steps=6, hidden=8, embed=4, layers=2, batch_size=2,
                         seq_len=7, diagnose_every=3, log_every=3, clip=1e-3)
    records = md.read_metrics(model.dir)
    flows = [r for r in records if "grad_flow" in r]
    assert [r["step"] for r in flows] == [3, 6]
    assert set(flows[0]["grad_flow"]) == {"0:layer 0", "0:layer 1"}
    assert len(flows[0]["grad_flow"]["0:layer 1"]) == 7  # one norm per time step
    assert "rnn.weight_hh_l0" in flows[0]["param_grad_norms"]
    assert all(r["clipped_fraction"] == 1.0 for r in records if "clipped_fraction" in r)  # a tiny clip clips every step


def test_monitor_keeps_the_weights_with_the_best_score(tmp_path):
    rng = np.random.default_rng(0)
    rows = [f"{'pos' if (p := rng.integers(2)) else 'neg'}\t{'good' if p else 'bad'} {' '.join(rng.choice(['a', 'film', 'plot'], 3))}"
            for _ in range(120)]
    data = tmp_path / "r.tsv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    model = rnnkit.train("classify", tmp_path / "m", data=str(data), steps=60, valid_every=5, hidden=4, embed=4,
                         monitor="accuracy", lr=0.01, cv_folds=0)  # a validation split: the trainer keeps the best
    accuracies = [r["valid_accuracy"] for r in md.read_metrics(model.dir) if "valid_accuracy" in r]
    assert model.config["metrics"]["accuracy"] == max(accuracies)
    # a name the task never reports is refused before any work, so no directory is left behind
    with pytest.raises(ValueError, match="monitor: a classify model's validation reports loss, accuracy, .*not 'f1'"):
        rnnkit.train("classify", tmp_path / "m2", data=str(data), steps=5, valid_every=5, hidden=4, embed=4, monitor="f1")
    assert not (tmp_path / "m2").exists()


def test_monitor_keeps_the_weights_with_the_lowest_error(tmp_path):
    """mae is lower-is-better: the kept weights are those of the smallest validation error, not the largest."""
    rng = np.random.default_rng(0)
    words = ["tiny", "small", "big", "huge"]
    rows = [f"{2.0 * (k := rng.integers(4)) + rng.normal(0, 0.1):.3f}\t{words[k]} {' '.join(rng.choice(['a', 'b'], 2))}"
            for _ in range(120)]
    data = tmp_path / "v.tsv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    model = rnnkit.train("classify", tmp_path / "m", data=str(data), steps=60, valid_every=5, hidden=4, embed=4,
                         monitor="mae", lr=0.02, cv_folds=0)
    errors = [r["valid_mae"] for r in md.read_metrics(model.dir) if "valid_mae" in r]
    assert max(errors) > min(errors)  # the choice matters
    assert model.config["metrics"]["mae"] == min(errors)


def test_ema_validates_saves_and_resumes_the_average_of_the_weights(tmp_path):
    """With --ema, the model kept is the discounted mean of the live weights after each step (read
    from the checkpoints of a run resumed step by step), and that run ends as one never stopped."""
    corpus = write_corpus(tmp_path / "text.txt")
    options = dict(data=str(corpus), hidden=8, embed=4, layers=1, batch_size=4, seq_len=8, lr=0.05, ema=0.6,
                   valid_every=1, quiet=True)
    whole = rnnkit.train("lm", tmp_path / "whole", steps=6, **options)
    stepped, live = tmp_path / "stepped", []
    for steps in range(1, 7):
        if steps == 1:
            rnnkit.train("lm", stepped, steps=1, **options)
        else:
            rnnkit.train("lm", stepped, resume=True, steps=steps, quiet=True)
        weights = md.load_weights(stepped / "checkpoint" / "weights.safetensors")
        live.append({k: v for k, v in weights.items() if not k.startswith(("run.", "ema."))})
    for name in ("model.safetensors", "checkpoint/weights.safetensors"):
        a, b = md.load_weights(whole.dir / name), md.load_weights(stepped / name)
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{name}: {k}")

    best = whole.config["metrics"]["step"]
    weights = 0.6 ** np.arange(best - 1, -1, -1)
    kept = md.load_weights(whole.dir / "model.safetensors")
    for k, value in kept.items():
        expected = sum(w * live[s][k].astype(np.float64) for s, w in enumerate(weights)) / weights.sum()
        np.testing.assert_allclose(value, expected, rtol=2e-5, atol=2e-6, err_msg=k)
        assert best == 1 or not np.array_equal(value, live[best - 1][k])  # the average, not the live weights
    losses = [r["valid_loss"] for r in md.read_metrics(whole.dir) if "valid_loss" in r]
    assert whole.config["metrics"]["loss"] == min(losses)
    # what was validated is what was kept: the saved average scores the recorded loss
    assert whole.evaluate()["loss"] == pytest.approx(whole.config["metrics"]["loss"], rel=1e-6)


def test_ema_never_feeds_back_into_training(tmp_path):
    """The live weights of a run with --ema are those of the same run without it, to the bit."""
    corpus = write_corpus(tmp_path / "text.txt")
    options = dict(data=str(corpus), hidden=8, embed=4, layers=1, batch_size=4, seq_len=8, lr=0.05, steps=6,
                   valid_every=2, quiet=True)
    plain = rnnkit.train("lm", tmp_path / "plain", **options)
    averaged = rnnkit.train("lm", tmp_path / "averaged", ema=0.6, **options)
    live = [md.load_weights(m.dir / "checkpoint" / "weights.safetensors") for m in (plain, averaged)]
    assert not any(k.startswith("ema.") for k in live[0]) and any(k.startswith("ema.") for k in live[1])
    for k in live[0]:
        np.testing.assert_array_equal(live[0][k], live[1][k], err_msg=k)
