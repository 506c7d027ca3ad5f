"""Streaming voice-activity segmentation: audio blocks in, speech segments out.

One `Segmenter` serves every place Audrey looks for speech: `audrey record` (live, one take at a
time), the quality gate (offline, words inside one take) and `audrey listen` / `audrey transcribe`
(live and offline). Feed it blocks of any size; it works in 10 ms frames and returns a `Segment` as
soon as speech has been quiet for `hangover` seconds, with `margin` seconds of context either side.
What counts as speech differs by use, so each use has its named preset of `SegmenterSettings`
here (RECORDER, GATE, LIVE) and no other place holds segmenter settings.

Decisions are made against an adaptive noise floor rather than a fixed level, so the same settings
work in a quiet room and next to a fan. Memory is bounded: while nothing is said only the pre-roll
(margin) is kept, and a segment is cut at `max_seconds` however long the "speech" goes on.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

FRAME_SECONDS = 0.01  # decisions every 10 ms: finer than any phoneme, cheap to compute
MIN_LEVEL_DB = -60.0  # dBFS; nothing quieter counts as speech, even over digital silence (which has no floor)
START_FRAMES = 3  # 30 ms above start_db before speech starts: a click or a bump is not a word
FLOOR_MIN_DB = -90.0  # digital silence would pull the floor to -inf
FLOOR_FALL = 0.3  # per frame, the floor moves this fraction of the way down to a quieter frame (~30 ms)
FLOOR_RISE_DB_PER_SECOND = 3.0  # ...but climbs slowly: a word barely moves it
FLOOR_WINDOW_SECONDS = 2.0  # ...and never stays below the quietest frame of the last 2 s: speech dips to the
#                             background within that time (before and after a digit, between words), so
#                             a level that never dips for 2 s is a new steady noise (a fan), learnt at once
PRIME_PERCENTILE = 10  # offline, the floor starts at this percentile of frame levels (the quiet part)


@dataclass(frozen=True)
class SegmenterSettings:
    """What one use of the segmenter counts as a stretch of speech (all in seconds or dB)."""

    hangover: float  # quiet this long ends speech: longer than the stop-consonant closures inside a word
    margin: float  # context kept either side, so a trimmed clip never cuts a soft onset or release
    min_speech: float  # shorter segments are dropped: clicks, breaths, a door
    max_seconds: float  # "speech" this long is cut: bounds memory (and is a noise the floor has not learnt yet)
    start_db: float  # a frame this far above the noise floor may be speech
    stop_db: float  # speech goes on while frames stay this far above it (hysteresis: no chatter at the threshold)


# The presets. Each is measured behaviour: the shipped rejection calibration (LIVE), the listen
# benchmark's figures (LIVE) and what `audrey recordings` flags (GATE) were produced with exactly
# these values, so changing one means recalibrating / re-measuring, not just editing a number.

# `audrey record`: one take per prompt, in a quiet room.
RECORDER = SegmenterSettings(
    hangover=0.4,  # quiet this long ends a take: longer than GATE.hangover, so a second word after a short
    #                pause lands in the same take and the gate rejects it
    margin=0.15,
    min_speech=0.08,
    max_seconds=4.0,  # "speech" longer than this is cut and rejected as too long
    start_db=10.0,
    stop_db=6.0,
)

# The quality gate (audrey.audio.gate): the words inside one take, found offline.
GATE = SegmenterSettings(
    hangover=0.15,  # a pause this long splits words; closures inside one digit stay under ~0.1 s
    margin=0.15,
    min_speech=0.08,
    max_seconds=10.0,  # only bounds memory on an odd long file: a recorded take is far shorter
    start_db=10.0,
    stop_db=6.0,
)

# `audrey listen` / `audrey transcribe` (`live_segmenter`) and the rejection's calibration.
LIVE = SegmenterSettings(
    hangover=0.1,  # quiet this long ends a digit: under the shortest pause between digits in a string
    #                (~0.15 s), over the closures inside one ("six", "eight"); it is most of the latency
    #                from the end of a digit to its result
    margin=0.1,  # the classifier re-trims the segment
    min_speech=0.08,
    max_seconds=2.0,  # longer "speech" is cut here and rejected as too long: bounds memory and delay
    # Lower thresholds than the recorder's (10/6 dB), which judge one take in a quiet room: in a digit
    # string at 10 dB SNR those missed 1 digit in 10 and cut others in two. With these, on the listen
    # benchmark's 150 strings in pink noise at 10 dB, missed digits fell from 75 to 35 of 759; with the
    # rejection recalibrated for them (reject.TARGET_ACCEPT), string accuracy rose from 37% to 55% at
    # 10 dB and from 94.7% to 96.0% clean, with false accepts unchanged.
    start_db=7.0,
    stop_db=4.0,
)


@dataclass(frozen=True)
class Segment:
    """One stretch of speech. Sample indices count from the first sample fed to the segmenter."""

    start: int  # first sample of `audio` (margin included)
    end: int  # one past the last sample of `audio`
    speech_start: int  # first sample of the first loud frame
    speech_end: int  # one past the last loud frame
    audio: np.ndarray  # float32, samples start..end
    rate: int
    floor_db: float  # noise floor when speech started: the background the speech stood out from
    peak_db: float  # loudest 10 ms frame
    forced: bool = False  # cut at max_seconds (or at the end of the stream) rather than by a pause

    @property
    def speech_seconds(self) -> float:
        return (self.speech_end - self.speech_start) / self.rate

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / self.rate


def frame_samples(rate: int) -> int:
    """Samples in one FRAME_SECONDS decision frame at `rate`."""
    return max(1, round(rate * FRAME_SECONDS))


def frame_levels(audio: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dBFS of each whole `frame`-sample frame (a partial tail is ignored)."""
    n = len(audio) // frame
    frames = np.asarray(audio[: n * frame], dtype=np.float64).reshape(n, frame)
    return np.maximum(10 * np.log10(np.mean(frames**2, axis=1) + 1e-15), FLOOR_MIN_DB)


