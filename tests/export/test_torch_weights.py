"""model.safetensors is a PyTorch state dict: torch.nn.RNN/LSTM/GRU and each task model's torch
twin, built here, load a trained rnnkit model's weights with ``strict=True`` and give its outputs
(float32, within 1e-5 of the outputs' norm) on random inputs of unequal lengths (torch's packed
sequences); and back: weights trained on in torch, brought in by ``rnnkit.import_weights``, give
torch's outputs in rnnkit."""

from pathlib import Path

import numpy as np
import pytest

import rnnkit
from rnnkit.data.batching import pad
from rnnkit.nn import backend, cells, no_grad
from rnnkit.tasks.classify import encode_inputs
from rnnkit.training import model_dir as md

torch = pytest.importorskip("torch")
from safetensors.torch import load_file, save_file  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

TORCH_KINDS = [k.name for k in cells.kinds() if k.torch]
TOLERANCE = 1e-5
torch.set_num_threads(1)


def assert_close(got, expected, what=""):
    """Norm-wise: ‖got − expected‖ ≤ 1e-5 · max(‖expected‖, 1)."""
    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    assert got.shape == expected.shape, f"{what}: {got.shape} vs {expected.shape}"
    err = np.linalg.norm(got - expected)
    assert err <= TOLERANCE * max(np.linalg.norm(expected), 1.0), f"{what}: ‖Δ‖ = {err:.3g}"


def weights(model_dir) -> dict:
    """A model directory's model.safetensors as torch reads it."""
    return load_file(str(Path(model_dir) / md.WEIGHTS))


def torch_recurrent(kind: str, input_size: int, hidden: int, layers: int = 1, bidirectional: bool = False, **kwargs):
    """The torch.nn class the kind names as its twin, with the options that select the kind."""
    k = cells.get(kind)
    return getattr(nn, k.torch)(input_size, hidden, layers, bidirectional=bidirectional, **dict(k.options), **kwargs)


def packed(rnn, x, lengths):
    """torch's run of ``rnn`` over x (T, B, I) with each row's own length: (out zero-padded, state)."""
    out, state = rnn(pack_padded_sequence(x, torch.as_tensor(lengths), enforce_sorted=False))
    return pad_packed_sequence(out, total_length=x.shape[0])[0], state


def parts(state):
    return state if isinstance(state, tuple) else (state,)


# ---- the layers: every kind with a torch twin, stacked and bidirectional, and the projected LSTM ------


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("kind, options", [(k, {}) for k in TORCH_KINDS] + [("lstm", {"proj_size": 3}),
                                                                           ("gru", {"bias": False})])
def test_a_layers_safetensors_load_into_its_torch_twin_and_give_its_outputs(kind, options, tmp_path):
    rng = np.random.default_rng(TORCH_KINDS.index(kind))
    layer = cells.get(kind).make_layer(4, 6, num_layers=2, bidirectional=True, rng=rng, **options)
    md.save_weights(tmp_path / md.WEIGHTS, layer.state_dict())
    twin = torch_recurrent(kind, 4, 6, 2, True, **options)
    twin.load_state_dict(weights(tmp_path), strict=True)
    T, lengths = 7, [7, 3, 1, 5]
    x = rng.standard_normal((T, 4, 4)).astype(np.float32)
    with no_grad():
        out, state = layer(x, lengths=lengths)
    with torch.no_grad():
        expected_out, expected_state = packed(twin, torch.from_numpy(x), lengths)
    assert_close(out, expected_out, f"{kind} out")
    for got, expected, name in zip(parts(state), parts(expected_state), ("h_n", "c_n")):
        assert_close(got, expected, f"{kind} {name}")


# ---- task models trained a few steps, and their torch twins ------------------------------------------


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def labelled_texts(rng, n=60):
    """label<TAB>text: positive texts hold 'good', negative ones 'bad'."""
    fillers = ["the", "film", "was", "very", "a", "plot", "and"]
    return [f"{label}\t{' '.join(rng.choice(fillers, rng.integers(1, 6)))} {word} {rng.choice(fillers)}"
            for label, word in zip(rng.choice(["pos", "neg"], n), rng.choice(["good", "bad"], n))]


TINY = dict(steps=2, valid_every=2, batch_size=8, quiet=True)


def train(task, out, **options):
    """A model of ``task`` trained a few steps on the NumPy reference (no kernels to compile)."""
    with backend.use_backend("numpy"):
        return rnnkit.train(task, out, **{**TINY, **options})


