"""Digit clips cut out of connected speech (AN4, alphanumeric) by forced alignment, kept only where confident.

The method, per utterance (16 kHz 16-bit mono, what PocketSphinx's en-us model was trained on):
1. Forced alignment with PocketSphinx (CMU's en-us acoustic model and dictionary, trained on real
   speech): a finite-state grammar that is exactly the transcript's words in order, with the optional
   silences and noises PocketSphinx inserts between them (`silprob` raised from 0.005 to 0.5: the pauses
   between digits then become silences instead of being absorbed into a neighbouring word, which cut
   the synthetic-string boundary errors over 60 ms from 17 to 9 of 60 and agreed better with the starter
   model on alphanumeric). Each word's frames and acoustic score come from `Decoder.seg()`. (The
   phone-level second pass, `set_alignment`, was tried: it fails outright on ~4% of AN4 utterances.)
2. A rival decode per digit: the same grammar with that one word opened to every digit word ("zero",
   "oh", "one" .. "nine"), the rest of the transcript held fixed. If PocketSphinx then hears another
   digit in that place, the transcript and the audio disagree there (or the alignment is off).
3. The confidence rule (`ConfidenceRule.refusal`) on what was measured: the rival decode chose the
   transcript's digit; the word lasts as long as a digit can (0.12 .. 1.0 s); it is not squeezed to the
   HMM minimum of 3 frames per phone (the alignment's symptom of a word that is not there); its acoustic
   score per frame is not far below what real digits score (`min_score_per_frame`).

Pronunciations: every AN4 word is in CMUdict, but the letter "A" is listed as the article /AH/ first;
AN4's letters are spelled, so "a" is aligned as the dictionary's "a(2)" /EY/. The other letters'
dictionary entries are their spelled names already ("o" /OW/, "x" /EH K S/). A digit 0 is "zero" or
"oh": AN4's transcripts say which; the alphanumeric corpus only knows the number asked for, so there
each 0 may be either and the alignment picks.

The corpus-level command (cache, clips, manifest, plots) is audrey.data.align_run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

import numpy as np

from audrey import DIGIT_WORDS
from audrey.data.utterances import Utterance, digit_of
from audrey.errors import AudreyError

ALIGN_RATE = 16000  # Hz: the en-us acoustic model's rate
FRAME_RATE = 100  # PocketSphinx frames per second
FRAME_SAMPLES = ALIGN_RATE // FRAME_RATE
HMM_MIN_FRAMES = 3  # frames per phone at the least: the en-us model's phones are 3-state left-to-right HMMs
FADE_SECONDS = 0.005  # a cut clip fades in and out over this long, so its edges do not click
SILENCE_PROBABILITY = 0.5  # PocketSphinx's prior for a silence between words (its default 0.005); see above
ALIGNER_VERSION = 1  # bump when what is measured changes: it is part of the cache key
UNDERFLOW = -1e9  # the log score of a segment whose likelihood underflows to 0 (refused as weak)

# Transcript words whose dictionary entry is another pronunciation than the first one listed.
PRONUNCIATIONS = {"a": "a(2)"}  # the spelled letter /EY/, not the article /AH/
ZERO_WORDS = ("zero", "oh")
DIGIT_CHOICES = ZERO_WORDS + DIGIT_WORDS[1:]  # every word that says a digit
FILLERS = ("<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]")


@dataclass(frozen=True)
class ConfidenceRule:
    """When an aligned digit is trusted enough to become a clip. The defaults come from aligning all 574
    AN4 + alphanumeric utterances with digits, and a third of them again with every digit replaced."""

    min_seconds: float = 0.12  # the shortest 1% of digits aligned to their true transcripts
    max_seconds: float = 1.0  # a digit said slowly in isolation lasts ~0.6 s
    squeeze_frames: int = 2  # refused when frames <= 3 * phones + this: squeezed to the HMM minimum
    # Acoustic log-likelihood per 10 ms frame (nats, PocketSphinx normalises each frame by its best
    # senone, so 0 is a perfect fit). Measured on 574 AN4 + alphanumeric utterances: -3.0 keeps 96.7%
    # of the digits aligned to their true transcripts and 26% of digits aligned to wrong ones.
    min_score_per_frame: float = -3.0

    def refusal(self, digit: "AlignedDigit") -> str | None:
        """Why `digit` is refused, in a few words, or None when it is kept."""
        if digit_of(digit.rival or "") != digit.digit:  # "oh" for "zero" is the same digit
            return f"rival: heard {digit.rival!r} when open to every digit" if digit.rival else "rival decode failed"
        seconds = digit.seconds
        if seconds < self.min_seconds:
            return f"too short ({seconds:.2f} s)"
        if seconds > self.max_seconds:
            return f"too long ({seconds:.2f} s)"
        if digit.frames <= HMM_MIN_FRAMES * digit.phones + self.squeeze_frames:
            return f"squeezed ({digit.frames} frames for {digit.phones} phones)"
        if digit.score_per_frame is None:
            return "no score (PocketSphinx scores the last segment with the one before it)"
        if digit.score_per_frame < self.min_score_per_frame:
            return f"weak score ({digit.score_per_frame:.2f}/frame)"
        return None


@dataclass
class AlignedWord:
    word: str  # as aligned: the dictionary entry ("a(2)", "zero(2)", "<sil>")
    start: int  # first frame
    end: int  # one past the last frame
    score: float | None  # acoustic log-likelihood (natural log), higher is better; None where PocketSphinx gives none
    phones: int  # in its pronunciation

    @property
    def base(self) -> str:
        return base_word(self.word)

    @property
    def is_filler(self) -> bool:
        return self.word in FILLERS


@dataclass
class AlignedDigit:
    index: int  # position of the word in the transcript
    word: str  # the word said ("oh" where an alphanumeric speaker said "oh" for 0)
    digit: int
    start: int
    end: int
    score_per_frame: float | None  # None: PocketSphinx gave the word no score of its own (see Aligner.align)
    phones: int
    rival: str | None  # the digit word PocketSphinx hears here when the place is open to every digit

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def seconds(self) -> float:
        return self.frames / FRAME_RATE


@dataclass
class UtteranceAlignment:
    """What was measured for one utterance (cached as JSON)."""

    words: list[AlignedWord]  # every aligned word with the silences, in order; [] when alignment failed
    digits: list[AlignedDigit]
    failure: str | None = None  # why no alignment, when none

    def to_dict(self) -> dict:
        return {"words": [asdict(w) for w in self.words], "digits": [asdict(d) for d in self.digits], "failure": self.failure}

    @classmethod
    def from_dict(cls, raw: dict) -> "UtteranceAlignment":
        return cls([AlignedWord(**w) for w in raw["words"]], [AlignedDigit(**d) for d in raw["digits"]], raw["failure"])


def base_word(entry: str) -> str:
    """"zero(2)" -> "zero": a dictionary entry without its pronunciation variant."""
    return entry.split("(")[0]


def to_pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1.0, 1.0 - 1 / 32768) * 32768).astype("<i2").tobytes()


class Aligner:
    """PocketSphinx with its bundled en-us model, set up for forced alignment (one per process: the
    model takes a moment to load)."""

    def __init__(self):
        try:
            import pocketsphinx
        except ImportError:
            raise AudreyError("pocketsphinx is not installed; install it with `pip install 'pocketsphinx>=5'`") from None
        self.version = getattr(pocketsphinx, "__version__", "") or _package_version("pocketsphinx")
        # lm=None: no language model; every search is a grammar made here. Logs off: one line per error is ours.
        self.decoder = pocketsphinx.Decoder(lm=None, loglevel="FATAL", samprate=ALIGN_RATE, silprob=SILENCE_PROBABILITY)

    @property
    def settings(self) -> dict:
        """What the measurements depend on besides the audio and words (part of the cache key)."""
        return {"aligner": "pocketsphinx", "version": self.version, "model": "en-us", "aligner_version": ALIGNER_VERSION,
                "rate": ALIGN_RATE, "silprob": SILENCE_PROBABILITY, "pronunciations": PRONUNCIATIONS}

    def choices(self, words: Sequence[str], zero_either: bool) -> list[tuple[str, ...]]:
        """The grammar's words per place: the dictionary entry, and both 0 words where either may be said."""
        out = []
        for w in words:
            if zero_either and digit_of(w) == 0:
                out.append(ZERO_WORDS)
            else:
                out.append((PRONUNCIATIONS.get(w, w),))
        return out

    def unknown_words(self, words: Iterable[str]) -> list[str]:
        return sorted({w for w in words if self.decoder.lookup_word(PRONUNCIATIONS.get(w, w)) is None})

    def _decode(self, pcm: bytes, places: Sequence[tuple[str, ...]], name: str) -> list | None:
        """Decode with a grammar that is `places` in order (any one word of each); its segments or None."""
        transitions = [(i, i + 1, 1.0 / len(ws), w) for i, ws in enumerate(places) for w in ws]
        fsg = self.decoder.create_fsg(name, 0, len(places), transitions)
        self.decoder.add_fsg(name, fsg)
        self.decoder.activate_search(name)
        try:
            self.decoder.start_utt()
            self.decoder.process_raw(pcm, full_utt=True)
            self.decoder.end_utt()
        except RuntimeError:
            return None
        if self.decoder.hyp() is None:
            return None
        segments = list(self.decoder.seg())
        said = [base_word(s.word) for s in segments if s.word not in FILLERS]
        # PocketSphinx gives back a partial path when it cannot reach the grammar's end: not an alignment.
        if len(said) != len(places) or any(w not in map(base_word, ws) for w, ws in zip(said, places)):
            return None
        return segments

    def align(self, audio: np.ndarray, words: Sequence[str], zero_either: bool = False) -> UtteranceAlignment:
        """Align 16 kHz float audio to its transcript `words` (lower case) and measure each digit."""
        unknown = self.unknown_words(words)
        if unknown:
            return UtteranceAlignment([], [], f"not in the PocketSphinx dictionary: {', '.join(unknown)}")
        if len(audio) < FRAME_SAMPLES * HMM_MIN_FRAMES * len(words):
            return UtteranceAlignment([], [], "too short for its words")
        pcm = to_pcm16(audio)
        places = self.choices(words, zero_either)
        segments = self._decode(pcm, places, "forced")
        if segments is None:
            return UtteranceAlignment([], [], "no alignment reaches the end of the transcript")
        aligned = []
        for k, seg in enumerate(segments):
            # PocketSphinx 5 reports the last segment with the acoustic score of the one before it
            # (seen on every utterance: usually a trailing silence), so that score is no measurement.
            score = float(np.log(seg.ascore)) if seg.ascore > 0 else UNDERFLOW  # a score too low for a double
            if k == len(segments) - 1 and k > 0 and seg.ascore == segments[k - 1].ascore:
                score = None
            phones = len((self.decoder.lookup_word(seg.word) or "").split()) if seg.word not in FILLERS else 1
            aligned.append(AlignedWord(seg.word, seg.start_frame, seg.end_frame + 1, score, phones))
        spoken = [w for w in aligned if not w.is_filler]
        digits = []
        for i, (w, a) in enumerate(zip(words, spoken)):
            digit = digit_of(w)
            if digit is None:
                continue
            per_frame = None if a.score is None else a.score / max(1, a.end - a.start)
            digits.append(AlignedDigit(i, a.base, digit, a.start, a.end, per_frame, a.phones, self._rival(pcm, places, i)))
        return UtteranceAlignment(aligned, digits)

    def _rival(self, pcm: bytes, places: list[tuple[str, ...]], i: int) -> str | None:
        opened = places[:i] + [DIGIT_CHOICES] + places[i + 1:]
        segments = self._decode(pcm, opened, "rival")
        if segments is None:
            return None
        return [base_word(s.word) for s in segments if s.word not in FILLERS][i]


