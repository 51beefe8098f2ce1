"""Generated text to files, tune by tune (rnnkit.music.write_tunes)."""

import wave

import pytest

pytest.importorskip("music21")

from rnnkit.music import write_tunes  # noqa: E402
from rnnkit.music.notation import read_midi_notes  # noqa: E402

TEXT = ("\nM:6/8\nL:1/8\nK:D\nA|d2e fed|c2A A3|]\n\nM:4/4\nL:1/8\nK:C\n|[[[(((\n\n"
        "M:3/4\nL:1/8\nK:G\nB2 d2 g2|a4 g2|]\n\nM:2/4\nL:1/8\nK:G\nGA")


def test_every_readable_tune_is_written_and_the_others_counted(tmp_path):
    out = {"abc": tmp_path / "t.abc", "midi": tmp_path / "t.mid", "wav": tmp_path / "t.wav", "png": tmp_path / "t.png"}
    report = write_tunes(TEXT, out, engine="numpy")
    assert (report.found, report.written, report.skipped) == (4, 3, 1)
    assert "cannot read" in report.first_error and "1 tune(s) music21 cannot read or write skipped" in report.describe()
    for stem in ("t", "t-2", "t-3"):
        assert (tmp_path / f"{stem}.mid").stat().st_size > 0
        assert (tmp_path / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        with wave.open(str(tmp_path / f"{stem}.wav")) as w:
            assert w.getnframes() > 0
    assert not (tmp_path / "t-4.mid").exists()
    assert read_midi_notes(tmp_path / "t-2.mid")[0, 0] == 71  # the third tune (the second is unreadable): B
    abc = (tmp_path / "t.abc").read_text()
    assert abc.startswith("X:1\nM:6/8") and "X:4\nM:2/4" in abc


def test_an_output_in_a_missing_directory_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="--midi: .*does not exist"):
        write_tunes(TEXT, {"midi": tmp_path / "no" / "t.mid"})
