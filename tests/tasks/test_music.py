"""Task `music` (rnnkit.tasks.music): chorales split by melody, the frame NLL, training through the
command line, compose, evaluate, resume and export."""

import json
import wave
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("music21")

import rnnkit  # noqa: E402
from gradcheck import numerical_grad, rel_err  # noqa: E402
from rnnkit.cli.main import main  # noqa: E402
from rnnkit.models.piano_roll import PianoRollModel  # noqa: E402
from rnnkit.music.chorales import roll_to_notes  # noqa: E402
from rnnkit.music.notation import music21, read_midi_notes  # noqa: E402
from rnnkit.tasks import music as task  # noqa: E402

SATB = ("Soprano", "Alto", "Tenor", "Bass")


def write_chorale(path, voices, sharps=0):
    """A four-voice MusicXML file written by music21: ``voices`` lists of (pitch, quarter length)."""
    m21 = music21()
    score = m21.stream.Score()
    for name, notes in zip(SATB, voices):
        part = m21.stream.Part()
        part.partName = name
        part.append(m21.key.KeySignature(sharps))
        for pitch, length in notes:
            part.append(m21.note.Note(pitch, quarterLength=length))
        score.insert(0, part)
    score.write("musicxml", fp=str(path))


def melody(seed):
    rng = np.random.default_rng(seed)
    return [(int(p), float(d)) for p, d in zip(rng.integers(65, 78, 10), rng.choice([0.5, 1.0, 2.0], 10))]


def lower(seed, base):
    rng = np.random.default_rng(seed)
    return [(int(base + p), 2.0) for p in rng.integers(0, 8, 5)]


@pytest.fixture(scope="module")
def chorales(tmp_path_factory):
    """Ten chorales of eight melodies in C, G (one sharp) and F (one flat): melody 0 harmonised
    twice (its second harmonisation in G), chorale 0 copied into G (an exact duplicate in another
    key), and a broken file."""
    d = tmp_path_factory.mktemp("chorales")
    for i in range(8):
        write_chorale(d / f"c{i}.musicxml", [melody(i), lower(i, 60), lower(i + 50, 52), lower(i + 90, 40)], sharps=-(i % 2))
    write_chorale(d / "c0-again.musicxml", [[(p + 7, n) for p, n in melody(0)], lower(7, 67), lower(8, 59), lower(9, 47)], sharps=1)
    write_chorale(d / "c0-copy.musicxml", [[(p - 5, n) for p, n in v] for v in
                                           (melody(0), lower(0, 60), lower(50, 52), lower(90, 40))], sharps=1)
    (d / "broken.musicxml").write_text("<score-partwise><part", encoding="utf-8")
    return d


