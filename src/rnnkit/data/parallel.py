"""Parallel texts for translation: users' TSV files and the English–Spanish Bible.

    sources, targets = read_pairs("train.tsv")            # source<TAB>target per line
    english, spanish, refs = bible_pairs(max_words=30)   # `rnnkit data install bible`

``bible_pairs`` aligns two SWORD modules verse by verse: the World English Bible
(``engWEB2015eb``, package ``sword-text-web``) and the Reina-Valera 1909 (``spaRV1909eb``,
``sword-text-sparv``), dumped with ``diatheke``. The first call builds the pairs (about 16 s)
and caches them in ``data_dir()/bible/pairs.tsv``; later calls read that file (0.3 s).
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
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
            raise DataError(f"{path}:{lineno}: empty target for source {source[:40]!r}; "
                            "give the translation or remove the line")
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
_JOINED = re.compile(r"</(?:w|transChange|q)>(?=<(?:w|transChange|q)\b)")  # two elements, nothing between
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
    word becomes a space, and so does the boundary between two of ``<w>``, ``<q>`` and
    ``<transChange>`` (a word the translators added) with nothing between them when a word
    follows (``entrado</w><transChange>Jesús``, ``.”</q><w>Now``, but ``AM.</q><q>”`` stays
    ``AM.”``). A ``<transChange>`` right after a letter is an enclitic pronoun
    (``házme<transChange>lo``) and stays joined.
    """
    end = text.find("<chapter eID")
    if end >= 0:
        text = text[:end]
    text = _NOTE.sub("\0", text)  # \0: a space if a word follows (see above)
    text = _JOINED.sub("\0", text)
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


# Verses left out of the pairs as (book, chapter, first verse, last verse). In these passages the
# Reina-Valera module keeps the Spanish verse divisions under KJV numbers, so its verses are off
# by one from the WEB's or hold two of them (Numbers 12:16 is its 13:1, Job 40:1-5 is inside its
# 39:30, …); the WEB moves Romans 16:25-27 to the end of 14:23; and the Reina-Valera ends the
# epistles of Paul and Hebrews with a subscription ("Escrita de Roma á los Efesios por Tichîco.").
BIBLE_MISALIGNED = (
    ("Numbers", 13, 1, 33), ("Numbers", 30, 1, 16), ("Judges", 14, 18, 20), ("I Samuel", 24, 1, 22),
    ("II Samuel", 2, 31, 32), ("II Samuel", 20, 25, 25), ("I Kings", 16, 29, 30), ("I Kings", 22, 43, 53),
    ("I Chronicles", 1, 30, 32), ("I Chronicles", 21, 15, 30), ("II Chronicles", 33, 10, 24), ("Job", 35, 15, 15),
    ("Job", 39, 1, 30), ("Job", 40, 1, 19), ("Hosea", 12, 1, 14), ("Jonah", 2, 1, 10), ("Acts", 19, 40, 40),
    ("Romans", 14, 23, 23), ("II Corinthians", 13, 12, 13),
    # the subscriptions
    ("I Corinthians", 16, 24, 24), ("Galatians", 6, 18, 18), ("Ephesians", 6, 24, 24), ("Philippians", 4, 23, 23),
    ("Colossians", 4, 18, 18), ("I Thessalonians", 5, 28, 28), ("II Thessalonians", 3, 18, 18),
    ("I Timothy", 6, 21, 21), ("II Timothy", 4, 22, 22), ("Titus", 3, 15, 15), ("Philemon", 1, 25, 25),
    ("Hebrews", 13, 25, 25),
)
_SKIPPED = frozenset(f"{book} {c}:{v}" for book, c, first, last in BIBLE_MISALIGNED for v in range(first, last + 1))


def align_verses(english: dict[str, str], spanish: dict[str, str], skip=_SKIPPED) -> list[tuple[str, str, str]]:
    """``[(reference, english, spanish), …]`` for the references with text in both, in
    ``english``'s order. Verses only one module has (the WEB's deuterocanon), verses one leaves
    empty, and the references in ``skip`` (by default ``BIBLE_MISALIGNED``'s) are left out."""
    return [(ref, text, spanish[ref]) for ref, text in english.items()
            if text and spanish.get(ref) and ref not in skip]


def _dump_modules(modules, key: str = BIBLE_RANGE) -> list[str]:
    """The output of ``diatheke`` for each module over ``key``, run side by side."""
    exe = shutil.which("diatheke")
    if exe is None:
        raise DataError("diatheke is not installed (it reads the Bible modules): run `rnnkit data install bible`")
    procs = [subprocess.Popen([exe, "-b", module, "-f", "internal", "-o", "f", "-l", "en", "-k", key],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for module in modules]
    outputs = []
    for module, proc in zip(modules, procs):
        out, err = proc.communicate()
        if proc.returncode != 0 or not out.strip():
            why = (err.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
            hint = catalog._repair_hint(catalog.get("bible"), Path(catalog.get("bible").root))
            raise DataError(f"`diatheke -b {module}` failed ({why}); {hint}")
        outputs.append(out.decode("utf-8", "replace"))
    return outputs


def _build_bible(path: Path) -> None:
    catalog.locate("bible")  # a DataError naming the install command when the modules are missing
    english, spanish = (parse_diatheke(out) for out in _dump_modules(BIBLE_MODULES))
    rows = align_verses(english, spanish)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written to a temporary file beside the cache and renamed, so an interrupted build leaves no
    # half-written cache behind (and two processes building at once each rename a whole file).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text("".join(f"{ref}\t{en}\t{es}\n" for ref, en, es in rows), encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def bible_pairs(max_words: int | None = None) -> tuple[list[str], list[str], list[str]]:
    """(english, spanish, references): the verses of the World English Bible (2020 edition)
    paired with those of the Reina-Valera 1909, in canonical order from Genesis 1:1 to
    Revelation 22:21. ``references[i]`` is diatheke's name of pair i (``"Genesis 1:1"``,
    ``"I Samuel 3:4"``, ``"Revelation of John 22:21"``): split by book with
    ``ref.rsplit(" ", 1)[0]``, or contiguously.

    30,863 pairs from the 66 books of the Protestant canon (the WEB's deuterocanon has no
    Spanish counterpart); left out are verses one translation leaves empty (Acts 8:37 in the
    WEB, …) and the 214 verses of ``BIBLE_MISALIGNED``, where the two modules number verses
    differently. Median 22 English and 21 Spanish words a verse, at most 86 and 80 (745,000 and
    699,000 words in all). ``max_words`` keeps the pairs whose sides both have at most that many
    words (split on white space): 30 keeps 22,582, 20 keeps 12,437, 50 keeps 30,204.

    Text is as in the modules with markup and footnotes stripped and white space collapsed (see
    ``clean_osis``). The psalm titles, apart in the WEB, start verse 1 as in the Reina-Valera.
    The Spanish keeps its 1909 spelling (``á``, ``fué``, ``crió``) and the capitals that open a
    chapter (``EN el principio``, ``Y HABIENDO entrado``); the WEB says "Yahweh" where it says
    "Jehová". Verse boundaries do not always fall at the same words (a clause may sit in the
    neighbouring verse), and a few verses differ by text tradition (1 John 5:7).

    Built on the first call (about 16 s with diatheke) into ``data_dir()/bible/pairs.tsv``
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


__all__ = ["BIBLE_MISALIGNED", "BIBLE_MODULES", "align_verses", "bible_pairs", "clean_osis", "parse_diatheke",
           "read_pairs"]