class TorchLM(nn.Module):
    """Embedding → RNN → Linear, rnnkit's LanguageModel in torch."""

    def __init__(self, kind, vocab, embed, hidden, layers):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = torch_recurrent(kind, embed, hidden, layers)
        self.head = nn.Linear(hidden, vocab)

    def forward(self, ids, state=None):
        out, state = self.rnn(self.embedding(ids), state)
        return self.head(out), state


@pytest.mark.usefixtures("reference_backend")
def test_a_trained_language_model_is_embedding_lstm_linear_in_torch(tmp_path):
    rng = np.random.default_rng(0)
    words = ["to", "be", "or", "not", "that", "is", "the", "question"]
    data = write_lines(tmp_path / "corpus.txt", [" ".join(rng.choice(words, 8)) for _ in range(40)])
    trained = train("lm", tmp_path / "m", data=data, cell="lstm", hidden=12, embed=6, layers=2, batch_size=4, seq_len=10)
    V = len(trained.tokenizer)
    twin = TorchLM("lstm", V, 6, 12, 2)
    twin.load_state_dict(weights(tmp_path / "m"), strict=True)
    ids = rng.integers(0, V, (9, 3))
    h0 = tuple(rng.standard_normal((2, 3, 12)).astype(np.float32) for _ in range(2))  # a carried state
    trained.model.eval()
    with no_grad():
        logits, state = trained.model(ids, h0)
    with torch.no_grad():
        expected, expected_state = twin(torch.from_numpy(ids), tuple(map(torch.from_numpy, h0)))
    assert_close(logits, expected, "logits")
    for got, exp in zip(state, expected_state):
        assert_close(got, exp, "state")


class TorchClassifier(nn.Module):
    """Embedding → RNN (packed) → pooling → Linear, rnnkit's SequenceClassifier in torch."""

    def __init__(self, kind, vocab, embed, hidden, layers, bidirectional, pooling, classes):
        super().__init__()
        self.pooling, self.D, self.H = pooling, 2 if bidirectional else 1, hidden
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = torch_recurrent(kind, embed, hidden, layers, bidirectional)
        self.head = nn.Linear(self.D * hidden, classes)

    def forward(self, ids, lengths):
        out, _ = packed(self.rnn, self.embedding(ids), lengths)  # (T, B, D·H), zero past each length
        L = torch.as_tensor(lengths)
        if self.pooling == "mean":
            pooled = out.sum(0) / L[:, None]
        else:  # last: what each direction read last (the backward direction's step 0)
            pooled = out[L - 1, torch.arange(len(L))]
            if self.D == 2:
                pooled = torch.cat([pooled[:, : self.H], out[0, :, self.H :]], dim=1)
        return self.head(pooled)


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_trained_classifiers_of_every_kind_are_their_torch_twins(kind, tmp_path):
    rng = np.random.default_rng(TORCH_KINDS.index(kind))
    pooling = ("last", "mean")[TORCH_KINDS.index(kind) % 2]
    data = write_lines(tmp_path / "labelled.tsv", labelled_texts(rng))
    trained = train("classify", tmp_path / "m", data=data, cell=kind, hidden=6, embed=4, layers=2, bidirectional=True,
                    pooling=pooling)
    V = trained.model.embedding.weight.shape[0]
    twin = TorchClassifier(kind, V, 4, 6, 2, True, pooling, len(trained.labels))
    twin.load_state_dict(weights(tmp_path / "m"), strict=True)
    lengths = [6, 2, 9, 1, 4]
    ids = rng.integers(0, V, (9, 5))
    with no_grad():
        trained.model.eval()
        logits = trained.model(ids, lengths)
    with torch.no_grad():
        expected = twin(torch.from_numpy(ids), lengths)
    assert_close(logits, expected, f"{kind} {pooling}")


class TorchTagger(nn.Module):
    """Embedding → BiRNN (packed) → Linear → softmax, rnnkit's SequenceTagger (softmax head) in torch."""

    def __init__(self, kind, vocab, embed, hidden, tags):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.rnn = torch_recurrent(kind, embed, hidden, 1, True)
        self.head = nn.Linear(2 * hidden, tags)

    def forward(self, ids, lengths):
        return self.head(packed(self.rnn, self.embedding(ids), lengths)[0])


