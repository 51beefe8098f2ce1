"""Chorales as piano rolls: MusicXML read by music21, each voice's notes on a grid of eighth notes,
the rolls cached; and rolls written back as MIDI, audio and pictures.

A roll is (T, 128) bool: frame t is the eighth note [t/2, (t+1)/2) quarter notes from the start,
``roll[t, p]`` whether MIDI pitch p sounds in it. A note starts on the frame its onset rounds to
and lasts to the frame its end rounds to (at least one frame); a tie is one note. A roll does not
tell a held note from a repeated one (as Boulanger-Lewandowski et al. 2012's rolls do not), so a
roll → MIDI → roll round trip is exact, while MIDI → roll → MIDI joins repeated notes.

    corpus = read_corpus("bach-chorales")     # cached: parsed once, then read from the .npz
    corpus.rolls[0], corpus.sharps[0], corpus.soprano[0], corpus.report.describe()
    report = write_roll(roll, {"midi": "c.mid", "wav": "c.wav", "png": "c.png"}, tempo=80)

Four voices are read: the parts named Soprano, Alto, Tenor and Bass (a doubling horn or an
obbligato violin is left out), or a piece's parts when it has exactly four. A file music21 cannot
read, or without four voices, is skipped and counted with the first reason; never a crash
mid-corpus.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import catalog
from ..data.errors import DataError
from ..progress import Progress
from ..training import model_dir as md
from .audio import render_wav
from .notation import music21, read_midi_notes, write_midi
from .roll import plot_piano_roll

GRID = 0.5  # quarter notes a frame: eighths, the chorales' passing notes (sixteenths are rare: benchmarks/README)
FRAMES_PER_BAR = 8  # a 4/4 bar of eighths: the chorales' meter nearly always
PITCHES = 128  # MIDI pitches
VOICES = ("soprano", "alto", "tenor", "bass")
MUSICXML = (".mxl", ".musicxml", ".xml")
CACHE_VERSION = 1  # raised whenever what a cached roll holds changes: older caches are then parsed again
BUILT_IN = "bach-chorales"


@dataclass
class ChoraleReport:
    """What reading MusicXML files found: files read, chorales kept, and the files skipped with
    the first reason."""

    files: int = 0
    chorales: int = 0
    skipped: int = 0
    first_error: str | None = None

    def skip(self, why: str) -> None:
        self.skipped += 1
        self.first_error = self.first_error or why

    def describe(self) -> str:
        line = f"{self.chorales:,} chorales from {self.files:,} files"
        if self.skipped:
            line += f"; {self.skipped} file(s) skipped (first: {self.first_error})"
        return line


@dataclass
class ChoraleCorpus:
    """The chorales of a source, untransposed: ``rolls`` [(T_i, 128) bool], ``names`` (file names),
    ``sharps`` (each one's first key signature: sharps > 0, flats < 0), ``soprano`` [(T_i,) int16,
    the top voice's pitch in each frame, −1 where it rests], and the reading report."""

    rolls: list = field(default_factory=list)
    names: list = field(default_factory=list)
    sharps: list = field(default_factory=list)
    soprano: list = field(default_factory=list)
    report: ChoraleReport = field(default_factory=ChoraleReport)


# ---- reading MusicXML ------------------------------------------------------------------------------


def _voices(score) -> list:
    """The four voices of a score, top first; a DataError when it has not four."""
    parts = list(score.parts)
    named = {}
    for part in parts:
        name = (part.partName or "").strip().lower()
        for voice in VOICES:
            if name.startswith(voice[:3]) and voice not in named:  # "Sopran", "Soprano", "Soprano 1"
                named[voice] = part
    if len(named) == 4:
        return [named[v] for v in VOICES]
    if len(parts) == 4:
        return parts
    names = ", ".join(repr(p.partName) for p in parts)
    raise DataError(f"not four voices (parts {names})")


def read_chorale(path) -> tuple[np.ndarray, int, np.ndarray]:
    """(roll (T, 128) bool, sharps of the first key signature, soprano (T,) int16) of one MusicXML
    file; a DataError with music21's reason when it cannot be read as four voices with notes."""
    m21 = music21()
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            score = m21.converter.parse(str(path))
        except Exception as exc:  # music21's readers raise many kinds; each means "not readable MusicXML"
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise DataError(f"{Path(path).name}: music21 cannot read it ({type(exc).__name__}: {reason})") from None
    if not hasattr(score, "parts"):
        raise DataError(f"{Path(path).name}: not a score of parts")
    try:
        voices = _voices(score)
    except DataError as exc:
        raise DataError(f"{Path(path).name}: {exc}") from None
    notes = []  # (voice, pitch, start frame, end frame)
    for v, part in enumerate(voices):
        for n in part.stripTies().flatten().notes:
            if n.duration.isGrace or n.quarterLength <= 0:
                continue
            start = int(np.floor(float(n.offset) / GRID + 0.5))  # rounded half up
            end = max(start + 1, int(np.floor(float(n.offset + n.quarterLength) / GRID + 0.5)))
            notes += [(v, p.midi, start, end) for p in n.pitches]
    if not notes:
        raise DataError(f"{Path(path).name}: no notes")
    first = min(n[2] for n in notes)  # leading rests dropped
    length = max(n[3] for n in notes) - first
    roll = np.zeros((length, PITCHES), dtype=bool)
    soprano = np.full(length, -1, dtype=np.int16)
    for v, pitch, start, end in notes:
        roll[start - first : end - first, pitch] = True
        if v == 0:
            soprano[start - first : end - first] = np.maximum(soprano[start - first : end - first], pitch)
    keys = list(score.recurse().getElementsByClass(m21.key.KeySignature))
    return roll, int(keys[0].sharps) if keys else 0, soprano


def chorale_files(spec: str) -> tuple[list[Path], str]:
    """(files, description) of ``--data``: ``bach-chorales`` (music21's corpus, bwv*.mxl) or a
    directory of MusicXML files (.mxl, .musicxml, .xml)."""
    if spec == BUILT_IN:
        entry = catalog.get(BUILT_IN)
        return catalog.data_files(BUILT_IN), f"Bach chorales, music21 {entry.version}'s corpus (bach/bwv*.mxl)"
    path = Path(spec)
    if not path.is_dir():
        raise DataError(f"--data: {spec} is neither {BUILT_IN} nor a directory of MusicXML files ({', '.join(MUSICXML)})")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in MUSICXML and not p.name.startswith("."))
    if not files:
        raise DataError(f"--data: {spec} holds no MusicXML files ({', '.join(MUSICXML)})")
    return files, str(path)


