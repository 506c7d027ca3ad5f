"""Small shared helpers for the tests: synthetic audio, corpora, CLI output, the microphone tests.

Plain functions and classes, not fixtures, so that tests/conftest.py stays the one place for fixtures.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
TONE_RATE = 8000
RATE = 16000  # wideband test audio: the virtual microphone's rate
STARTER = REPO / "models" / "starter.safetensors"
TINY_VOICES = range(0, 10)  # the synthetic voices the session's tiny model trains on (as `--synth 10` would)
FSDD_SPEAKERS = ("george", "jackson", "theo")  # the observability tests' corpus (fsdd_subset)
CLI = [sys.executable, "-c", "from audrey.cli import main; main()"]


def fsdd_root() -> Path:
    """FSDD beside the repo (shared/data/fsdd), or $AUDREY_FSDD."""
    return Path(os.environ.get("AUDREY_FSDD", REPO.parent / "shared" / "data" / "fsdd"))


def require_fsdd() -> Path:
    root = fsdd_root()
    if not (root / "recordings").is_dir():
        pytest.skip(f"FSDD not found at {root} (set AUDREY_FSDD to its folder to run this test)")
    return root


def shared_data() -> Path:
    """The real corpora beside the repo (shared/data), or $AUDREY_SHARED_DATA."""
    return Path(os.environ.get("AUDREY_SHARED_DATA", REPO.parent / "shared" / "data"))


def _require_shared(folder: str, marker: str, title: str) -> Path:
    root = shared_data() / folder
    if not (root / marker).exists():
        pytest.skip(f"{title} not found at {root} (no {marker}; set AUDREY_SHARED_DATA to the folder holding {folder}/)")
    return root


def require_speech_commands() -> Path:
    return _require_shared("speech-commands", "zero", "Speech Commands")


def require_an4() -> Path:
    return _require_shared("an4", "train.csv", "AN4")


def require_alphanumeric() -> Path:
    return _require_shared("alphanumeric", "speakers.csv", "the alphanumeric corpus")


def fsdd_subset(takes: int = 4) -> list:
    """FSDD_SPEAKERS' clips with take < `takes` (skips the test where FSDD is absent)."""
    from audrey.data.corpora import read_corpus

    return [c for c in read_corpus(require_fsdd()) if c.speaker in FSDD_SPEAKERS and c.take < takes]