@pytest.mark.usefixtures("reference_backend")
def test_a_trained_taggers_scores_and_tags_are_its_torch_twins(tmp_path):
    rng = np.random.default_rng(3)
    units = ["alice B-PER\nsmith I-PER", "paris B-LOC", "went O", "to O", "saw O"]
    (tmp_path / "ner.conll").write_text("\n\n".join("\n".join(rng.choice(units, rng.integers(2, 7))) for _ in range(40)) + "\n",
                                        encoding="utf-8")
    trained = train("tag", tmp_path / "m", data=str(tmp_path / "ner.conll"), cell="lstm", hidden=6, embed=4)
    V, K = trained.model.embedding.weight.shape[0], trained.model.head.weight.shape[0]
    twin = TorchTagger("lstm", V, 4, 6, K)
    twin.load_state_dict(weights(tmp_path / "m"), strict=True)
    lengths = [5, 8, 1]
    ids = rng.integers(0, V, (8, 3))
    with no_grad():
        trained.model.eval()
        scores = trained.model.scores(ids, lengths)
    with torch.no_grad():
        expected = twin(torch.from_numpy(ids), lengths)
    inside = np.arange(8)[:, None] < np.asarray(lengths)[None, :]
    assert_close(scores, expected, "scores")
    probabilities = torch.softmax(expected, -1).numpy()
    assert_close(np.exp(scores) / np.exp(scores).sum(-1, keepdims=True), probabilities, "softmax")
    np.testing.assert_array_equal(trained.model.decode(ids, lengths), np.where(inside, probabilities.argmax(-1), -1))


class TorchForecaster(nn.Module):
    """RNN → Linear([h_W; future covariates]) → (μ, σ²), rnnkit's direct Forecaster in torch."""

    def __init__(self, kind, channels, covariates, horizon, hidden):
        super().__init__()
        self.C, self.horizon = channels, horizon
        self.rnn = torch_recurrent(kind, channels + covariates, hidden)
        self.head = nn.Linear(hidden + horizon * covariates, horizon * 2 * channels)

    def forward(self, z, future):
        out, _ = self.rnn(z)
        p = self.head(torch.cat([out[-1], future.reshape(len(future), -1)], 1)).reshape(len(future), self.horizon, -1)
        sigma = nn.functional.softplus(p[..., self.C :]) + 1e-3  # forecaster.SIGMA_MIN
        return p[..., : self.C], sigma * sigma


@pytest.mark.usefixtures("reference_backend")
def test_a_trained_direct_forecaster_is_its_torch_twin(tmp_path):
    rng = np.random.default_rng(4)
    rows = ["month,a"] + [f"{2000 + i // 12}-{i % 12 + 1:02d}-01,{10 + 3 * np.sin(2 * np.pi * i / 12) + rng.normal():.3f}"
                          for i in range(80)]
    trained = train("forecast", tmp_path / "m", data=write_lines(tmp_path / "monthly.csv", rows), cell="gru", horizon=4,
                    season=12, window=16, origins=2, hidden=8)
    model = trained.model
    twin = TorchForecaster("gru", model.channels, model.covariates, 4, 8)
    twin.load_state_dict(weights(tmp_path / "m"), strict=True)
    z = rng.standard_normal((16, 3, model.channels + model.covariates)).astype(np.float32)
    future = rng.standard_normal((3, 4, model.covariates)).astype(np.float32)
    with no_grad():
        model.eval()
        mu, var = model(z, future)
    with torch.no_grad():
        expected_mu, expected_var = twin(torch.from_numpy(z), torch.from_numpy(future))
    assert_close(mu, expected_mu, "mean")
    assert_close(var, expected_var, "variance")


class TorchTranslator(nn.Module):
    """rnnkit's Seq2Seq with a one-layer bidirectional LSTM encoder and Bahdanau attention, in torch:
    the encoder packed, the bridges tanh(W [h→; h←] + b), the decoder an LSTMCell fed [e_t; c_t]."""

    def __init__(self, src_vocab, tgt_vocab, embed, hidden):
        super().__init__()
        self.src_embedding = nn.Embedding(src_vocab, embed)
        self.encoder = nn.LSTM(embed, hidden, bidirectional=True)
        self.bridge_h_l0, self.bridge_c_l0 = nn.Linear(2 * hidden, hidden), nn.Linear(2 * hidden, hidden)
        self.tgt_embedding = nn.Embedding(tgt_vocab, embed)
        self.decoder_l0 = nn.LSTMCell(embed + 2 * hidden, hidden)
        self.attn = nn.Module()
        self.attn.query = nn.Linear(hidden, hidden)
        self.attn.key = nn.Linear(2 * hidden, hidden, bias=False)
        self.attn.v = nn.Parameter(torch.zeros(hidden))
        self.head = nn.Linear(3 * hidden, tgt_vocab)

    def forward(self, src, src_lengths, tgt_in):
        keys, (h_n, c_n) = packed(self.encoder, self.src_embedding(src), src_lengths)
        keys = keys.transpose(0, 1)  # (B, S, 2H)
        proj = self.attn.key(keys)
        inside = torch.arange(keys.shape[1])[None, :] < torch.as_tensor(src_lengths)[:, None]
        h = torch.tanh(self.bridge_h_l0(torch.cat([h_n[0], h_n[1]], 1)))
        c = torch.tanh(self.bridge_c_l0(torch.cat([c_n[0], c_n[1]], 1)))
        logits = []
        for y in tgt_in:
            e = torch.tanh(proj + self.attn.query(h)[:, None, :]) @ self.attn.v
            alpha = torch.softmax(e.masked_fill(~inside, -torch.inf), dim=1)
            context = (alpha[:, None, :] @ keys)[:, 0]
            h, c = self.decoder_l0(torch.cat([self.tgt_embedding(y), context], 1), (h, c))
            logits.append(self.head(torch.cat([h, context], 1)))
        return torch.stack(logits)


