"""Notes made audible: FluidSynth with the General MIDI SoundFont where installed, a small NumPy
synthesizer otherwise, written as 16-bit mono WAV with the standard library's ``wave``.

    render_wav("tune.mid", notes, "tune.wav")   # → "fluidsynth" or "numpy", the one that played it
    samples = synthesize(notes, rate=22050)     # (n,) float32 in [-1, 1]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np

from ..data.errors import DataError

#: where Debian's fluid-soundfont-gm puts the General MIDI SoundFont (its .sf2 and its symlink)
SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2")
RATE = 22050  # the NumPy synthesizer's samples a second: a melody's top partials lie below 11 kHz
RELEASE = 0.25  # seconds a note rings after its end (and after the last note: the tail of the file)
HARMONICS = (1.0, 0.5, 0.25, 0.125)  # partial amplitudes: a soft reed-like tone, not a bare sine


def soundfont() -> str | None:
    """The General MIDI SoundFont's path, or None where fluid-soundfont-gm is not installed."""
    return next((p for p in SOUNDFONTS if os.path.isfile(p)), None)


def fluidsynth_available() -> bool:
    return shutil.which("fluidsynth") is not None and soundfont() is not None


def synthesize(notes: np.ndarray, rate: int = RATE) -> np.ndarray:
    """(n,) float32 audio of ``notes`` (m, 4: pitch, start s, end s, velocity): each note a sum of
    ``HARMONICS`` of its equal-tempered frequency under a 10 ms attack, a gentle decay while held
    and a ``RELEASE`` fade after; n = round((last end + RELEASE) · rate). Peak scaled to 0.9."""
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 4)
    end = float(notes[:, 2].max()) if len(notes) else 0.0
    out = np.zeros(int(round((end + RELEASE) * rate)), dtype=np.float64)
    for pitch, start, stop, velocity in notes:
        a, b = int(round(start * rate)), min(len(out), int(round((stop + RELEASE) * rate)))
        if b <= a:
            continue
        t = np.arange(b - a) / rate
        f = 440.0 * 2.0 ** ((pitch - 69) / 12)
        tone = sum(amp * np.sin(2 * np.pi * k * f * t) for k, amp in enumerate(HARMONICS, 1) if k * f < rate / 2)
        held = stop - start
        envelope = np.minimum(1.0, t / 0.01) * np.exp(-1.5 * t)  # attack, then a slow decay while held
        envelope *= np.clip(1.0 - (t - held) / RELEASE, 0.0, 1.0)  # the release after the note's end
        out[a:b] += (velocity / 127) * envelope * tone
    peak = np.abs(out).max() if len(out) else 0.0
    return (out * (0.9 / peak) if peak > 0 else out).astype(np.float32)


def write_wav(path, samples: np.ndarray, rate: int = RATE) -> Path:
    """Write mono ``samples`` (float in [-1, 1]) as 16-bit PCM WAV, atomically."""
    path = Path(path)
    pcm = (np.clip(np.asarray(samples, dtype=np.float64), -1, 1) * 32767).astype("<i2")
    tmp = path.with_name(f".{path.name}.tmp")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    os.replace(tmp, path)
    return path


def fluidsynth_wav(midi_path, wav_path, rate: int = 44100) -> Path:
    """Render a MIDI file with FluidSynth and the General MIDI SoundFont (no audio device, no
    shell), atomically; a DataError with FluidSynth's last line when it fails."""
    wav_path = Path(wav_path)
    tmp = wav_path.with_name(f".{wav_path.name}.tmp.wav")
    cmd = ["fluidsynth", "-ni", "-q", "-g", "1.0", "-F", str(tmp), "-T", "wav", "-r", str(rate), soundfont(), str(midi_path)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0 or not tmp.is_file():
        lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
        tmp.unlink(missing_ok=True)
        raise DataError(f"fluidsynth could not render {midi_path} (status {done.returncode}: {lines[-1] if lines else 'no output'})")
    os.replace(tmp, wav_path)
    return wav_path


def render_wav(midi_path, notes: np.ndarray, wav_path, engine: str = "auto") -> str:
    """Write ``wav_path`` from a tune: FluidSynth from ``midi_path`` where it is installed (engine
    "auto" or "fluidsynth"), else the NumPy synthesizer from ``notes``; returns the engine used."""
    if engine not in ("auto", "fluidsynth", "numpy"):
        raise ValueError(f"engine: expected auto, fluidsynth or numpy, got {engine!r}")
    if engine == "fluidsynth" or (engine == "auto" and fluidsynth_available()):
        if not fluidsynth_available():
            raise DataError("fluidsynth: not installed; `apt-get install -y fluidsynth fluid-soundfont-gm` (as root)")
        fluidsynth_wav(midi_path, wav_path)
        return "fluidsynth"
    write_wav(wav_path, synthesize(notes))
    return "numpy"


__all__ = ["RATE", "RELEASE", "fluidsynth_available", "fluidsynth_wav", "render_wav", "soundfont", "synthesize", "write_wav"]
