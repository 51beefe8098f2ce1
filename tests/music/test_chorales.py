"""Chorales as piano rolls (rnnkit.music.chorales): MusicXML read on the eighth-note grid, malformed
files skipped, the cache, rolls written back as MIDI and audio."""

import wave

import numpy as np
import pytest

pytest.importorskip("music21")

from rnnkit.data import DataError  # noqa: E402
from rnnkit.music import chorales as ch  # noqa: E402
from rnnkit.music.audio import RATE, RELEASE  # noqa: E402
from rnnkit.music.notation import music21, read_midi_notes  # noqa: E402

SATB = ("Soprano", "Alto", "Tenor", "Bass")


def write_chorale(path, voices, sharps=0, extra_part=None):
    """A MusicXML file written by music21: ``voices`` four lists of (pitch, quarter length),
    a ``None`` pitch a rest; ``extra_part`` (name, notes) a fifth part before them."""
    m21 = music21()
    score = m21.stream.Score()
    parts = ([extra_part] if extra_part else []) + list(zip(SATB, voices))
    for name, notes in parts:
        part = m21.stream.Part()
        part.partName = name
        part.append(m21.key.KeySignature(sharps))
        part.append(m21.meter.TimeSignature("4/4"))
        for pitch, length in notes:
            part.append(m21.note.Rest(quarterLength=length) if pitch is None else m21.note.Note(pitch, quarterLength=length))
        score.insert(0, part)
    score.write("musicxml", fp=str(path))
    return path


