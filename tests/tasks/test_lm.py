"""Task `lm` through the command line and the Python API, on small texts the tests write."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.nn import cells
from rnnkit.training import model_dir as md

TINY = ["--steps", "12", "--hidden", "16", "--embed", "8", "--layers", "1", "--batch-size", "4",
        "--seq-len", "10", "--valid-every", "6", "--log-every", "3", "--quiet"]


def write_text(path, seed=0, n=300):
    rng = np.random.default_rng(seed)
    words = ["to", "be", "or", "not", "that", "is", "the", "question", "whether", "tis", "nobler"]
    lines = [" ".join(rng.choice(words, size=8)) + rng.choice([".", ",", "!", "?"]) for _ in range(n // 8)]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path):
    return write_text(tmp_path / "corpus.txt")


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """One small model, trained once for the module (once per worker) on a corpus of its own."""
    folder = tmp_path_factory.mktemp("lm")
    out = folder / "model"
    assert main(["train", "lm", "--data", str(write_text(folder / "corpus.txt")), "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture
def trained(tmp_path, trained_once):
    """The test's own copy of that model (a user may copy a model directory): it may change it."""
    return shutil.copytree(trained_once, tmp_path / "model")


def test_training_writes_a_complete_model_directory(trained):
    config = json.loads((trained / "config.json").read_text())
    assert config["task"] == "lm" and config["status"] == "finished"
    assert config["vocabulary"]["kind"] == "char"
    assert {"loss", "bits_per_token", "perplexity"} <= set(config["metrics"])
    assert (trained / "model.safetensors").stat().st_size > 0
    assert (trained / "loss.png").read_bytes()[:4] == b"\x89PNG"
    records = md.read_metrics(trained)
    assert [r["step"] for r in records if "train_loss" in r] == [3, 6, 9, 12]
    assert [r["step"] for r in records if "valid_loss" in r] == [6, 12]


def test_the_loss_falls(tmp_path, corpus):
    model = rnnkit.train("lm", tmp_path / "m", data=str(corpus), steps=60, hidden=32, embed=8, layers=1,
                         batch_size=4, seq_len=20, valid_every=30, log_every=10, lr=1e-2)
    losses = [r["train_loss"] for r in md.read_metrics(model.dir) if "train_loss" in r]
    assert losses[-1] < losses[0] - 0.5


def test_same_seed_same_weights(tmp_path, corpus):
    a = rnnkit.train("lm", tmp_path / "a", data=str(corpus), steps=5, hidden=8, embed=4, layers=2, dropout=0.2, batch_size=2, seq_len=8)
    b = rnnkit.train("lm", tmp_path / "b", data=str(corpus), steps=5, hidden=8, embed=4, layers=2, dropout=0.2, batch_size=2, seq_len=8)
    wa, wb = md.load_model_weights(a.dir), md.load_model_weights(b.dir)
    assert all(np.array_equal(wa[k], wb[k]) for k in wa)


def test_generate_in_a_fresh_process_repeats_for_the_same_seed(trained):
    cmd = [sys.executable, "-m", "rnnkit.cli.main", "generate", str(trained), "--prime", "to be", "--length", "40", "--seed", "7"]
    first = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    second = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    assert first == second and first.startswith("to be") and len(first) >= 45
    in_process = rnnkit.load(trained).generate("to be", 40, seed=7)
    assert first.rstrip("\n") == in_process  # the API returns what the command prints: the prime and what follows


def test_greedy_generation_is_deterministic_without_a_seed(trained):
    model = rnnkit.load(trained)
    assert model.generate("to", 30, temperature=0) == model.generate("to", 30, temperature=0)


