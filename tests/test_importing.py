"""rnnkit.importing: weights trained in PyTorch become a model directory that every verb uses, and
a state dict that does not fit is a one-line error naming each tensor, with nothing written."""

import pickle
import re
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.nn import backend, no_grad
from rnnkit.training import model_dir as md

torch = pytest.importorskip("torch")
from safetensors.numpy import save_file as save_numpy  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from torch import nn  # noqa: E402

torch.set_num_threads(1)
TOLERANCE = 1e-5
LM = dict(cell="lstm", hidden=12, embed=6, layers=2, batch_size=4, seq_len=10)
LM_FLAGS = ["--cell", "lstm", "--hidden", "12", "--embed", "6", "--layers", "2", "--batch-size", "4", "--seq-len", "10"]


def assert_close(got, expected, what=""):
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape, what
    err = np.linalg.norm(got - expected)
    assert err <= TOLERANCE * max(np.linalg.norm(expected), 1.0), f"{what}: ‖Δ‖ = {err:.3g}"


class TorchLM(nn.Module):
    """rnnkit's LanguageModel in torch: Embedding → LSTM → Linear, under the same names."""

    def __init__(self, vocab, embed=LM["embed"], hidden=LM["hidden"], layers=LM["layers"], tie=False):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = nn.LSTM(embed, hidden, layers)
        self.head = nn.Linear(hidden, vocab)
        if tie:
            self.head.weight = self.embedding.weight

    def forward(self, ids):
        return self.head(self.rnn(self.embedding(ids))[0])


