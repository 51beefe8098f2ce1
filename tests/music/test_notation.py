"""Tunes through music21 (rnnkit.music.notation): ABC parsed, MIDI written and read back, checks."""

import numpy as np
import pytest

pytest.importorskip("music21")

from rnnkit.data import DataError  # noqa: E402
from rnnkit.music.notation import parse_tune, read_midi_notes, tune_checks, write_midi  # noqa: E402

SCALE = "M:4/4\nL:1/4\nK:C\nC D E F|G A B c|]"


def test_midi_written_and_read_back_holds_the_tunes_notes(tmp_path):
    path = write_midi(parse_tune(SCALE), tmp_path / "scale.mid")
    notes = read_midi_notes(path)
    # music21 writes 120 quarter notes a minute: each quarter 0.5 s
    pitches = [60, 62, 64, 65, 67, 69, 71, 72]
    starts = np.arange(8) * 0.5
    np.testing.assert_array_equal(notes[:, 0], pitches)
    np.testing.assert_allclose(notes[:, 1], starts)
    np.testing.assert_allclose(notes[:, 2], starts + 0.5)
    assert np.all(notes[:, 3] > 0)


def test_accidentals_lengths_and_octaves_reach_the_midi_file(tmp_path):
    notes = read_midi_notes(write_midi(parse_tune("M:3/4\nL:1/8\nK:D\nF2 =F2 c'2|_B,4 z2|]"), tmp_path / "t.mid"))
    # F is sharp in D major, =F natural; c' the octave above c (C5), sharp too; z a rest
    np.testing.assert_array_equal(notes[:, 0], [66, 65, 85, 58])
    np.testing.assert_allclose(notes[:, 2] - notes[:, 1], [0.5, 0.5, 0.5, 1.0])
    assert notes[3, 2] == pytest.approx(2.5)  # the rest takes time but makes no note


@pytest.mark.parametrize("tune,bars_match,ends_on_tonic", [
    ("M:6/8\nL:1/8\nK:D\nA|d2e fed|c2A A3|d2e fed|d3 d2|]", True, True),      # a pickup and its complement
    ("M:4/4\nL:1/8\nK:C\nCDEF GABc|c2 d2|CDEF GABc|C8|]", False, True),        # a bar of 4/8 in 4/4
    ("M:6/8\nL:1/8\nK:Ador\n|:e|aed cBA|GAB G2e|aed cBA|1 GBA A2:|2 GBA A2||", True, True),  # A dorian's tonic
    ("M:2/4\nL:1/8\nK:G\nGABc|d2 B2|GABc|d2 B2|]", True, False),
    ("M:2/4\nL:1/8\nK:G\nGABc|d2 B2|]", False, False),                       # too short to tell
    ("M:none\nL:1/8\nK:G\nGABc|d2 B2|GABc|d2 G2|]", False, True),           # no meter to match
])
def test_checks_judge_bars_against_the_meter_and_the_last_note_against_the_key(tune, bars_match, ends_on_tonic):
    checks = tune_checks(parse_tune(tune))
    assert (checks["bars_match"], checks["ends_on_tonic"]) == (bars_match, ends_on_tonic)


@pytest.mark.parametrize("tune,match", [("M:4/4\nL:1/8\nK:C\n|[[[(((", "music21 cannot read"),
                                        ("M:4/4\nL:1/8\nK:C\nCD _ EF|", "music21 repairs the tune"),
                                        ("M:4/4\nL:1/8\nK:C\n|", "no note")])
def test_a_tune_music21_cannot_read_is_a_one_line_error(tune, match):
    with pytest.raises(DataError, match=match) as info:
        parse_tune(tune)
    assert "\n" not in str(info.value)


def test_a_tune_with_an_irregular_bar_is_written(tmp_path):
    # music21 reads the one-eighth bar as a 1/8 meter and returns to the tune's 6/8 object,
    # which its MIDI writer alone refuses ("already found in this Stream")
    notes = read_midi_notes(write_midi(parse_tune("M:6/8\nL:1/8\nK:G\nG3A | B4B3 | c|GAB cde|"), tmp_path / "t.mid"))
    np.testing.assert_array_equal(notes[:, 0], [67, 69, 71, 71, 72, 67, 69, 71, 72, 74, 76])