@pytest.fixture(scope="module", autouse=True)
def data_dir(tmp_path_factory):
    """The rolls' cache in the tests' own directory, shared by this module's tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RNNKIT_DATA_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


TINY = ["--hidden", "8", "--batch-size", "3", "--steps", "4", "--valid-every", "2", "--valid-fraction", "0.2",
        "--test-fraction", "0.2", "--quiet"]


@pytest.fixture(scope="module")
def trained(chorales, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    assert main(["train", "music", "--data", str(chorales), "--out", str(out), "--cell", "gru", *TINY]) == 0
    return out


def test_duplicates_are_dropped_and_a_melodys_harmonisations_stay_in_one_part(chorales):
    data = task.ChoraleData(task.MusicOptions(data=str(chorales), valid_fraction=0.2, test_fraction=0.2), seed=0)
    d = data.description
    assert "10 chorales from 11 files; 1 file(s) skipped (first: broken.musicxml: music21 cannot read it" in d["source"]
    assert d["duplicates"] == 1 and d["melodies"] == 8
    names = data.names
    # of the two copies the first in file order stays
    assert sorted(sum(names.values(), [])) == sorted([f"c{i}.musicxml" for i in range(1, 8)] + ["c0-again.musicxml",
                                                                                               "c0-copy.musicxml"])
    part_of = {n: p for p, ns in names.items() for n in ns}
    assert part_of["c0-copy.musicxml"] == part_of["c0-again.musicxml"]
    assert (d["valid_chorales"], d["test_chorales"]) >= (1, 1)
    # a function of the data and the seed
    again = task.ChoraleData(task.MusicOptions(data=str(chorales), valid_fraction=0.2, test_fraction=0.2), seed=0)
    assert again.names == names
    others = [task.ChoraleData(task.MusicOptions(data=str(chorales), valid_fraction=0.2, test_fraction=0.2), seed=s).names
              for s in (1, 2, 3)]
    assert any(o != names for o in others)


def test_transposed_rolls_are_in_c_and_the_range_is_the_one_used(chorales):
    kept = task.ChoraleData(task.MusicOptions(data=str(chorales)), seed=0)
    own = task.ChoraleData(task.MusicOptions(data=str(chorales), transpose=False), seed=0)
    assert kept.names == own.names  # the split does not depend on transposing
    low, high = kept.encoding["low"], kept.encoding["high"]
    rolls = [r for part in kept.rolls.values() for r in part]
    used = np.flatnonzero(np.any([r.any(axis=0) for r in rolls], axis=0))
    assert (used[0], used[-1]) == (0, high - low) and rolls[0].shape[1] == high - low + 1
    # c1 is in F (one flat): moved down 5 semitones to C major
    top = {}
    for data in (kept, own):
        part = next(p for p, names in data.names.items() if "c1.musicxml" in names)
        roll = data.rolls[part][data.names[part].index("c1.musicxml")]
        top[data is kept] = np.flatnonzero(roll[0])[-1] + data.encoding["low"]
    assert top[True] == top[False] - 5


def test_the_frame_nll_is_the_bernoulli_nll_summed_over_pitches_averaged_over_frames():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    model = PianoRollModel(6, 5, cell="lstm", rng=0)
    rolls = [(rng.random((n, 6)) < 0.3).astype(np.float32) for n in (7, 3, 5)]
    nll, frames = task.frame_nll(model, rolls, batch_size=2)
    assert frames == 15
    total = 0.0
    for roll in rolls:  # each chorale alone, from the silent frame: no padding to get wrong
        x = np.concatenate([np.zeros((1, 6), np.float32), roll[:-1]])[:, None]
        logits, _ = model(x)
        total += torch.nn.BCEWithLogitsLoss(reduction="sum")(torch.tensor(logits[:, 0]), torch.tensor(roll)).item()
    assert nll == pytest.approx(total / 15, rel=1e-5)


def test_a_training_steps_gradient_leaves_the_padding_out():
    rng = np.random.default_rng(1)
    model = PianoRollModel(4, 3, cell="gru", dtype=np.float64, rng=0)
    rolls = [(rng.random((n, 4)) < 0.4).astype(np.float64) for n in (6, 2, 4)]
    x, y, mask = task.next_frame_batch(rolls)

    def loss():  # the padded frames' logits left out
        logits, _ = model(x)
        return task.BCEWithLogitsLoss(reduction="sum")(logits[mask], y[mask]) / mask.sum()

    run = task.MusicRun(model, SimpleNamespace(rolls={"train": rolls}), task.MusicOptions(batch_size=3), seed=0)
    model.zero_grad()
    step_loss, frames, terms = run.train_step()  # one batch of all three
    assert frames == terms == 12 and step_loss == pytest.approx(loss())
    for name, p in model.named_parameters():
        assert rel_err(p.grad, numerical_grad(loss, p.data)) < 1e-6, name


def test_train_compose_and_evaluate_through_the_command_line(trained, tmp_path, capsys):
    config = json.loads((trained / "config.json").read_text())
    assert config["task"] == "music" and config["data"]["train_chorales"] >= 5
    assert main(["compose", str(trained), "--bars", "2", "--seed", "3", "--midi", str(tmp_path / "c.mid"),
                 "--wav", str(tmp_path / "c.wav"), "--png", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr()
    lines = out.out.strip().split("\n")
    assert len(lines) == 16 and lines[0].startswith("1.1\t") and lines[-1].startswith("2.8\t")
    assert "c.mid" in out.err and (tmp_path / "c.png").stat().st_size > 1000
    with wave.open(str(tmp_path / "c.wav"), "rb") as w:  # 16 eighths at 80 quarters a minute: 6 s, and a tail
        assert w.getframerate() in (22050, 44100) and w.getnframes() >= 6.0 * w.getframerate() * 0.95
    notes = read_midi_notes(tmp_path / "c.mid")
    model = rnnkit.load(trained)
    roll = model.compose(2, seed=3)
    assert len(notes) == len(roll_to_notes(roll, model.encoding["low"]))
    assert main(["compose", str(trained), "--bars", "2", "--seed", "3"]) == 0
    assert capsys.readouterr().out.strip().split("\n") == lines  # the same seed, the same chorale
    assert main(["evaluate", str(trained)]) == 0
    shown = capsys.readouterr().out
    assert "valid_loss" in shown and "test_loss" in shown
    metrics = model.evaluate()
    assert metrics["valid_loss"] == pytest.approx(config["metrics"]["loss"], rel=1e-5)  # the kept weights' validation
    assert main(["info", str(trained)]) == 0
    assert "task music" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--bars", "0"], "--bars: expected a number of 4/4 bars from 1 to 1000, got 0"),
    (["--temperature", "0"], "--temperature: expected a number above 0, got 0.0"),
    (["--tempo", "0"], "--tempo: expected quarter notes a minute from 1 to 1000, got 0.0"),
    (["--midi", "/no/such/dir/c.mid"], "--midi: /no/such/dir/c.mid: the directory /no/such/dir does not exist"),
])
def test_bad_compose_arguments_are_one_line_errors(trained, capsys, args, message):
    assert main(["compose", str(trained), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"rnnkit: error: {message}"), err


def test_bad_data_is_a_one_line_error_before_the_directory_is_written(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["train", "music", "--data", str(tmp_path / "missing"), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "neither bach-chorales nor a directory of MusicXML files" in err and not out.exists()


def test_a_resumed_run_equals_an_uninterrupted_one(chorales, tmp_path):
    common = ["--data", str(chorales), "--cell", "lstm", *TINY]  # 4 steps
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert main(["train", "music", "--out", str(whole), *common, "--steps", "6"]) == 0
    assert main(["train", "music", "--out", str(split), *common]) == 0
    assert main(["train", "--resume", str(split), "--steps", "6", "--quiet"]) == 0
    a, b = rnnkit.load(whole).model.state_dict(), rnnkit.load(split).model.state_dict()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_the_export_computes_the_models_logits(trained, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    assert main(["export", str(trained), "--out", str(tmp_path / "m.onnx")]) == 0
    model = rnnkit.load(trained)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    frames = (np.random.default_rng(0).random((2, 5, model.model.pitches)) < 0.3).astype(np.float32)
    h0 = np.zeros((1, 2, 8), np.float32)
    logits, h_n = session.run(None, {"frames": frames, "h0": h0})
    model.model.eval()
    expected, state = model.model(frames.transpose(1, 0, 2))
    np.testing.assert_allclose(logits, expected.transpose(1, 0, 2), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h_n, state, rtol=1e-4, atol=1e-5)