def test_evaluate_and_info(trained, capsys):
    assert main(["evaluate", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "bits_per_char" in out and "perplexity" in out
    assert main(["info", str(trained)]) == 0
    out = capsys.readouterr().out
    assert "1-layer LSTM" in out and "char tokens" in out and "parameters" in out


def test_evaluate_on_another_file_matches_the_api(tmp_path, trained):
    other = write_text(tmp_path / "other.txt", seed=5)
    metrics = rnnkit.load(trained).evaluate(str(other))
    assert metrics["bits_per_char"] == pytest.approx(metrics["loss"] / np.log(2))


def test_word_level_model(tmp_path, corpus):
    model = rnnkit.train("lm", tmp_path / "w", data=str(corpus), tokenizer="word", steps=4, hidden=8, embed=4,
                         layers=1, batch_size=2, seq_len=5)
    text = model.generate("to be", 10, seed=0)
    assert text.split()  # words joined with spaces
    assert model.config["vocabulary"]["kind"] == "word"


def test_conditional_model_writes_in_the_style_of_a_class(tmp_path):
    classes = tmp_path / "classes"
    (classes / "happy").mkdir(parents=True)
    (classes / "sad").mkdir()
    (classes / "happy" / "a.txt").write_text("joy joy joy, sun and song! " * 40)
    (classes / "sad" / "b.txt").write_text("rain and grief, tears fall. " * 40)
    model = rnnkit.train("lm", tmp_path / "c", data=str(classes), steps=80, hidden=24, embed=8, layers=1,
                         batch_size=4, seq_len=20, lr=2e-2, valid_every=40)
    assert model.conditions == ["happy", "sad"]
    happy = model.generate(" ", 60, temperature=0, condition="happy")
    sad = model.generate(" ", 60, temperature=0, condition="sad")
    assert happy != sad
    assert happy.count("j") + happy.count("y") > sad.count("j") + sad.count("y")
    with pytest.raises(ValueError, match="--condition: unknown class 'angry'; this model knows: happy, sad"):
        model.generate(" ", 5, condition="angry")


def test_resume_continues_with_the_stored_configuration(tmp_path, corpus, trained):
    assert main(["train", "--resume", str(trained), "--steps", "18", "--quiet"]) == 0
    config = json.loads((trained / "config.json").read_text())
    assert config["training"]["steps"] == 18
    assert [r["step"] for r in md.read_metrics(trained) if "valid_loss" in r] == [6, 12, 18]


# ---- bad input: one line, exit code 2, no traceback ---------------------------------------------


def run_cli(*args):
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli.main", *map(str, args)], capture_output=True, text=True)
    return proc.returncode, proc.stderr


def assert_one_line_error(code, err, match):
    assert code == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert match in err, err


def test_empty_data_file(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert_one_line_error(*run_cli("train", "lm", "--data", empty, "--out", tmp_path / "m", "--quiet"), "empty")


def test_binary_data_file(tmp_path):
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"abc\x00\xff\xfe" * 50)
    assert_one_line_error(*run_cli("train", "lm", "--data", binary, "--out", tmp_path / "m", "--quiet"), "binary")


def test_prime_outside_the_vocabulary(trained):
    assert_one_line_error(*run_cli("generate", trained, "--prime", "€uro"), "not in the model's vocabulary: '€'")


@pytest.mark.parametrize("args,match", [(["--length", "0"], "--length"), (["--temperature", "-1"], "temperature")])
def test_bad_generation_options(trained, args, match):
    assert_one_line_error(*run_cli("generate", trained, *args), match)


def test_missing_model_directory(tmp_path):
    assert_one_line_error(*run_cli("generate", tmp_path / "nowhere"), "no model directory")


def test_truncated_model_weights(trained):
    weights = trained / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert_one_line_error(*run_cli("generate", trained), "truncated")


def test_model_of_another_task(trained):
    config = json.loads((trained / "config.json").read_text())
    config["task"] = "classify"
    (trained / "config.json").write_text(json.dumps(config))
    assert_one_line_error(*run_cli("generate", trained), "use `rnnkit classify")


def test_resume_with_a_contradicting_option(trained):
    assert_one_line_error(*run_cli("train", "--resume", trained, "--hidden", "32"), "contradict")


def test_training_into_an_existing_model_directory(corpus, trained):
    assert_one_line_error(*run_cli("train", "lm", "--data", corpus, "--out", trained, "--quiet"), "already holds a model")


def test_help_explains_every_option():
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli.main", "train", "lm", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for flag in ("--data", "--tokenizer", "--seq-len", "--clip", "--patience", "--valid-every", "--by-genre"):
        assert flag in proc.stdout


def test_overwrite_replaces_an_existing_model(corpus, trained):
    before = (trained / "model.safetensors").stat().st_mtime_ns
    assert main(["train", "lm", "--data", str(corpus), "--out", str(trained), "--overwrite", *TINY]) == 0
    assert (trained / "model.safetensors").stat().st_mtime_ns != before
    assert len([r for r in md.read_metrics(trained) if "valid_loss" in r]) == 2  # a fresh log, not an appended one


def test_generation_starts_where_lines_begin(trained):
    # the state is burnt in on a newline before the prime, as if the prime began a line
    model = rnnkit.load(trained)
    assert "\n" + model.generate("to be", length=30, seed=3) == model.generate("\nto be", length=30, seed=3)


@pytest.mark.parametrize("windows", ["0", "-1"])
def test_diagnose_needs_at_least_one_window(trained, windows):
    assert_one_line_error(*run_cli("diagnose", trained, "--windows", windows), "--windows: expected")


@pytest.mark.parametrize("flag,value", [("--hidden", "0"), ("--layers", "0"), ("--embed", "-1"), ("--seq-len", "0"),
                                        ("--batch-size", "0"), ("--dropout", "1"), ("--valid-fraction", "0"),
                                        ("--tie", None), ("--init", "foo")])
def test_bad_model_options_are_named_before_any_data_is_read(tmp_path, flag, value, capsys):
    missing = tmp_path / "no such corpus.txt"  # an option error must come first: the data is never opened
    args = [flag] if value is None else [flag, value]
    code = main(["train", "lm", "--data", str(missing), "--out", str(tmp_path / "m"), "--hidden", "8", "--embed", "4", *args])
    assert_one_line_error(code, capsys.readouterr().err, flag + ":")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("cell", cells.names())
def test_every_registered_cell_kind_trains_generates_and_resumes(tmp_path, corpus, cell):
    out = tmp_path / cell
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), "--cell", cell, "--steps", "4", "--hidden", "8",
                 "--embed", "4", "--layers", "2", "--batch-size", "2", "--seq-len", "6", "--valid-every", "2", "--quiet"]) == 0
    assert main(["train", "--resume", str(out), "--steps", "6", "--quiet"]) == 0
    model = rnnkit.load(out)
    assert model.config["task_options"]["cell"] == cell and model.model.rnn.kind.name == cell
    assert len(model.generate("to be", length=5, seed=0)) > len("to be")