class Segmenter:
    """Feed blocks with `feed()`; it returns the segments that ended inside them. `flush()` at the end."""

    def __init__(self, rate: int, settings: SegmenterSettings, initial_floor_db: float | None = None):
        self.rate = rate
        self.settings = settings
        self.start_db, self.stop_db = settings.start_db, settings.stop_db
        self.frame = frame_samples(rate)
        fs = self.frame / rate  # actual frame length in seconds
        self.hangover_frames = max(1, round(settings.hangover / fs))
        self.margin_frames = round(settings.margin / fs)
        self.min_frames = max(1, round(settings.min_speech / fs))
        self.max_frames = max(self.min_frames + 1, round(settings.max_seconds / fs))
        self.rise = FLOOR_RISE_DB_PER_SECOND * fs
        self._recent: deque[float] = deque(maxlen=max(1, round(FLOOR_WINDOW_SECONDS / fs)))  # levels, for the floor
        self.floor_db = initial_floor_db  # None: the first frame sets it
        self.level_db = FLOOR_MIN_DB  # of the latest frame, for level meters
        self.in_speech = False
        self._rest = np.zeros(0, np.float32)  # samples short of a whole frame, kept for the next block
        self._frames: deque[np.ndarray] = deque()  # recent frames: the pre-roll, or the segment so far
        self._first = 0  # frame index of self._frames[0]
        self._next = 0  # index of the next frame to arrive
        self._run = 0  # consecutive frames above the start threshold
        self._speech_start = self._last_loud = 0
        self._start_floor = self._peak = FLOOR_MIN_DB

    @property
    def position(self) -> int:
        """Samples consumed so far (whole frames)."""
        return self._next * self.frame

    def feed(self, block: np.ndarray) -> list[Segment]:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        if len(self._rest):
            block = np.concatenate([self._rest, block])
        n = len(block) // self.frame
        self._rest = block[n * self.frame :].copy()
        out = []
        for frame, level in zip(block[: n * self.frame].reshape(n, self.frame), frame_levels(block, self.frame)):
            seg = self._step(frame, float(level))
            if seg is not None:
                out.append(seg)
        return out

    def flush(self) -> list[Segment]:
        """End of stream: speech still going on ends here (a partial last frame is dropped)."""
        if self.in_speech:
            seg = self._emit(self._next - 1, forced=True)
            return [seg] if seg is not None else []
        return []

    def _step(self, frame: np.ndarray, level: float) -> Segment | None:
        i = self._next
        self._next += 1
        self._frames.append(frame)
        self.level_db = level
        if self.floor_db is None:
            self.floor_db = level
        # The floor follows quiet frames quickly and loud ones slowly, in speech too, and jumps up to a
        # level the input has not dipped below for FLOOR_WINDOW_SECONDS: a steady new noise (a fan
        # switched on) is learnt in seconds instead of being "speech" forever.
        if level < self.floor_db:
            self.floor_db += FLOOR_FALL * (level - self.floor_db)
        else:
            self.floor_db = min(level, self.floor_db + self.rise)
        self._recent.append(level)
        if len(self._recent) == self._recent.maxlen:
            self.floor_db = max(self.floor_db, min(self._recent))
        self.floor_db = max(self.floor_db, FLOOR_MIN_DB)

        if not self.in_speech:
            if level > max(self.floor_db + self.start_db, MIN_LEVEL_DB):
                self._run += 1
            else:
                self._run = 0
            if self._run >= START_FRAMES:
                self.in_speech = True
                self._speech_start = i - self._run + 1
                self._last_loud = i
                self._start_floor = self.floor_db
                self._peak = level
            else:
                # idle: keep only the pre-roll (margin plus the frames that may start speech)
                while len(self._frames) > self.margin_frames + START_FRAMES:
                    self._frames.popleft()
                    self._first += 1
            return None

        self._peak = max(self._peak, level)
        if level > max(self.floor_db + self.stop_db, MIN_LEVEL_DB):
            self._last_loud = i
        if i - self._last_loud >= self.hangover_frames:
            return self._emit(i, forced=False)
        if i - self._speech_start + 1 >= self.max_frames:
            self._last_loud = i
            return self._emit(i, forced=True)
        return None

    def _emit(self, now: int, forced: bool) -> Segment | None:
        """Close the segment; frames after the last loud one stay as pre-roll for the next."""
        self.in_speech = False
        self._run = 0
        first = max(self._first, self._speech_start - self.margin_frames)
        last = min(self._last_loud + self.margin_frames, now)
        frames = list(self._frames)
        audio = np.concatenate(frames[first - self._first : last - self._first + 1])
        # drop everything up to the last loud frame; the quiet tail may hold the next word's onset
        keep = frames[self._last_loud + 1 - self._first :][-(self.margin_frames + START_FRAMES) :]
        self._frames = deque(keep)
        self._first = now + 1 - len(keep)
        if self._last_loud - self._speech_start + 1 < self.min_frames:
            return None
        f = self.frame
        return Segment(
            start=first * f,
            end=(last + 1) * f,
            speech_start=self._speech_start * f,
            speech_end=(self._last_loud + 1) * f,
            audio=audio,
            rate=self.rate,
            floor_db=float(self._start_floor),
            peak_db=float(self._peak),
            forced=forced,
        )


def prime_floor_db(audio: np.ndarray, rate: int) -> float | None:
    """The noise floor to start from when a recording (or its beginning) is at hand: a low percentile
    of its frame levels, so speech that begins at the very first sample is still found (a live
    stream learns the floor as it goes). None when there is not one whole frame."""
    frame = frame_samples(rate)
    if len(audio) < frame:
        return None
    return float(np.percentile(frame_levels(audio, frame), PRIME_PERCENTILE))


def segment(audio: np.ndarray, rate: int, settings: SegmenterSettings) -> list[Segment]:
    """Every speech segment in a whole recording, found by the same streaming `Segmenter`, its
    noise floor primed from the whole recording (prime_floor_db)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    seg = Segmenter(rate, settings, initial_floor_db=prime_floor_db(audio, rate))
    return seg.feed(audio) + seg.flush()


def live_segmenter(rate: int, initial_floor_db: float | None = None) -> Segmenter:
    """The segmenter live and offline recognition (and the rejection's calibration) use: LIVE."""
    return Segmenter(rate, LIVE, initial_floor_db)
