"""Tunes in ABC notation read as text (rnnkit.data.abc), on small files the tests write."""

import importlib.util

import pytest

from rnnkit.data import DataError
from rnnkit.data.abc import (
    default_unit,
    header_prime,
    meter_fraction,
    normalise_tune,
    read_abc_files,
    split_abc,
    split_tunes,
    tune_texts,
)

TWO_TUNES = """% a file's own comments come before the first tune
%%abc-version 2.1

X:1
T:The First
C:Someone
M:6/8
L:1/8
R:jig
K:D
"D"A|d2e "G"fed|"4"c2A A2:| % a comment
w: words to drop

X:2
T:The Second
M: 3/4
K: G Major
B2 d2 g2|  a4   g2|]
"""


def test_a_file_splits_into_tunes_at_their_x_lines():
    raw = split_abc(TWO_TUNES)
    assert len(raw) == 2
    assert raw[0].startswith("X:1\nT:The First") and raw[0].endswith("w: words to drop")
    assert raw[1].startswith("X:2") and "a4" in raw[1]


def test_a_tune_keeps_meter_unit_and_key_then_its_notes():
    first, second = (normalise_tune(t) for t in split_abc(TWO_TUNES))
    assert first == "M:6/8\nL:1/8\nK:D\nA|d2e fed|c2A A2:|"
    # no L: in 3/4: the ABC standard's default, 1/8; blanks run together become one space
    assert second == "M:3/4\nL:1/8\nK:G Major\nB2 d2 g2| a4 g2|]"


@pytest.mark.parametrize("meter,unit", [("2/4", "1/16"), ("3/8", "1/16"), ("3/4", "1/8"), ("6/8", "1/8"),
                                        ("C", "1/8"), ("none", "1/8")])
def test_the_default_unit_follows_the_meter(meter, unit):
    assert default_unit(meter) == unit


def test_meters_as_bar_lengths():
    assert meter_fraction("6/8") == meter_fraction("3/4") and meter_fraction("C|") == 1
    assert meter_fraction("none") is None and meter_fraction("2+3/8") is None


def test_malformed_files_and_tunes_are_skipped_with_a_count_and_the_first_error(tmp_path):
    good = tmp_path / "good.abc"
    good.write_text(TWO_TUNES, encoding="utf-8")
    latin1 = tmp_path / "latin1.abc"
    latin1.write_bytes("X:1\nT:Caf\xe9\nK:C\nCDE|\n".encode("latin-1"))
    empty = tmp_path / "none.abc"
    empty.write_text("% only a comment, no tune\n", encoding="utf-8")
    keyless = tmp_path / "keyless.abc"
    keyless.write_text("X:1\nT:No key\nM:2/4\nCDEF|\n\nX:2\nT:Fine\nK:C\nCDEF|\n\n"
                       "X:3\nT:Two voices\nK:C\nV:1\nCDEF|\nV:2\nC,D,E,F,|\n", encoding="utf-8")
    tunes, report = read_abc_files([good, latin1, empty, keyless, tmp_path / "missing.abc"])
    assert len(tunes) == report.tunes == 3
    assert (report.files, report.skipped_files) == (2, 3)
    assert "latin1.abc" in report.first_file_error and "UTF-8" in report.first_file_error
    assert report.skipped_tunes == 1 and "keyless.abc" in report.first_tune_error and "K:" in report.first_tune_error
    assert report.multi_voice == 1
    line = report.describe()
    assert "3 tunes from 2 files" in line and "3 file(s) skipped" in line and "\n" not in line


def test_duplicate_tunes_are_kept_once(tmp_path):
    for name in ("a.abc", "b.abc"):
        (tmp_path / name).write_text(TWO_TUNES, encoding="utf-8")
    tunes, report = read_abc_files([tmp_path / "a.abc", tmp_path / "b.abc"])
    assert len(tunes) == 2 and report.duplicates == 2


def test_no_tune_at_all_is_one_error_naming_the_first_problem(tmp_path):
    bad = tmp_path / "bad.abc"
    bad.write_text("no tunes here\n", encoding="utf-8")
    with pytest.raises(DataError, match="no ABC tunes could be read.*bad.abc"):
        read_abc_files([bad])


def test_the_tune_split_is_whole_tunes_drawn_by_the_seed():
    tunes = [f"M:2/4\nL:1/8\nK:C\nC{i}|" for i in range(40)]
    train, valid = split_tunes(tunes, 0.25, seed=3)
    assert len(valid) == 10 and len(train) == 30
    assert not set(train) & set(valid) and set(train) | set(valid) == set(tunes)
    assert split_tunes(tunes, 0.25, seed=3) == (train, valid)
    assert split_tunes(tunes, 0.25, seed=4)[1] != valid


def test_a_split_needs_a_tune_on_each_side():
    with pytest.raises(DataError, match="each part needs a tune"):
        split_tunes(["M:2/4\nL:1/8\nK:C\nC|"], 0.5, seed=0)


@pytest.mark.parametrize("prime,expected", [
    ("M:6/8\\nK:D\\n", "M:6/8\nL:1/8\nK:D\n"),             # typed \n, as a shell passes it
    ("K:D\nM:2/4\n", "M:2/4\nL:1/16\nK:D\n"),               # the corpus's order, the default unit
    ("M:3/4\nL:1/4\nK:G\n", "M:3/4\nL:1/4\nK:G\n"),
    ("M:6/8\nL:1/8\nK:D\n|:A|d2e", "M:6/8\nL:1/8\nK:D\n|:A|d2e"),   # notes after the key stay
    ("M:6/8", "M:6/8\nL:1/8\n"),
])
def test_a_header_prime_is_put_in_the_corpus_order(prime, expected):
    assert header_prime(prime) == expected


@pytest.mark.parametrize("prime,match", [
    ("T:A Title\nK:D\n", "unknown header field T:"),
    ("M:6/8\nQ:1/4=120\nK:D", "unknown header field Q:"),
    ("M:6/8\nM:3/4\n", "M: given twice"),
    ("K:\n", "K: has no value"),
    ("abc|def", "is not a header field"),
])
def test_a_bad_header_prime_is_a_one_line_error(prime, match):
    with pytest.raises(DataError, match=match) as info:
        header_prime(prime)
    assert "\n" not in str(info.value)


def test_generated_text_splits_into_tunes_at_blank_lines():
    text = "\nM:2/4\nL:1/8\nK:C\nCDEF|\n\nM:3/4\nL:1/8\nK:G\nGAB|\n\n\nAB|c"
    assert tune_texts(text) == ["M:2/4\nL:1/8\nK:C\nCDEF|", "M:3/4\nL:1/8\nK:G\nGAB|"]


@pytest.mark.skipif(importlib.util.find_spec("music21") is None, reason="folk-tunes is not installed")
def test_the_folk_tunes_corpus_reads_whole():
    from rnnkit.data.abc import folk_tunes

    tunes, report = folk_tunes()
    assert report.tunes > 12_000 and report.skipped_files == 0
    assert all(t.startswith("M:") and "\nL:" in t and "\nK:" in t for t in tunes)