def train_in_torch(module, vocab, steps=5, seed=0):
    """A few Adam steps of next-token prediction on random ids: weights that rnnkit never saw."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(steps):
        ids = torch.randint(0, vocab, (11, 4))
        loss = nn.functional.cross_entropy(module(ids[:-1]).reshape(-1, vocab), ids[1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question"]
    path = tmp_path_factory.mktemp("data") / "corpus.txt"
    path.write_text("\n".join(" ".join(rng.choice(words, 8)) for _ in range(40)) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def torch_lm(corpus, tmp_path_factory):
    """(the torch module, its state dict as .safetensors): an rnnkit model's weights loaded into torch
    and trained on in torch."""
    d = tmp_path_factory.mktemp("lm")
    with backend.use_backend("numpy"):
        trained = rnnkit.train("lm", d / "rnnkit", data=str(corpus), steps=2, valid_every=2, quiet=True, **LM)
    module = TorchLM(len(trained.tokenizer))
    module.load_state_dict(load_file(str(d / "rnnkit" / md.WEIGHTS)), strict=True)
    before = {k: v.clone() for k, v in module.state_dict().items()}
    train_in_torch(module, len(trained.tokenizer))
    assert all((module.state_dict()[k] - v).abs().max() > 1e-3 for k, v in before.items())  # torch's own weights now
    save_file(module.state_dict(), str(d / "torch.safetensors"))
    return module, d / "torch.safetensors"


def import_lm(weights, out, corpus, *extra):
    return main(["--quiet", "import", "lm", "--weights", str(weights), "--out", str(out), "--data", str(corpus),
                 *LM_FLAGS, *extra])


@pytest.mark.usefixtures("reference_backend")
def test_round_trip_rnnkit_torch_rnnkit_gives_torchs_outputs_and_every_verb_works(torch_lm, corpus, tmp_path, capsys):
    module, weights = torch_lm
    assert import_lm(weights, tmp_path / "m", corpus) == 0
    imported = rnnkit.load(tmp_path / "m")
    assert imported.config["status"] == "imported" and imported.config["imported"]["weights"] == "torch.safetensors"
    ids = np.random.default_rng(1).integers(0, len(imported.tokenizer), (9, 3))
    imported.model.eval()
    with no_grad():
        logits, _ = imported.model(ids)
    with torch.no_grad():
        assert_close(logits, module(torch.from_numpy(ids)), "logits")
    capsys.readouterr()
    for verb in (["generate", "--length", "20", "--seed", "0"], ["evaluate"], ["info"],
                 ["export", "--out", str(tmp_path / "m.onnx")]):
        assert main([verb[0], str(tmp_path / "m"), *verb[1:]]) == 0, verb
    out = capsys.readouterr().out
    assert "task lm (imported)" in out and "perplexity" in out


@pytest.mark.usefixtures("reference_backend")
def test_a_resumed_import_fine_tunes_the_imported_weights(torch_lm, corpus, tmp_path):
    module, weights = torch_lm
    assert import_lm(weights, tmp_path / "m", corpus) == 0
    # a step too small to move the weights: what the run continues from is what was imported
    assert main(["--quiet", "train", "--resume", str(tmp_path / "m"), "--steps", "1", "--lr", "1e-12", "--valid-every", "1"]) == 0
    tuned, _, state = md.load_checkpoint(tmp_path / "m")  # the weights after the fine-tuning step
    assert state["step"] == 1
    for name, tensor in module.state_dict().items():
        assert_close(tuned[name], tensor.numpy(), name)
    assert rnnkit.load(tmp_path / "m").config["status"] == "finished"


@pytest.mark.usefixtures("reference_backend")
def test_a_torch_pt_state_dict_imports_through_the_api_and_its_weights_decide_the_labels(tmp_path):
    rng = np.random.default_rng(2)
    words = ["the", "film", "was", "a", "plot"]
    lines = [f"{label}\t{' '.join(rng.choice(words, rng.integers(1, 5)))} {'good' if label == 'pos' else 'bad'}"
             for label in rng.choice(["pos", "neg"], 50)]
    (tmp_path / "reviews.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    options = dict(data=str(tmp_path / "reviews.tsv"), cell="gru", hidden=6, embed=4, pooling="mean", batch_size=8)
    with backend.use_backend("numpy"):  # a validation split (50 examples would be cross-validated)
        trained = rnnkit.train("classify", tmp_path / "rnnkit", steps=1, valid_every=1, quiet=True, cv_folds=0, **options)
    state = {k: torch.from_numpy(v) for k, v in md.load_model_weights(tmp_path / "rnnkit").items()}
    state["head.bias"] = torch.tensor([5.0, -5.0])  # as if torch had learnt to say the first label
    torch.save(state, tmp_path / "classifier.pt")
    imported = rnnkit.import_weights("classify", tmp_path / "classifier.pt", tmp_path / "m", quiet=True, **options)
    assert imported.labels == trained.labels
    result = imported.classify(["the film was good", "a plot"])
    assert [r["label"] for r in result] == [trained.labels[0]] * 2
    assert 0 <= imported.evaluate()["valid_accuracy"] <= 1  # evaluate works on the imported model
    # an import trains nothing: a validation split measures it, no folds are trained to choose steps
    assert imported.config["task_options"]["cv_folds"] == 0 and "cross_validation" not in imported.encoding


@pytest.mark.usefixtures("reference_backend")
def test_a_tied_torch_model_whose_state_dict_holds_the_weight_twice_imports_with_tie(torch_lm, corpus, tmp_path, capsys):
    vocab = torch_lm[0].embedding.num_embeddings  # the corpus's characters, as rnnkit fits them
    module = train_in_torch(TorchLM(vocab, embed=6, hidden=6, layers=1, tie=True), vocab, steps=3)
    torch.save(module.state_dict(), tmp_path / "tied.pt")  # embedding.weight and head.weight, the same tensor
    flags = ["--data", str(corpus), "--tie", "--hidden", "6", "--embed", "6", "--layers", "1", "--batch-size", "4",
             "--seq-len", "10"]
    assert main(["--quiet", "import", "lm", "--weights", str(tmp_path / "tied.pt"), "--out", str(tmp_path / "m"), *flags]) == 0
    imported = rnnkit.load(tmp_path / "m")
    ids = np.random.default_rng(3).integers(0, vocab, (7, 2))
    imported.model.eval()
    with no_grad():
        logits, _ = imported.model(ids)
    with torch.no_grad():
        assert_close(logits, module(torch.from_numpy(ids)), "tied logits")
    state = module.state_dict()
    state["head.weight"] = state["head.weight"] + 1
    torch.save(state, tmp_path / "untied.pt")
    err = refused(capsys, ["import", "lm", "--weights", str(tmp_path / "untied.pt"), "--out", str(tmp_path / "m2"), *flags])
    assert "tensors 'embedding.weight' and 'head.weight'" in err and "differ" in err and not (tmp_path / "m2").exists()


# ---- refusals: one line naming what does not fit, nothing written -------------------------------------


def refused(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_missing_extra_and_misshapen_tensors_are_each_named_and_nothing_is_written(torch_lm, corpus, tmp_path, capsys):
    state = load_file(str(torch_lm[1]))
    del state["rnn.weight_hh_l1"]
    state["rnn.weight_hr_l0"] = torch.zeros(48, 3)
    state["head.weight"] = state["head.weight"][:, :10].contiguous()
    save_file(state, str(tmp_path / "bad.safetensors"))
    err = refused(capsys, ["import", "lm", "--weights", str(tmp_path / "bad.safetensors"), "--out", str(tmp_path / "m"),
                           "--data", str(corpus), *LM_FLAGS])
    assert "missing tensors: rnn.weight_hh_l1 (48, 12)" in err
    assert "extra tensors: rnn.weight_hr_l0 (48, 3)" in err
    assert "head.weight: expected (" in err and ", 12), got (" in err and ", 10)" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("bad, message", [
    ({"rnn.weight_ih_l0": np.ones((48, 6), np.int64)}, "tensor 'rnn.weight_ih_l0' in .* is I64; expected floating point"),
    ({"head.bias": np.full(3, np.nan, np.float32)}, "tensor 'head.bias' in .* holds NaN or infinite values"),
])
def test_a_tensor_of_the_wrong_dtype_or_with_nan_is_named(bad, message, corpus, tmp_path, capsys):
    save_numpy({"embedding.weight": np.zeros((3, 6), np.float32), **bad}, str(tmp_path / "w.safetensors"))
    err = refused(capsys, ["import", "lm", "--weights", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "m"),
                           "--data", str(corpus), *LM_FLAGS])
    assert re.search(message, err), err
    assert not (tmp_path / "m").exists()


def test_bfloat16_is_named_not_called_damage(corpus, tmp_path, capsys):
    save_file({"head.bias": torch.zeros(3, dtype=torch.bfloat16)}, str(tmp_path / "w.safetensors"))
    err = refused(capsys, ["import", "lm", "--weights", str(tmp_path / "w.safetensors"), "--out", str(tmp_path / "m"),
                           "--data", str(corpus)])
    assert "tensor 'head.bias'" in err and "BF16" in err and "tensor.float()" in err


class RunsCode:
    """A pickle that would create a file when unpickled by plain pickle."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_pt_file_is_read_only_as_weights_never_run_as_a_pickle(corpus, tmp_path, capsys):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"head.bias": RunsCode(tmp_path / "ran")}, f, protocol=2)
    err = refused(capsys, ["import", "lm", "--weights", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "m"),
                           "--data", str(corpus)])
    assert "torch.load(weights_only=True)" in err and "weights_only=False" not in err
    assert not (tmp_path / "ran").exists() and not (tmp_path / "m").exists()
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    assert "holds a list; expected a state dict" in refused(capsys, ["import", "lm", "--weights", str(tmp_path / "list.pt"),
                                                                      "--out", str(tmp_path / "m"), "--data", str(corpus)])


