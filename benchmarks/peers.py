"""The recognizers Audrey is measured against, importable by every benchmark that compares with them.

- `PocketSphinxDigits`: CMU PocketSphinx (PyPI `pocketsphinx` 5.x; its wheel ships the en-us acoustic
  model and dictionary), restricted by a JSGF grammar to one digit word (`ONE_DIGIT`) or to a string
  of them (`DIGIT_LOOP`). It hears 16 kHz 16-bit mono; lower-rate audio is resampled up first.
- `DTWTemplates`: the classic template matcher: MFCCs of the trimmed clip, dynamic time warping to
  every template, the label of the nearest one wins (1-nearest template).

Both map "zero" and "oh" to 0, as people read digits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audrey import DIGIT_WORDS
from audrey.audio import waveform
from audrey.errors import AudreyError

# --- PocketSphinx ---------------------------------------------------------------------------------

POCKETSPHINX_RATE = 16000  # the rate of the en-us acoustic model in the wheel
ONE_DIGIT = "one-digit"
DIGIT_LOOP = "digit-loop"
_WORDS = " | ".join(DIGIT_WORDS[:1] + ("oh",) + DIGIT_WORDS[1:])
GRAMMARS = {
    ONE_DIGIT: f"#JSGF V1.0;\ngrammar digits;\npublic <digit> = {_WORDS};\n",
    DIGIT_LOOP: f"#JSGF V1.0;\ngrammar digits;\npublic <digits> = ( {_WORDS} )+;\n",
}
WORD_DIGIT = {**{w: str(d) for d, w in enumerate(DIGIT_WORDS)}, "oh": "0"}


class PocketSphinxDigits:
    """PocketSphinx decoding a whole clip (`full_utt=True`) against one digit grammar."""

    def __init__(self, grammar: str = ONE_DIGIT):
        if grammar not in GRAMMARS:
            raise AudreyError(f"PocketSphinx grammar {grammar!r}: expected one of {', '.join(GRAMMARS)}")
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise AudreyError("pocketsphinx is not installed; install it with `pip install pocketsphinx`") from None
        self.grammar = grammar
        self.decoder = Decoder(lm=None, loglevel="FATAL")  # no language model: the grammar is the search
        self.decoder.add_jsgf_string(grammar, GRAMMARS[grammar])
        self.decoder.activate_search(grammar)

    def recognize(self, wave: np.ndarray, rate: int = POCKETSPHINX_RATE) -> str:
        """The digits heard in a float waveform at `rate`, e.g. "7" ("" when it heard none)."""
        wave = waveform.resample(np.asarray(wave, dtype=np.float32), rate, POCKETSPHINX_RATE)
        pcm = (np.clip(wave, -1.0, 1.0) * 32767).astype(np.int16)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        words = hyp.hypstr.split() if hyp is not None else []
        return "".join(WORD_DIGIT[w] for w in words if w in WORD_DIGIT)

    def recognize_file(self, path: Path) -> str:
        return self.recognize(waveform.load_audio(path, POCKETSPHINX_RATE), POCKETSPHINX_RATE)


# --- DTW over MFCCs: the speaker-dependent recognizer of the 1950s-1980s ---------------------------

DTW_RATE = 8000  # Hz: telephone band, as the classic template matchers heard it (and its figures were measured)


def mfcc_features(wave: np.ndarray) -> np.ndarray:
    """(frames, 12) MFCCs (c1..c12, 10 ms hop) of a waveform at DTW_RATE, trimmed of
    silence and normalised per utterance (mean and variance), so loudness and channel drop out."""
    import librosa

    wave = waveform.trim_silence(wave, sr=DTW_RATE)
    m = librosa.feature.mfcc(y=wave, sr=DTW_RATE, n_mfcc=13, n_fft=256, hop_length=80, n_mels=40)[1:].T
    return (m - m.mean(0)) / (m.std(0) + 1e-6)


def mfcc(path: Path) -> np.ndarray:
    """`mfcc_features` of an audio file (read at DTW_RATE whatever its own rate)."""
    return mfcc_features(waveform.load_audio(path, DTW_RATE))


def dtw_cost(a: np.ndarray, b: np.ndarray) -> float:
    """Cost of the best warping of (frames, dims) `a` onto `b`, per step of the path (so a long
    template is not penalised for its length)."""
    import librosa

    d, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean", backtrack=True)
    return float(d[-1, -1] / len(path))


@dataclass
class DTWTemplates:
    """1-nearest-template classifier over (features, digit) templates."""

    templates: list[tuple[np.ndarray, int]]

    def __post_init__(self):
        if not self.templates:
            raise AudreyError("DTW needs at least one template")

    def classify(self, x: np.ndarray) -> int:
        costs = [dtw_cost(x, t) for t, _ in self.templates]
        return self.templates[int(np.argmin(costs))][1]

    def accuracy(self, tests: list[tuple[np.ndarray, int]]) -> tuple[float, float]:
        """(accuracy, ms per test clip) on (features, digit) pairs."""
        t0 = time.perf_counter()
        right = sum(self.classify(x) == y for x, y in tests)
        return right / len(tests), 1000 * (time.perf_counter() - t0) / len(tests)
