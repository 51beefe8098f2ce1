"""rnnkit.export.onnx: layers and task models exported to ONNX and run by onnxruntime give
rnnkit's outputs (float32, within 1e-5 of the outputs' norm), on random configurations and on
models trained a few steps (the series tasks: test_onnx_series.py)."""

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import rnnkit
from onnx_checks import assert_close, beam_decoder, run_decoder, session
from rnnkit.cli.main import main
from rnnkit.data.batching import pad
from rnnkit.export import onnx as onnx_export
from rnnkit.models.classifier import POOLINGS, SequenceClassifier
from rnnkit.models.sampling import generate_ids
from rnnkit.models.seq2seq import Seq2Seq
from rnnkit.models.tagger import SequenceTagger
from rnnkit.nn import LSTM, backend, cells, no_grad
from rnnkit.tasks.classify import ClassifyOptions, encode_inputs, predict, softmax
from rnnkit.tasks.tag import encode_tokens, split_text

EXPORTABLE = [k.name for k in cells.kinds() if k.onnx is not None]


def op_types(model) -> set[str]:
    return {node.op_type for node in model.graph.node}


def run_layer(layer, rng, B=4, T=6, lengths=None):
    """(onnxruntime's outputs, rnnkit's) for random x and states."""
    x = rng.standard_normal((B, T, layer.input_size) if layer.batch_first else (T, B, layer.input_size)).astype(np.float32)
    LD = layer.num_layers * layer.num_directions
    states = [rng.standard_normal((LD, B, size)).astype(np.float32) for _, size in onnx_export.state_parts(layer)]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    with no_grad():
        out, finals = layer(x, tuple(states) if len(states) > 1 else states[0], lengths=lengths)
    feeds = {"x": x, "lengths": lengths.astype(np.int64), **{f"{part}0": s for (part, _), s in zip(onnx_export.state_parts(layer), states)}}
    got = session(onnx_export.layer_graph(layer)).run(None, feeds)
    return got, [out, *(finals if isinstance(finals, tuple) else (finals,))]


# ---- layers: every kind that exports ------------------------------------------------------------------


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("kind", EXPORTABLE)
@pytest.mark.parametrize("config", range(2))
def test_every_exportable_kind_equals_rnnkit_on_random_configurations(kind, config):
    rng = np.random.default_rng([config, EXPORTABLE.index(kind)])
    stacked = config == 0  # two layers, bidirectional, batch-first, unequal lengths; else one layer without biases
    layer = cells.get(kind).make_layer(int(rng.integers(2, 6)), int(rng.integers(3, 9)), num_layers=2 if stacked else 1,
                                       bidirectional=stacked, batch_first=stacked, bias=stacked, kind_init=stacked,
                                       rng=rng)  # kind_init: a forget-gate bias needs biases
    layer.eval()
    B, T = 5, int(rng.integers(3, 8))
    lengths = np.r_[T, rng.integers(1, T + 1, B - 1)] if stacked else None
    got, expected = run_layer(layer, rng, B, T, lengths)
    for g, e, name in zip(got, expected, ("out", "h_n", "c_n")):
        assert_close(g, e, f"{kind} {name}")


@pytest.mark.usefixtures("reference_backend")
def test_plain_kinds_are_onnx_operators_and_a_projected_lstm_a_scan():
    rng = np.random.default_rng(0)
    for kind, op in (("rnn", "RNN"), ("irnn", "RNN"), ("lstm", "LSTM"), ("gru", "GRU"), ("peephole", "LSTM"), ("variational", "LSTM")):
        assert op in op_types(onnx_export.layer_graph(cells.get(kind).make_layer(3, 4, rng=rng))), kind
    projected = LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=2, rng=rng)
    model = onnx_export.layer_graph(projected)
    assert "Scan" in op_types(model) and "LSTM" not in op_types(model)
    got, expected = run_layer(projected, rng, B=4, T=7, lengths=[7, 2, 5, 1])
    for g, e in zip(got, expected):
        assert_close(g, e, "LSTM proj_size")