# a phrase of four bars: soprano with passing eighths, the lower voices in quarters and halves
SOPRANO = [(72, 1), (74, 0.5), (76, 0.5), (77, 1), (76, 1), (74, 2), (72, 2)]
VOICES = [SOPRANO, [(67, 2), (65, 2), (67, 2), (64, 2)], [(64, 2), (60, 2), (59, 2), (60, 2)], [(48, 4), (55, 2), (48, 2)]]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """The data directory (the rolls' cache) inside the test's own directory."""
    monkeypatch.setenv("RNNKIT_DATA_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_chorale_becomes_a_roll_of_eighth_notes_over_its_four_voices(tmp_path):
    # a horn doubling the soprano an octave up is not a voice
    path = write_chorale(tmp_path / "c.musicxml", VOICES, sharps=-2, extra_part=("Horn 2", [(84, 8)]))
    roll, sharps, soprano = ch.read_chorale(path)
    assert roll.shape == (16, 128) and sharps == -2
    assert not roll[:, 84].any()
    assert roll[0:2, 72].all() and roll[2, 74] and roll[3, 76] and not roll[2, 72]  # a quarter: 2 frames, an eighth: 1
    assert roll[0:8, 48].all() and not roll[8, 48] and roll[8:12, 55].all()
    assert roll.sum(axis=1).tolist() == [4] * 16  # four voices sound in every frame
    assert soprano.tolist() == [72, 72, 74, 76, 77, 77, 76, 76, 74, 74, 74, 74, 72, 72, 72, 72]


def test_leading_rests_are_dropped_and_a_sixteenth_rounds_to_the_grid(tmp_path):
    voices = [[(None, 1), (72, 0.25), (74, 0.75), (76, 1)]] + [[(None, 1), (p, 2)] for p in (67, 60, 48)]
    roll, _, _ = ch.read_chorale(write_chorale(tmp_path / "c.musicxml", voices))
    assert len(roll) == 4  # the quarter rest before everything is gone
    # onsets and ends round half up to eighths: the sixteenth keeps its frame, the dotted eighth after it the next
    assert np.flatnonzero(roll[:, 72]).tolist() == [0] and np.flatnonzero(roll[:, 74]).tolist() == [1]
    assert np.flatnonzero(roll[:, 76]).tolist() == [2, 3]


def test_roll_to_midi_and_back_is_the_same_roll(tmp_path):
    rng = np.random.default_rng(0)
    roll = rng.random((24, 20)) < 0.2
    roll[5:9, 3] = True  # a held note
    tempo = 90.0
    report = ch.write_roll(roll, 50, {"midi": tmp_path / "r.mid"}, tempo)
    assert report.files == [tmp_path / "r.mid"]
    notes = read_midi_notes(tmp_path / "r.mid")
    assert len(notes) == len(ch.roll_to_notes(roll, 50))
    back = ch.notes_to_roll(notes, 50, 20, ch.GRID * 60 / tempo, frames=len(roll))
    np.testing.assert_array_equal(back, roll)


def test_notes_outside_the_rolls_pitches_are_an_error():
    with pytest.raises(DataError, match="pitch 80 lies outside the roll's pitches 50-69"):
        ch.notes_to_roll(np.array([[80, 0, 1, 90]]), 50, 20, 0.25)


def test_wav_of_a_roll_has_the_expected_length_and_rate(tmp_path):
    roll = np.zeros((16, 12), dtype=bool)
    roll[:, 0] = True
    roll[4:10, 7] = True
    tempo = 120.0  # an eighth lasts 0.25 s: 16 frames, 4 s
    report = ch.write_roll(roll, 60, {"wav": tmp_path / "r.wav", "png": tmp_path / "r.png"}, tempo, engine="numpy")
    assert report.engine == "numpy" and (tmp_path / "r.png").stat().st_size > 1000
    with wave.open(str(tmp_path / "r.wav"), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (RATE, 1, round((4.0 + RELEASE) * RATE))


def test_key_signatures_move_to_none_the_nearer_way():
    assert [ch.key_shift(s) for s in (0, 1, 2, -1, -2, 6, -6)] == [0, 5, -2, -5, 2, -6, -6]
    roll = np.zeros((2, 128), dtype=bool)
    roll[0, 67] = True  # G, the tonic of one sharp
    assert ch.transpose(roll, ch.key_shift(1))[0, 72]
    with pytest.raises(DataError, match="outside MIDI's pitches"):
        ch.transpose(np.eye(128, dtype=bool)[125:], 5)


def test_a_malformed_file_is_skipped_and_counted_with_the_first_reason(tmp_path, data_dir):
    for i, shift in enumerate((0, 2)):
        write_chorale(tmp_path / f"good{i}.musicxml", [[(p + shift, n) for p, n in v] for v in VOICES])
    (tmp_path / "broken.musicxml").write_text("<score-partwise><part id='P1'><measure", encoding="utf-8")
    write_chorale(tmp_path / "trio.musicxml", VOICES[:3])  # three voices: not a chorale
    corpus, description = ch.read_corpus(str(tmp_path))
    assert corpus.names == ["good0.musicxml", "good1.musicxml"]
    assert (corpus.report.files, corpus.report.chorales, corpus.report.skipped) == (4, 2, 2)
    assert corpus.report.first_error.startswith("broken.musicxml: music21 cannot read it")
    assert "2 chorales from 4 files; 2 file(s) skipped (first: broken.musicxml: music21 cannot read it" in description


def test_a_source_with_no_readable_chorale_is_an_error(tmp_path, data_dir):
    (tmp_path / "broken.mxl").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"no chorale could be read \(0 chorales from 1 files; 1 file\(s\) skipped"):
        ch.read_corpus(str(tmp_path))
    with pytest.raises(DataError, match="neither bach-chorales nor a directory of MusicXML files"):
        ch.read_corpus(str(tmp_path / "missing"))


def test_the_parsed_rolls_are_cached_and_read_back_until_the_files_change(tmp_path, data_dir):
    source = tmp_path / "src"
    source.mkdir()
    write_chorale(source / "a.musicxml", VOICES, sharps=1)
    parsed, _ = ch.read_corpus(str(source))
    [cache] = list((data_dir / "piano-rolls").glob("*.npz"))
    assert not list((data_dir / "piano-rolls").glob(".*tmp"))  # written atomically: no temporary left
    # the cache is what a second read returns: a cache edited under the same fingerprint shows through
    with np.load(cache) as z:
        arrays = dict(z)
    arrays["names"] = np.array(["from-the-cache"])
    np.savez_compressed(cache, **arrays)
    cached, _ = ch.read_corpus(str(source))
    assert cached.names == ["from-the-cache"] and cached.sharps == [1]
    np.testing.assert_array_equal(cached.rolls[0], parsed.rolls[0])
    np.testing.assert_array_equal(cached.soprano[0], parsed.soprano[0])
    # a changed file is another fingerprint: parsed again, into a cache of its own
    write_chorale(source / "a.musicxml", VOICES, sharps=2)
    again, _ = ch.read_corpus(str(source))
    assert again.names == ["a.musicxml"] and again.sharps == [2]
    assert len(list((data_dir / "piano-rolls").glob("*.npz"))) == 2
    # a damaged cache is parsed again, never trusted
    for path in (data_dir / "piano-rolls").glob("*.npz"):
        path.write_bytes(b"damaged")
    assert ch.read_corpus(str(source))[0].sharps == [2]
