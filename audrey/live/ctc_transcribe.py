"""`audrey transcribe --engine ctc`: a recording's digit strings read by the digit-string (CTC) model.

The recording is cut at pauses into chunks (audrey.live.chunks: the segmenter `transcribe` uses,
pauses of `string_gap` end a chunk), and each chunk is decoded whole by the model
(audrey.models.ctc_file), so digits said without a pause between them ("four-two-seven") are read
as they were said, where the segments engine must find a pause between every two digits. One chunk
is one string. Each chunk is decoded with PAD_SECONDS of silence added either side: the model hears
a word at the very edge of its input badly, and a recording may start or end close to a word
(FSDD's clips do; benchmarks/isolated_ctc.py and strings_ctc.py measure both). The model's "other"
token (speech that is not a digit) prints nothing and is listed as rejected, like the segments
engine's "not a digit".

With `digits` (a number of known length: `--digits 10` for a phone number said in groups), the
chunks are gathered until their best-path reading holds that many digits (or the input ends), and
then read as exactly that many: CTC's length-constrained decoding (ctc_decode.constrained) over the
gathered chunks' log-probabilities laid end to end, one blank frame between chunks so a digit
ending one chunk and the same digit starting the next stay two digits. One number is one string,
printed as soon as the chunk that completes it closes; a recording that holds several numbers
gives several. A chunk in which no digit is heard starts no number (a cough before or after one
is listed as rejected, not read as digits); inside a number it is gathered too.

Out comes an audrey.live.stream.Transcript of the same Events the segments engine gives, so the
JSON (and every script reading it) is the same. A digit's times are the frames where the model
heard it (CTC fires on a short stretch inside the word), absolute in the file.

`CTCStream` is the whole engine, block by block: `transcribe` feeds it a file (stream.feed_file),
`listen --engine ctc` the microphone (audrey.live.listen), so both print the same strings for the
same audio. The one difference is where the noise floor starts: a file primes it from its beginning
(stream.feed_file), the microphone learns it from the room, so a recording that starts mid-word may
be cut differently at its very start. Live, a string comes when its chunk closes: `string_gap`
after its last word, plus the time one model pass over the chunk takes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audrey.errors import AudreyError
from audrey.live.chunks import Chunk, Chunker
from audrey.live.stream import STRING_GAP_SECONDS, Event, Transcript, feed_file
from audrey.models.ctc import BLANK, OTHER, digit_token
from audrey.models.ctc_decode import MAX_DIGITS, Token, constrained, digits_of, greedy
from audrey.models.ctc_file import CTCBundle

SEPARATOR_LOG_PROB = -1e4  # a frame between chunks: blank, nothing else
PAD_SECONDS = 0.5  # silence added either side of every chunk: the model needs a pause around a word to hear it


ENGINES = ("segments", "ctc")  # --engine of `transcribe` and `listen`


def check_digits(digits: int | None) -> None:
    if digits is not None and not 1 <= digits <= MAX_DIGITS:
        raise AudreyError(f"--digits {digits}: expected a number of digits from 1 to {MAX_DIGITS}")


def confirm_default(confirm: bool | None, weights) -> bool:
    """Whether `transcribe` and `listen` (--engine segments) check digits with the digit-string model
    (audrey.live.confirm): as told (--confirm / --no-confirm), else unless personal weights are used,
    whose model knows the voice better than the string model does."""
    return weights is None if confirm is None else bool(confirm)


def check_engine(engine: str, segments_options: dict, ctc_options: dict) -> bool:
    """One line for an unknown --engine, or an option given that only the other engine has
    (option name -> value; None or False: not given); --digits checked for the ctc engine. Returns
    whether the segments engine checks its digits with the digit-string model (audrey.live.confirm:
    --confirm / --no-confirm as given in `segments_options`, else unless --weights), which is what
    --ctc-model then names."""
    if engine not in ENGINES:
        raise AudreyError(f"--engine {engine}: expected segments or ctc")
    given = lambda options: [name for name, value in options.items() if value not in (None, False)]  # noqa: E731
    if engine == "ctc":
        for name in given(segments_options):
            raise AudreyError(f"{name} is for --engine segments (the digit classifier); --engine ctc reads with --ctc-model")
        check_digits(ctc_options.get("--digits"))
        return False
    confirm = confirm_default(segments_options.get("--confirm"), segments_options.get("--weights"))
    for name in given(ctc_options):
        if name == "--ctc-model" and confirm:
            continue
        if name == "--ctc-model":
            raise AudreyError("--ctc-model needs --engine ctc, or --confirm (the digit-string model checking the "
                              "segments engine's digits)")
        raise AudreyError(f"{name} needs --engine ctc: the segments engine reads one digit per stretch of speech "
                          "and cannot hold a recording to a number of digits")
    return confirm


@dataclass(frozen=True)
class Decoded:
    """One chunk's log-probabilities and where they lie in the file."""

    lp: np.ndarray  # (frames, tokens) of the chunk with PAD_SECONDS of silence either side
    offset: float  # seconds in the file of the padded chunk's first frame
    start: float  # seconds in the file of the chunk's first and one past its last sample:
    end: float  # token times are kept inside (a token may fire in the padding)


def decode_chunk(bundle: CTCBundle, chunk: Chunk) -> Decoded:
    """The model over one chunk with PAD_SECONDS of silence either side."""
    pad = np.zeros(int(round(PAD_SECONDS * chunk.rate)), np.float32)
    lp = bundle.log_probs(np.concatenate([pad, chunk.audio, pad]), chunk.rate).numpy()
    return Decoded(lp, (chunk.start - len(pad)) / chunk.rate, chunk.start / chunk.rate, chunk.end / chunk.rate)


