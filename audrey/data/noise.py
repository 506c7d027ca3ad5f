"""Synthetic noise for the rejection's material and tests: steady coloured noise at a given SNR
(`add_noise`) and short non-speech sounds (`noise_burst`: coughs, knocks, breaths, beeps, ...)."""

from __future__ import annotations

import numpy as np

NOISE_KINDS = ("hiss", "cough", "knock", "breath", "beep", "hum", "clap", "rumble")


def colored_noise(n: int, kind: str, rng: np.random.Generator, rate: int = 16000, low_hz: float = 80.0) -> np.ndarray:
    """Unit-RMS noise: 'white', 'pink' (1/f) or 'brown' (1/f^2) above `low_hz` (below it, a pink
    spectrum would be mostly a slow drift that no microphone passes)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / rate)
    spec[f < low_hz] = 0
    if kind != "white":
        spec[f >= low_hz] /= (f[f >= low_hz] / low_hz) ** (0.5 if kind == "pink" else 1.0)
    x = np.fft.irfft(spec, n)
    return (x / (np.sqrt(np.mean(x**2)) + 1e-12)).astype(np.float32)


def active_rms(audio: np.ndarray, rate: int = 16000) -> float:
    """RMS over the active part of `audio`: its 10 ms frames within 30 dB of the loudest."""
    from audrey.audio.vad import frame_levels

    levels = frame_levels(audio, max(1, rate // 100))
    if not len(levels):  # shorter than one frame
        return 1e-5
    active = levels > levels.max() - 30
    return float(np.sqrt(np.mean(10 ** (levels[active] / 10))))


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator, kind: str = "pink",
              speech_rms: float | None = None, rate: int = 16000) -> np.ndarray:
    """`audio` (at `rate`) plus steady noise `snr_db` below the speech level: the RMS over the
    active part of `audio`, or `speech_rms` when given (for a string, the level of the spoken digits)."""
    if speech_rms is None:
        speech_rms = active_rms(audio, rate)
    noise = colored_noise(len(audio), kind, rng, rate)
    return (audio + noise * speech_rms / 10 ** (snr_db / 20)).astype(np.float32)


def _bandpass(x: np.ndarray, rate: int, lo: float, hi: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / rate)
    spec[(f < lo) | (f > hi)] = 0
    return np.fft.irfft(spec, len(x))


def noise_burst(rng: np.random.Generator, rate: int, kind: str | None = None) -> np.ndarray:
    """One non-speech sound, 0.05-1.2 s, peak -20..-3 dBFS: a cough, knock, breath, beep, ..."""
    kind = kind or NOISE_KINDS[rng.integers(len(NOISE_KINDS))]
    dur = {"knock": rng.uniform(0.05, 0.2), "clap": rng.uniform(0.05, 0.15), "cough": rng.uniform(0.2, 0.6)}.get(
        kind, rng.uniform(0.15, 1.2))
    n = max(8, int(dur * rate))
    t = np.arange(n) / rate
    if kind == "hiss":
        x = colored_noise(n, rng.choice(["white", "pink"]), rng, rate) * np.minimum(1, np.minimum(t, t[::-1]) / 0.03)
    elif kind == "cough":  # a voiced-noise burst with a sharp attack, one or two of them
        x = np.zeros(n)
        for start in [0.0] + ([rng.uniform(0.15, 0.3)] if rng.random() < 0.5 and dur > 0.35 else []):
            seg = t - start
            env = np.where(seg >= 0, np.exp(-np.clip(seg, 0, None) / rng.uniform(0.04, 0.12)) * (1 - np.exp(-np.clip(seg, 0, None) / 0.005)), 0)
            src = _bandpass(rng.standard_normal(n), rate, rng.uniform(200, 500), rng.uniform(2000, 4000))
            src += 0.5 * np.sin(2 * np.pi * rng.uniform(100, 250) * t) * (rng.random() < 0.5)
            x += env * src
    elif kind in ("knock", "clap"):
        f0 = rng.uniform(80, 400) if kind == "knock" else rng.uniform(800, 2500)
        x = np.exp(-t / rng.uniform(0.01, 0.05)) * (np.sin(2 * np.pi * f0 * t) + (0.8 if kind == "clap" else 0.2) * rng.standard_normal(n))
    elif kind == "breath":
        x = _bandpass(rng.standard_normal(n), rate, 300, 2500) * np.sin(np.pi * t / t[-1]) ** 2
    elif kind == "beep":
        x = np.sin(2 * np.pi * rng.uniform(400, 3000) * t) * np.minimum(1, np.minimum(t, t[::-1]) / 0.005)
    elif kind == "hum":  # mains hum or an engine: a harmonic buzz
        f0 = rng.choice([50.0, 60.0, rng.uniform(80, 200)])
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8)) * np.minimum(1, np.minimum(t, t[::-1]) / 0.02)
    elif kind == "rumble":
        x = colored_noise(n, "brown", rng, rate, low_hz=30) * np.minimum(1, np.minimum(t, t[::-1]) / 0.05)
    else:
        raise ValueError(kind)
    x = np.asarray(x, np.float64)
    return (x / (np.abs(x).max() + 1e-12) * 10 ** (rng.uniform(-20, -3) / 20)).astype(np.float32)
