"""Recorded speech with transcripts: Fish Fillets' dialogue (Debian's fillets-ng-data packages).

The game stores each spoken line as ``sound/<level>/<lang>/<ID>.ogg`` and its text in
``script/<level>/dialogs_<lang>.lua`` as

    dialogId("<ID>", "<font>", "<the English line>")
    dialogStr("<the line in <lang>>")

Lines shared between levels sit in ``script/share/<name>_dialogs_<lang>.lua`` with their audio
under ``sound/share/<group>/<lang>/``. An ID's middle part names the speaker (``bar-m-…``: the
small fish, ``-v-`` the big one, others the characters of a level).

    manifest, report = fillets_manifest("cs")   # [Utterance], what was left out and why
    train, test = split_by_level(manifest)      # whole levels held out: md5(level) % 5 == 0
    (X, y), (X_test, y_test) = speaker_dataset("cs")   # which fish speaks: log-mel series, labels

Left out, and counted: lines with a ``%1``-style placeholder (filled in by the game at run
time, so the recording says something else), lines with no text, and audio files with no line.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import catalog
from .audio import log_mel, read_audio
from .errors import DataError

LANGUAGES = ("cs", "nl")
_STRING = r'"((?:[^"\\]|\\.)*)"'
_LINE = re.compile(rf"dialogId\(\s*{_STRING}\s*,\s*{_STRING}\s*,\s*{_STRING}\s*\)\s*dialogStr\(\s*{_STRING}\s*\)")
_PLACEHOLDER = re.compile(r"%\d")


@dataclass(frozen=True)
class Utterance:
    id: str
    level: str  # the level's directory, or "share/<group>"
    speaker: str  # the ID's middle part: "m", "v", …
    audio: Path
    text: str  # in the recording's language
    english: str


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


def read_dialogs(text: str) -> list[tuple[str, str, str]]:
    """(ID, English, translation) for each dialogId/dialogStr pair of a dialogue script."""
    return [(_unescape(i), _unescape(english), _unescape(line)) for i, _font, english, line in _LINE.findall(text)]


def speaker_of(utterance_id: str) -> str:
    parts = utterance_id.split("-")
    return parts[1] if len(parts) >= 3 else "?"


def read_manifest(root, lang: str) -> tuple[list[Utterance], Counter]:
    """Every utterance of ``lang`` under the game's data directory ``root``, sorted by audio path,
    and a Counter of what was left out: "placeholder", "no text", "no line" (audio without one)."""
    if lang not in LANGUAGES:
        raise DataError(f"language: expected one of {', '.join(LANGUAGES)}, got {lang!r}")
    root = Path(root)
    found: dict[Path, Utterance] = {}
    reasons: dict[Path, str] = {}  # audio left out → why

    def add(level: str, audio: Path, line) -> None:
        utterance_id, english, text = line
        text = text.strip()
        if not text:
            reasons[audio] = "no text"
        elif _PLACEHOLDER.search(text):
            reasons[audio] = "placeholder"
        else:
            found[audio] = Utterance(utterance_id, level, speaker_of(utterance_id), audio, text, english)

    for script in sorted((root / "script").glob(f"*/dialogs_{lang}.lua")):
        level = script.parent.name
        for line in read_dialogs(script.read_text(encoding="utf-8")):
            audio = root / "sound" / level / lang / f"{line[0]}.ogg"
            if audio.is_file():
                add(level, audio, line)
    shared: dict[str, list[Path]] = {}
    for audio in sorted((root / "sound" / "share").glob(f"*/{lang}/*.ogg")):
        shared.setdefault(audio.stem, []).append(audio)
    for script in sorted((root / "script" / "share").glob(f"*_dialogs_{lang}.lua")):
        for line in read_dialogs(script.read_text(encoding="utf-8")):
            for audio in shared.get(line[0], []):
                add(f"share/{audio.parent.parent.name}", audio, line)
    for audio in (root / "sound").glob(f"**/{lang}/*.ogg"):
        if audio not in found:
            reasons.setdefault(audio, "no line")
    return sorted(found.values(), key=lambda u: str(u.audio)), Counter(reasons[a] for a in reasons if a not in found)


def fillets_manifest(lang: str) -> tuple[list[Utterance], Counter]:
    """``read_manifest`` of the installed game data (``rnnkit data install fillets-speech``)."""
    return read_manifest(catalog.locate("fillets-speech"), lang)


def held_out(level: str) -> bool:
    """Whether a level is in the test split: md5 of its name mod 5 == 0 (about a fifth of them)."""
    return int(hashlib.md5(level.encode()).hexdigest(), 16) % 5 == 0


def split_by_level(utterances: list[Utterance]) -> tuple[list[Utterance], list[Utterance]]:
    """(train, test): whole levels, so that no scene's lines are in both."""
    return [u for u in utterances if not held_out(u.level)], [u for u in utterances if held_out(u.level)]


SPEAKERS = {"m": "small fish", "v": "big fish"}  # the two heroes: 83% of the Czech lines
SPEAKER_POOL = 3  # log-mel frames averaged into one step: 30 ms steps, enough to tell voices apart


def speaker_dataset(lang: str, root=None) -> tuple[tuple[list, list], tuple[list, list]]:
    """Which fish is speaking, as series classification: ((series, labels), (test series, labels)),
    each series (T, 40) log-mel features averaged over SPEAKER_POOL frames, the test part the
    held-out levels. Clips that cannot be read or are shorter than a step are left out.
    root: the game's data directory (default: the installed data set)."""
    utterances, _ = read_manifest(root, lang) if root is not None else fillets_manifest(lang)
    parts: dict[bool, tuple[list, list]] = {False: ([], []), True: ([], [])}
    for u in utterances:
        if u.speaker not in SPEAKERS:
            continue
        try:
            features = log_mel(*read_audio(u.audio))
        except DataError:
            continue
        steps = len(features) // SPEAKER_POOL
        if steps:
            pooled = features[: steps * SPEAKER_POOL].reshape(steps, SPEAKER_POOL, -1).mean(axis=1)
            items, labels = parts[held_out(u.level)]
            items.append(pooled.astype(np.float64))
            labels.append(SPEAKERS[u.speaker])
    return parts[False], parts[True]
