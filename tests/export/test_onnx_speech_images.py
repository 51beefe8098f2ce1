"""rnnkit.export.onnx for the speech and image tasks: the transcriber (log-mel frames → CTC
log-probabilities and their greedy decoding in the graph) and the captioner (image features → the
decoder's first state, and the decoder's step, greedy decoding outside on ONNX calls), on random
models and on models trained a few steps on clips and pictures the tests make; each equal to
rnnkit's own outputs (float32, within 1e-5 of their norm)."""

import json

import numpy as np
import onnx
import pytest

import rnnkit
from onnx_checks import assert_close, beam_decoder, run_decoder, session
from rnnkit.cli.main import main
from rnnkit.data.audio import log_mel, read_audio
from rnnkit.data.images import block_scales, image_features, read_image
from rnnkit.export import onnx as onnx_export
from rnnkit.models.captioner import Captioner
from rnnkit.models.transcriber import Transcriber
from rnnkit.nn.ctc import greedy_decode
from rnnkit.tasks.transcribe import clip_log_probs

soundfile = pytest.importorskip("soundfile")
Image = pytest.importorskip("PIL.Image")

# the task tests' pictures and clips (module fixtures: made once, here as there)
from tasks.test_caption import stamps  # noqa: E402, F401
from tasks.test_transcribe import corpus  # noqa: E402, F401


def metadata(model) -> dict:
    return {p.key: p.value for p in model.metadata_props}


# ---- transcribe ---------------------------------------------------------------------------------------


def random_features(rng, lengths, n_mels):
    """Log-mel-like frames (B, T, n_mels), NaN past each length (the graph must never read it)."""
    x = (rng.standard_normal((len(lengths), max(lengths), n_mels)) * 3 - 10).astype(np.float32)
    x[np.arange(max(lengths))[None] >= np.asarray(lengths)[:, None]] = np.nan
    return x


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("cell, bidirectional, layers, stack", [("gru", True, 2, 3), ("lstm", True, 1, 2), ("rnn", False, 2, 1),
                                                                ("lnlstm", True, 1, 4)])
def test_transcriber_log_probs_and_greedy_labels_equal_rnnkit(cell, bidirectional, layers, stack):
    rng = np.random.default_rng(len(cell) + stack)
    n_mels, V = 5, 7
    model = Transcriber(V, n_mels, 6, cell, layers, stack, bidirectional, rng=rng).eval()
    for p in model.head.parameters():  # larger logits: paths with several labels, so merging and dropping blanks matter
        p.data *= 4
    encoding = {"mean": rng.normal(-10, 1, n_mels).tolist(), "std": rng.uniform(2, 4, n_mels).tolist()}
    lengths = np.array([13, 4, 7, 1, 12])  # 12 and 13: a last group of frames completed by zeros, or not
    raw = random_features(rng, lengths, n_mels)
    standardised = (raw - np.float32(encoding["mean"])) / np.float32(encoding["std"])
    standardised[np.isnan(standardised)] = 0  # rnnkit pads each clip's standardised frames with zeros
    lp, steps = model.predict_log_probs(standardised.transpose(1, 0, 2), lengths)
    log_probs, got_steps, labels, label_lengths = session(onnx_export.transcriber_graph(model, encoding, {})).run(
        None, {"features": raw, "lengths": lengths})
    assert_close(log_probs, lp.transpose(1, 0, 2), f"{cell} log_probs")
    np.testing.assert_array_equal(got_steps, steps)
    expected = greedy_decode(lp, steps)
    assert [list(row[:n]) for row, n in zip(labels, label_lengths)] == expected
    assert (labels[np.arange(labels.shape[1])[None] >= label_lengths[:, None]] == -1).all()
    assert 0 < sum(map(len, expected)) < steps.sum()  # labels, and steps merged or dropped


