"""Tunes through music21: ABC parsed by music21's own ABC reader, written and read as MIDI, and
checked as music (bars that match the meter, the last note on the key's tonic).

music21 is imported here only, and only when one of these functions runs: the data layer reads
ABC as text, and the rest of rnnkit never needs it (``pip install 'rnnkit[music]'``).

    score = parse_tune("M:6/8\\nL:1/8\\nK:D\\n|:A|d2e fed|c2A A2:|")   # DataError if music21 cannot read it
    checks = tune_checks(score)      # {"notes", "bars_match", "ends_on_tonic"}
    write_midi(score, "tune.mid")
    notes = read_midi_notes("tune.mid")   # (n, 4): pitch, start s, end s, velocity
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..data.errors import DataError

MUSIC_INSTALL = "pip install 'rnnkit[music]' (music21 10.5.1 and its dependencies)"


def music21():
    """The music21 package, imported on first use; a DataError saying how to install it."""
    try:
        import music21 as m21
        from music21 import converter, midi  # noqa: F401  (the submodules used below)
    except ImportError as exc:
        raise DataError(f"music21 is needed to read tunes as music and write MIDI ({exc}); {MUSIC_INSTALL}") from None
    return m21


def parse_tune(text: str):
    """A music21 Score of one ABC tune (a header ``M:``/``L:``/``K:`` and its body); a DataError
    with music21's own reason when its ABC reader refuses the text, repairs a note it cannot read
    (it prints "abcFormat: WARNING: Could not get pitch information …, assuming C": not valid
    ABC), or finds no note."""
    m21 = music21()
    tune = text if text.lstrip().startswith("X:") else "X:1\n" + text
    printed = io.StringIO()
    # music21 prints its repairs to stderr: caught, so that they judge the tune and stay off the terminal
    with warnings.catch_warnings(), contextlib.redirect_stderr(printed):
        warnings.simplefilter("ignore")
        try:
            score = m21.converter.parse(tune, format="abc")
        except Exception as exc:  # music21's ABC handler raises many kinds; each means "not readable ABC"
            reason = " ".join(str(exc).split())[:160] or type(exc).__name__
            raise DataError(f"music21 cannot read the tune ({type(exc).__name__}: {reason})") from None
    repairs = [line for line in printed.getvalue().splitlines() if line.startswith("abcFormat: WARNING")]
    if repairs:
        raise DataError(f"music21 repairs the tune ({' '.join(repairs[0].split())[:160]})")
    if not any(True for _ in score.recurse().notes):
        raise DataError("music21 reads no note in the tune")
    return score


def tune_checks(score) -> dict:
    """What a tune is as music: ``notes`` (count); ``bars_checked``: the bars held against the
    meter: all but the first and last (a pickup and its complement) and bars beside a repeat sign
    or an ending (split bars there are ABC's habit); ``bars_match``: at least two bars checked and
    each lasts as long as the meter in force says (False without a meter, ``M:none``: nothing to
    match, and for a tune too short to tell); ``ends_on_tonic``: its last note is the key's tonic (any
    octave, enharmonics equal; the mode's own tonic for modal keys: D for ``K:Dmix``)."""
    m21 = music21()
    measures = list(score.recurse().getElementsByClass(m21.stream.Measure))
    checked, mismatched = 0, 0
    for i, measure in enumerate(measures[1:-1], 1):
        meter = measure.getContextByClass(m21.meter.TimeSignature)
        if meter is None or _beside_repeat(m21, measures, i):
            continue
        checked += 1
        mismatched += Fraction(measure.duration.quarterLength).limit_denominator(64) != \
            Fraction(meter.barDuration.quarterLength).limit_denominator(64)
    bars_match = checked >= 2 and mismatched == 0
    notes = list(score.recurse().notes)
    keys = list(score.recurse().getElementsByClass(m21.key.KeySignature))
    last = notes[-1]
    pitch = last.pitches[-1] if last.isChord else last.pitch
    tonic = _tonic(keys[-1]) if keys else None
    ends = tonic is not None and pitch.pitchClass == tonic.pitchClass
    return {"notes": len(notes), "bars_checked": checked, "bars_match": bars_match, "ends_on_tonic": bool(ends)}


def _tonic(key_signature):
    if getattr(key_signature, "tonic", None) is not None:
        return key_signature.tonic
    return key_signature.asKey("major").tonic


def _beside_repeat(m21, measures, i: int) -> bool:
    """Whether bar ``i`` starts or ends at a repeat sign, or lies under an ending (``|1``, ``|2``)."""
    def repeat(barline):
        return isinstance(barline, m21.bar.Repeat)

    here = measures[i]
    if repeat(here.leftBarline) or repeat(here.rightBarline):
        return True
    if repeat(measures[i - 1].rightBarline) or (i + 1 < len(measures) and repeat(measures[i + 1].leftBarline)):
        return True
    return bool(here.getSpannerSites([m21.spanner.RepeatBracket]))


def write_midi(score, path) -> Path:
    """Write ``score`` as a standard MIDI file (music21's writer), atomically; a DataError with
    music21's reason when its writer fails on a score its reader made (it does, on some
    generated tunes)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    _separate_meters(score)
    try:
        score.write("midi", fp=str(tmp))
    except Exception as exc:  # music21's MIDI translation raises many kinds; each means "cannot write this one"
        tmp.unlink(missing_ok=True)
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise DataError(f"music21 cannot write the tune as MIDI ({type(exc).__name__}: {reason})") from None
    os.replace(tmp, path)
    return path


def _separate_meters(score) -> None:
    """music21's ABC reader gives an irregular bar (a 1/8 bar in 6/8) its own time signature and
    the bar after it the tune's signature again: the same object twice, which its MIDI writer
    refuses ("already found in this Stream"). Each bar gets its own copy."""
    m21 = music21()
    seen = set()
    for measure in score.recurse().getElementsByClass(m21.stream.Measure):
        meter = measure.timeSignature
        if meter is not None:
            if id(meter) in seen:
                measure.timeSignature = copy.deepcopy(meter)
            seen.add(id(meter))


def read_midi_notes(path) -> np.ndarray:
    """The notes of a MIDI file, (n, 4) float64: pitch, start and end in seconds, velocity; sorted
    by start, then pitch. Tempo changes are followed (120 quarters a minute until the first);
    read with music21's MIDI event reader, not its score converter, so that what it reads is
    what the file holds."""
    m21 = music21()
    mf = m21.midi.MidiFile()
    mf.open(str(path))
    try:
        mf.read()
    finally:
        mf.close()
    events = []  # (tick, order, kind, value...)
    for track in mf.tracks:
        tick = 0
        for e in track.events:
            if e.isDeltaTime():
                tick += e.time
            elif e.type == m21.midi.MetaEvents.SET_TEMPO:
                events.append((tick, 0, "tempo", int.from_bytes(e.data, "big"), 0, 0))
            elif e.isNoteOn():
                events.append((tick, 2, "on", e.channel, e.pitch, e.velocity))
            elif e.isNoteOff():
                events.append((tick, 1, "off", e.channel, e.pitch, 0))
    events.sort(key=lambda ev: (ev[0], ev[1]))
    per_tick, last_tick, seconds = 0.5 / mf.ticksPerQuarterNote, 0, 0.0
    sounding: dict[tuple[int, int], list] = {}
    notes = []
    for tick, _, kind, a, b, c in events:
        seconds += (tick - last_tick) * per_tick
        last_tick = tick
        if kind == "tempo":
            per_tick = a / 1e6 / mf.ticksPerQuarterNote
        elif kind == "on":
            sounding.setdefault((a, b), []).append((seconds, c))
        elif sounding.get((a, b)):
            start, velocity = sounding[(a, b)].pop(0)
            notes.append((b, start, seconds, velocity))
    notes.sort(key=lambda n: (n[1], n[0]))
    return np.array(notes, dtype=np.float64).reshape(-1, 4)


__all__ = ["MUSIC_INSTALL", "music21", "parse_tune", "read_midi_notes", "tune_checks", "write_midi"]
