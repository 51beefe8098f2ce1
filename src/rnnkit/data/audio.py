"""Audio for the speech tasks: files decoded by soundfile (libsndfile: WAV, FLAC, OGG Vorbis),
and log-mel filterbank features in NumPy.

The features are the usual front end of recurrent speech recognisers: frames of 25 ms every
10 ms, a Hann window, the power spectrum, triangular filters spaced evenly on the mel scale
(HTK's, mel = 2595 log10(1 + f / 700)), and the logarithm. They are written here (tested
against torch.stft and on pure tones) because the whole of it is one short function, where
librosa or torchaudio would bring large dependencies for it. The filters are placed in hertz, so
clips recorded at different rates (the game's are 22.05 and 44.1 kHz) give comparable features
without resampling: only the FFT size changes with the rate.

Shapes: samples (n,) float32 in [−1, 1]; features (frames, n_mels) float32, frames =
1 + (n − frame) // hop (none when the clip is shorter than one frame).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import DataError

FRAME_MS, HOP_MS = 25.0, 10.0
N_MELS = 40
F_MIN, F_MAX = 20.0, 8000.0  # speech's band; above it the game's music and effects
LOG_FLOOR = 1e-10  # added before the log: silence (digital zeros) stays finite


def read_audio(path) -> tuple[np.ndarray, int]:
    """(mono samples as float32, sample rate) of an audio file; channels are averaged. An
    unreadable file is a DataError naming it."""
    try:
        import soundfile
    except ImportError:
        raise DataError("reading audio needs soundfile: pip install 'rnnkit[speech]'") from None
    path = Path(path)
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, OSError, ValueError, TypeError) as exc:  # libsndfile's errors come as these
        raise DataError(f"{path}: not a readable audio file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    return samples.mean(axis=1, dtype=np.float32), int(rate)


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, rate: int, f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1): triangles whose corners are n_mels + 2 points evenly spaced in
    mel from f_min to f_max (capped at the Nyquist frequency), each 1 at its centre."""
    f_max = min(f_max, rate / 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bins = np.fft.rfftfreq(n_fft, 1.0 / rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling))


def frame_sizes(rate: int, frame_ms: float = FRAME_MS, hop_ms: float = HOP_MS) -> tuple[int, int, int]:
    """(samples per frame, per hop, FFT size: the next power of two) at ``rate``."""
    frame, hop = round(rate * frame_ms / 1000), round(rate * hop_ms / 1000)
    return frame, hop, 1 << max(0, math.ceil(math.log2(frame)))


def power_spectrum(samples: np.ndarray, rate: int, frame_ms: float = FRAME_MS, hop_ms: float = HOP_MS) -> np.ndarray:
    """|rfft(Hann-windowed frame)|², (frames, n_fft // 2 + 1) in float64."""
    frame, hop, n_fft = frame_sizes(rate, frame_ms, hop_ms)
    count = 1 + (len(samples) - frame) // hop if len(samples) >= frame else 0
    starts = hop * np.arange(count)[:, None]
    hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)  # the periodic Hann window (torch.hann_window's)
    frames = samples[starts + np.arange(frame)].astype(np.float64) * hann
    return np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2


#: ``log_mel`` as NumPy lines for a consumer without rnnkit (an exported transcriber's metadata
#: "prepare"): samples (n,) float32 in [−1, 1] at ``rate`` Hz → features (frames, n_mels) float32;
#: format with n_mels. The same steps as the functions above, in one place a reader can copy;
#: tests/export run them against ``log_mel``.
LOG_MEL_LINES = f"""frame, hop = round(rate * {FRAME_MS} / 1000), round(rate * {HOP_MS} / 1000)  # samples (n,) float32 at rate Hz
n_fft, hann = 1 << (frame - 1).bit_length(), 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)
starts = hop * np.arange(1 + (len(samples) - frame) // hop)[:, None]
power = np.abs(np.fft.rfft(samples[starts + np.arange(frame)].astype(np.float64) * hann, n=n_fft, axis=1)) ** 2
mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)
edges = 700.0 * (10.0 ** (np.linspace(mel({F_MIN}), mel(min({F_MAX}, rate / 2)), {{n_mels}} + 2) / 2595.0) - 1.0)
bins, low, mid, high = np.fft.rfftfreq(n_fft, 1.0 / rate), edges[:-2, None], edges[1:-1, None], edges[2:, None]
bank = np.maximum(0.0, np.minimum((bins - low) / (mid - low), (high - bins) / (high - mid)))
features = np.log(power @ bank.T + {LOG_FLOOR}).astype(np.float32)  # (frames, {{n_mels}})"""


def log_mel(samples: np.ndarray, rate: int, n_mels: int = N_MELS, frame_ms: float = FRAME_MS, hop_ms: float = HOP_MS,
            f_min: float = F_MIN, f_max: float = F_MAX) -> np.ndarray:
    """Log-mel filterbank features of a clip, (frames, n_mels) float32."""
    spectrum = power_spectrum(samples, rate, frame_ms, hop_ms)
    bank = mel_filterbank(n_mels, 2 * (spectrum.shape[1] - 1), rate, f_min, f_max)
    return np.log(spectrum @ bank.T + LOG_FLOOR).astype(np.float32)
