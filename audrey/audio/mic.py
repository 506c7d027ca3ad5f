"""Audio input: the microphone through sounddevice (imported only when needed), and a file-backed
stream with the same interface for tests and offline use.

The sounddevice callback runs on PortAudio's real-time thread, so it does nothing but copy the block
into a bounded queue; all work (mixing down, voice activity, the level meter) happens in the reader.
If the reader falls behind for longer than the queue holds, blocks are dropped and counted, and the
recorder throws that take away instead of keeping audio with a hole in it.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import tempfile
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audrey.errors import AudreyError

BLOCK_SECONDS = 0.02  # 20 ms blocks: a responsive level meter, few wake-ups
QUEUE_SECONDS = 10.0  # audio the queue holds while the reader is busy (saving, gating) before dropping
STALL_SECONDS = 2.0  # no block for this long: the device has stopped delivering
PREFERRED_RATE = 16000  # the model's rate (waveform.SAMPLE_RATE) and what most devices offer
NO_DEVICE = "no audio input device found; connect a microphone or pick one with --device (see `audrey devices`)"
# PortAudio's C code reports its internal checks on stderr ("Expression 'ret' failed in
# 'src/hostapi/alsa/pa_linux_alsa.c', line: 1736") when a device vanishes; Audrey's own error says it
PORTAUDIO_NOISE = re.compile(r"^Expression '.*' failed in '.*', line: \d+")


@contextmanager
def portaudio_quiet():
    """While PortAudio is called (opening and closing a stream), its assertion lines
    (PORTAUDIO_NOISE) are dropped: file descriptor 2 goes to a temporary file, and every other
    line written meanwhile is passed on to stderr afterwards."""
    try:
        saved = os.dup(2)
    except OSError:  # no stderr at all: nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not PORTAUDIO_NOISE.match(line))
            if kept:
                os.write(2, kept.encode())


class StreamEnded(Exception):
    """A file-backed stream has played everything it was given."""


@dataclass(frozen=True)
class Block:
    samples: np.ndarray  # mono float32
    index: int  # stream position of samples[0], counting every sample delivered to the reader
    time: float  # time.monotonic() when the block reached the reader's queue (≈ when its last sample was captured)
    dropped: int  # blocks lost just before this one (queue full or device overflow)


def _sounddevice():
    try:
        import sounddevice as sd
    except OSError as exc:  # sounddevice raises OSError when the PortAudio library is missing
        raise AudreyError(f"cannot use audio devices: {exc}; install PortAudio with `sudo apt-get install libportaudio2`") from None
    return sd


def input_devices() -> list[dict]:
    """Every device with input channels: index, name, host API, channels, default rate, is_default."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise AudreyError(f"cannot list audio devices ({exc}); check that the sound system is running") from None
    out = []
    for d in devices:
        if d["max_input_channels"] > 0:
            out.append(
                {
                    "index": d["index"],
                    "name": d["name"],
                    "hostapi": apis[d["hostapi"]]["name"],
                    "channels": d["max_input_channels"],
                    "default_rate": int(d["default_samplerate"]),
                    "default": d["index"] == default_in,
                }
            )
    return out


def resolve_device(spec: str | int | None) -> dict:
    """The input device `--device` names (index or part of the name), or the default input."""
    devices = input_devices()
    if not devices:
        raise AudreyError(NO_DEVICE)
    if spec is None or str(spec).strip() == "":
        defaults = [d for d in devices if d["default"]]
        return defaults[0] if defaults else devices[0]
    text = str(spec).strip()
    if text.isdigit():
        for d in devices:
            if d["index"] == int(text):
                return d
        raise AudreyError(f"--device {text}: no input device has that index; see `audrey devices` for the list")
    matches = [d for d in devices if text.lower() in d["name"].lower()]
    exact = [d for d in matches if d["name"].lower() == text.lower()]
    if len(exact) == 1 or len(matches) == 1:
        return (exact or matches)[0]
    if not matches:
        raise AudreyError(f"--device {text!r}: no input device name contains it; see `audrey devices` for the list")
    names = ", ".join(f"{d['index']}: {d['name']}" for d in matches)
    raise AudreyError(f"--device {text!r} matches several input devices ({names}); pass the index instead")