@pytest.mark.usefixtures("reference_backend")
def test_layer_norm_switched_off_is_the_plain_operator_and_zoneout_keeps_its_rates():
    rng = np.random.default_rng(1)
    plain = cells.get("lnlstm").make_layer(3, 4, layer_norm=False, rng=rng)
    assert "LSTM" in op_types(onnx_export.layer_graph(plain))
    zoneout = cells.get("zoneout").make_layer(3, 5, zoneout_h=0.3, zoneout_c=0.7, rng=rng)
    zoneout.eval()
    for g, e in zip(*run_layer(zoneout, rng, lengths=[6, 1, 3, 6])):
        assert_close(g, e, "zoneout")


def test_a_kind_without_an_onnx_form_is_a_one_line_error_naming_it():
    layer = LSTM(3, 4, rng=0)
    layer.kind = dataclasses.replace(layer.kind, name="newkind", onnx=None)  # a kind registered without a form
    with pytest.raises(onnx_export.NotExportable, match=r"^not exportable: newkind layers have no ONNX form") as err:
        onnx_export.layer_graph(layer)
    assert "\n" not in str(err.value) and "lstm" in str(err.value)  # and it lists the kinds that do export


# ---- the classifier: every pooling, tokens and series ---------------------------------------------------


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("pooling", POOLINGS)
def test_classifier_probabilities_equal_rnnkit_for_every_pooling(pooling):
    rng = np.random.default_rng(POOLINGS.index(pooling))
    vocab = {"kind": "word", "tokens": ["<unk>", *"abcdefg"]}
    encoding = {"input": "text", "vocabulary": vocab, "labels": ["x", "y", "z"], "values": False}
    model = SequenceClassifier(3, 6, "gru", 2, bidirectional=True, pooling=pooling, vocab_size=8, embed_size=4,
                               attention_size=5, rng=rng)
    texts = [" ".join(rng.choice(list("abcdefg"), size=n)) for n in (7, 1, 4, 6, 2)]
    inputs = encode_inputs(encoding, rnnkit.tasks.classify.ClassifyOptions(), texts, "input")
    x, lengths = pad(inputs)
    expected = softmax(predict(model, inputs, 8))
    got = session(onnx_export.classifier_graph(model, encoding, {})).run(None, {"x": x.T.astype(np.int64), "lengths": np.asarray(lengths, np.int64)})[0]
    assert_close(got, expected, pooling)


@pytest.mark.usefixtures("reference_backend")
def test_a_series_regressor_standardises_inside_and_returns_values():
    rng = np.random.default_rng(5)
    encoding = {"input": "series", "channels": 2, "mean": [10.0, -3.0], "std": [2.0, 0.5], "values": True,
                "value_mean": 4.0, "value_std": 3.0}
    model = SequenceClassifier(1, 7, "lstm", 1, pooling="mean", input_size=2, rng=rng)
    series = [rng.normal([10, -3], [2, 0.5], size=(n, 2)) for n in (5, 9, 2)]
    inputs = encode_inputs(encoding, ClassifyOptions(), series, "input")  # no --znorm; shorter than --max-length
    expected = predict(model, inputs, 8)[:, 0] * 3.0 + 4.0
    raw = np.zeros((3, 9, 2), np.float32)
    for i, s in enumerate(series):
        raw[i, : len(s)] = s
    got = session(onnx_export.classifier_graph(model, encoding, {})).run(None, {"x": raw, "lengths": np.array([5, 9, 2])})[0]
    assert_close(got, expected, "values")


# ---- the tagger: emissions, and the CRF's Viterbi path inside the graph ----------------------------------


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("crf", [False, True])
@pytest.mark.parametrize("T", [1, 9])
def test_tagger_emissions_and_tags_equal_rnnkit(crf, T):
    rng = np.random.default_rng([T, crf])
    model = SequenceTagger(5, 9, 4, 6, "lstm", 2, bidirectional=True, crf=crf, rng=rng)
    if crf:  # transitions far from zero, so that the path differs from the per-token argmax
        for p in (model.crf.start, model.crf.end, model.crf.transitions):
            p.data[...] = 2 * rng.standard_normal(p.shape)
    model.eval()
    ids, lengths = rng.integers(0, 9, (T, 4)), np.minimum([T, 3, 1, 6], T)
    with no_grad():
        emissions = model.scores(ids, lengths)
    got = session(onnx_export.tagger_graph(model, {})).run(None, {"ids": ids.T.copy(), "lengths": lengths})
    assert_close(got[0], emissions.transpose(1, 0, 2), "emissions")
    np.testing.assert_array_equal(got[1], model.decode(ids, lengths).T)