def test_config_json_may_not_point_the_model_at_another_file(trained, corpus, tmp_path):
    config = json.loads((trained / "config.json").read_text())
    config["task_options"]["data"] = "/etc/passwd"
    (trained / "config.json").write_text(json.dumps(config))
    for verb in ("evaluate", "diagnose"):
        assert_one_line_error(*run_cli(verb, trained), "config.json names /etc/passwd as its data, but that is not the "
                                                        "file this model was trained on")
    del config["data_files"]  # an older model: no fingerprint, so its path is not followed
    config["task_options"]["data"] = str(corpus)
    (trained / "config.json").write_text(json.dumps(config))
    assert_one_line_error(*run_cli("evaluate", trained), "records no fingerprint")
    assert main(["evaluate", str(trained), "--data", str(corpus)]) == 0  # a file the user names is read


@pytest.mark.skipif(open("/proc/sys/vm/overcommit_memory").read().strip() != "0",
                    reason="numpy refuses a huge array at once only under Linux's heuristic overcommit")
def test_an_embedding_too_large_for_memory_is_an_error_naming_it(corpus, tmp_path):
    assert_one_line_error(*run_cli("train", "lm", "--data", corpus, "--out", tmp_path / "m", *TINY, "--embed", "1000000000"),
                          "--embed 1000000000, --layers 1: the model does not fit in memory")


