"""The take check of `audrey record`: does the model hear the digit the speaker was asked for?

A take the model hears as another digit, and is sure of it, is most likely a mislabel (the speaker
read the prompt wrong, or said the digit before): kept as it is, it would teach the personal
weights the wrong digit. The session asks about it (`--auto` keeps it and reports it).

FLAG_CONFIDENCE is the top digit's probability from which such a take is flagged. It was chosen on
speakers the model never heard (benchmarks/take_check.py, results/take_check.json): on 5,172 real
clips of 227 speakers, each heard by a fold model trained without its speaker, 0.7 flags 0.5% of
correctly labelled takes and catches 84% of takes labelled with another digit (0.5 would catch 94%
but flag 1.6% of good takes; 0.8 flags 0.15% and catches 74%).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audrey.audio import waveform
from audrey.live.recognizer import Recognizer

FLAG_CONFIDENCE = 0.7


@dataclass(frozen=True)
class Mismatch:
    """The model heard `heard`, not `expected`, with probability `confidence`."""

    heard: int
    expected: int
    confidence: float


class TakeCheck:
    """The model loaded once, before the session's first prompt; `check` per take."""

    def __init__(self, recognizer: Recognizer, threshold: float = FLAG_CONFIDENCE):
        self.recognizer, self.threshold = recognizer, threshold

    @classmethod
    def from_file(cls, model: Path, weights: Path | None = None) -> "TakeCheck":
        """The model file (and personal weights); a missing or damaged one is one AudreyError line."""
        return cls(Recognizer.from_file(model, weights))

    def check(self, audio: np.ndarray, rate: int, expected: int) -> Mismatch | None:
        """A Mismatch when the model's top digit for this take (its audio at `rate`) is not
        `expected` and has at least the threshold's probability; None otherwise."""
        wave = waveform.resample(audio, rate, self.recognizer.sample_rate)
        pred = self.recognizer.predict([wave])[0]
        if pred.digit != expected and pred.confidence >= self.threshold:
            return Mismatch(pred.digit, expected, pred.confidence)
        return None