def _package_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def cut_clip(audio: np.ndarray, digit: AlignedDigit) -> np.ndarray:
    clip = audio[digit.start * FRAME_SAMPLES: digit.end * FRAME_SAMPLES].astype(np.float32).copy()
    fade = min(len(clip) // 2, int(FADE_SECONDS * ALIGN_RATE))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade, dtype=np.float32)
        clip[:fade] *= ramp
        clip[-fade:] *= ramp[::-1]
    return clip


@dataclass
class DigitCut:
    """One digit of one utterance, kept (a clip was written) or refused (and why)."""

    utterance: Utterance
    digit: AlignedDigit | None  # None when the utterance could not be aligned
    index: int
    label: int
    take: int
    refusal: str | None

    @property
    def kept(self) -> bool:
        return self.refusal is None

    def clip_name(self) -> str:
        return f"{self.label}_{self.utterance.speaker}_{self.take}.wav"

    def to_dict(self) -> dict:
        d = self.digit
        out = {"index": self.index, "digit": self.label, "word": d.word if d else self.utterance.words[self.index],
               "kept": self.kept, "reason": self.refusal,
               "clip": f"{self.utterance.speaker}/{self.clip_name()}" if self.kept else None}
        if d:
            out.update(start=round(d.start / FRAME_RATE, 3), end=round(d.end / FRAME_RATE, 3),
                       score_per_frame=None if d.score_per_frame is None else round(d.score_per_frame, 3),
                       phones=d.phones, rival=d.rival)
        return out


def decide(results: list[tuple[Utterance, UtteranceAlignment, bool]], rule: ConfidenceRule) -> list[DigitCut]:
    """Apply the confidence rule to every digit; takes numbered by the utterance's place among its
    speaker's utterances and the word's place in it, so a name never changes between runs."""
    cuts, ordinal = [], Counter()
    for u, result, _ in results:
        n = ordinal[u.speaker]
        ordinal[u.speaker] += 1
        if result.failure:
            for i, w in enumerate(u.words):
                if digit_of(w) is not None:
                    cuts.append(DigitCut(u, None, i, digit_of(w), n * 100 + i, f"not aligned: {result.failure}"))
            continue
        for d in result.digits:
            cuts.append(DigitCut(u, d, d.index, d.digit, n * 100 + d.index, rule.refusal(d)))
    return cuts