def parse_files(files, report: ChoraleReport | None = None) -> ChoraleCorpus:
    """Every file read (``read_chorale``); those that fail skipped and counted in the report."""
    corpus = ChoraleCorpus(report=report or ChoraleReport())
    for path in Progress.over(list(files), "reading chorales", unit="file"):
        corpus.report.files += 1
        try:
            roll, sharps, soprano = read_chorale(path)
        except DataError as exc:
            corpus.report.skip(str(exc))
            continue
        corpus.rolls.append(roll)
        corpus.names.append(Path(path).name)
        corpus.sharps.append(sharps)
        corpus.soprano.append(soprano)
    corpus.report.chorales = len(corpus.rolls)
    return corpus


# ---- the cache ---------------------------------------------------------------------------------------


def corpus_fingerprint(files) -> str:
    """SHA-256 of what a cached corpus depends on: the cache's version, the grid, music21's version
    and every file's name and bytes."""
    digest = hashlib.sha256(f"rolls {CACHE_VERSION} grid {GRID} music21 {music21().__version__}\n".encode())
    for path in files:
        data = Path(path).read_bytes()
        digest.update(f"{Path(path).name} {len(data)}\n".encode())
        digest.update(data)
    return digest.hexdigest()


def cache_path(fingerprint: str) -> Path:
    return catalog.data_dir() / "piano-rolls" / f"{fingerprint[:24]}.npz"


