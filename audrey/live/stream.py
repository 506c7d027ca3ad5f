"""Audio in, digits out: the pipeline `audrey listen` (live) and `audrey transcribe` (files) share.

`DigitStream` is fed blocks of any size at any sample rate. The one `Segmenter` (audrey.audio.vad) finds
each spoken word; as soon as a word has ended, its audio goes through the one classifier call
(`Judge.judge`: classifier plus rejection, audrey.live.judge). Out come events:

    digit      a digit was said: digit, calibrated confidence, start/end, the string so far
    rejected   speech or a noise that is not a digit (a word, a cough), with the reason
    string     digits said in one breath, closed by a pause longer than `string_gap`

Grouping: digits belong to one string while the pauses between them stay under `string_gap`
(0.9 s: people read "4 2 7" with pauses up to ~0.6 s, and take a breath between groups). A string
closes as soon as that much silence has followed its last digit, or at `MAX_STRING_DIGITS`.
Rejected segments neither add to a string nor break it (a cough inside a phone number): the time
they take is not pause, so a digit the rejection refused does not split "5283180" into "52" and
"3180" (before this, 8 rejected digits split or cut 8 of 150 clean benchmark strings).

Memory is bounded: the segmenter keeps at most vad.LIVE.max_seconds of audio, the stream only the
digits of the open string. `transcribe_file` reads a file in blocks through the same class
(`feed_file`, which the CTC engine's stream shares), so a recording of any length takes constant
memory, and what it reports for a file is what `listen` prints when the file is played into the
microphone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audrey.audio.waveform import open_audio, resample
from audrey.errors import AudreyError
from audrey.audio.vad import Segment, live_segmenter, prime_floor_db
from audrey.live.chunks import Chunk, Chunker

STRING_GAP_SECONDS = 0.9  # a pause this long closes the string
MAX_STRING_DIGITS = 32  # a string this long is closed anyway
PRIME_SECONDS = 30.0  # transcribe: the noise floor starts from this much of the file's beginning


@dataclass
class Event:
    kind: str  # "digit" | "rejected" | "string"
    start: float  # seconds from the start of the stream: speech start
    end: float  # speech end
    digit: int | None = None  # digit: the digit; rejected: the classifier's best guess
    confidence: float | None = None
    string: str = ""  # digit: the open string so far; string: the whole string
    reason: str | None = None  # rejected: why
    p_digit: float | None = None  # the rejection's detector: probability that this is a digit at all
    distance: float | None = None
    hiss_db: float | None = None  # wideband input: the hiss at its start (audrey.live.hiss.onset_hiss_db)
    phone_match: float | None = None  # the rejection's phone recogniser: match to the digit's phones (0 = best)
    heard: str | None = None  # the phones it sounds like, e.g. "h aI"
    string_p: float | None = None  # --confirm: the digit-string model's posterior for the digit (audrey.live.confirm)
    digits: list["Event"] = field(default_factory=list)  # string: its digit events
    latency: float | None = None  # live: seconds from the capture of the speech end to this event
    observation: object | None = None  # `listen --observe`: an audrey.observe.observer.Observation (logit lens, OOD)

    def to_dict(self) -> dict:
        out: dict = {"event": self.kind, "start": round(self.start, 3), "end": round(self.end, 3)}
        if self.kind == "digit":
            out.update(digit=self.digit, confidence=round(self.confidence, 4), string=self.string)
        elif self.kind == "rejected":
            out.update(reason=self.reason, best_digit=self.digit, confidence=round(self.confidence, 4))
        else:
            out.update(string=self.string, digits=[{"digit": d.digit, "confidence": round(d.confidence, 4),
                                                    "start": round(d.start, 3), "end": round(d.end, 3)} for d in self.digits])
        if self.kind != "string":
            if self.p_digit is not None:
                out["p_digit"] = round(self.p_digit, 4)
            if self.distance is not None:
                out["distance"] = round(self.distance, 2)
            if self.hiss_db is not None:
                out["hiss_db"] = round(self.hiss_db, 1)
            if self.phone_match is not None:
                out["phone_match"] = round(self.phone_match, 2)
            if self.heard is not None:
                out["heard"] = self.heard
            if self.string_p is not None:
                out["string_p"] = round(self.string_p, 4)
        if self.latency is not None:
            out["latency_ms"] = round(self.latency * 1000, 1)
        if self.observation is not None:
            out["observe"] = self.observation.to_dict()
        return out


class DigitStream:
    """Feed blocks with `feed()` (any size, at `rate`); `flush()` at the end. Both return events."""

    def __init__(self, judge, rate: int, string_gap: float = STRING_GAP_SECONDS, initial_floor_db: float | None = None,
                 observer=None, confirm=None):
        """`observer`: an audrey.observe.observer.Observer; each digit and rejection then carries what it saw.
        `confirm`: an audrey.live.confirm.StringCheck; the words are then judged a stretch of speech at a
        time (an audrey.live.chunks Chunk, closed by a `string_gap` pause), once the digit-string model has
        read it, and a digit it does not hear is not a digit."""
        self.observer = observer
        if string_gap <= 0:
            raise AudreyError(f"--string-gap {string_gap}: must be more than 0 seconds")
        self.judge = judge
        self.rate = int(rate)
        self.confirm = confirm
        self.chunker = Chunker(self.rate, string_gap, initial_floor_db) if confirm is not None else None
        self.segmenter = self.chunker.segmenter if self.chunker else live_segmenter(self.rate, initial_floor_db)
        self.gap = int(round(string_gap * self.rate))
        self.fed = 0  # samples fed
        self.open: list[Event] = []  # digits of the open string
        self._last_end = 0  # sample index where the open string's last sound (digit or rejected) ended

    @property
    def level_db(self) -> float:
        return self.segmenter.level_db

    @property
    def floor_db(self) -> float:
        return self.segmenter.floor_db if self.segmenter.floor_db is not None else -90.0

    @property
    def in_speech(self) -> bool:
        return self.segmenter.in_speech

    @property
    def partial(self) -> str:
        return "".join(str(e.digit) for e in self.open)

    def feed(self, block: np.ndarray, captured: float | None = None) -> list[Event]:
        """`captured`: time.monotonic() when the block's last sample was captured (live input);
        digit events then carry their latency."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self.fed += len(block)
        events = []
        if self.chunker is not None:
            for chunk in self.chunker.feed(block):
                events += self._chunk(chunk, captured)
        else:
            for seg in self.segmenter.feed(block):
                events += self._segment(seg, self.judge.judge([seg.audio], [seg.speech_seconds], self.rate)[0], captured)
        events += self._close_if_quiet()
        return events

    def flush(self) -> list[Event]:
        events = []
        if self.chunker is not None:
            for chunk in self.chunker.flush():
                events += self._chunk(chunk, None)
        else:
            for seg in self.segmenter.flush():
                events += self._segment(seg, self.judge.judge([seg.audio], [seg.speech_seconds], self.rate)[0], None)
        return events + self._close()

    def _chunk(self, chunk: Chunk, captured: float | None) -> list[Event]:
        """--confirm: a closed stretch of speech, its words judged together and checked by the string model."""
        words = list(chunk.segments)
        if not words:
            return []
        verdicts = self.judge.judge([w.audio for w in words], [w.speech_seconds for w in words], self.rate)
        verdicts = self.confirm.apply(verdicts, self.confirm.word_posteriors(chunk, words))
        events = []
        for w, v in zip(words, verdicts):
            events += self._segment(w, v, captured)
        return events

    def _segment(self, seg: Segment, verdict, captured: float | None) -> list[Event]:
        start, end = seg.speech_start / self.rate, seg.speech_end / self.rate
        latency = None
        if captured is not None:  # measured before observing: --observe's extra pass is not recognition
            latency = time.monotonic() - (captured - (self.fed - seg.speech_end) / self.rate)
        seen = None
        if self.observer is not None:
            seen = self.observer.observe_wave(resample(seg.audio, self.rate, self.judge.sample_rate))
        scores = {k: getattr(verdict, k) for k in ("p_digit", "distance", "hiss_db", "phone_match", "heard", "string_p")}
        if not verdict.accepted:
            if self.open and not seg.forced:  # a sound inside the string (not endless noise): not a pause
                self._last_end = max(self._last_end, seg.speech_end)
            return [Event("rejected", start, end, verdict.digit, verdict.confidence, reason=verdict.reason,
                          latency=latency, observation=seen, **scores)]
        events = []
        if self.open and seg.speech_start - self._last_end >= self.gap:
            events += self._close()
        digit = Event("digit", start, end, verdict.digit, verdict.confidence, latency=latency, observation=seen, **scores)
        self.open.append(digit)
        self._last_end = seg.speech_end
        digit.string = self.partial
        events.append(digit)
        if len(self.open) >= MAX_STRING_DIGITS:
            events += self._close()
        return events

    def _close_if_quiet(self) -> list[Event]:
        if self.open and not self.segmenter.in_speech and self.fed - self._last_end >= self.gap:
            return self._close()
        return []

    def _close(self) -> list[Event]:
        if not self.open:
            return []
        digits, self.open = self.open, []
        return [Event("string", digits[0].start, digits[-1].end, string="".join(str(d.digit) for d in digits),
                      confidence=min(d.confidence for d in digits), digits=digits)]