@pytest.mark.usefixtures("reference_backend")
def test_a_trained_translator_with_attention_is_its_torch_twin(tmp_path):
    rng = np.random.default_rng(5)
    words = {"dog": "perro", "cat": "gato", "red": "rojo", "big": "grande"}
    pairs = [f"the {s} sees a {a} {o}\tel {words[s]} ve un {words[o]} {words[a]}" for s, a, o in
             zip(rng.choice(["dog", "cat"], 60), rng.choice(["red", "big"], 60), rng.choice(["dog", "cat"], 60))]
    trained = train("translate", tmp_path / "m", data=write_lines(tmp_path / "pairs.tsv", pairs), cell="lstm", hidden=6,
                    embed=4, attention="bahdanau")
    model = trained.model
    twin = TorchTranslator(model.src_vocab, model.tgt_vocab, 4, 6)
    twin.load_state_dict(weights(tmp_path / "m"), strict=True)
    src, _ = pad([rng.integers(0, model.src_vocab, n) for n in (5, 2, 7)])
    src_lengths = [5, 2, 7]
    tgt_in = rng.integers(0, model.tgt_vocab, (6, 3))
    logits, _ = model.scores(src, src_lengths, tgt_in)
    with torch.no_grad():
        expected = twin(torch.from_numpy(src), src_lengths, torch.from_numpy(tgt_in))
    assert_close(logits, expected, "teacher-forced logits")


# ---- and back: weights trained on in torch, imported, give torch's outputs in rnnkit -----------------


@pytest.mark.usefixtures("reference_backend")
def test_a_classifier_trained_on_in_torch_imports_back_and_classifies_as_torch(tmp_path):
    rng = np.random.default_rng(6)
    texts = labelled_texts(rng)
    options = dict(data=write_lines(tmp_path / "labelled.tsv", texts), cell="gru", hidden=6, embed=4, layers=2,
                   bidirectional=True, pooling="last")
    trained = train("classify", tmp_path / "rnnkit", **options)
    encoding, labels = trained.encoding, trained.labels
    inputs = encode_inputs(encoding, trained.opts, [t.split("\t")[1] for t in texts], "input")
    x, lengths = pad(inputs)
    y = torch.as_tensor([labels.index(t.split("\t")[0]) for t in texts])
    twin = TorchClassifier("gru", trained.model.embedding.weight.shape[0], 4, 6, 2, True, "last", len(labels))
    twin.load_state_dict(weights(tmp_path / "rnnkit"), strict=True)
    optimizer = torch.optim.Adam(twin.parameters(), lr=0.05)
    for _ in range(5):  # a few steps in torch, on the same ids
        loss = nn.functional.cross_entropy(twin(torch.from_numpy(x), lengths), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    save_file(twin.state_dict(), str(tmp_path / "torch.safetensors"))
    imported = rnnkit.import_weights("classify", tmp_path / "torch.safetensors", tmp_path / "imported", quiet=True,
                                     **{**options, "batch_size": 8})
    sample = [t.split("\t")[1] for t in texts[:7]]
    got = np.array([[r["probabilities"][label] for label in labels] for r in imported.classify(sample)])
    sample_x, sample_lengths = pad(encode_inputs(encoding, trained.opts, sample, "input"))
    with torch.no_grad():
        expected = torch.softmax(twin(torch.from_numpy(sample_x), sample_lengths), -1)
    assert_close(got, expected, "probabilities")
    assert not np.allclose(got, [[r["probabilities"][label] for label in labels] for r in trained.classify(sample)],
                           atol=1e-3)  # torch's training changed them: the import is not the rnnkit model again