@pytest.mark.usefixtures("reference_backend")
def test_trained_crf_tagger_exports_its_encoding_and_tags_as_rnnkit(tmp_path):
    rng = np.random.default_rng(0)
    units = ["alice B-PER\nsmith I-PER", "paris B-LOC", "went O", "to O", "saw O"]  # a name, a place, fillers
    sentences = ["\n".join(rng.choice(units, size=rng.integers(2, 7))) for _ in range(60)]
    (tmp_path / "ner.conll").write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    trained = rnnkit.train("tag", out=tmp_path / "m", data=str(tmp_path / "ner.conll"), crf=True, steps=3, hidden=8, embed=4,
                           batch_size=8, valid_every=3, quiet=True)
    model = onnx.load(str(trained.export(tmp_path / "m.onnx")[0]))
    encoding = json.loads({p.key: p.value for p in model.metadata_props}["encoding"])
    assert encoding == trained.encoding
    texts = ["alice smith went to paris", "saw", "paris alice smith saw alice"]
    x, lengths = pad([encode_tokens(encoding, split_text(encoding, t)) for t in texts])
    tags = session(model).run(["tags"], {"ids": x.T.astype(np.int64), "lengths": np.asarray(lengths, np.int64)})[0]
    got = [[encoding["tags"][t] for t in row[row >= 0]] for row in tags]
    assert got == [r["tags"] for r in trained.tag(texts)]


# ---- translate: the encoder and the decoder's step --------------------------------------------------


def encoded(encoder, src, lengths) -> dict:
    """The encoder's outputs by name, for src (S, B) and its lengths."""
    return dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, {"src": src.T.copy(), "src_lengths": lengths})))


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("cell, attention, bidirectional", [("lstm", "bahdanau", True), ("gru", "luong-general", True),
                                                            ("lnlstm", "luong-dot", False), ("rnn", "none", True)])
def test_decoder_steps_equal_rnnkit_teacher_forced(cell, attention, bidirectional):
    rng = np.random.default_rng(len(cell))
    model = Seq2Seq(11, 13, 5, 6, cell, 2, bidirectional, attention, rng=rng)
    src, lengths, tgt = rng.integers(0, 11, (6, 3)), np.array([6, 2, 4]), rng.integers(0, 13, (5, 3))
    expected, _ = model.scores(src, lengths, tgt)
    got = run_decoder(encoded(session(onnx_export.encoder_graph(model, {})), src, lengths), session(onnx_export.decoder_graph(model, {})),
                      lengths, feed_tokens=tgt)
    assert_close(got, expected, f"{cell} {attention}")


