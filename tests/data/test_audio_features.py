"""Audio: decoding (soundfile) and log-mel features, on tones the tests synthesise."""

import numpy as np
import pytest

from rnnkit.data import audio
from rnnkit.data.errors import DataError

soundfile = pytest.importorskip("soundfile")


def tone(freq: float, seconds: float, rate: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


@pytest.mark.parametrize("rate", [16000, 22050, 44100])
def test_power_spectrum_equals_torch_stft(rate):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(rate).standard_normal(rate // 5)
    frame, hop, n_fft = audio.frame_sizes(rate)
    ours = audio.power_spectrum(x, rate)
    # torch centres a short window inside n_fft: shift the signal by as much, pad its end
    left = (n_fft - frame) // 2
    padded = torch.tensor(np.concatenate([np.zeros(left), x, np.zeros(n_fft)]))
    ref = torch.stft(padded, n_fft, hop_length=hop, win_length=frame, window=torch.hann_window(frame, dtype=torch.float64),
                     center=False, return_complex=True).abs().pow(2).T.numpy()
    assert ours.shape[0] == 1 + (len(x) - frame) // hop
    np.testing.assert_allclose(ours, ref[: len(ours)], rtol=1e-9, atol=1e-9 * ref.max())


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0])
@pytest.mark.parametrize("rate", [22050, 44100])
def test_a_tone_lights_the_band_around_its_frequency_at_any_rate(freq, rate):
    features = audio.log_mel(tone(freq, 0.5, rate), rate)
    frame, hop, _ = audio.frame_sizes(rate)
    assert features.shape == (1 + (int(0.5 * rate) - frame) // hop, audio.N_MELS) and features.dtype == np.float32
    edges = audio.mel_to_hz(np.linspace(audio.hz_to_mel(audio.F_MIN), audio.hz_to_mel(audio.F_MAX), audio.N_MELS + 2))
    band = int(np.argmax(features.mean(axis=0)))
    assert edges[band] <= freq <= edges[band + 2]  # the band whose triangle covers the tone


def test_the_same_tone_at_two_rates_gives_nearly_the_same_features():
    a = audio.log_mel(tone(800.0, 0.5, 22050), 22050)
    b = audio.log_mel(tone(800.0, 0.5, 44100), 44100)
    n = min(len(a), len(b))
    # power scales with the samples in a frame (twice as many at twice the rate): a constant in log
    strongest = np.argsort(a.mean(axis=0))[-5:]  # the tone's bands; the others hold only leakage
    difference = (b[:n] - a[:n])[:, strongest]
    assert np.abs(difference - np.median(difference)).max() < 0.35  # within 1.5 dB


def test_filterbank_triangles_peak_at_one_and_cover_the_band():
    bank = audio.mel_filterbank(20, 1024, 16000)
    assert bank.shape == (20, 513)
    assert np.all(bank >= 0) and np.all(bank.max(axis=1) > 0.9)
    bins = np.fft.rfftfreq(1024, 1 / 16000)
    assert np.all(bank[:, (bins < audio.F_MIN) | (bins > audio.F_MAX)] == 0)


def test_a_clip_shorter_than_a_frame_has_no_frames_and_silence_stays_finite():
    assert audio.log_mel(np.zeros(100, np.float32), 16000).shape == (0, audio.N_MELS)
    silent = audio.log_mel(np.zeros(16000, np.float32), 16000)
    assert np.all(np.isfinite(silent))


def test_files_are_decoded_to_mono_and_a_bad_file_is_one_line_naming_it(tmp_path):
    stereo = np.stack([tone(440, 0.2, 22050), np.zeros(4410, np.float32)], axis=1)
    path = tmp_path / "clip.ogg"
    soundfile.write(str(path), stereo, 22050, format="OGG", subtype="VORBIS")
    samples, rate = audio.read_audio(path)
    assert rate == 22050 and samples.shape == (4410,) and samples.dtype == np.float32
    assert np.abs(samples).max() == pytest.approx(0.25, abs=0.03)  # the two channels averaged
    bad = tmp_path / "broken.ogg"
    bad.write_bytes(b"OggS" + b"\0" * 50)
    with pytest.raises(DataError, match=r"broken.ogg: not a readable audio file") as info:
        audio.read_audio(bad)
    assert "\n" not in str(info.value)