@pytest.mark.usefixtures("reference_backend")
def test_a_trained_transcriber_exports_and_its_metadata_lines_give_rnnkit_s_transcripts(corpus, tmp_path, capsys):
    """`rnnkit export` on a model directory; the consumer's side: the metadata's "prepare" lines
    (log-mel in NumPy) on a clip's samples, the graph, and the "decode" line give what `rnnkit
    transcribe` gives."""
    out = tmp_path / "m"
    assert main(["--quiet", "train", "transcribe", "--data", str(corpus), "--out", str(out), "--steps", "20", "--valid-every", "20",
                 "--hidden", "8", "--layers", "2", "--batch-size", "4", "--n-mels", "12", "--lr", "0.02", "--seed", "1"]) == 0
    assert main(["export", str(out), "--format", "onnx", "--out", str(tmp_path / "asr.onnx")]) == 0
    model = onnx.load(str(tmp_path / "asr.onnx"))
    meta = metadata(model)
    trained = rnnkit.load(out)
    encoding = json.loads(meta["encoding"])
    assert meta["task"] == "transcribe" and encoding == trained.encoding and meta["blank"] == "0"
    run = session(model)
    paths = sorted(corpus.glob("*.wav"))[:5]
    texts = trained.transcribe(paths)
    assert sum(map(len, texts)) >= 3  # characters, not only blanks
    for path, text in zip(paths, texts):
        samples, rate = read_audio(path)
        scope = {"np": np, "samples": samples, "rate": rate}
        exec(meta["prepare"], scope)  # noqa: S102  (the lines as a consumer runs them)
        np.testing.assert_array_equal(scope["features"], log_mel(samples, rate, encoding["n_mels"]))
        log_probs, steps, labels, label_lengths = run.run(None, scope["feeds"])
        [(_, expected)] = clip_log_probs(trained.model, trained.encoding, [scope["features"]], 1)
        assert_close(log_probs[0, : steps[0]], expected, f"{path.name} log_probs")
        scope.update(labels=labels, label_lengths=label_lengths, chars=encoding["chars"])
        exec(meta["decode"], scope)  # noqa: S102
        assert scope["text"] == text


# ---- caption --------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("reference_backend")
@pytest.mark.parametrize("cell, layers", [("lstm", 2), ("gru", 1)])
def test_caption_encoder_and_decoder_steps_equal_rnnkit_teacher_forced(cell, layers):
    rng = np.random.default_rng(layers)
    features = ["colours", "shape"]
    F = len(block_scales(features))
    model = Captioner(F, 11, 5, 6, cell, layers, rng=rng).eval()
    encoding = {"features": features, "mean": rng.normal(0, 1, F).tolist(), "std": rng.uniform(0.5, 2, F).tolist()}
    raw = rng.normal(0, 2, (3, F)).astype(np.float32)
    x = ((raw - np.float32(encoding["mean"])) / np.float32(encoding["std"]) * block_scales(features)).astype(np.float32)
    tgt = rng.integers(0, 11, (6, 3))
    expected, _ = model.scores(x, None, tgt)
    encoder = session(onnx_export.caption_encoder_graph(model, encoding, block_scales(features), {}))
    first = dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, {"features": raw})))
    assert sorted(first) == sorted(onnx_export.decoder_state(model))
    assert_close(run_decoder(first, session(onnx_export.decoder_graph(model, {})), feed_tokens=tgt), expected, cell)


@pytest.mark.usefixtures("reference_backend")
def test_a_trained_captioner_exports_two_files_whose_greedy_captions_equal_rnnkit(stamps, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["--quiet", "train", "caption", "--data", str(stamps), "--out", str(out), "--steps", "40", "--valid-every", "40",
                 "--embed", "8", "--hidden", "12", "--layers", "2", "--batch-size", "8", "--dropout", "0", "--lr", "0.02",
                 "--valid-fraction", "0.2", "--test-fraction", "0.1"]) == 0
    assert main(["export", str(out), "--format", "onnx", "--out", str(tmp_path / "c.onnx")]) == 0
    assert not (tmp_path / "c.onnx").exists()
    encoder, decoder = (onnx.load(str(tmp_path / f"c.{part}.onnx")) for part in ("encoder", "decoder"))
    meta = metadata(decoder)
    trained = rnnkit.load(out)
    bos, eos = int(meta["bos"]), int(meta["eos"])
    assert meta["task"] == "caption" and json.loads(meta["vocabulary"]) == trained.encoding["vocabulary"]
    assert json.loads(meta["features"]) == trained.encoding["features"] == json.loads(metadata(encoder)["features"])
    paths = sorted(stamps.glob("*/*.png"))
    raw = np.stack([image_features(read_image(p), json.loads(meta["features"])) for p in paths]).astype(np.float32)
    first = dict(zip(json.loads(meta["state"]), session(encoder).run(None, {"features": raw})))
    got = run_decoder(first, session(decoder), bos=bos, eos=eos, max_len=12)
    expected = [t.tokens for t in trained.model.greedy(trained.inputs(paths), bos=bos, eos=eos, max_len=12)]
    assert got == expected
    assert len({tuple(t) for t in expected}) > 1 and min(map(len, expected)) >= 2  # captions, not one token for all
    texts = [trained.vocab.tokenizer.decode(t) for t in got]
    assert texts == trained.caption(paths, beam=1)
    # beam search outside the graph: rnnkit's search over the exported step finds rnnkit's captions
    search = dict(bos=bos, eos=eos, beam=3, max_len=12)
    step = session(decoder)
    for row, caption in enumerate(trained.model.beam_search(trained.inputs(paths[:6]), **search)):
        found = beam_decoder(first, step, row, **search)
        assert found.tokens == caption.tokens and abs(found.score - caption.score) < 1e-4
