"""Another day, another room: test takes heard in conditions other than the enrollment's.

Personal weights are made from takes recorded once; they are used later through another
microphone, in another room, with noise around, at another speaking rate. Each condition here is a
deterministic transformation of a 16 kHz test waveform (seeded by the clip), so every method sees
the same altered clips:

- `phone mic`: a telephone handset's band (300-3400 Hz, 4th-order Butterworth band-pass);
- `room`: a reverberant room, the clip convolved with a synthetic impulse response (direct path,
  then exponentially decaying noise, RT60 0.5 s, direct-to-reverberant ratio about 3 dB);
- `noise 10 dB`: real background noise (Speech Commands' `_background_` clips: appliances,
  running water, exercise bikes, babble) 10 dB below the speech;
- `faster` / `slower`: speaking rate x1.15 / x0.87 with the pitch kept (phase-vocoder time stretch).
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np

from audrey.audio.waveform import SAMPLE_RATE
from audrey.data.strings import mix_background, read_noises

RT60_SECONDS = 0.5
DIRECT_TO_REVERB_DB = 3.0
PHONE_BAND_HZ = (300.0, 3400.0)
SNR_DB = 10.0
RATES = {"faster": 1.15, "slower": 0.87}
CONDITIONS = ("clean", "phone mic", "room", "noise 10 dB", "faster", "slower")


def clip_rng(key: str, condition: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(f"{key}|{condition}".encode()))


def phone_band(wave: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    from scipy.signal import butter, sosfilt

    sos = butter(4, PHONE_BAND_HZ, btype="bandpass", fs=rate, output="sos")
    return sosfilt(sos, wave).astype(np.float32)


def room(wave: np.ndarray, rng: np.random.Generator, rate: int = SAMPLE_RATE) -> np.ndarray:
    from scipy.signal import fftconvolve

    t = np.arange(int(RT60_SECONDS * rate)) / rate
    tail = rng.standard_normal(len(t)) * np.exp(-6.908 * t / RT60_SECONDS)  # -60 dB at RT60
    tail[: int(0.002 * rate)] = 0.0  # the first reflections arrive after the direct sound
    tail *= np.sqrt(10 ** (-DIRECT_TO_REVERB_DB / 10) / np.sum(tail**2))
    tail[0] = 1.0
    out = fftconvolve(wave, tail)[: len(wave) + rate // 4]
    return (out * (np.abs(wave).max() / (np.abs(out).max() + 1e-9))).astype(np.float32)


def stretch(wave: np.ndarray, factor: float) -> np.ndarray:
    import librosa

    return librosa.effects.time_stretch(np.asarray(wave, np.float32), rate=factor).astype(np.float32)


class Conditions:
    """Apply a named condition to a 16 kHz waveform; the noise condition needs `background`
    (a `_background_` folder)."""

    def __init__(self, background: Path | None):
        self.noises = read_noises(background) if background is not None and background.is_dir() else []

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c for c in CONDITIONS if c != "noise 10 dB" or self.noises)

    def apply(self, wave: np.ndarray, condition: str, key: str) -> np.ndarray:
        rng = clip_rng(key, condition)
        if condition == "clean":
            return wave
        if condition == "phone mic":
            return phone_band(wave)
        if condition == "room":
            return room(wave, rng)
        if condition == "noise 10 dB":
            return mix_background(wave, self.noises, SNR_DB, rng)
        if condition in RATES:
            return stretch(wave, RATES[condition])
        raise ValueError(condition)