def write_pairs(path, n=200, seed=0):
    rng = np.random.default_rng(seed)
    words = {"dog": "perro", "cat": "gato", "red": "rojo", "big": "grande", "sees": "ve"}
    lines = [f"the {s} sees a {a} {o}\tel {words[s]} ve un {words[o]} {words[a]}" for s, a, o in
             zip(rng.choice(["dog", "cat"], n), rng.choice(["red", "big"], n), rng.choice(["dog", "cat"], n))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.usefixtures("reference_backend")
def test_translation_exports_two_files_whose_greedy_decoding_equals_rnnkit(tmp_path, capsys):
    trained = rnnkit.train("translate", out=tmp_path / "m", data=str(write_pairs(tmp_path / "pairs.tsv")), steps=30, lr=0.01,
                           hidden=12, embed=6, valid_every=30, quiet=True)
    assert main(["export", str(tmp_path / "m"), "--out", str(tmp_path / "t.onnx")]) == 0
    assert not (tmp_path / "t.onnx").exists()
    encoder, decoder = (onnx.load(str(tmp_path / f"t.{part}.onnx")) for part in ("encoder", "decoder"))
    meta = {p.key: p.value for p in decoder.metadata_props}
    bos, eos = int(meta["bos"]), int(meta["eos"])
    assert meta["task"] == "translate" and json.loads(meta["vocabulary"]) == trained.vocab.config
    sources = [trained.vocab.encode_source(line.split("\t")[0]) for line in (tmp_path / "pairs.tsv").read_text().splitlines()[:12]]
    x, lengths = pad(sources)
    expected = [t.tokens for t in trained.model.greedy(x, lengths, bos=bos, eos=eos, max_len=15)]
    assert sum(map(len, expected)) > 12  # words, not only the end token
    lengths = np.asarray(lengths)
    first, step = encoded(session(encoder), x, lengths), session(decoder)
    assert run_decoder(first, step, lengths, bos=bos, eos=eos, max_len=15) == expected
    # beam search outside the graph: rnnkit's search over the exported step finds rnnkit's translations
    search = dict(bos=bos, eos=eos, beam=3, max_len=15, length_penalty=0.6)
    for b, rnnkit_beam in enumerate(trained.model.beam_search(x, lengths, **search)):
        onnx_beam = beam_decoder(first, step, b, lengths, **search)
        assert onnx_beam.tokens == rnnkit_beam.tokens and abs(onnx_beam.score - rnnkit_beam.score) < 1e-4
        assert_close(onnx_beam.attention, rnnkit_beam.attention, "attention")


# ---- trained models through `rnnkit export` ---------------------------------------------------------


def write_text(path, seed=0, n=40):
    rng = np.random.default_rng(seed)
    words = ["to", "be", "or", "not", "that", "is", "the", "question"]
    path.write_text("\n".join(" ".join(rng.choice(words, size=8)) for _ in range(n)), encoding="utf-8")
    return path


TINY_LM = dict(steps=3, hidden=12, embed=6, layers=2, batch_size=4, seq_len=10, valid_every=3, quiet=True)


@pytest.fixture(scope="module")
def language_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("lm")
    with backend.use_backend("numpy"):
        rnnkit.train("lm", out=d / "model", data=str(write_text(d / "corpus.txt")), cell="lstm", **TINY_LM)
    return d / "model"


@pytest.mark.usefixtures("reference_backend")
def test_language_model_exports_a_window_and_a_stream_that_equal_rnnkit(language_model, tmp_path, capsys):
    out = tmp_path / "lm.onnx"
    assert main(["export", str(language_model), "--out", str(out)]) == 0
    model = onnx.load(str(out))
    meta = {p.key: p.value for p in model.metadata_props}
    trained = rnnkit.load(language_model)
    assert meta["task"] == "lm" and json.loads(meta["vocabulary"]) == trained.config["vocabulary"]
    assert json.loads(meta["options"])["cell"] == "lstm" and json.loads(meta["state"]) == {"h0": [2, "batch", 12], "c0": [2, "batch", 12]}
    assert (model.opset_import[0].version, model.ir_version) == (onnx_export.OPSET, onnx_export.IR_VERSION)
    run = session(model)

    ids = np.stack([trained.check_prime(text)[:9] for text in ("to be or not", "that is the q")])
    rng = np.random.default_rng(0)
    h0, c0 = (rng.standard_normal((2, 2, 12)).astype(np.float32) for _ in range(2))
    trained.model.eval()
    with no_grad():
        logits, (h, c) = trained.model(ids.T, (h0, c0))
    window = run.run(None, {"ids": ids, "h0": h0, "c0": c0})
    for got, expected, name in zip(window, (logits.transpose(1, 0, 2), h, c), ("logits", "h_n", "c_n")):
        assert_close(got, expected, name)

    state, steps = (h0, c0), []  # the stream: one token per call, the state fed back
    for t in range(ids.shape[1]):
        step_logits, *state = run.run(None, {"ids": ids[:, t : t + 1], "h0": state[0], "c0": state[1]})
        steps.append(step_logits)
    assert_close(np.concatenate(steps, axis=1), window[0], "streamed logits")
    assert_close(state[1], window[2], "streamed c_n")


class ExportedLanguageModel:
    """The exported model behind the call ``sampling.generate_ids`` makes of a language model:
    ids (T, 1), state or None → logits (T, 1, V), state; sampling stays outside the graph."""

    def __init__(self, run: ort.InferenceSession):
        self.run = run
        self.zeros = {i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
                      for i in run.get_inputs() if i.name != "ids"}

    def eval(self):
        return self

    def __call__(self, ids, state, condition=None):
        logits, *new = self.run.run(None, {"ids": np.asarray(ids).T.astype(np.int64), **(state or self.zeros)})
        return logits.transpose(1, 0, 2), dict(zip(self.zeros, new))


@pytest.mark.usefixtures("reference_backend")
def test_text_sampled_from_the_export_equals_rnnkit_for_the_same_seed(language_model, tmp_path):
    trained = rnnkit.load(language_model)
    [path] = trained.export(tmp_path / "lm.onnx")
    exported = ExportedLanguageModel(session(onnx.load(str(path))))
    prime = trained.check_prime("to be ")
    for temperature, top_k in ((1.0, 0), (0.8, 5), (0.0, 0)):
        ours = list(generate_ids(trained.model, prime, 40, np.random.default_rng(7), temperature, top_k))
        theirs = list(generate_ids(exported, prime, 40, np.random.default_rng(7), temperature, top_k))
        assert theirs == ours
        assert temperature == 0 or len(set(ours)) > 3  # a sample, not one token again and again


def test_export_refuses_to_replace_a_file_without_overwrite(language_model, tmp_path, capsys):
    out = tmp_path / "lm.onnx"
    out.write_bytes(b"someone's work")
    assert main(["export", str(language_model), "--out", str(out)]) == 2
    assert "--out" in capsys.readouterr().err and out.read_bytes() == b"someone's work"
    assert main(["export", str(language_model), "--out", str(out), "--overwrite"]) == 0
    onnx.checker.check_model(onnx.load(str(out)))
    with pytest.raises(ValueError, match="--format: expected one of onnx"):
        rnnkit.load(language_model).export(tmp_path / "m.tf", format="tf")


@pytest.mark.usefixtures("reference_backend")
def test_trained_classifier_exports_through_the_api_and_equals_classify(tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(60):
        positive = bool(rng.integers(2))
        words = [*rng.choice(["the", "film", "was"], size=rng.integers(0, 5)), "good" if positive else "bad"]
        lines.append(("pos" if positive else "neg") + "\t" + " ".join(rng.permutation(words)))
    data = tmp_path / "reviews.tsv"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rnnkit.train("classify", out=tmp_path / "m", data=str(data), steps=3, hidden=8, embed=4, batch_size=8, valid_every=3,
                 bidirectional=True, pooling="last", quiet=True)
    trained = rnnkit.load(tmp_path / "m")
    [path] = trained.export(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["task"] == "classify" and json.loads(meta["labels"]) == ["neg", "pos"]
    texts = [line.split("\t")[1] for line in lines[:10]]  # the task's own data
    x, lengths = pad(encode_inputs(trained.encoding, trained.opts, texts, "input"))
    got = session(model).run(None, {"x": x.T.astype(np.int64), "lengths": np.asarray(lengths, np.int64)})[0]
    expected = [[r["probabilities"][label] for label in ("neg", "pos")] for r in trained.classify(texts)]
    assert_close(got, expected, "probabilities")


@pytest.mark.usefixtures("reference_backend")
def test_a_conditional_language_model_exports_its_classes_first_states(tmp_path, capsys):
    classes = tmp_path / "classes"
    classes.mkdir()
    for name, seed in (("comedy", 0), ("tragedy", 1)):
        write_text(classes / f"{name}.txt", seed)
    with backend.use_backend("numpy"):
        trained = rnnkit.train("lm", out=tmp_path / "m", data=str(classes), **{**TINY_LM, "steps": 1, "valid_every": 1})
    assert main(["export", str(tmp_path / "m"), "--out", str(tmp_path / "m.onnx")]) == 0
    condition, step = (session(onnx.load(str(tmp_path / f"m.{part}.onnx"))) for part in ("condition", "step"))
    assert json.loads({p.key: p.value for p in onnx.load(str(tmp_path / "m.step.onnx")).metadata_props}["conditions"]) == [
        "comedy", "tragedy"]
    ids = np.stack([trained.check_prime("to be or")] * 2)
    with no_grad():
        expected, _ = trained.model.eval()(ids.T, condition=np.array([1, 0]))
    h0, c0 = condition.run(None, {"condition": np.array([1, 0])})
    logits = step.run(["logits"], {"ids": ids, "h0": h0, "c0": c0})[0]
    assert_close(logits, expected.transpose(1, 0, 2), "logits from a class's state")
