"""A second opinion for the segments engine: the digit-string model reads the whole stretch of speech.

The segments engine judges each word on its own (audrey.live.judge). Heard alone, the letter "A" is
much like "eight", "tree" like "three", "on" like "one". The digit-string model (audrey.models.ctc)
reads the whole stretch of speech between `string_gap` pauses at once (an audrey.live.chunks
Chunk), with the words around it, and has a token for speech that is not a digit. A digit the
segments engine accepted is kept only where that model also hears it: somewhere inside the word's
own time span, its posterior for that digit reaches MIN_STRING_P. Otherwise the word is "not a
digit", with that posterior (`string_p`) and what the model heard there in the reason.

The two models learnt different things from different material (a whole-word classifier on
isolated digits; a sequence model on utterances, strings and other speech), so they rarely make the
same mistake on a word that is not a digit, while both hear a real digit.

MIN_STRING_P belongs to the shipped string model: benchmarks/not_a_digit.py chooses it on real speech
(part C: the threshold that keeps 99% of the right digits of half the speakers the string model never
heard; the other half and Speech Commands words it never trained on test it) and reports what it
costs and buys. Choose it again whenever that model changes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from audrey import DIGIT_WORDS
from audrey.audio.vad import Segment
from audrey.live.chunks import Chunk
from audrey.live.ctc_transcribe import decode_chunk
from audrey.models.ctc import BLANK, digit_token, token_digit
from audrey.models.ctc_file import SHIPPED_CTC, CTCBundle, load_ctc

MIN_STRING_P = 0.3  # the string model's posterior for the digit, at its best frame inside the word


class StringCheck:
    """`word_posteriors(chunk)`: per word of a chunk, the string model's best posterior for each
    token inside the word's span; `apply(verdicts, those)` vetoes the accepted digits it does not hear."""

    def __init__(self, bundle: CTCBundle, min_p: float = MIN_STRING_P):
        self.bundle = bundle
        self.min_p = float(min_p)

    @classmethod
    def from_file(cls, path: Path | None = None) -> "StringCheck":
        """The check with the digit-string model in `path` (default: the bundled one)."""
        return cls(load_ctc(Path(path or SHIPPED_CTC)))

    def word_posteriors(self, chunk: Chunk, words: list[Segment] | None = None) -> list[np.ndarray | None]:
        """Per word (default: the chunk's), the highest posterior of every token over the frames
        inside its speech; None for a word that lies outside the chunk's frames."""
        words = list(chunk.segments if words is None else words)
        if not words:
            return []
        decoded = decode_chunk(self.bundle, chunk)  # as the ctc engine reads a chunk
        probs, offset = np.exp(decoded.lp), decoded.offset
        fs = self.bundle.frame_seconds
        out = []
        for w in words:
            first = max(0, math.floor((w.speech_start / w.rate - offset) / fs))
            last = min(len(probs), math.ceil((w.speech_end / w.rate - offset) / fs))
            out.append(probs[first:last].max(axis=0) if last > first else None)
        return out

    def apply(self, verdicts: list, word_probs: list[np.ndarray | None]) -> list:
        """The verdicts (audrey.live.judge.Verdict) with `string_p` set, and an accepted digit the
        string model does not hear turned into "not a digit"."""
        for v, p in zip(verdicts, word_probs):
            if p is None:
                continue
            v.string_p = float(p[digit_token(v.digit)])
            if v.accepted and v.string_p < self.min_p:
                v.accepted = False
                v.reason = (f"not {DIGIT_WORDS[v.digit]} to the digit-string model, which heard {heard(p)} there "
                            f"(p {v.string_p:.2f} < {self.min_p:.2f})")
        return verdicts


def heard(word_probs: np.ndarray) -> str:
    """What the string model heard most in a word: a digit's name or "other speech"."""
    best = max((t for t in range(len(word_probs)) if t != BLANK), key=lambda t: word_probs[t])
    digit = token_digit(best)
    return "other speech" if digit is None else DIGIT_WORDS[digit]
