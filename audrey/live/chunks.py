"""Audio blocks in, stretches of speech between pauses out: what the CTC engine decodes at once.

The words come from the one segmenter `listen` and `transcribe` use (audrey.audio.vad.live_segmenter,
vad.LIVE); words whose pauses stay under `string_gap` form one `Chunk`, as digits form one string in
audrey.live.stream. A chunk keeps CONTEXT_SECONDS of the audio around its speech (the digit-string
model was trained on utterances with silence around them), never more than half the pause to the
next chunk, so no sound is decoded twice.

Memory and the model's attention are bounded: a chunk that reaches MAX_CHUNK_SECONDS is cut at the
quietest point of its second half (the lowest level over SPLIT_WINDOW_SECONDS), and speech goes on
in the next chunk. While nothing is said only the last few seconds are kept, for the segmenter's
late segments (a segment is reported after its hangover, or after vad.LIVE.max_seconds of speech).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from audrey.audio.vad import LIVE, Segment, frame_levels, frame_samples, live_segmenter
from audrey.errors import AudreyError

CONTEXT_SECONDS = 0.3  # audio kept either side of a chunk's speech
MAX_CHUNK_SECONDS = 20.0  # a longer stretch of speech is cut: the model attends over a whole chunk
SPLIT_WINDOW_SECONDS = 0.2  # the cut goes where the level over this long is lowest: a pause, not a closure


@dataclass(frozen=True)
class Chunk:
    start: int  # first sample, counted from the first sample fed
    audio: np.ndarray  # float32
    rate: int
    speech_end: int  # one past its last sample of speech (before the context after it): live latency counts from here
    segments: tuple[Segment, ...] = ()  # the segmenter's words that start in it, in time order

    @property
    def end(self) -> int:
        return self.start + len(self.audio)


def quietest_point(audio: np.ndarray, rate: int) -> int:
    """The sample at the middle of the quietest SPLIT_WINDOW_SECONDS of `audio`."""
    frame = frame_samples(rate)
    levels = frame_levels(audio, frame)
    if len(levels) == 0:
        return len(audio) // 2
    width = max(1, min(len(levels), round(SPLIT_WINDOW_SECONDS * rate / frame)))
    smooth = np.convolve(levels, np.ones(width) / width, mode="valid")
    return (int(np.argmin(smooth)) + width // 2) * frame


class Chunker:
    """Feed blocks with `feed()` (any size, at `rate`); `flush()` at the end. Both return the chunks that closed."""

    def __init__(self, rate: int, string_gap: float, initial_floor_db: float | None = None,
                 max_seconds: float = MAX_CHUNK_SECONDS):
        if string_gap <= 0:
            raise AudreyError(f"--string-gap {string_gap}: must be more than 0 seconds")
        self.rate = int(rate)
        self.segmenter = live_segmenter(self.rate, initial_floor_db)
        self.gap = int(round(string_gap * self.rate))
        self.context = int(round(CONTEXT_SECONDS * self.rate))
        self.max_samples = int(round(max_seconds * self.rate))
        # idle, keep enough for a segment reported late, with its context
        self.keep = int(round((LIVE.max_seconds + LIVE.hangover + LIVE.margin + CONTEXT_SECONDS + 0.5) * self.rate))
        self.fed = 0
        self._buf = np.zeros(0, np.float32)
        self._buf_start = 0  # sample index of _buf[0]
        self._start: int | None = None  # the open chunk's first sample; None: no chunk open
        self._last_end = 0  # one past the open chunk's last speech sample
        self._prev_end = 0  # one past the last chunk emitted: chunks never overlap
        self._segments: list[Segment] = []  # the open chunk's words

    def feed(self, block: np.ndarray) -> list[Chunk]:
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, block])
        self.fed += len(block)
        out = []
        for seg in self.segmenter.feed(block):
            out += self._speech(seg)
        if self._start is not None and not self.segmenter.in_speech and self.fed - self._last_end >= self.gap:
            out += self._close(self.fed)
        if self._start is not None and self.fed - self._start >= self.max_samples:
            out.append(self._split())
        self._trim()
        return out

    def flush(self) -> list[Chunk]:
        out = []
        for seg in self.segmenter.flush():
            out += self._speech(seg)
        return out + self._close(self.fed)

    def _speech(self, seg: Segment) -> list[Chunk]:
        start, end = seg.speech_start, seg.speech_end
        out = []
        if self._start is not None and start - self._last_end >= self.gap:
            out += self._close((self._last_end + start) // 2)
        if self._start is None:
            self._start = max(start - self.context, self._prev_end, self._buf_start)
            self._last_end = end
        self._last_end = max(self._last_end, end)
        self._segments.append(seg)
        return out

    def _close(self, limit: int) -> list[Chunk]:
        if self._start is None:
            return []
        end = min(self._last_end + self.context, limit, self.fed)
        chunk = self._take(self._start, end, min(self._last_end, end))
        self._start = None
        return [chunk]

    def _split(self) -> Chunk:
        """The open chunk, cut at the quietest point of its second half; the rest stays open."""
        half = self._start + self.max_samples // 2
        cut = half + quietest_point(self._buf[half - self._buf_start : self.fed - self._buf_start], self.rate)
        chunk = self._take(self._start, cut, cut)
        self._start = cut
        return chunk

    def _take(self, start: int, end: int, speech_end: int) -> Chunk:
        """Samples start..end as a chunk, with the words that start before `end` (a word the segmenter
        reports after a split, starting before the cut, goes with the next chunk)."""
        self._prev_end = end
        words = [s for s in self._segments if s.speech_start < end]
        self._segments = [s for s in self._segments if s.speech_start >= end]
        return Chunk(start, self._buf[start - self._buf_start : end - self._buf_start].copy(), self.rate, speech_end,
                     tuple(words))

    def _trim(self) -> None:
        first = self._start if self._start is not None else max(self.fed - self.keep, self._prev_end)
        first = max(first, self._buf_start)
        if first > self._buf_start:
            self._buf = self._buf[first - self._buf_start :]
            self._buf_start = first
