"""The hiss test, for wideband input (>= 16 kHz, as microphones deliver): a 6 or a 7 must begin with
the /s/ of "six" and "seven" (`onset_hiss_db`). A model that hears 8 kHz audio (the band of the
first starter, and of any model trained with an 8 kHz frontend) has nearly lost the /s/, mostly above
4 kHz: "heaven" was "seven" to it every time. Not done for the /f/
of "five" and "four" or the /θ/ of "three": those are weak, and in noise at 20 dB SNR already as
faint as the noise ("hi" is still heard as "five")."""

from __future__ import annotations

import numpy as np

# The hiss test: "six" and "seven" begin with /s/, a hiss mostly above 4 kHz, which wideband input
# (>= 16 kHz) has and 8 kHz audio has lost.
HISS_DIGITS = (6, 7)
HISS_MIN_RATE = 16000  # below this the band above 4 kHz is not there to test
HISS_BAND_HZ = (4000.0, 7800.0)  # against 100-4000 Hz
HISS_WINDOW_SECONDS = 0.25  # from the segment's start: its margin (stream.MARGIN_SECONDS) and the onset
EMPTY_BAND_DB = -60.0  # a whole segment this far quieter above 4 kHz than below came from an 8 kHz source
MIN_HISS_DB = -3.0  # espeak-ng, 52 voices: the /s/ of six and seven 15 dB clean, >= 6.7 dB at 20 dB SNR,
#                     5th percentile -1.4 dB at 10 dB (pink noise); "heaven" at most -4.1 dB; vowels -25..-45


def onset_hiss_db(audio: np.ndarray, rate: int) -> float | None:
    """How much a segment begins with a hiss: over the 20 ms frames (10 ms apart) of its first
    HISS_WINDOW_SECONDS that are above silence, the highest ratio of energy in HISS_BAND_HZ to energy
    in 100-4000 Hz, in dB. None when there is no such band to test: `rate` too low, or audio that went
    through 8 kHz on its way (a phone call saved at 44.1 kHz), or a silent start."""
    from audrey.audio.vad import MIN_LEVEL_DB

    if rate < HISS_MIN_RATE:
        return None
    frame, hop = int(0.02 * rate), int(0.01 * rate)
    x = np.asarray(audio, np.float64)
    if len(x) < frame:
        return None
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1)) ** 2
    f = np.fft.rfftfreq(frame, 1 / rate)
    high = power[:, (f >= HISS_BAND_HZ[0]) & (f <= HISS_BAND_HZ[1])].sum(1)
    low = power[:, (f >= 100) & (f < HISS_BAND_HZ[0])].sum(1)
    if high.sum() < low.sum() * 10 ** (EMPTY_BAND_DB / 10):
        return None  # the band is empty: an 8 kHz source
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)
    onset = (np.arange(len(frames)) * hop + frame <= HISS_WINDOW_SECONDS * rate) & (level > MIN_LEVEL_DB)
    if not onset.any():
        return None
    return float(np.max(10 * np.log10((high[onset] + 1e-20) / (low[onset] + 1e-20))))


def lacks_hiss(digits: np.ndarray, hiss: np.ndarray) -> np.ndarray:
    """The hiss test per segment: True for a 6 or a 7 whose onset hiss (onset_hiss_db; NaN where
    not measured, which passes) is under MIN_HISS_DB."""
    return np.isin(digits, HISS_DIGITS) & (np.asarray(hiss, np.float64) < MIN_HISS_DB)


def hiss_array(hiss: list[float | None]) -> np.ndarray:
    return np.array([np.nan if h is None else h for h in hiss], np.float64)