@dataclass(frozen=True)
class Heard:
    """One token of a chunk: frames first..last (one past) of its log-probabilities."""

    token: Token
    chunk: Decoded
    first: int
    last: int

    def times(self, frame_seconds: float) -> tuple[float, float]:
        c = self.chunk
        start = min(max(c.offset + self.first * frame_seconds, c.start), c.end)
        return start, min(max(c.offset + self.last * frame_seconds, start), c.end)


def rejected_event(heard: Heard, frame_seconds: float) -> Event:
    """Speech the model called "not a digit", with the digit it was nearest to over its frames."""
    probs = np.exp(heard.chunk.lp[heard.first:heard.last, digit_token(0):digit_token(9) + 1]).mean(axis=0)
    best = int(np.argmax(probs))
    return Event("rejected", *heard.times(frame_seconds), best, float(probs[best]),
                 reason=f"not a digit (the digit-string model heard other speech, p {heard.token.confidence:.2f})")


def string_events(heard: list[Heard], frame_seconds: float) -> list[Event]:
    """Events of one string's tokens: a digit event per digit (with the string so far), a rejected
    event per "other", then the string."""
    events, digits = [], []
    for h in heard:
        if h.token.token == OTHER:
            events.append(rejected_event(h, frame_seconds))
            continue
        digits.append(Event("digit", *h.times(frame_seconds), h.token.digit, h.token.confidence))
        digits[-1].string = "".join(str(d.digit) for d in digits)
        events.append(digits[-1])
    if digits:
        events.append(Event("string", digits[0].start, digits[-1].end, string=digits[-1].string,
                            confidence=min(d.confidence for d in digits), digits=digits))
    return events


class CTCStream:
    """Feed blocks with `feed()` (any size, at `rate`); `flush()` at the end. Both return events: a
    closed chunk's digit and rejected events and its string (with `digits`, a number's, once it is
    complete: see the module)."""

    def __init__(self, bundle: CTCBundle, rate: int, string_gap: float = STRING_GAP_SECONDS,
                 initial_floor_db: float | None = None, digits: int | None = None):
        check_digits(digits)
        self.bundle = bundle
        self.rate = int(rate)
        self.digits = digits
        self.frame_seconds = bundle.frame_seconds
        self.chunker = Chunker(self.rate, string_gap, initial_floor_db)
        self.gathered: list[Decoded] = []  # with `digits`: the chunks of the number being read
        self.heard = ""  # their best-path digits: the number is read once this many are heard

    # what `listen`'s status line shows
    @property
    def fed(self) -> int:
        return self.chunker.fed

    @property
    def level_db(self) -> float:
        return self.chunker.segmenter.level_db

    @property
    def floor_db(self) -> float:
        floor = self.chunker.segmenter.floor_db
        return floor if floor is not None else -90.0

    @property
    def in_speech(self) -> bool:
        return self.chunker.segmenter.in_speech

    @property
    def partial(self) -> str:
        """The digits heard so far of a number not complete yet (with `digits`); else "": an open
        chunk is read only when it closes."""
        return self.heard

    def feed(self, block: np.ndarray, captured: float | None = None) -> list[Event]:
        """`captured`: time.monotonic() when the block's last sample was captured (live input);
        the events then carry their latency from the capture of their chunk's last speech."""
        return self._chunks(self.chunker.feed(block), captured)

    def flush(self) -> list[Event]:
        return self._chunks(self.chunker.flush(), None) + self._number()

    def _chunks(self, chunks: list[Chunk], captured: float | None) -> list[Event]:
        out = []
        fs = self.frame_seconds
        for chunk in chunks:
            d = decode_chunk(self.bundle, chunk)
            tokens = greedy(d.lp, fs)
            heard = [Heard(t, d, round(t.start / fs), round(t.end / fs)) for t in tokens]
            if self.digits is None:
                events = string_events(heard, fs)
            elif not self.gathered and not digits_of(tokens):  # no number begins with a chunk of no digit
                events = string_events(heard, fs)
            else:
                self.gathered.append(d)
                self.heard += digits_of(tokens)
                events = self._number() if len(self.heard) >= self.digits else []
            if captured is not None:
                latency = time.monotonic() - (captured - (self.chunker.fed - chunk.speech_end) / self.rate)
                for e in events:
                    e.latency = latency
            out += events
        return out

    def _number(self) -> list[Event]:
        """Exactly `digits` digits over the gathered chunks' log-probabilities, end to end."""
        if not self.gathered:
            return []
        decoded, self.gathered, self.heard = self.gathered, [], ""
        fs = self.frame_seconds
        separator = np.full((1, decoded[0].lp.shape[1]), SEPARATOR_LOG_PROB)
        separator[0, BLANK] = 0.0
        parts, owner = [], []  # owner[f]: (chunk, frame in the chunk) of frame f of the whole
        for i, d in enumerate(decoded):
            if i:
                parts.append(separator)
                owner.append((decoded[i - 1], len(decoded[i - 1].lp)))
            parts.append(d.lp)
            owner += [(d, f) for f in range(len(d.lp))]
        heard = []
        for t in constrained(np.concatenate(parts), fs, self.digits):
            first, last = round(t.start / fs), round(t.end / fs)
            chunk, f0 = owner[first]  # a token never spans chunks: the separator frame is blank
            heard.append(Heard(t, chunk, f0, f0 + last - first))
        return string_events(heard, fs)


def transcribe_ctc(path: Path, bundle: CTCBundle, string_gap: float = STRING_GAP_SECONDS,
                   digits: int | None = None, block_seconds: float = 1.0) -> Transcript:
    """Every digit string in a recording of any length, read by the digit-string model (see the module)."""
    check_digits(digits)
    return feed_file(path, lambda rate, floor: CTCStream(bundle, rate, string_gap, floor, digits), block_seconds)
