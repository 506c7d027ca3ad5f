"""The quality gate: clean single digits pass; clipped, silent, quiet, noisy, two-word, too short
and too long takes are each rejected with their own reason."""

from __future__ import annotations

import numpy as np
import pytest

from audrey.audio import gate
from audrey.audio.waveform import load_audio, trim_silence

RATE = 16000


def pad(audio: np.ndarray, before: float = 0.15, after: float = 0.15) -> np.ndarray:
    """What the recorder saves: the digit with its margins."""
    return np.concatenate([np.zeros(int(before * RATE), np.float32), audio, np.zeros(int(after * RATE), np.float32)])


def noise(n: int, db: float, seed: int = 0) -> np.ndarray:
    return (10 ** (db / 20) * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


@pytest.fixture
def digit(espeak_digit):
    def get(d: int, voice: str = "us", speed: int = 150) -> np.ndarray:
        return trim_silence(load_audio(espeak_digit(d, voice, speed), RATE), sr=RATE)

    return get


def reason(audio) -> str | None:
    return gate.check_take(audio, RATE)


def test_clean_digits_pass(digit):
    for voice in ("us", "gb", "sc"):
        for d in range(10):
            take = pad(digit(d, voice)) + noise(len(pad(digit(d, voice))), -65, seed=d)
            assert reason(take) is None, (voice, d, gate.measure(take, RATE))
    for speed in (100, 260):  # slow and fast speakers
        assert reason(pad(digit(7, "gb", speed))) is None


def test_clipped_take(digit):
    take = np.clip(pad(digit(3)) * 8, -1, 1)
    assert reason(take).startswith("clipping:")
    # one full-scale peak is not clipping
    single = pad(digit(3))
    single[len(single) // 2] = 1.0
    assert reason(single) is None


def test_silent_take():
    assert reason(np.zeros(RATE, np.float32)).startswith("no speech heard")
    assert reason(noise(RATE, -60)).startswith("no speech heard")


def test_quiet_take(digit):
    take = pad(digit(5))
    take = take * (10 ** (-42 / 20) / np.abs(take).max())  # sample peaks at -42 dBFS: loudest 10 ms near -48
    assert reason(take).startswith("too quiet:")


def test_two_words(digit):
    # "three ... four" with a 0.25 s pause: one take for the recorder (its end-of-take pause is 0.4 s),
    # two words for the gate
    take = pad(np.concatenate([digit(3), np.zeros(int(0.25 * RATE), np.float32), digit(4)]))
    assert reason(take).startswith("more than one word: heard 2")


def test_noisy_take(digit):
    take = pad(digit(8), 0.4, 0.4)
    take = take + noise(len(take), -28)  # speech ~15 dB above the background
    assert reason(take).startswith("too noisy:")


def test_too_short_and_too_long(digit):
    t = np.arange(int(0.1 * RATE)) / RATE
    blip = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    assert reason(pad(blip)).startswith("too short for one digit")
    t = np.arange(int(2.0 * RATE)) / RATE
    hum = (0.2 * np.sin(2 * np.pi * 150 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    assert reason(pad(hum)).startswith("too long for one digit")


def test_each_reason_says_what_to_do(digit):
    takes = {
        "clipping": np.clip(pad(digit(3)) * 8, -1, 1),
        "no speech": np.zeros(RATE, np.float32),
        "too noisy": pad(digit(8), 0.4, 0.4) + noise(int(len(digit(8)) + 0.8 * RATE), -28),
    }
    for name, take in takes.items():
        text = reason(take)
        assert text.startswith(name) and ";" in text and "\n" not in text
