"""The model directory: round trips, atomic writes under simulated crashes, clear errors for damage."""

import json
import os
import shutil

import numpy as np
import pytest

from rnnkit.nn import Adam, Linear, MSELoss
from rnnkit.training import model_dir as md
from rnnkit.training.model_dir import (
    ModelDirError,
    append_metrics,
    atomic_write_json,
    load_checkpoint,
    load_config,
    load_model_weights,
    load_weights,
    read_metrics,
    restore_rng,
    rewind_metrics,
    rng_state,
    save_checkpoint,
    save_model,
    save_weights,
)


def weights(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "rnn.weight_ih_l0": rng.standard_normal((8, 3)).astype(np.float32),
        "rnn.bias_hh_l0_reverse": rng.standard_normal(8).astype(np.float32),
        "decoder.weight": rng.standard_normal((4, 2)),  # float64
        "embedding.weight": rng.standard_normal((5, 3))[:, ::2],  # not contiguous
    }


def assert_same_arrays(got, expected):
    assert got.keys() == expected.keys()
    for k in expected:
        assert got[k].dtype == expected[k].dtype, k
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


def snapshot(directory):
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


# ---- weights and config ------------------------------------------------------------------


def test_weights_round_trip_keeps_dtypes_shapes_and_dotted_names(tmp_path):
    w = weights()
    save_weights(tmp_path / "w.safetensors", w, metadata={"note": "test"})
    loaded = load_weights(tmp_path / "w.safetensors")
    assert_same_arrays(loaded, w)
    loaded["decoder.weight"] += 1  # loaded arrays are ordinary writable arrays


def test_model_round_trip_and_config_contents(tmp_path):
    d = tmp_path / "new" / "model"  # created with its parents
    config = {"task": "lm", "vocabulary": ["a", "é", "\n"], "hidden_size": 16, "lr": 0.002,
              "metrics": {"val_bpc": np.float32(1.5)}}
    save_model(d, config, weights())
    assert sorted(p.name for p in d.iterdir()) == ["config.json", "model.safetensors"]
    loaded = load_config(d)
    assert loaded["vocabulary"] == ["a", "é", "\n"]
    assert loaded["hidden_size"] == 16 and isinstance(loaded["hidden_size"], int)
    assert loaded["metrics"]["val_bpc"] == 1.5
    assert loaded["rnnkit_version"] == __import__("rnnkit").__version__
    assert_same_arrays(load_model_weights(d), weights())


def test_save_model_writes_weights_before_config(tmp_path, monkeypatch):
    written = []
    real = md.atomic_write_bytes
    monkeypatch.setattr(md, "atomic_write_bytes", lambda path, data: (written.append(path.name), real(path, data)))
    save_model(tmp_path, {"task": "lm"}, weights())
    assert written == ["model.safetensors", "config.json"]


def test_save_model_refuses_a_config_it_cannot_write_before_writing_anything(tmp_path):
    with pytest.raises(TypeError, match="config"):
        save_model(tmp_path / "m", {"task": "lm", "bad": object()}, weights())
    with pytest.raises(ValueError, match="task"):
        save_model(tmp_path / "m", {"hidden": 3}, weights())
    assert not (tmp_path / "m").exists()


# ---- atomic writes -------------------------------------------------------------------------


def failing_replace(monkeypatch):
    def replace(src, dst):
        assert os.path.getsize(src) > 0  # the temporary file was written completely first
        raise OSError("simulated crash")

    monkeypatch.setattr(md.os, "replace", replace)


