"""Task transcribe on "speech" the tests synthesise: each character a tone of its own pitch, a
space a pause. The acoustic model must learn to read it; the command line, the splits by
group, the metrics and bad data."""

import json

import numpy as np
import pytest

import rnnkit
from rnnkit.cli.main import main
from rnnkit.data.speech import held_out
from rnnkit.tasks.transcribe import ctc_steps_needed, normalise, read_transcripts

soundfile = pytest.importorskip("soundfile")

RATE = 16000
PITCH = {"a": 400.0, "b": 900.0, "c": 1700.0, "d": 2900.0}


def say(text: str, rng) -> np.ndarray:
    pieces = []
    for ch in text:
        n = int(RATE * rng.uniform(0.09, 0.14))
        t = np.arange(n) / RATE
        pieces.append(np.zeros(n) if ch == " " else 0.4 * np.sin(2 * np.pi * PITCH[ch] * t) * np.hanning(n))
    pieces.append(np.zeros(RATE // 20))
    return (np.concatenate(pieces) + 0.003 * rng.standard_normal(sum(map(len, pieces)))).astype(np.float32)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """48 clips in 8 groups (one of them held out as test by its name's md5)."""
    root = tmp_path_factory.mktemp("speech")
    rng = np.random.default_rng(0)
    groups = [f"scene{i}" for i in range(8)]
    assert any(map(held_out, groups)) and not all(map(held_out, groups))
    lines = []
    for k in range(48):
        text = " ".join("".join(rng.choice(list(PITCH), size=rng.integers(1, 4))) for _ in range(rng.integers(1, 3)))
        name = f"clip{k:02d}.wav"
        soundfile.write(str(root / name), say(text, rng), RATE)
        lines.append(f"{name}\t{text.upper()}!\t{groups[k % 8]}")
    (root / "transcripts.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    assert main(["--quiet", "train", "transcribe", "--data", str(corpus), "--out", str(out), "--steps", "300", "--valid-every", "150",
                 "--hidden", "32", "--layers", "1", "--batch-size", "8", "--n-mels", "24", "--lr", "0.01", "--dropout", "0",
                 "--seed", "1"]) == 0
    return out


def test_the_model_learns_to_read_the_tones(trained, corpus):
    config = json.loads((trained / "config.json").read_text())
    assert config["training"]["monitor"] == "cer"  # the task's default: the error rate picks the weights
    assert config["metrics"]["cer"] == min(json.loads(line)["valid_cer"] for line in (trained / "metrics.jsonl").read_text().splitlines()
                                           if "valid_cer" in line)
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records if "train_loss" in r]
    assert losses[-1] < 0.3 * losses[0]
    model = rnnkit.load(trained)
    metrics = model.evaluate()
    assert metrics["train_cer"] < 0.25 and metrics["valid_cer"] < 0.5, metrics
    assert set(metrics) >= {"train_wer", "valid_wer", "test_cer", "test_utterances"}


def test_transcribe_prints_each_files_text_greedy_or_with_a_beam(trained, corpus, capsys):
    files = [str(corpus / "clip00.wav"), str(corpus / "clip01.wav")]
    assert main(["transcribe", str(trained), *files]) == 0
    greedy = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in greedy] == files
    assert main(["transcribe", str(trained), *files, "--beam", "4"]) == 0
    beamed = capsys.readouterr().out.splitlines()
    assert len(beamed) == 2 and all(set(line.split("\t")[0]) <= set("abcd ") for line in beamed)