def _save(corpus: ChoraleCorpus, path: Path, fingerprint: str) -> None:
    lengths = np.array([len(r) for r in corpus.rolls], dtype=np.int64)
    rep = corpus.report
    arrays = {"fingerprint": np.array(fingerprint), "lengths": lengths, "names": np.array(corpus.names, dtype=str),
              "sharps": np.array(corpus.sharps, dtype=np.int64),
              # frames as pitch bits: 16 bytes a frame instead of 128
              "frames": np.packbits(np.concatenate(corpus.rolls) if corpus.rolls else np.zeros((0, PITCHES), bool), axis=1),
              "soprano": np.concatenate(corpus.soprano) if corpus.soprano else np.zeros(0, np.int16),
              "report": np.array([rep.files, rep.chorales, rep.skipped]), "first_error": np.array(rep.first_error or "")}
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    md.atomic_write_bytes(path, buf.getvalue())


def _load(path: Path, fingerprint: str) -> ChoraleCorpus | None:
    """The cached corpus, or None when the file is missing, damaged or of other data."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["fingerprint"]) != fingerprint:
                return None
            lengths = z["lengths"]
            frames = np.unpackbits(z["frames"], axis=1, count=PITCHES).astype(bool)
            bounds = np.concatenate([[0], np.cumsum(lengths)])
            files, chorales, skipped = (int(v) for v in z["report"])
            report = ChoraleReport(files, chorales, skipped, str(z["first_error"]) or None)
            return ChoraleCorpus([frames[a:b] for a, b in zip(bounds[:-1], bounds[1:])], [str(n) for n in z["names"]],
                                 [int(s) for s in z["sharps"]], [z["soprano"][a:b] for a, b in zip(bounds[:-1], bounds[1:])],
                                 report)
    except (OSError, KeyError, ValueError, EOFError):  # a damaged cache is parsed again, never trusted
        return None


def read_corpus(spec: str) -> tuple[ChoraleCorpus, str]:
    """(corpus, description) of ``--data`` (see ``chorale_files``): parsed by music21 once (minutes
    for the 408 Bach pieces), then read from a cache in the data directory (``$RNNKIT_DATA_DIR``)
    named by the fingerprint of the files, grid and music21 version; the cache is written
    atomically. A source with no readable chorale is a DataError with the first reason."""
    files, source = chorale_files(spec)
    fingerprint = corpus_fingerprint(files)
    path = cache_path(fingerprint)
    corpus = _load(path, fingerprint) if path.is_file() else None
    if corpus is None:
        corpus = parse_files(files)
        _save(corpus, path, fingerprint)
    if not corpus.rolls:
        raise DataError(f"--data: {spec}: no chorale could be read ({corpus.report.describe()})")
    return corpus, f"{source}: {corpus.report.describe()}"


# ---- rolls and notes ---------------------------------------------------------------------------------


def key_shift(sharps: int) -> int:
    """Semitones that take a key signature to none (its major key to C major, its minor to A
    minor), the nearer way: in [−6, 5]."""
    tonic = (7 * sharps) % 12  # each sharp a fifth up from C, each flat a fifth down
    return (-tonic + 6) % 12 - 6


def transpose(roll: np.ndarray, shift: int) -> np.ndarray:
    """The roll ``shift`` semitones up (down when negative); a DataError where a note would leave
    MIDI's range."""
    if shift == 0:
        return roll
    used = np.flatnonzero(roll.any(axis=0))
    if used.size and (used[0] + shift < 0 or used[-1] + shift >= roll.shape[1]):
        raise DataError(f"transposing by {shift} semitones takes notes outside MIDI's pitches 0-127")
    return np.roll(roll, shift, axis=1)


