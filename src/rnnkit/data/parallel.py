"""Parallel texts for translation: users' TSV files and the English–Spanish Bible.

    sources, targets = read_pairs("train.tsv")            # source<TAB>target per line
    english, spanish, refs = bible_pairs(max_words=30)   # `rnnkit data install bible`

``bible_pairs`` aligns two SWORD modules verse by verse: the World English Bible
(``engWEB2015eb``, package ``sword-text-web``) and the Reina-Valera 1909 (``spaRV1909eb``,
``sword-text-sparv``), dumped with ``diatheke``. The first call builds the pairs (about 15 s)
and caches them in ``data_dir()/bible/pairs.tsv``; later calls read that file.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from . import catalog
from .corpora import read_text_file
from .errors import DataError

# ---- users' files ------------------------------------------------------------------------------


def read_pairs(path) -> tuple[list[str], list[str]]:
    """(sources, targets) of a parallel text file, one pair per line: ``source<TAB>target``.

    The first tab splits the line, so a target may hold more tabs (they stay part of it).
    Source and target are stripped of surrounding spaces. Blank lines are skipped. A line
    without a tab, with an empty source or an empty target is a DataError naming ``file:line``.
    The file is UTF-8 (see ``read_text_file``).
    """
    path = Path(path)
    sources, targets = [], []
    for lineno, line in enumerate(read_text_file(path).split("\n"), 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise DataError(f"{path}:{lineno}: no tab between source and target; write each pair as source<TAB>target")
        source, target = (part.strip() for part in line.split("\t", 1))
        if not source:
            raise DataError(f"{path}:{lineno}: empty source; put the source sentence before the tab")
        if not target:
            raise DataError(f"{path}:{lineno}: empty target for source {source[:40]!r}; give the translation or remove the line")
        sources.append(source)
        targets.append(target)
    if not sources:
        raise DataError(f"{path}: has no pairs; write one source<TAB>target per line")
    return sources, targets


# ---- the Bible, English and Spanish ------------------------------------------------------------

BIBLE_MODULES = ("engWEB2015eb", "spaRV1909eb")  # World English Bible, Reina-Valera 1909
BIBLE_RANGE = "Genesis 1:1-Revelation of John 22:21"
BIBLE_CACHE = "pairs.tsv"  # under data_dir() / "bible"

# diatheke prints one verse a line: ``[preverse]BOOK C:V: TEXT``. The preverse (a psalm's title)
# is markup before the reference; the reference follows the start of the line or a tag.
_VERSE = re.compile(r"(?:^|(?<=>))\s*(?P<book>[^<>\n]+?) (?P<chapter>\d+):(?P<verse>\d+): ")
_MODULE_LINE = re.compile(r"\(\w+\)")  # "(engWEB2015eb)" closes the output
_PSALM_TITLE = re.compile(r'<title\b[^>]*\bcanonical="true"[^>]*>(.*?)</title>', re.S)
_NOTE = re.compile(r"<note\b[^>]*?(?:/>|>.*?</note>)", re.S)
_LABEL = re.compile(r"<(speaker|title)\b[^>]*>.*?</\1>", re.S)  # speakers in the Song, section headings
_JOINED = re.compile(r"</(?:w|transChange)>(?=<(?:w|transChange)\b)")  # two words with no space between
_BREAK = re.compile(r"</?(?:l|lg|lb|p|div|milestone|chapter|list|item)\b[^>]*>")
_TAG = re.compile(r"<[^>]*>")


def clean_osis(text: str) -> str:
    """The plain text of a verse in OSIS markup, as SWORD stores it.

    Footnotes (``<note>…</note>``), speaker labels and section headings are dropped with their
    text; everything after ``<chapter eID=…/>`` (the WEB appends its glossary to Revelation
    22:21) is dropped; every other tag is removed and its text kept (``<w>``,
    ``<transChange>``, ``<q>``); line and paragraph marks become spaces; entities are decoded and
    white space is collapsed. Markup sometimes stands for the space between two words: the WEB
    writes some footnotes without one (``God<note …/>created``), so a footnote followed by a
    word becomes a space; the Reina-Valera writes ``</w><transChange>`` (a word the translators
    added) and ``</transChange><w>`` without one, so those become spaces too (a ``<transChange>``
    right after a letter is an enclitic pronoun, ``preguntándo<transChange>le``, and stays joined).
    """
    end = text.find("<chapter eID")
    if end >= 0:
        text = text[:end]
    text = _NOTE.sub("\0", text)
    text = _JOINED.sub(" ", text)
    text = _LABEL.sub(" ", text)
    text = _BREAK.sub(" ", text)
    text = _TAG.sub("", text)
    text = re.sub(r"\0(?=[\w“‘(\[¡¿])", " ", text).replace("\0", "")
    return " ".join(html.unescape(text).split())


def parse_diatheke(output: str) -> dict[str, str]:
    """``{reference: text}`` of a module dumped by ``diatheke -f internal -o f -l en``.

    Each verse is one line, ``[preverse]BOOK C:V: TEXT`` in OSIS markup, e.g.
    ``Genesis 1:1: <w savlm="strong:H0430">In</w> …``; the last line names the module,
    ``(engWEB2015eb)``. References are as diatheke writes them in English (``Genesis 1:1``,
    ``I Samuel 3:4``, ``Revelation of John 22:21``), in the module's order. Texts go through
    ``clean_osis`` and may be empty (a verse the translation leaves out).

    The preverse holds a psalm's title (the WEB keeps titles apart from verse 1, as a
    ``<title canonical="true">``). diatheke repeats the last preverse on every verse until
    the next one, so a title is the one of a verse only where the preverse changes (each
    carries fresh ``sID`` ids, so even two equal titles differ); it is put before verse 1's
    text, where the Reina-Valera has it. A non-empty line without a reference is a DataError.
    """
    verses = {}
    preverse = ""
    for lineno, line in enumerate(output.split("\n"), 1):
        if not line.strip() or _MODULE_LINE.fullmatch(line.strip()):
            continue
        m = _VERSE.search(line)
        if m is None:
            raise DataError(f"diatheke output, line {lineno}: no verse reference in {line[:60]!r}; "
                            "expected 'BOOK CHAPTER:VERSE: text' (has diatheke's output format changed?)")
        before = line[:m.start("book")]
        title = " ".join(_PSALM_TITLE.findall(before)) if before != preverse else ""
        preverse = before
        verses[f"{m['book']} {m['chapter']}:{m['verse']}"] = clean_osis(f"{title} {line[m.end():]}")
    return verses


def align_verses(english: dict[str, str], spanish: dict[str, str]) -> list[tuple[str, str, str]]:
    """``[(reference, english, spanish), …]`` for the references with text in both, in
    ``english``'s order (verses only one module has, such as the WEB's deuterocanon, are left out)."""
    return [(ref, text, spanish[ref]) for ref, text in english.items() if text and spanish.get(ref)]


def _dump_modules(modules) -> list[str]:
    """The output of ``diatheke`` for each module over ``BIBLE_RANGE``, run side by side."""
    exe = shutil.which("diatheke")
    if exe is None:
        raise DataError("diatheke is not installed (it reads the Bible modules): run `rnnkit data install bible`")
    procs = [subprocess.Popen([exe, "-b", module, "-f", "internal", "-o", "f", "-l", "en", "-k", BIBLE_RANGE],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for module in modules]
    outputs = []
    for module, proc in zip(modules, procs):
        out, err = proc.communicate()
        if proc.returncode != 0 or not out.strip():
            why = (err.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
            raise DataError(f"`diatheke -b {module}` failed ({why}); reinstall the data: "
                            "`rnnkit data install --force bible`")
        outputs.append(out.decode("utf-8", "replace"))
    return outputs


def _build_bible(path: Path) -> None:
    catalog.locate("bible")  # a DataError naming the install command when the modules are missing
    english, spanish = (parse_diatheke(out) for out in _dump_modules(BIBLE_MODULES))
    rows = align_verses(english, spanish)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written to a temporary file beside the cache and renamed, so an interrupted build leaves
    # no half-written cache behind.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.writelines(f"{ref}\t{en}\t{es}\n" for ref, en, es in rows)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def bible_pairs(max_words: int | None = None) -> tuple[list[str], list[str], list[str]]:
    """(english, spanish, references): the verses of the World English Bible (2020 edition)
    paired with those of the Reina-Valera 1909, in canonical order from Genesis 1:1 to
    Revelation 22:21. ``references[i]`` is diatheke's name of pair i (``"Genesis 1:1"``,
    ``"I Samuel 3:4"``, ``"Revelation of John 22:21"``): split by book with
    ``ref.rsplit(" ", 1)[0]``, or contiguously.

    31,086 pairs (the 66 books of the Protestant canon; the WEB's deuterocanon has no Spanish
    counterpart, and verses one translation leaves empty are dropped); median 26 English and
    24 Spanish words a verse, up to 90. ``max_words`` keeps the pairs whose sides both have at
    most that many words (split on white space; 30 keeps about 19,800).

    Text is as in the modules with markup and footnotes stripped and white space collapsed.
    The psalm titles, separate in the WEB, start verse 1 as in the Reina-Valera. The Spanish
    keeps its 1909 spelling (``á``, ``fué``, ``crió``), the WEB says "Yahweh" where the
    Reina-Valera says "Jehová". Both follow KJV verse numbering, so pairs are translations of the
    same verse, though a verse's words may be spread differently across neighbouring verses.

    Built on the first call (about 15 s with diatheke) into ``data_dir()/bible/pairs.tsv``
    (``reference<TAB>english<TAB>spanish``), which later calls read; delete it to rebuild (after
    upgrading the packages, say).
    """
    if max_words is not None and (isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 1):
        raise DataError(f"max_words: expected a positive integer or None, got {max_words!r}")
    path = catalog.data_dir() / "bible" / BIBLE_CACHE
    if not path.is_file():
        _build_bible(path)
    english, spanish, references = [], [], []
    for lineno, line in enumerate(read_text_file(path).split("\n"), 1):
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != 3 or not all(fields):
            raise DataError(f"{path}:{lineno}: expected reference<TAB>english<TAB>spanish; the cache is damaged: "
                            "delete it and it is rebuilt at the next call")
        if max_words is None or max(len(fields[1].split()), len(fields[2].split())) <= max_words:
            references.append(fields[0])
            english.append(fields[1])
            spanish.append(fields[2])
    return english, spanish, references


__all__ = ["BIBLE_MODULES", "align_verses", "bible_pairs", "clean_osis", "parse_diatheke", "read_pairs"]