def test_a_bad_audio_file_or_beam_is_one_line(trained, tmp_path, capsys):
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF....WAVEfmt garbage")
    assert main(["transcribe", str(trained), str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "noise.wav: not a readable audio file" in err
    assert main(["transcribe", str(trained), str(bad), "--beam", "-1"]) == 2
    assert "--beam: expected a width >= 1, or 0" in capsys.readouterr().err


def test_splits_keep_groups_whole_and_unreadable_clips_are_counted(corpus, tmp_path):
    folder = tmp_path / "copy"
    folder.mkdir()
    for f in corpus.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "clip03.wav").write_bytes(b"not audio")
    from rnnkit.tasks.transcribe import SpeechData, TranscribeOptions

    data = SpeechData(TranscribeOptions(data=str(folder), valid_fraction=0.3), seed=0)
    parts = {name: {g for _, _, g, _ in part} for name, part in data.parts.items()}
    assert not parts["train"] & parts["valid"] and not parts["train"] & parts["test"] and not parts["valid"] & parts["test"]
    assert all(held_out(g) for g in parts["test"])
    assert data.description["unreadable"] == 1 and "clip03.wav: not a readable audio file" in data.description["source"]
    assert sum(data.description[f"{k}_utterances"] for k in ("train", "valid", "test")) == 47


@pytest.mark.parametrize("line,message", [
    ("clip.wav", r"line 1: expected FILE<TAB>TEXT\[<TAB>GROUP\]"),
    ("../outside.wav\thello", r"line 1: '../outside.wav' is outside"),
])
def test_a_bad_transcript_line_is_named(tmp_path, line, message):
    (tmp_path / "transcripts.tsv").write_text(line + "\n", encoding="utf-8")
    with pytest.raises(rnnkit.data.DataError, match=message):
        read_transcripts(tmp_path)
    with pytest.raises(rnnkit.data.DataError, match="is not one of fillets-speech:cs"):
        read_transcripts(tmp_path / "missing")


def test_text_is_normalised_and_ctc_needs_a_step_between_repeats():
    assert normalise("  Ahoj, Karle!  To je—\n\"dobré\" ") == "ahoj karle to je dobré"
    assert normalise("it's 2_000") == "it's 2 000"
    assert ctc_steps_needed([1, 1, 2, 2, 2, 3]) == 9


@pytest.fixture(scope="module")
def char_lm(corpus, tmp_path_factory):
    """A character LM of the transcripts' text, as a user would train one for the beam."""
    texts = [line.split("\t")[1].lower().rstrip("!") for line in (corpus / "transcripts.tsv").read_text().splitlines()]
    text_file = tmp_path_factory.mktemp("lm") / "text.txt"
    text_file.write_text("\n".join(texts * 20) + "\n", encoding="utf-8")
    out = text_file.parent / "lm"
    rnnkit.train("lm", out=out, data=str(text_file), tokenizer="char", steps=30, hidden=16, layers=1, embed=8, seq_len=20,
                 batch_size=4, valid_every=30, quiet=True)
    return out


def test_the_language_model_scorer_gives_the_lms_next_character_distribution(trained, char_lm):
    from rnnkit.tasks.transcribe import LanguageModelScorer

    lm, asr = rnnkit.load(char_lm), rnnkit.load(trained)
    scorer = LanguageModelScorer(lm, asr.encoding["chars"])
    chars = asr.encoding["chars"]
    prefix = tuple(chars.index(c) + 1 for c in "ab c")
    got = scorer(prefix)
    with rnnkit.nn.no_grad():
        logits, _ = lm.model(lm.tokenizer.encode("\nab c").reshape(-1, 1))
    last = logits[-1, 0].astype(np.float64)
    expected = last - np.logaddexp.reduce(last)
    for k, c in enumerate(chars, 1):
        assert got[k] == pytest.approx(expected[lm.tokenizer.encode(c)[0]], abs=1e-6)
    assert len(scorer.cache) == 5  # the empty prefix and one entry per character read


def test_transcribe_with_a_language_model_in_the_beam(trained, char_lm, corpus, capsys):
    clip = str(corpus / "clip05.wav")
    assert main(["transcribe", str(trained), clip, "--beam", "4", "--lm", str(char_lm), "--lm-weight", "0.3"]) == 0
    text, path = capsys.readouterr().out.strip().split("\t")
    assert path == clip and set(text) <= set("abcd ")
    assert main(["transcribe", str(trained), clip, "--lm", str(char_lm)]) == 2
    assert "--lm: a language model joins the beam search; give --beam N too" in capsys.readouterr().err
    assert main(["transcribe", str(trained), clip, "--beam", "2", "--lm", str(trained)]) == 2
    assert "needs a model of task 'lm'" in capsys.readouterr().err