def roll_to_notes(roll: np.ndarray, low: int = 0, seconds_per_frame: float = 0.25, velocity: int = 80) -> np.ndarray:
    """(n, 4) notes (pitch, start s, end s, velocity) of a roll (T, P) whose column k is pitch
    ``low + k``: each run of frames a pitch sounds is one note; sorted by start, then pitch."""
    roll = np.asarray(roll, dtype=bool)
    padded = np.zeros((roll.shape[0] + 2, roll.shape[1]), dtype=np.int8)
    padded[1:-1] = roll
    edges = np.diff(padded, axis=0)  # +1 where a run starts, −1 one past its end
    starts_t, starts_p = np.nonzero(edges == 1)
    ends_t, ends_p = np.nonzero(edges == -1)
    starts = sorted(zip(starts_p, starts_t))
    ends = sorted(zip(ends_p, ends_t))
    notes = [(low + p, s * seconds_per_frame, e * seconds_per_frame, velocity) for (p, s), (_, e) in zip(starts, ends)]
    notes.sort(key=lambda n: (n[1], n[0]))
    return np.array(notes, dtype=np.float64).reshape(-1, 4)


def notes_to_roll(notes: np.ndarray, low: int, pitches: int, seconds_per_frame: float, frames: int | None = None) -> np.ndarray:
    """(T, pitches) bool roll of notes (n, 4: pitch, start s, end s, velocity), each from the frame
    its start rounds to up to the frame its end rounds to (at least one); T the last end's frame
    unless ``frames`` says it. A note outside [low, low + pitches) is a DataError."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    starts = np.floor(notes[:, 1] / seconds_per_frame + 0.5).astype(int)
    ends = np.maximum(starts + 1, np.floor(notes[:, 2] / seconds_per_frame + 0.5).astype(int))
    T = frames if frames is not None else int(ends.max(initial=0))
    roll = np.zeros((T, pitches), dtype=bool)
    for pitch, start, end in zip(notes[:, 0].astype(int), starts, ends):
        if not low <= pitch < low + pitches:
            raise DataError(f"a note of pitch {pitch} lies outside the roll's pitches {low}-{low + pitches - 1}")
        roll[start:end, pitch - low] = True
    return roll


def roll_score(roll: np.ndarray, low: int, tempo: float):
    """A music21 Score of one part: each run of frames a pitch sounds one note, at ``tempo``
    quarter notes a minute."""
    m21 = music21()
    part = m21.stream.Part()
    part.insert(0, m21.tempo.MetronomeMark(number=tempo))
    for pitch, start, end, _ in roll_to_notes(roll, low, GRID):  # seconds_per_frame GRID: times in quarters
        note = m21.note.Note(int(pitch), quarterLength=end - start)
        part.insert(start, note)
    score = m21.stream.Score()
    score.insert(0, part)
    return score


@dataclass
class RollReport:
    """What ``write_roll`` wrote: the files and the audio engine."""

    files: list = field(default_factory=list)
    engine: str | None = None

    def describe(self) -> str:
        return ", ".join(map(str, self.files)) + (f"; audio by {self.engine}" if self.engine else "")


def write_roll(roll: np.ndarray, low: int, outputs: dict, tempo: float = 80.0, title: str = "",
               engine: str = "auto") -> RollReport:
    """Write a roll (T, P) whose column k is pitch ``low + k`` to the paths of ``outputs``
    (``{"midi", "wav", "png"}``, each optional; check them first with ``music.check_outputs``):
    MIDI by music21, audio from it (``audio.render_wav``), the piano roll as a PNG."""
    report = RollReport()
    with tempfile.TemporaryDirectory(prefix="rnnkit-roll-") as tmp:
        midi = Path(outputs["midi"]) if outputs.get("midi") else Path(tmp) / "roll.mid"
        write_midi(roll_score(roll, low, tempo), midi)
        if outputs.get("midi"):
            report.files.append(midi)
        notes = read_midi_notes(midi)
        if outputs.get("wav"):
            report.engine = render_wav(midi, notes, outputs["wav"], engine)
            report.files.append(Path(outputs["wav"]))
        if outputs.get("png"):
            report.files.append(plot_piano_roll(notes, outputs["png"], title))
    return report


__all__ = ["BUILT_IN", "FRAMES_PER_BAR", "GRID", "PITCHES", "ChoraleCorpus", "ChoraleReport", "RollReport", "cache_path",
           "chorale_files", "corpus_fingerprint", "key_shift", "notes_to_roll", "parse_files", "read_chorale", "read_corpus",
           "roll_score", "roll_to_notes", "transpose", "write_roll"]