def test_a_pt_file_without_torch_is_a_clear_error(corpus, tmp_path, capsys, monkeypatch):
    torch.save({"head.bias": torch.zeros(3)}, tmp_path / "w.pt")
    monkeypatch.setitem(sys.modules, "torch", None)  # as where torch is not installed: `import torch` fails
    err = refused(capsys, ["import", "lm", "--weights", str(tmp_path / "w.pt"), "--out", str(tmp_path / "m"),
                           "--data", str(corpus)])
    assert "torch is not installed" in err and ".safetensors" in err


def test_the_out_directory_follows_trains_rules(torch_lm, corpus, tmp_path, capsys):
    weights = torch_lm[1]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me", encoding="utf-8")
    assert "holds files rnnkit did not write (notes.txt)" in refused(
        capsys, ["import", "lm", "--weights", str(weights), "--out", str(tmp_path / "mine"), "--data", str(corpus), *LM_FLAGS])
    assert (tmp_path / "mine" / "notes.txt").read_text(encoding="utf-8") == "keep me"
    with backend.use_backend("numpy"):
        assert import_lm(weights, tmp_path / "m", corpus) == 0
        assert "already holds a model" in refused(capsys, ["import", "lm", "--weights", str(weights), "--out",
                                                           str(tmp_path / "m"), "--data", str(corpus), *LM_FLAGS])
        assert import_lm(weights, tmp_path / "m", corpus, "--overwrite") == 0
    assert rnnkit.load(tmp_path / "m").config["status"] == "imported"
