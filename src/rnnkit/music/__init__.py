"""Hearing what a model of tunes writes: generated ABC text → tunes → MIDI, audio, piano rolls.

    report = write_tunes(text, {"abc": "t.abc", "midi": "t.mid", "wav": "t.wav", "png": "t.png"})
    print(report.describe())    # "3 tunes written (t.mid, t-2.mid, …; audio by fluidsynth); 1 skipped: …"

Tune k of the text goes to the path given for k = 1 and to ``STEM-k.EXT`` after it. A tune
music21 cannot read is skipped and counted; the ABC file keeps every tune, numbered (``X:k``).
Layers: ``notation`` (music21: ABC, MIDI, checks), ``audio`` (FluidSynth or NumPy, WAV),
``roll`` (PNG); the data layer's ``abc`` module knows tunes as text.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..data.abc import tune_texts
from ..data.errors import DataError
from ..training import model_dir as md
from ..training.plots import output_path
from .audio import render_wav
from .notation import music21, parse_tune, read_midi_notes, write_midi
from .roll import plot_piano_roll

OUTPUTS = ("abc", "midi", "wav", "png")


@dataclass
class TunesReport:
    """What ``write_tunes`` wrote: the tunes found, those written, the files, the audio engine,
    and the tunes skipped with the first reason."""

    found: int = 0
    written: int = 0
    files: list = field(default_factory=list)
    engine: str | None = None
    skipped: int = 0
    first_error: str | None = None

    def describe(self) -> str:
        shown = ", ".join(map(str, self.files[:6])) + (f" and {len(self.files) - 6} more" if len(self.files) > 6 else "")
        line = f"{self.written} of {self.found} tune(s) written" + (f" ({shown})" if shown else "")
        if self.engine:
            line += f"; audio by {self.engine}"
        if self.skipped:
            line += f"; {self.skipped} tune(s) music21 cannot read or write skipped (first: {self.first_error})"
        return line


def check_outputs(outputs: dict) -> dict[str, Path]:
    """The output paths (``{kind: path or None}``, kinds ``OUTPUTS``) checked before any work:
    each in an existing directory, not a directory itself; MIDI, audio and pictures need music21."""
    paths = {kind: output_path(path, f"--{kind}") for kind, path in outputs.items() if path}
    if set(paths) - {"abc"}:
        music21()
    return paths


def numbered(path: Path, k: int) -> Path:
    """The path of tune ``k``: ``path`` itself for the first, ``STEM-k.EXT`` for the others."""
    return path if k == 1 else path.with_name(f"{path.stem}-{k}{path.suffix}")


def write_tunes(text: str, outputs: dict, engine: str = "auto") -> TunesReport:
    """Write the tunes of generated ``text`` (``tune_texts``) to the paths of ``outputs`` (see the
    module docstring); returns what was written."""
    paths = check_outputs(outputs)
    tunes = tune_texts(text)
    report = TunesReport(found=len(tunes))
    if "abc" in paths:
        numbered_text = "\n\n".join(f"X:{k}\n{tune}" for k, tune in enumerate(tunes, 1)) + "\n"
        md.atomic_write_bytes(paths["abc"], numbered_text.encode("utf-8"))
        report.files.append(paths["abc"])
    if not set(paths) - {"abc"}:
        report.written = len(tunes)
        return report
    with tempfile.TemporaryDirectory(prefix="rnnkit-tunes-") as tmp:
        for tune in tunes:
            k = report.written + 1
            midi = numbered(paths["midi"], k) if "midi" in paths else Path(tmp) / f"tune-{k}.mid"
            try:
                write_midi(parse_tune(tune), midi)
            except DataError as exc:
                report.skipped += 1
                report.first_error = report.first_error or str(exc)
                continue
            report.written = k
            if "midi" in paths:
                report.files.append(midi)
            notes = read_midi_notes(midi)
            if "wav" in paths:
                report.engine = render_wav(midi, notes, numbered(paths["wav"], k), engine)
                report.files.append(numbered(paths["wav"], k))
            if "png" in paths:
                header = " ".join(tune.split("\n")[:3])
                report.files.append(plot_piano_roll(notes, numbered(paths["png"], k), f"tune {k}: {header}"))
    return report


__all__ = ["OUTPUTS", "TunesReport", "check_outputs", "numbered", "write_tunes"]
