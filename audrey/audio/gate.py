"""The quality gate every recorded take passes before it is kept, and `audrey recordings` re-checks.

Pure functions over one take (mono float samples and their rate): `check_take` returns the reason
the take is not a clean single digit, as one line that says what to do, or None when it is fine.
The same code runs on a take just captured and on a file saved months ago, so changing a threshold
here changes what `audrey recordings` flags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audrey.audio import vad

CLIP_LEVEL = 0.99  # |sample| at or above this sits at full scale (16-bit full scale is 0.99997)
CLIP_MAX_FRACTION = 0.001  # more full-scale samples than this (0.1%) is audible clipping, not one loud peak
CLIP_MIN_SAMPLES = 3  # ...and never fewer than this many
QUIET_DB = -40.0  # dBFS; the loudest 10 ms of a digit must reach this, or the input gain is far too low
MIN_SNR_DB = 20.0  # speech must stand this far above the background (a quiet room gives 30-50 dB)
SPEECH_PERCENTILE = 90  # "speech level": this percentile of the speech frames' levels (the vowel, not the fade)
MIN_DIGIT_SPEECH_SECONDS = 0.15  # speech in a take: the shortest digits ("eight", "six" said fast) last ~0.2 s
MAX_DIGIT_SPEECH_SECONDS = 1.5  # ...and the slowest "seven" lasts under 1 s; longer is more than a digit
# What any clip handed to `audrey predict` must have, a far looser test than a take's: every clip of
# FSDD and Speech Commands' digits passes it (a tightly trimmed FSDD clip still spans 8 dB or more).
MIN_CLIP_SECONDS = 0.1  # shorter than any spoken digit (FSDD's shortest clip lasts 0.14 s)
STEADY_DB = 3.0  # every 10 ms within this many dB of each other: one steady sound (a tone, a hum), no speech


@dataclass(frozen=True)
class TakeStats:
    """What the gate measured; `audrey recordings --json` and the recorder show these."""

    seconds: float
    clipped_fraction: float
    words: int  # speech segments separated by at least vad.GATE.hangover
    speech_seconds: float  # first word's start to last word's end
    peak_db: float  # loudest 10 ms frame, dBFS
    speech_db: float  # typical level of the speech frames, dBFS
    noise_db: float  # the noise floor before the speech, dBFS
    snr_db: float


def measure(audio: np.ndarray, rate: int) -> TakeStats:
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    clipped = float(np.mean(np.abs(audio) >= CLIP_LEVEL)) if len(audio) else 0.0
    words = vad.segment(audio, rate, vad.GATE)
    if not words:
        return TakeStats(len(audio) / rate, clipped, 0, 0.0, vad.FLOOR_MIN_DB, vad.FLOOR_MIN_DB, vad.FLOOR_MIN_DB, 0.0)
    first, last = words[0], words[-1]
    levels = vad.frame_levels(audio[first.speech_start : last.speech_end], vad.frame_samples(rate))
    speech_db = float(np.percentile(levels, SPEECH_PERCENTILE)) if len(levels) else first.peak_db
    noise_db = first.floor_db  # the segmenter's adaptive floor when the first word began
    return TakeStats(
        seconds=len(audio) / rate,
        clipped_fraction=clipped,
        words=len(words),
        speech_seconds=(last.speech_end - first.speech_start) / rate,
        peak_db=max(w.peak_db for w in words),
        speech_db=speech_db,
        noise_db=noise_db,
        snr_db=speech_db - noise_db,
    )


def check_take(audio: np.ndarray, rate: int) -> str | None:
    """Why this take is not one clean digit (one line, with the fix), or None if it is."""
    return check_stats(measure(audio, rate), len(np.asarray(audio).reshape(-1)))


def check_stats(s: TakeStats, samples: int) -> str | None:
    # Order matters: a clipped or noisy take also splits into odd "words", so the cause comes first.
    if s.clipped_fraction * samples >= CLIP_MIN_SAMPLES and s.clipped_fraction > CLIP_MAX_FRACTION:
        return f"clipping: {100 * s.clipped_fraction:.1f}% of samples at full scale; speak softer, move back, or turn the input gain down"
    if s.words == 0:
        return "no speech heard; say the digit clearly, close to the microphone"
    if s.peak_db < QUIET_DB:
        return f"too quiet: speech peaks at {s.peak_db:.0f} dBFS (needs {QUIET_DB:.0f}); speak up, move closer, or raise the input gain"
    if s.snr_db < MIN_SNR_DB:
        return (
            f"too noisy: speech only {s.snr_db:.1f} dB above the background (needs {MIN_SNR_DB:.0f}); "
            "find a quieter place or move closer to the microphone"
        )
    if s.words > 1:
        return f"more than one word: heard {s.words} words separated by pauses; say only the digit"
    if s.speech_seconds < MIN_DIGIT_SPEECH_SECONDS:
        return f"too short for one digit ({s.speech_seconds:.2f} s, needs at least {MIN_DIGIT_SPEECH_SECONDS} s); say the whole digit"
    if s.speech_seconds > MAX_DIGIT_SPEECH_SECONDS:
        return f"too long for one digit ({s.speech_seconds:.1f} s, at most {MAX_DIGIT_SPEECH_SECONDS} s); say only the digit, at a normal pace"
    return None


def speech_problem(audio: np.ndarray, rate: int) -> str | None:
    """Why a clip cannot hold a spoken digit (one line), or None: too little audio, silence, or one
    steady sound such as a test tone. A digit's loudness rises and falls; these never do."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if len(audio) < MIN_CLIP_SECONDS * rate:
        return (f"too little audio ({len(audio)} sample(s), {len(audio) / rate:.3f} s at {rate} Hz; a spoken digit "
                f"lasts at least {MIN_CLIP_SECONDS:g} s): no digit to recognise")
    levels = vad.frame_levels(audio, vad.frame_samples(rate))
    loudest = int(round(float(levels.max())))
    if loudest < vad.MIN_LEVEL_DB:
        return f"no speech: silence (the loudest 10 ms reach {loudest} dBFS): no digit to recognise"
    if float(levels.max() - levels.min()) < STEADY_DB:
        return (f"no speech: one steady sound at {loudest} dBFS (a tone, hum or test signal, "
                f"its level never changes): no digit to recognise")
    return None