# --- offline -------------------------------------------------------------------------------------


@dataclass
class Transcript:
    path: Path
    seconds: float
    rate: int
    events: list[Event]

    @property
    def strings(self) -> list[Event]:
        return [e for e in self.events if e.kind == "string"]

    @property
    def text(self) -> str:
        """The strings, space-separated: "427 95"."""
        return " ".join(e.string for e in self.strings)

    def to_dict(self) -> dict:
        return {
            "file": str(self.path),
            "seconds": round(self.seconds, 3),
            "text": self.text,
            "strings": [e.to_dict() for e in self.strings],
            "rejected": [e.to_dict() for e in self.events if e.kind == "rejected"],
        }


def _mono(block: np.ndarray, path: Path) -> np.ndarray:
    block = block.mean(axis=1) if block.ndim == 2 else block
    if not np.isfinite(block).all():
        raise AudreyError(f"{path}: holds NaN or infinite samples; the file is corrupt")
    return block.astype(np.float32, copy=False)


def feed_file(path: Path, make_stream, block_seconds: float = 1.0) -> Transcript:
    """A recording of any length read in blocks through a stream: `make_stream(rate, initial_floor_db)`
    returns an object with `feed(block) -> events` and `flush() -> events` (DigitStream, or
    audrey.live.ctc_transcribe.CTCStream).

    The noise floor starts from the first PRIME_SECONDS (vad.prime_floor_db, as vad.segment does for
    a whole recording): a file may begin mid-word, where a live stream would have heard the room first."""
    path = Path(path)
    with open_audio(path) as fh:
        rate = fh.samplerate
        head = _mono(fh.read(min(fh.frames, int(PRIME_SECONDS * rate)), dtype="float32", always_2d=True), path)
        floor = prime_floor_db(head, rate)
        fh.seek(0)
        stream = make_stream(rate, floor)
        events = []
        block = max(1, int(block_seconds * rate))
        fed = 0
        while True:
            try:
                data = fh.read(block, dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudreyError(f"{path}: unreadable after {fed / rate:.1f} s ({str(exc).splitlines()[0]})") from None
            if len(data) == 0:
                break
            fed += len(data)
            events += stream.feed(_mono(data, path))
        events += stream.flush()
    return Transcript(path, fed / rate, rate, events)


def transcribe_file(path: Path, judge, string_gap: float = STRING_GAP_SECONDS, block_seconds: float = 1.0,
                    confirm=None) -> Transcript:
    """Every digit string in a recording of any length, segment by segment through `DigitStream`
    (with `confirm`, an audrey.live.confirm.StringCheck, a stretch of speech at a time)."""
    return feed_file(path, lambda rate, floor: DigitStream(judge, rate, string_gap, initial_floor_db=floor, confirm=confirm),
                     block_seconds)