def tone(freq: float = 440.0, seconds: float = 0.3, sr: int = TONE_RATE, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def burst(before: float = 0.4, length: float = 0.3, after: float = 0.4, sr: int = TONE_RATE,
          freq: float = 440.0) -> tuple[np.ndarray, int, int]:
    """A tone burst in digital silence; returns (audio, burst start, burst end) in samples."""
    start, n = int(before * sr), int(length * sr)
    audio = np.zeros(start + n + int(after * sr), np.float32)
    audio[start : start + n] = tone(freq, length, sr)
    return audio, start, start + n


def write_tone(path: Path, freq: float = 440.0, seconds: float = 0.3, sr: int = TONE_RATE, **kw) -> Path:
    """A short WAV whose content does not matter (corpus layout tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(freq, seconds, sr), sr, subtype="PCM_16", **kw)
    return path


def peak_hz(audio: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / sr)[spectrum.argmax()])


def one_line_error(text: str) -> str:
    """The CLI's error output: exactly one non-empty line starting with "error:", no traceback."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text
    assert len(lines) == 1, text
    assert lines[0].startswith("error:"), text
    return lines[0]


def wandb_offline_run(run_dir) -> dict:
    """What an offline W&B run recorded, read from its run-<id>.wandb file (W&B's record log: a
    7-byte header, then LevelDB-style chunks of protobuf `Record`s in 32 KiB blocks):
    {"config", "history" (list of dicts), "summary", "artifacts" (name, type, aliases, metadata,
    files), "tables" (key -> the table's columns and rows, from files/media/table)}."""
    from pathlib import Path

    from wandb.proto import wandb_internal_pb2 as pb

    run_dir = Path(run_dir)
    # W&B's service writes the log on its own schedule, after `run.finish()` has returned: wait
    # (bounded) for the run's exit record, so the test reads the whole run every time.
    deadline = time.monotonic() + 60
    while True:
        records = _wandb_records(next(run_dir.glob("run-*.wandb")).read_bytes())
        kinds = [_record_kind(pb, raw) for raw in records]
        if "exit" in kinds or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert "exit" in kinds, f"the W&B run in {run_dir} was not finished within 60 s"
    out = {"config": {}, "history": [], "summary": {}, "artifacts": [], "tables": {}}
    for raw in records:
        rec = pb.Record()
        rec.ParseFromString(raw)
        which = rec.WhichOneof("record_type")
        if which == "run":
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
        elif which == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in rec.config.update})
        elif which == "history":
            out["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.history.item})
        elif which == "summary":
            out["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in rec.summary.update})
        elif which == "artifact":
            a = rec.artifact
            out["artifacts"].append({"name": a.name, "type": a.type, "aliases": list(a.aliases),
                                     "metadata": json.loads(a.metadata or "{}"),
                                     "files": [e.path for e in a.manifest.contents]})
    for path in (run_dir / "files" / "media" / "table").rglob("*.table.json"):
        key = str(path.relative_to(run_dir / "files" / "media" / "table")).rsplit("_", 2)[0]
        out["tables"][key] = json.loads(path.read_text())
    return out


def _record_kind(pb, raw: bytes) -> str | None:
    rec = pb.Record()
    rec.ParseFromString(raw)
    return rec.WhichOneof("record_type")


def _wandb_records(data: bytes) -> list[bytes]:
    """The raw records of a .wandb file (as much of it as has been written)."""
    import struct

    assert data[:4] == b":W&B", "not a W&B run file"
    block, pos, partial, records = 32768, 7, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # the tail of a block too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            partial = chunk
        elif kind == 3:
            partial += chunk
        elif kind == 4:
            records.append(partial + chunk)
        elif kind == 0 and length == 0:
            pos += block - pos % block if pos % block else 0
    return records


def spoken(matcher, phone_ids: list[int], frames: int = 50, confidence: float = 20.0):
    """(1, frames, C) phone log-probabilities that clearly say `phone_ids` (outputs of `matcher`'s
    inventory, 1-based; 0 is CTC's blank): each phone for 3 frames, blanks between and around."""
    import torch

    path = [0] * 4
    for k in phone_ids:
        path += [k] * 3 + [0] * 2
    path += [0] * (frames - len(path))
    logits = torch.full((1, frames, 1 + len(matcher.inventory)), -confidence)
    logits[0, torch.arange(frames), torch.tensor(path[:frames])] = 0.0
    return logits.log_softmax(-1)


# --- with a trained model: digit strings, the tiny model's open calibration ----------------------


def espeak_string(digits: str, voice_index: int, pauses, rate: int = RATE, speed: int = 150) -> np.ndarray:
    """espeak-ng says each digit (voice `voice_index` of synth.voices), joined by `pauses` seconds.
    The renderings are kept in the test's AUDREY_CACHE (conftest: one folder per session)."""
    from audrey import DIGIT_WORDS
    from audrey.data.features import cache_root
    from audrey.data.scenes import compose, render_clips, voice_list

    voice = voice_list([voice_index])[0]
    clips = render_clips([(DIGIT_WORDS[int(c)], voice, speed) for c in digits], cache_root() / "strings", rate)
    return compose(clips, list(pauses), rate, lead=0.6, tail=1.2)[0]


# a held-out espeak-ng voice (scenes.HELD_OUT_VOICES) the shipped digit-string model reads
# two_strings_recording's strings right in (it reads espeak-ng voices worse than people)
VOICE = 247


def two_strings_recording(path: Path) -> tuple[float, list[tuple[float, float]]]:
    """Writes a recording of "7215", 2.5 s of silence, then "893" (espeak-ng, VOICE, in pink noise at
    30 dB SNR) to `path`; returns its seconds and the (start, end) seconds of each string's speech.
    (Not "863": the digit-string model, which learnt from people, does not hear this voice's "six".)"""
    from audrey import DIGIT_WORDS
    from audrey.data.features import cache_root
    from audrey.data.noise import add_noise
    from audrey.data.scenes import compose, render_clips, voice_list

    voice = voice_list([VOICE])[0]
    clips = render_clips([(DIGIT_WORDS[int(c)], voice, 150) for c in "7215893"], cache_root() / "strings", RATE)
    audio, spans = compose(clips, [0.3, 0.2, 0.4, 2.5, 0.25, 0.35], RATE, lead=0.6, tail=1.2)
    audio = add_noise(audio, 30, np.random.default_rng(0), "pink", speech_rms=0.1)
    sf.write(str(path), audio, RATE)
    return len(audio) / RATE, [(spans[0][0] / RATE, spans[3][1] / RATE), (spans[4][0] / RATE, spans[6][1] / RATE)]


def open_calibration(model: Path) -> Path:
    """Beside the tiny model (conftest.tiny_model): its calibration with every threshold open, for
    tests about segmentation rather than rejection. The fixed tests still apply: a segment's length,
    and on wideband input the hiss test (a 6 or 7 without an /s/ at its start is refused)."""
    return model.with_name("open.reject.safetensors")


# --- the microphone tests -------------------------------------------------------------------------


def play(path: Path) -> subprocess.Popen:
    """Play a WAV into the virtual microphone (conftest.vmic)."""
    return subprocess.Popen(["paplay", "--device=vmic", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Listener:
    """`audrey listen --json` in a subprocess; its events readable with a timeout."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(CLI + ["listen", "--json", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1, env={**os.environ})
        self.lines: queue.Queue = queue.Queue()
        self.events: list[dict] = []
        self.stderr = ""
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put((time.monotonic(), line))
        self.lines.put(None)

    def _pump_err(self):
        self.stderr = self.proc.stderr.read()

    def expect(self, kind: str, timeout: float = 60.0) -> dict:
        end = time.monotonic() + timeout
        while True:
            try:
                item = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {kind} event within {timeout} s; got {self.events[-5:]}") from None
            if item is None:
                self.proc.wait()
                raise AssertionError(f"listener exited ({self.proc.returncode}) before {kind}: {self.stderr[-800:]}")
            event = json.loads(item[1])
            event["_t"] = item[0]
            self.events.append(event)
            if event["event"] == kind:
                return event

    def stop(self, timeout: float = 20.0) -> int:
        """Ctrl-C, then the rest of its output."""
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        while (item := self.lines.get(timeout=10)) is not None:
            event = json.loads(item[1])
            event["_t"] = item[0]
            self.events.append(event)
        return code

    def strings(self) -> list[str]:
        return [e["string"] for e in self.events if e["event"] == "string"]