def test_crash_during_weight_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    save_weights(path, weights(0))
    before = snapshot(tmp_path)
    failing_replace(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"):
        save_weights(path, weights(1))
    assert snapshot(tmp_path) == before  # old file intact, no temporary file left beside it
    monkeypatch.undo()
    assert_same_arrays(load_weights(path), weights(0))


def test_crash_during_first_json_save_leaves_no_file(tmp_path, monkeypatch):
    failing_replace(monkeypatch)
    with pytest.raises(OSError):
        atomic_write_json(tmp_path / "config.json", {"task": "lm"})
    assert list(tmp_path.iterdir()) == []


def test_temporary_files_of_a_killed_write_are_removed_by_the_next(tmp_path):
    (tmp_path / ".config.json.0123abcd.tmp").write_text('{"ta')
    atomic_write_json(tmp_path / "config.json", {"task": "lm"})
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


# ---- errors a user can act on ------------------------------------------------------------


def test_truncated_weights_name_the_file_and_the_fix(tmp_path):
    save_model(tmp_path, {"task": "lm"}, weights())
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    expected = r"model.safetensors in .* is truncated or corrupt: .*retrain or restore it"
    with pytest.raises(ModelDirError, match=expected):
        load_model_weights(tmp_path)
    path.write_bytes(b"")
    with pytest.raises(ModelDirError, match="truncated"):
        load_model_weights(tmp_path)


def test_missing_weights_file(tmp_path):
    with pytest.raises(ModelDirError, match="no model.safetensors in"):
        load_weights(tmp_path / "model.safetensors")


@pytest.mark.parametrize("text", ['{"task": "lm", "hidden', "", "\xff\xfe", "[1, 2]", '{"hidden": 3}'])
def test_damaged_config_is_a_model_dir_error(tmp_path, text):
    save_model(tmp_path, {"task": "lm"}, weights())
    (tmp_path / "config.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ModelDirError, match="config.json in .*(truncated|no 'task')"):
        load_config(tmp_path)


def test_missing_directory_file_and_non_model_directory(tmp_path):
    with pytest.raises(ModelDirError, match="no model directory at .*nowhere; train one"):
        load_config(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ModelDirError, match="is a file, not a model directory"):
        load_config(tmp_path / "file")
    with pytest.raises(ModelDirError, match="no config.json"):
        load_config(tmp_path)
    with pytest.raises(ModelDirError, match="no model directory"):
        load_model_weights(tmp_path / "nowhere")


def test_directory_with_only_a_checkpoint_points_to_resume(tmp_path):
    save_checkpoint(tmp_path, weights(), {}, {"step": 1})
    with pytest.raises(ModelDirError, match="train --resume"):
        load_config(tmp_path)


def test_wrong_task_names_the_verb_that_fits(tmp_path):
    from rnnkit.tasks.base import read_model

    save_model(tmp_path, {"task": "classify"}, weights())
    with pytest.raises(ModelDirError) as err:
        read_model(tmp_path, expect_task="lm")
    message = str(err.value)
    assert f"{tmp_path} holds a 'classify' model" in message
    assert f"use `rnnkit classify {tmp_path}`" in message
    assert "`rnnkit generate`" in message and "\n" not in message
    save_model(tmp_path, {"task": "lm"}, weights())
    with pytest.raises(ModelDirError, match=r"`rnnkit translate` .* use `rnnkit generate "):
        read_model(tmp_path, expect_task="translate")


def test_model_from_a_newer_layout_is_refused(tmp_path):
    save_model(tmp_path, {"task": "lm"}, weights())
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_dir_format": md.FORMAT + 1}))
    with pytest.raises(ModelDirError, match="newer rnnkit"):
        load_config(tmp_path)


# ---- checkpoints -------------------------------------------------------------------------


def make_checkpoint(directory, seed):
    opt = {"lr": 0.01 * (seed + 1), "betas": (0.9, 0.999), "amsgrad": False, "step": seed,
           "eps": np.float64(1e-8), "momentum": np.array(0.5), "name": "adam",
           "exp_avg.0": np.full((2, 3), float(seed), dtype=np.float32)}
    state = {"step": seed, "epoch": 2, "best_val_loss": float("inf"), "position": [3, 17]}
    save_checkpoint(directory, weights(seed), opt, state)
    return weights(seed), opt, state


def test_checkpoint_round_trip_restores_types_exactly(tmp_path):
    w, opt, state = make_checkpoint(tmp_path, 3)
    assert sorted(p.name for p in (tmp_path / "checkpoint").iterdir()) == \
        ["optimizer.safetensors", "state.json", "weights.safetensors"]
    w2, opt2, state2 = load_checkpoint(tmp_path)
    assert_same_arrays(w2, w)
    assert state2 == state
    assert opt2.keys() == opt.keys()
    assert opt2["betas"] == (0.9, 0.999) and type(opt2["betas"]) is tuple
    assert type(opt2["step"]) is int and type(opt2["lr"]) is float and type(opt2["amsgrad"]) is bool
    assert opt2["eps"] == 1e-8 and type(opt2["eps"]) is float
    assert opt2["momentum"] == 0.5 and opt2["name"] == "adam"
    assert_same_arrays({"e": opt2["exp_avg.0"]}, {"e": opt["exp_avg.0"]})


def test_checkpoint_replaces_the_previous_one(tmp_path):
    make_checkpoint(tmp_path, 1)
    make_checkpoint(tmp_path, 2)
    assert load_checkpoint(tmp_path)[2]["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def crash_on_rename(monkeypatch, target_name):
    real = os.rename

    def rename(src, dst):
        if os.path.basename(dst) == target_name:
            raise OSError("simulated crash")
        real(src, dst)

    monkeypatch.setattr(md.os, "rename", rename)


def test_crash_between_the_renames_loads_the_previous_checkpoint(tmp_path, monkeypatch):
    make_checkpoint(tmp_path, 1)
    crash_on_rename(monkeypatch, "checkpoint")  # after checkpoint -> checkpoint.old
    with pytest.raises(OSError, match="simulated crash"):
        make_checkpoint(tmp_path, 2)
    monkeypatch.undo()
    assert not (tmp_path / "checkpoint").exists() and (tmp_path / "checkpoint.old").is_dir()
    w, opt, state = load_checkpoint(tmp_path)
    assert state["step"] == 1 and opt["step"] == 1
    assert_same_arrays(w, weights(1))
    make_checkpoint(tmp_path, 3)  # the next save recovers the layout
    assert load_checkpoint(tmp_path)[2]["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_crash_before_removing_the_old_checkpoint_loads_the_new_one(tmp_path, monkeypatch):
    make_checkpoint(tmp_path, 1)
    real = shutil.rmtree

    def rmtree(path, ignore_errors=False):
        if os.path.basename(path) == "checkpoint.old":
            raise KeyboardInterrupt  # killed right after the swap
        real(path, ignore_errors=ignore_errors)

    monkeypatch.setattr(md.shutil, "rmtree", rmtree)
    with pytest.raises(KeyboardInterrupt):
        make_checkpoint(tmp_path, 2)
    monkeypatch.undo()
    assert (tmp_path / "checkpoint").is_dir() and (tmp_path / "checkpoint.old").is_dir()
    assert load_checkpoint(tmp_path)[2]["step"] == 2
    make_checkpoint(tmp_path, 3)  # the stale checkpoint.old is cleared, not mistaken for current
    assert load_checkpoint(tmp_path)[2]["step"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_crash_while_writing_the_new_checkpoint_keeps_the_old_one_whole(tmp_path, monkeypatch):
    make_checkpoint(tmp_path, 1)
    before = snapshot(tmp_path)
    real = md._write_synced

    def write(path, data):
        if path.name == "state.json":
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(md, "_write_synced", write)
    with pytest.raises(OSError, match="disk full"):
        make_checkpoint(tmp_path, 2)
    assert snapshot(tmp_path) == before


def test_stale_temporary_checkpoints_are_ignored_then_removed(tmp_path):
    make_checkpoint(tmp_path, 1)
    stale = tmp_path / ".checkpoint-tmp-deadbeef"
    stale.mkdir()
    (stale / "weights.safetensors").write_bytes(b"half a fi")
    assert load_checkpoint(tmp_path)[2]["step"] == 1
    assert stale.exists()  # loading only reads
    make_checkpoint(tmp_path, 2)
    assert not stale.exists()
    assert load_checkpoint(tmp_path)[2]["step"] == 2


def test_missing_and_damaged_checkpoints(tmp_path):
    with pytest.raises(ModelDirError, match="no checkpoint in .* to resume from"):
        load_checkpoint(tmp_path)
    make_checkpoint(tmp_path, 1)
    path = tmp_path / "checkpoint" / "optimizer.safetensors"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ModelDirError, match="optimizer.safetensors in .* is truncated or corrupt"):
        load_checkpoint(tmp_path)
    make_checkpoint(tmp_path, 1)
    (tmp_path / "checkpoint" / "state.json").write_text('{"format": 1, "sta')
    with pytest.raises(ModelDirError, match="state.json in .* truncated"):
        load_checkpoint(tmp_path)


def test_state_that_json_cannot_hold_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match="state"):
        save_checkpoint(tmp_path, weights(), {}, {"rng": np.random.default_rng(0)})
    with pytest.raises(TypeError, match=r"optimizer_state\['x'\]"):
        save_checkpoint(tmp_path, weights(), {"x": [1, 2]}, {})
    assert list(tmp_path.iterdir()) == []


def train_steps(model, opt, steps, rng):
    loss = MSELoss()
    for _ in range(steps):
        x = rng.standard_normal((4, 3))
        y = rng.standard_normal((4, 2))
        model.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()


def test_resumed_adam_training_equals_uninterrupted_training_bitwise(tmp_path):
    reference = Linear(3, 2, rng=0)
    train_steps(reference, Adam(reference.parameters(), lr=0.01, betas=(0.8, 0.99)), 6, np.random.default_rng(7))

    model = Linear(3, 2, rng=0)
    opt = Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))
    rng = np.random.default_rng(7)
    train_steps(model, opt, 3, rng)
    save_checkpoint(tmp_path, model.state_dict(), opt.state_dict(), {"rng": rng_state(rng)})

    w, opt_state, state = load_checkpoint(tmp_path)
    resumed = Linear(3, 2, rng=123)  # different initial weights, all overwritten
    resumed.load_state_dict(w)
    resumed_opt = Adam(resumed.parameters())  # different hyperparameters, all restored
    resumed_opt.load_state_dict(opt_state)
    train_steps(resumed, resumed_opt, 3, restore_rng(state["rng"]))

    assert resumed_opt.step_count == 6 and resumed_opt.betas == (0.8, 0.99)
    for name, value in reference.state_dict().items():
        assert np.array_equal(resumed.state_dict()[name], value), name


# ---- random state ------------------------------------------------------------------------


def test_rng_round_trip_continues_the_same_stream_through_json(tmp_path):
    rng = np.random.default_rng(2024)
    rng.standard_normal(5)
    rng.integers(0, 10, size=3)
    state = json.loads(json.dumps(rng_state(rng)))
    expected = rng.random(8)
    np.testing.assert_array_equal(restore_rng(state).random(8), expected)


def test_rng_states_json_cannot_hold_are_refused():
    with pytest.raises(TypeError, match="PCG64"):
        rng_state(np.random.Generator(np.random.MT19937(0)))
    with pytest.raises(ModelDirError, match="RNG state"):
        restore_rng({"bit_generator": "os.system"})
    with pytest.raises(ModelDirError, match="damaged"):
        restore_rng({"bit_generator": "PCG64", "state": {}})


# ---- metrics -----------------------------------------------------------------------------


def test_metrics_append_and_read_in_order(tmp_path):
    assert read_metrics(tmp_path) == []
    for step in range(3):
        append_metrics(tmp_path, {"step": step, "loss": np.float32(0.5) / (step + 1)})
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2]
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_metrics_with_a_truncated_last_line_are_read_and_appended_to(tmp_path):
    append_metrics(tmp_path, {"step": 1, "loss": 2.0})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 2, "lo')  # killed mid-write
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}]
    append_metrics(tmp_path, {"step": 2, "loss": 1.5})
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]


def test_damaged_metrics_line_in_the_middle_is_an_error(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ModelDirError, match="line 2"):
        read_metrics(tmp_path)


def test_rewind_metrics_drops_steps_after_the_checkpoint(tmp_path):
    for step in (10, 20, 30):
        append_metrics(tmp_path, {"step": step})
    append_metrics(tmp_path, {"event": "early stop"})
    rewind_metrics(tmp_path, 20)
    assert read_metrics(tmp_path) == [{"step": 10}, {"step": 20}, {"event": "early stop"}]
