"""Hearing takes: one segmenter (vad.RECORDER) fed with every block of the session's input stream,
and the `Take` it cuts out, timed for the end-of-speech-to-saved latency and marked when the input
lost blocks inside it."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from audrey.audio.mic import STALL_SECONDS
from audrey.audio.vad import RECORDER, Segmenter
from audrey.errors import AudreyError

SETTLE_SECONDS = 0.3  # a live stream must have delivered this much audio before the first prompt:
#                       some audio servers connect a new input stream only after it "started"


@dataclass
class Take:
    audio: np.ndarray  # the segment with its margins, as saved
    rate: int
    start: int  # stream sample index of audio[0]
    speech_end: int  # stream sample index where speech ended
    speech_end_time: float  # time.monotonic() when the block holding speech_end arrived
    dropped: bool  # the input lost blocks inside this take

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.rate


class Listener:
    """The stream and one segmenter fed with every block, for the whole session, so the noise
    floor is learnt continuously and no audio between prompts goes unseen."""

    def __init__(self, stream, stop: threading.Event | None = None):
        self.stream = stream
        self.stop = stop  # set by Ctrl-C or SIGTERM (mic.StopOnSignal)
        self.rate = stream.rate
        self.seg = Segmenter(self.rate, RECORDER)
        self.fed = 0  # samples fed to the segmenter
        # (block end, arrival time) for as far back as a take can reach, to time the end of speech
        n_blocks = int((RECORDER.max_seconds + 2 * RECORDER.hangover + 1) * self.rate / stream.block) + 8
        self._times: deque[tuple[int, float]] = deque(maxlen=n_blocks)
        self._drops: deque[int] = deque(maxlen=64)  # stream positions where blocks were lost

    def next(self):
        """Read and feed one block; returns (block, segments that ended in it)."""
        block = self.stream.read(STALL_SECONDS)
        if self.stop is not None and self.stop.is_set():
            # raised here, between blocks, never from a signal handler inside a queue's lock
            raise KeyboardInterrupt
        if block is None:
            raise AudreyError(
                f"input device {self.stream.name!r} stopped delivering audio for {STALL_SECONDS:g} s; "
                "check the connection or pick another with --device"
            )
        if block.dropped:
            self._drops.append(self.fed)
        segments = self.seg.feed(block.samples)
        self.fed += len(block.samples)
        self._times.append((self.fed, block.time))
        return block, segments

    def settle(self, seconds: float = SETTLE_SECONDS) -> None:
        """Read a live stream until it has delivered `seconds` of audio, so that the first prompt is
        only shown once the microphone is really heard (and the noise floor has a start)."""
        if getattr(self.stream, "live", False):
            while self.fed < seconds * self.rate:
                self.next()

    def catch_up(self) -> int:
        """Feed whatever a live stream has queued up to now; returns the position of 'now'."""
        for _ in range(self.stream.pending()):
            self.next()
        return self.fed

    def take_from(self, s) -> Take:
        t_end = next((t for end, t in self._times if end >= s.speech_end), time.monotonic())
        dropped = any(s.start <= pos <= s.end for pos in self._drops)
        return Take(s.audio, self.rate, s.start, s.speech_end, t_end, dropped)