def test_init_torch_is_kept_in_config_json_and_rebuilt_on_load_and_resume(tmp_path, corpus):
    out = tmp_path / "torch-init"
    assert main(["train", "lm", "--data", str(corpus), "--out", str(out), "--init", "torch", *TINY]) == 0
    assert json.loads((out / "config.json").read_text())["task_options"]["init"] == "torch"
    model = rnnkit.load(out)
    assert model.config["task_options"]["init"] == "torch" and "torch initialisation" in model.describe()
    assert_one_line_error(*run_cli("train", "--resume", out, "--init", "rnnkit"), "--init 'rnnkit' (stored: 'torch')")
    assert main(["train", "--resume", str(out), "--steps", "18", "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["task_options"]["init"] == "torch"


def test_a_config_json_without_init_is_rnnkits_initialisation(trained):
    config = json.loads((trained / "config.json").read_text())
    del config["task_options"]["init"]  # written before --init existed, when every model started as rnnkit's
    (trained / "config.json").write_text(json.dumps(config))
    assert rnnkit.load(trained).config["task_options"]["init"] == "rnnkit"


def test_the_default_init_is_torchs_and_rnnkits_stays_one_option_away():
    task = rnnkit.tasks.get_task("lm")
    encoding = {"vocabulary": {"tokens": list("<abc")}, "conditions": []}
    default = task.make_model(task.Options(hidden=16, embed=4, layers=1), encoding, seed=0)
    torch_init = task.make_model(task.Options(hidden=16, embed=4, layers=1, init="torch"), encoding, seed=0)
    assert task.Options().init == "torch"
    assert all(np.array_equal(a, b) for a, b in zip(default.state_dict().values(), torch_init.state_dict().values()))


@pytest.mark.parametrize("init,forget_bias_is_one", [("rnnkit", True), ("torch", False)])
def test_the_task_builds_its_model_with_the_chosen_init(init, forget_bias_is_one):
    task = rnnkit.tasks.get_task("lm")
    options = task.Options(init=init, hidden=16, embed=4, layers=1)
    model = task.make_model(options, {"vocabulary": {"tokens": list("<abc")}, "conditions": []}, seed=0)
    assert np.all(model.rnn.bias_ih_l0.data[16:32] == 1) == forget_bias_is_one


def test_the_api_takes_init_and_names_a_bad_one(tmp_path, corpus):
    model = rnnkit.train("lm", tmp_path / "m", data=str(corpus), init="torch", steps=2, hidden=8, embed=4, layers=1,
                         batch_size=2, seq_len=8, quiet=True)
    assert model.config["task_options"]["init"] == "torch"
    with pytest.raises(ValueError, match=r"^init: invalid value 'foo'"):
        rnnkit.train("lm", tmp_path / "bad", data=str(tmp_path / "missing.txt"), init="foo", quiet=True)
    assert not (tmp_path / "bad").exists()


# ---- tunes in ABC notation ---------------------------------------------------------------------

def write_tunes(path, n=40, seed=0):
    """``n`` small tunes in ABC, each with a header a corpus keeps and some bars of notes."""
    rng = np.random.default_rng(seed)
    tunes = []
    for i in range(n):
        meter, key = ["6/8", "2/4", "3/4"][i % 3], ["D", "G", "Ador"][i % 3]
        bars = "|".join("".join(rng.choice(list("ABcdefg"), size=4)) for _ in range(6))
        tunes.append(f"X:{i + 1}\nT:Tune {i}\nM:{meter}\nL:1/8\nK:{key}\n|:{bars}:|\n")
    path.write_text("\n".join(tunes), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tunes_model_once(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tunes")
    out = folder / "tunes"
    assert main(["train", "lm", "--data", str(write_tunes(folder / "tunes.abc")), "--tokenizer", "abc", "--valid-fraction", "0.25",
                 "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture
def tunes_model(tmp_path, tunes_model_once):
    """The test's own copy of a small model of tunes."""
    return shutil.copytree(tunes_model_once, tmp_path / "tunes")


def test_tunes_are_split_whole_and_scored_per_character(tunes_model):
    from rnnkit.data.abc import read_tunes
    from rnnkit.tasks.lm import _tune_splits, LMOptions

    config = json.loads((tunes_model / "config.json").read_text())
    assert config["vocabulary"]["kind"] == "abc" and "K:Ador" in config["vocabulary"]["tokens"]
    assert "30 training, 10 validation tunes" in config["data"]["source"]
    train, valid, _ = _tune_splits(LMOptions(**config["task_options"]), config["training"]["seed"])
    tunes = read_tunes(config["task_options"]["data"])[0]
    in_train = [t for t in tunes if t in train.split("\n\n")]
    in_valid = [t for t in tunes if t in valid.split("\n\n")]
    assert len(in_train) == 30 and len(in_valid) == 10 and not set(in_train) & set(in_valid)
    assert config["metrics"]["bits_per_char"] < config["metrics"]["bits_per_token"]  # tokens span characters
    metrics = rnnkit.load(tunes_model).evaluate()
    assert metrics["bits_per_char"] == pytest.approx(config["metrics"]["bits_per_char"])


def test_a_header_prime_starts_a_tune(tunes_model):
    text = rnnkit.load(tunes_model).generate("M:6/8\\nK:D\\n", 20, seed=0)
    assert text.startswith("M:6/8\nL:1/8\nK:D\n")


def test_meter_and_key_options_make_the_prime(tunes_model):
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli.main", "generate", str(tunes_model), "--meter", "3/4",
                           "--key", "Ador", "--length", "10", "--seed", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("M:3/4\nL:1/8\nK:Ador\n")


@pytest.mark.parametrize("args,match", [
    (["--prime", "T:A title\\nK:D\\n"], "unknown header field T:"),
    (["--key", "Bb"], "'K:Bb'"),                                  # a key the model never saw
    (["--key", "D", "--prime", "M:6/8\\n"], "--prime or --meter"),
])
def test_bad_header_primes_are_one_line_errors(tunes_model, args, match):
    assert_one_line_error(*run_cli("generate", tunes_model, *args), match)


def test_meter_and_key_need_a_model_of_tunes(trained):
    assert_one_line_error(*run_cli("generate", trained, "--key", "D"), "trained on tunes")


def test_generate_writes_each_readable_tune_as_abc_midi_audio_and_a_piano_roll(tunes_model, tmp_path):
    pytest.importorskip("music21")
    out = tmp_path / "heard"
    out.mkdir()
    proc = subprocess.run([sys.executable, "-m", "rnnkit.cli.main", "generate", str(tunes_model), "--prime",
                           "M:6/8\\nK:D\\n|:ABc|def|gfe|dcB:|\\n\\nM:3/4\\nK:G\\n|:ABcd|efgf:|\\n\\n", "--length", "30",
                           "--seed", "0", "--abc", out / "t.abc", "--midi", out / "t.mid", "--wav", out / "t.wav",
                           "--png", out / "t.png"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    written = int(proc.stderr.strip().splitlines()[-1].split(" of ")[0])
    assert written >= 2  # the two tunes of the prime are whole
    for k in range(1, written + 1):
        stem = "t" if k == 1 else f"t-{k}"
        assert {f"{stem}.mid", f"{stem}.wav", f"{stem}.png"} <= {p.name for p in out.iterdir()}
    assert not (out / f"t-{written + 1}.mid").exists()
    assert (out / "t.abc").read_text().startswith("X:1\nM:6/8\nL:1/8\nK:D\n|:ABc|def|gfe|dcB:|\n\nX:2\nM:3/4")