class MicStream:
    """A live input stream. Use as a context manager; `read()` returns the next `Block` or None."""

    live = True  # audio arrives in real time (FileStream: as fast as it is read)

    def __init__(self, device: str | int | None = None, rate: int | None = None, block_seconds: float = BLOCK_SECONDS):
        self.sd = _sounddevice()
        self.device = resolve_device(device)
        self.name = self.device["name"]
        self.channels = 1
        self.rate = self._pick_rate(rate)
        self.block = max(1, round(self.rate * block_seconds))
        self._queue: queue.Queue = queue.Queue(maxsize=max(4, round(QUEUE_SECONDS / block_seconds)))
        self._lost = 0  # blocks dropped since the reader last looked (written by the callback thread)
        self._index = 0
        self._stream = None
        self.latency = 0.0

    def _ok(self, rate: int, channels: int) -> bool:
        try:
            self.sd.check_input_settings(device=self.device["index"], channels=channels, dtype="float32", samplerate=rate)
            return True
        except Exception:  # PortAudioError or ValueError: this combination is not supported
            return False

    def _pick_rate(self, rate: int | None) -> int:
        if not self._ok(rate or PREFERRED_RATE, 1):
            # some hardware devices only open in stereo; the reader mixes down
            self.channels = min(2, self.device["channels"])
        if rate is not None:
            if not self._ok(rate, self.channels):
                raise AudreyError(
                    f"--rate {rate}: input device {self.name!r} cannot record at that rate; "
                    f"try --rate {self.device['default_rate']} (its default)"
                )
            return int(rate)
        return PREFERRED_RATE if self._ok(PREFERRED_RATE, self.channels) else self.device["default_rate"]

    def _callback(self, indata, frames, time_info, status) -> None:
        # PortAudio's real-time thread: copy and queue, nothing else.
        if status.input_overflow:
            self._lost += 1
        try:
            self._queue.put_nowait((indata.copy(), time.monotonic()))
        except queue.Full:
            self._lost += 1

    def __enter__(self) -> "MicStream":
        try:
            with portaudio_quiet():
                self._open()
        except Exception as exc:  # PortAudioError, or ValueError for settings the device refuses
            self.close()
            raise AudreyError(f"cannot open input device {self.name!r} at {self.rate} Hz ({exc}); pick another with --device") from None
        self.latency = float(self._stream.latency)
        return self

    def _open(self) -> None:
        self._stream = self.sd.InputStream(
            samplerate=self.rate,
            blocksize=self.block,
            device=self.device["index"],
            channels=self.channels,
            dtype="float32",
            callback=self._callback,
        )
        self._stream.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._stream is not None:
            try:
                with portaudio_quiet():  # a lost device makes PortAudio print its failed checks here
                    self._stream.stop()
                    self._stream.close()
            except Exception:
                pass
            self._stream = None

    def pending(self) -> int:
        """Blocks captured but not read yet."""
        return self._queue.qsize()

    def read(self, timeout: float = STALL_SECONDS) -> Block | None:
        try:
            data, t = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        lost, self._lost = self._lost, 0
        samples = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
        block = Block(samples.astype(np.float32, copy=False), self._index, t, lost)
        self._index += len(samples)
        return block


class FileStream:
    """The MicStream interface over audio you hand it: `play()` queues a clip (array or file), and
    `read()` returns it in blocks, as fast as it is read. When nothing is queued it returns silence
    (or steady noise at `noise_db` dBFS) if `endless`, else raises StreamEnded."""

    live = False

    def __init__(
        self,
        rate: int = PREFERRED_RATE,
        block_seconds: float = BLOCK_SECONDS,
        endless: bool = True,
        noise_db: float | None = None,
        seed: int = 0,
        name: str = "file",
    ):
        self.rate = rate
        self.block = max(1, round(rate * block_seconds))
        self.endless = endless
        self.noise = 0.0 if noise_db is None else 10 ** (noise_db / 20)
        self.rng = np.random.default_rng(seed)
        self.name = name
        self.latency = 0.0
        self._pending: deque[np.ndarray] = deque()
        self._lock = threading.Lock()
        self._index = 0

    @classmethod
    def from_file(cls, path: str | Path, rate: int | None = None, **kw) -> "FileStream":
        import soundfile as sf

        from audrey.audio.waveform import load_audio

        rate = rate or sf.info(str(path)).samplerate
        stream = cls(rate, endless=False, name=str(path), **kw)
        stream.play(load_audio(path, rate))
        return stream

    def play(self, audio: np.ndarray | str | Path) -> None:
        if not isinstance(audio, np.ndarray):
            from audrey.audio.waveform import load_audio

            audio = load_audio(audio, self.rate)
        with self._lock:
            self._pending.append(np.asarray(audio, dtype=np.float32).reshape(-1))

    def __enter__(self) -> "FileStream":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def close(self) -> None:
        pass

    def pending(self) -> int:
        return 0  # blocks exist only when read: there is no "captured before now"

    def read(self, timeout: float = STALL_SECONDS) -> Block:
        out = np.zeros(0, np.float32)
        with self._lock:
            while len(out) < self.block and self._pending:
                clip = self._pending.popleft()
                need = self.block - len(out)
                out = np.concatenate([out, clip[:need]])
                if len(clip) > need:
                    self._pending.appendleft(clip[need:])
        if len(out) < self.block:
            if not self.endless and len(out) == 0:
                raise StreamEnded(self.name)
            out = np.pad(out, (0, self.block - len(out)))
        if self.noise:
            out = out + (self.noise * self.rng.standard_normal(self.block)).astype(np.float32)
        block = Block(out, self._index, time.monotonic(), 0)
        self._index += self.block
        return block


class StopOnSignal:
    """Ctrl-C (SIGINT) and SIGTERM set `stopped` instead of raising KeyboardInterrupt wherever the
    main thread happens to be. An exception raised inside a queue's lock can leave that lock held,
    and PortAudio's callback thread then blocks on it forever, so closing the stream would hang.
    The reading loop checks `stopped` after each block (20 ms) instead. Off the main thread, a no-op."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.stopped = threading.Event()
        self._previous: dict = {}

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, lambda signum, frame: self.stopped.set())
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
