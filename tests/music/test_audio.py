"""Audio of notes (rnnkit.music.audio): the NumPy synthesizer and FluidSynth, as WAV files."""

import wave

import numpy as np
import pytest

from rnnkit.music.audio import RATE, RELEASE, fluidsynth_available, render_wav, synthesize, write_wav

NOTES = np.array([[60, 0.0, 0.5, 90], [64, 0.5, 1.0, 90], [67, 1.0, 2.0, 110]], dtype=float)


def read_wav(path):
    with wave.open(str(path), "rb") as w:
        return w.getframerate(), w.getnchannels(), w.getnframes(), w.readframes(w.getnframes())


def test_numpy_synthesizer_writes_the_expected_length_and_rate(tmp_path):
    path = tmp_path / "t.wav"
    assert render_wav(None, NOTES, path, engine="numpy") == "numpy"
    rate, channels, frames, data = read_wav(path)
    assert (rate, channels) == (RATE, 1)
    assert frames == round((2.0 + RELEASE) * RATE)
    pcm = np.frombuffer(data, "<i2")
    assert 0.85 * 32767 < np.abs(pcm).max() <= 0.9 * 32767 + 1


def test_each_note_sounds_at_its_own_pitch_and_time():
    audio = synthesize(NOTES[:1], rate=8000)
    window = audio[: 4000]  # the first half-second: middle C, 261.6 Hz
    spectrum = np.abs(np.fft.rfft(window))
    assert abs(np.argmax(spectrum) * 8000 / len(window) - 261.6) < 3
    assert len(audio) == round((0.5 + RELEASE) * 8000)
    assert np.abs(audio[-8:]).max() < 0.01 * np.abs(audio).max()  # the release has faded it out


def test_a_wav_round_trips_its_samples(tmp_path):
    samples = np.sin(np.linspace(0, 20, 1000)) * 0.5
    write_wav(tmp_path / "s.wav", samples, 8000)
    rate, _, frames, data = read_wav(tmp_path / "s.wav")
    assert (rate, frames) == (8000, 1000)
    np.testing.assert_allclose(np.frombuffer(data, "<i2") / 32767, samples, atol=1e-4)


@pytest.mark.skipif(not fluidsynth_available(), reason="fluidsynth and fluid-soundfont-gm are not installed")
def test_fluidsynth_renders_a_midi_file(tmp_path):
    pytest.importorskip("music21")
    from rnnkit.music.notation import parse_tune, read_midi_notes, write_midi

    midi = write_midi(parse_tune("M:4/4\nL:1/4\nK:C\nC D E F|G A B c|]"), tmp_path / "t.mid")
    notes = read_midi_notes(midi)
    assert render_wav(midi, notes, tmp_path / "t.wav") == "fluidsynth"
    rate, channels, frames, data = read_wav(tmp_path / "t.wav")
    assert rate == 44100 and channels == 2
    assert 4.0 * rate <= frames <= (4.0 + 5.0) * rate  # the notes' 4 s and a reverb tail
    assert np.abs(np.frombuffer(data, "<i2")).max() > 1000  # it made sound
