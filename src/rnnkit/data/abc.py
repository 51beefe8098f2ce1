"""Tunes in ABC notation: reading them as text, the folk-tune corpus, tune-level splits, header primes.

An ABC file holds tunes, each starting at an ``X:`` line: a header of ``F:value`` fields up to
the key (``K:``), then the body (notes, bars) up to a blank line. A tune here is kept as the
melody language model needs it, as folk-rnn (Sturm et al. 2016) kept it: the three fields that
say how to read the notes, in one order, then the body::

    M:6/8          meter (``none`` when the tune has none)
    L:1/8          unit note length (when missing, the ABC standard's default for the meter)
    K:D            key
    |:A|d2e fed|…

Titles, sources, notes, lyrics, comments and the quoted chord symbols and fingerings are
dropped, runs of blanks become one space; a tune with several voices (``V:``) is not a melody and is left out.

    tunes, report = read_abc_files(paths)       # malformed files and tunes skipped, counted
    tunes, report = folk_tunes()                # music21's corpus: `rnnkit data install folk-tunes`
    train, valid = split_tunes(tunes, 0.05, seed=0)
    prime = header_prime("M:6/8\\nK:D\\n")        # "M:6/8\\nL:1/8\\nK:D\\n"; unknown fields: DataError

Reading never imports music21: its corpus files are read as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from . import catalog
from .corpora import read_text_file
from .errors import DataError

#: the header fields a tune keeps, in the order it keeps them; what a prime may give
HEADER_FIELDS = {"M": "meter", "L": "unit note length", "K": "key"}

_TUNE_START = re.compile(r"^X:", re.M)
_FIELD = re.compile(r"^([A-Za-z]):(.*)$")
# Quoted chord symbols and annotations ("Am", "4" fingerings): not melody
_QUOTED = re.compile(r'"[^"\n]*"')
# A % comment, but not an escaped \%
_COMMENT = re.compile(r"(?<!\\)%.*$")
#: fields that may stand between the lines of a body and change how it reads
_BODY_FIELDS = set(HEADER_FIELDS)


@dataclass
class AbcReport:
    """What reading ABC files found: counts of files and tunes read and skipped, and the first
    reason of each kind of skip (``None`` when nothing was skipped)."""

    files: int = 0
    tunes: int = 0
    skipped_files: int = 0
    first_file_error: str | None = None
    skipped_tunes: int = 0
    first_tune_error: str | None = None
    duplicates: int = 0
    multi_voice: int = 0

    def skip_file(self, why: str) -> None:
        self.skipped_files += 1
        self.first_file_error = self.first_file_error or why

    def skip_tune(self, why: str) -> None:
        self.skipped_tunes += 1
        self.first_tune_error = self.first_tune_error or why

    def describe(self) -> str:
        """One line: "12,345 tunes from 1,138 files; 2 files skipped (first: …); …"."""
        parts = [f"{self.tunes:,} tunes from {self.files:,} files"]
        if self.skipped_files:
            parts.append(f"{self.skipped_files} file(s) skipped (first: {self.first_file_error})")
        if self.skipped_tunes:
            parts.append(f"{self.skipped_tunes} malformed tune(s) skipped (first: {self.first_tune_error})")
        if self.multi_voice:
            parts.append(f"{self.multi_voice} tune(s) with several voices left out")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate tune(s) dropped")
        return "; ".join(parts)


def default_unit(meter: str) -> str:
    """The ABC standard's unit note length when a tune gives none: 1/16 below a meter of 3/4
    (2/4, 3/8), else 1/8 (also for ``none``, ``C``, ``C|``)."""
    value = meter_fraction(meter)
    return "1/16" if value is not None and value < Fraction(3, 4) else "1/8"


def meter_fraction(meter: str) -> Fraction | None:
    """The length of a bar in whole notes (``6/8`` → 3/4, ``C`` → 1, ``C|`` → 1), or None for a
    free meter (``none``) or one that is not a fraction (``2+3/8`` included)."""
    meter = meter.strip()
    if meter in ("C", "C|"):  # common time 4/4, cut time 2/2
        return Fraction(1)
    m = re.fullmatch(r"(\d+)/(\d+)", meter)
    if not m or int(m.group(2)) == 0:
        return None
    return Fraction(int(m.group(1)), int(m.group(2)))


def split_abc(text: str) -> list[str]:
    """The tunes of an ABC file's text, each from its ``X:`` line up to the next (or the end);
    what comes before the first ``X:`` (the file's own header and comments) is not a tune."""
    starts = [m.start() for m in _TUNE_START.finditer(text)]
    return [text[a:b].strip("\n") for a, b in zip(starts, starts[1:] + [len(text)])]


def normalise_tune(raw: str) -> str:
    """One tune as the corpus keeps it (see the module docstring): ``M:``, ``L:``, ``K:``, then
    the body. A tune without ``K:`` or without notes after it is a DataError saying so; a tune
    with several voices a DataError starting "several voices"."""
    fields: dict[str, str] = {}
    lines = raw.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    body_at = None
    for i, line in enumerate(lines):
        line = _COMMENT.sub("", line).strip()
        m = _FIELD.match(line)
        if not m:
            continue
        name, value = m.group(1), m.group(2).strip()
        if name == "V":
            raise DataError("several voices (V:); a melody has one")
        if name in HEADER_FIELDS and name not in fields:
            fields[name] = value.replace(" ", "") if name != "K" else " ".join(value.split())
        if name == "K":
            body_at = i + 1
            break
    if body_at is None:
        raise DataError(f"tune {_title(lines)}: no key (K:) line ends its header")
    body = []
    for line in lines[body_at:]:
        if not line.strip():
            break  # a blank line ends a tune
        # Runs of blanks only separate beams: one space keeps that and the vocabulary small
        line = re.sub(r"[ \t]+", " ", _QUOTED.sub("", _COMMENT.sub("", line))).rstrip()
        m = _FIELD.match(line)
        if m and m.group(1) == "V":
            raise DataError("several voices (V:); a melody has one")
        if not line.strip() or (m and m.group(1) not in _BODY_FIELDS):
            continue  # comments, lyrics (w:), parts (P:), notes (N:): not melody
        if m:
            line = f"{m.group(1)}:{m.group(2).strip()}"
        body.append(line)
    if not any(re.search(r"[A-Ga-g]", line) for line in body if not _FIELD.match(line)):
        raise DataError(f"tune {_title(lines)}: no notes after its key (K:) line")
    meter = fields.get("M") or "none"
    unit = fields.get("L") or default_unit(meter)
    return "\n".join([f"M:{meter}", f"L:{unit}", f"K:{fields['K'] or 'C'}", *body])


def _title(lines: list[str]) -> str:
    return repr(lines[0].strip()[:40]) if lines else "''"


def read_abc_files(paths, report: AbcReport | None = None) -> tuple[list[str], AbcReport]:
    """(tunes, report): the normalised tunes of ABC files, in file order, duplicates dropped.

    A file that cannot be read as text (missing, binary, not UTF-8, empty) or holds no tune is
    skipped and counted, and so is a malformed tune (no ``K:``, no notes); the report keeps the
    first reason of each. Reading goes on past them: one bad file never stops a corpus."""
    report = report or AbcReport()
    tunes: list[str] = []
    seen: set[str] = set()
    for path in paths:
        try:
            raw_tunes = split_abc(read_text_file(path, corpus=True))
            if not raw_tunes:
                raise DataError(f"{path}: holds no tune (no line starts with X:)")
        except DataError as exc:
            report.skip_file(str(exc))
            continue
        report.files += 1
        for raw in raw_tunes:
            try:
                tune = normalise_tune(raw)
            except DataError as exc:
                if str(exc).startswith("several voices"):
                    report.multi_voice += 1
                else:
                    report.skip_tune(f"{path}: {exc}")
                continue
            if tune in seen:
                report.duplicates += 1
                continue
            seen.add(tune)
            tunes.append(tune)
    report.tunes = len(tunes)
    if not tunes:
        first = report.first_file_error or report.first_tune_error or "no files"
        raise DataError(f"no ABC tunes could be read ({report.describe()}; first problem: {first})")
    return tunes, report


def folk_tunes() -> tuple[list[str], AbcReport]:
    """The folk tunes of music21's corpus (the collections folk-tunes' catalog entry names), read as ABC text; a DataError
    naming `rnnkit data install folk-tunes` when music21 is missing."""
    return read_abc_files(catalog.data_files("folk-tunes"))


def split_tunes(tunes: list[str], valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, valid): whole tunes, shuffled by ``seed``, the last ``valid_fraction`` of them
    held out. No tune is in both (``read_abc_files`` has dropped duplicates); each part has at
    least one tune."""
    if not 0 < valid_fraction < 1:
        raise DataError(f"valid_fraction: expected a number between 0 and 1 (exclusive), got {valid_fraction!r}")
    n_valid = int(round(len(tunes) * valid_fraction))
    if n_valid < 1 or n_valid >= len(tunes):
        raise DataError(f"split: {len(tunes)} tune(s) with valid_fraction {valid_fraction} leave {len(tunes) - n_valid} "
                        f"for training and {n_valid} for validation; each part needs a tune: give more tunes")
    order = np.random.default_rng(seed).permutation(len(tunes))
    return [tunes[i] for i in order[:-n_valid]], [tunes[i] for i in order[-n_valid:]]


def is_abc_data(spec: str) -> bool:
    """Whether ``--data`` names tunes: the folk-tunes set, or a ``.abc`` file."""
    return spec == "folk-tunes" or spec.lower().endswith(".abc")


def read_tunes(spec: str) -> tuple[list[str], str]:
    """(tunes, description) of ``--data`` folk-tunes or an ABC file."""
    if spec == "folk-tunes":
        tunes, report = folk_tunes()
        return tunes, f"folk tunes in ABC, music21 {catalog.get('folk-tunes').version}'s corpus: {report.describe()}"
    path = Path(spec)
    if not path.is_file():
        raise DataError(f"--data: {spec} is not an ABC file")
    tunes, report = read_abc_files([path])
    if report.skipped_files:
        raise DataError(report.first_file_error)
    return tunes, f"{path}: {report.describe()}"


def header_prime(prime: str) -> str:
    """A prime that is a tune's header (``"M:6/8\\nK:D\\n"``; a typed ``\\n`` counts as a line
    end) in the corpus's order ``M:``, ``L:``, ``K:``, the missing ``L:`` filled in as the ABC
    standard does; notes after ``K:`` follow that header as they are. A field other than those
    three (e.g. ``T:``, ``Q:``) or a repeated one is a DataError naming it."""
    text = prime.replace("\\n", "\n")
    lines = text.split("\n")
    fields: dict[str, str] = {}
    for k, line in enumerate(lines):
        m = _FIELD.match(line.strip())
        if not m:
            if not line.strip():
                continue
            raise DataError(f"--prime: line {line!r} is not a header field; start with fields such as "
                            f"M:6/8 and K:D, each on its own line")
        name, value = m.group(1), m.group(2).strip()
        if name not in HEADER_FIELDS:
            known = ", ".join(f"{f}: ({what})" for f, what in HEADER_FIELDS.items())
            raise DataError(f"--prime: unknown header field {name}: in {line.strip()!r}; this model's tunes have {known}")
        if name in fields:
            raise DataError(f"--prime: header field {name}: given twice")
        if not value:
            raise DataError(f"--prime: header field {name}: has no value")
        fields[name] = value
        rest = lines[k + 1 :]
        if name == "K" and any(line.strip() and not _FIELD.match(line.strip()) for line in rest):
            return _ordered_header(fields) + "\n".join(rest)  # notes follow the key: the user's own start
    return _ordered_header(fields)


def _ordered_header(fields: dict[str, str]) -> str:
    if not fields:
        raise DataError("--prime: expected header fields such as M:6/8 and K:D, got none")
    meter = fields.get("M", "none")
    lines = [f"M:{meter}", f"L:{fields.get('L') or default_unit(meter)}"] + ([f"K:{fields['K']}"] if "K" in fields else [])
    return "".join(line + "\n" for line in lines)


def tune_texts(text: str) -> list[str]:
    """The tunes of generated text: the blocks between blank lines that begin with a header
    field, each stripped; what is not a tune (a fragment without a header) is left out."""
    blocks = [b.strip("\n") for b in re.split(r"\n\s*\n", text)]
    return [b for b in blocks if b.strip() and _FIELD.match(b.split("\n", 1)[0].strip())]


__all__ = ["AbcReport", "HEADER_FIELDS", "default_unit", "folk_tunes", "header_prime",
           "is_abc_data", "meter_fraction", "normalise_tune", "read_abc_files", "read_tunes", "split_abc",
           "split_tunes", "tune_texts"]
