"""`audrey record --auto` through a real microphone path: PortAudio reads the monitor of a PulseAudio
null sink, and espeak-ng clips are played into that sink with paplay (see tools/vmic-up).
Nothing is mocked: the recorder runs as its own process, as a user would run it.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import correlate

from audrey.audio.waveform import load_audio, speech_bounds
from audrey.audio.vad import RECORDER
from helpers import play

pytestmark = pytest.mark.mic

RATE = 16000  # the vmic sink's rate; the recorder's default rate
CLI = [sys.executable, "-c", "from audrey.cli import main; main()"]


class Recorder:
    """`audrey record --auto` in a subprocess, its stdout lines readable with a timeout."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen(
            CLI + ["record", "--auto", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        self.stderr = ""
        threading.Thread(target=self._pump_err, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_err(self):
        self.stderr = self.proc.stderr.read()

    def expect(self, *prefixes: str, timeout: float = 20.0) -> str:
        end = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {prefixes} line within {timeout} s; got {self.seen[-5:]}") from None
            if line is None:
                self.proc.wait()
                raise AssertionError(f"recorder exited ({self.proc.returncode}) before {prefixes}: {self.stderr[-800:]}")
            self.seen.append(line)
            if line.startswith(prefixes):
                return line

    def close(self, timeout: float = 10.0) -> int | None:
        """Wait for the recorder to exit; kill it after `timeout` (then None: a cleanup after a failure)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


def match(saved: np.ndarray, ref: np.ndarray) -> float:
    """Peak normalised cross-correlation: ~1 when `saved` holds `ref`, low for another word."""
    xc = correlate(saved, ref, mode="full", method="fft")
    return float(np.max(np.abs(xc)) / (np.linalg.norm(saved) * np.linalg.norm(ref) + 1e-12))


def test_record_auto_end_to_end(vmic, espeak_digit, tmp_path):
    """20 prompts, each answered by an espeak-ng voice through the virtual microphone ->
    20 files, each named after its prompt, each holding that digit, trimmed."""
    root = tmp_path / "recordings"
    voices = ("us", "gb")
    rec = Recorder("--speaker", "vmic-test", "--root", str(root), "--takes-per-digit", "2", "--seed", "7",
                   "--take-timeout", "6", "--max-attempts", "1", "--gender", "synthetic")
    prompted: dict[str, tuple[int, str]] = {}
    try:
        for n in range(20):
            _, index, digit, word = rec.expect("PROMPT").split()
            voice = voices[n % 2]
            player = play(espeak_digit(int(digit), voice))
            result = rec.expect("SAVED", "REJECTED", "SKIPPED")
            player.wait(10)
            assert result.startswith("SAVED"), f"prompt {index} ({word}, voice {voice}): {result}"
            prompted[result.split(" ", 1)[1]] = (int(digit), voice)
        assert rec.expect("DONE") == "DONE saved=20 rejected=0 skipped=0"
        assert rec.close() == 0
    finally:
        rec.close(1)

    files = sorted((root / "vmic-test").glob("*.wav"))
    assert len(files) == 20 and sorted(map(str, files)) == sorted(prompted)
    assert json.loads((root / "vmic-test" / "speaker.json").read_text())["gender"] == "synthetic"
    refs = {(d, v): load_audio(espeak_digit(d, v), RATE) for d in range(10) for v in voices}
    for path in files:
        digit, voice = prompted[str(path)]
        assert re.fullmatch(rf"{digit}_vmic-test_[01]\.wav", path.name)
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
        audio = load_audio(path, RATE)
        scores = {d: match(audio, refs[(d, voice)]) for d in range(10)}
        best = max(scores, key=scores.get)
        assert best == digit and scores[digit] > 0.8, f"{path.name}: {scores}"
        # trimmed: the digit plus the recorder's margins, not seconds of silence
        ref = refs[(digit, voice)]
        s, e = speech_bounds(ref, sr=RATE)
        assert len(audio) / RATE <= (e - s) / RATE + 2 * RECORDER.margin + 0.1, f"{path.name} is not trimmed"


def test_gate_rejects_bad_takes_through_the_microphone(vmic, espeak_digit, tmp_path):
    """A clipped, a silent, a two-word and a noisy take, each said into the microphone, are each
    rejected with their reason and re-prompted; the clean retry is saved."""
    root = tmp_path / "recordings"

    def wav(name: str, audio: np.ndarray) -> Path:
        path = tmp_path / f"{name}.wav"
        sf.write(str(path), audio, RATE, subtype="PCM_16")  # at the sink's rate: no resampling to soften it
        return path

    def bad(kind: str, digit: int) -> Path | None:
        clip = load_audio(espeak_digit(digit), RATE)
        if kind == "clipped":
            return wav(kind, np.clip(clip * 8, -1, 1))
        if kind == "two-word":  # "three four", 0.25 s apart
            s, e = speech_bounds(clip, sr=RATE)
            other = load_audio(espeak_digit((digit + 1) % 10), RATE)
            s2, e2 = speech_bounds(other, sr=RATE)
            return wav(kind, np.concatenate([clip[s:e], np.zeros(int(0.25 * RATE), np.float32), other[s2:e2]]))
        return None  # silent: say nothing

    def answer(rec: Recorder, path: Path | None, reason: str) -> None:
        prompt = rec.expect("PROMPT")
        digit = int(prompt.split()[2])
        player = play(path(digit) if callable(path) else path) if path else None
        line = rec.expect("SAVED", "REJECTED")
        assert line.startswith(f"REJECTED {reason}"), line
        if player:
            player.wait(10)
        return prompt, digit

    rec = Recorder("--speaker", "gate", "--root", str(root), "--digits", "0-2", "--takes-per-digit", "1",
                   "--seed", "2", "--take-timeout", "1.5", "--max-attempts", "2")
    try:
        for kind, reason in (("clipped", "clipping:"), ("silent", "no speech heard"), ("two-word", "more than one word")):
            prompt, digit = answer(rec, lambda d, k=kind: bad(k, d), reason)
            assert rec.expect("PROMPT") == prompt  # asked again
            play(espeak_digit(digit)).wait(10)
            assert rec.expect("SAVED", "REJECTED").startswith("SAVED"), kind
        assert rec.expect("DONE") == "DONE saved=3 rejected=3 skipped=0"
        assert rec.close() == 0
    finally:
        rec.close(1)

    # a noisy room: a fan-like hiss ~15 dB under the voice, running before the session starts and
    # until it is switched off (long enough for any start-up time: `record` loads its take-check model first)
    hiss = wav("hiss", 0.04 * np.random.default_rng(0).standard_normal(30 * RATE).astype(np.float32))
    fan = play(hiss)
    time.sleep(0.3)
    rec = Recorder("--speaker", "gate", "--root", str(root), "--digits", "3", "--takes-per-digit", "1",
                   "--take-timeout", "3", "--max-attempts", "2")
    try:
        prompt, digit = answer(rec, lambda d: espeak_digit(d), "too noisy:")
        fan.kill()  # the fan is switched off; the same digit again is fine
        assert rec.expect("PROMPT") == prompt
        time.sleep(0.3)
        play(espeak_digit(digit)).wait(10)
        assert rec.expect("SAVED", "REJECTED").startswith("SAVED")
        assert rec.close() == 0
    finally:
        fan.kill()
        rec.close(1)
    assert sorted(p.name[0] for p in (root / "gate").glob("*.wav")) == ["0", "1", "2", "3"]


def _digit_track(espeak_digit, path: Path) -> Path:
    """A few seconds of separate digits (0.55 s apart: more than the recorder's end-of-take pause)."""
    parts = []
    for d in (3, 8, 1, 6, 0):
        clip, rate = sf.read(str(espeak_digit(d, "us")), dtype="float32")
        parts += [clip, np.zeros(int(0.55 * rate), np.float32)]
    sf.write(str(path), np.concatenate(parts), rate)
    return path


def _kill_runs(root: Path, speaker: str, runs: int, seed: int) -> dict:
    """Start the recorder `runs` times and SIGKILL it at a random moment each time; check the
    speaker's folder after every kill. Returns what happened."""
    folder = root / speaker
    rng = random.Random(seed)
    saved: dict[str, str] = {}  # path -> sha256 of every take a SAVED line announced
    temps_seen, saves_before_kill = 0, []
    for _ in range(runs):
        rec = Recorder("--speaker", speaker, "--root", str(root), "--takes-per-digit", "50",
                       "--take-timeout", "3", "--max-attempts", "100")
        rec.expect("PROMPT", timeout=30)
        time.sleep(rng.uniform(0.0, 2.5))  # listening, mid-word, saving, between takes
        os.kill(rec.proc.pid, signal.SIGKILL)
        rec.proc.wait(10)
        while (line := rec.lines.get(timeout=10)) is not None:  # lines written before the kill
            rec.seen.append(line)
        announced = [line.split(" ", 1)[1] for line in rec.seen if line.startswith("SAVED ")]
        saves_before_kill.append(len(announced))
        for p in announced:
            saved[p] = hashlib.sha256(Path(p).read_bytes()).hexdigest()
        # the folder after every kill: only complete, correctly named takes
        for wav in folder.glob("*.wav"):
            assert re.fullmatch(rf"\d_{speaker}_\d+\.wav", wav.name), wav.name
            info = sf.info(str(wav))
            assert info.frames > 0 and info.samplerate == RATE
            assert len(sf.read(str(wav))[0]) == info.frames
        for p, digest in saved.items():
            assert hashlib.sha256(Path(p).read_bytes()).hexdigest() == digest, f"{p} changed"
        json.loads((folder / "speaker.json").read_text())
        temps = [p for p in folder.iterdir() if p.name.startswith(".")]
        assert all(p.suffix == ".tmp" for p in temps), temps
        temps_seen += len(temps)
    return {"saved": saved, "temps": temps_seen, "saves_before_kill": saves_before_kill}


def test_sigkill_never_leaves_partial_takes(vmic, espeak_digit, tmp_path):
    """30 recorder processes killed with SIGKILL at random moments while digits are being said:
    every .wav left is complete and correctly named, every take reported SAVED survives unchanged,
    and no temp file outlives the next session. Three recorders run side by side (each with its
    own speaker folder, all hearing the same microphone) to keep the test short."""
    root = tmp_path / "recordings"
    track = _digit_track(espeak_digit, tmp_path / "track.wav")
    stop = threading.Event()
    playing: list[subprocess.Popen] = []

    def talker():
        while not stop.is_set():
            playing.append(play(track))
            playing[-1].wait()

    talking = threading.Thread(target=talker, daemon=True)
    talking.start()
    lanes = ("crash-a", "crash-b", "crash-c")
    try:
        with ThreadPoolExecutor(len(lanes)) as pool:
            stats = list(pool.map(lambda i: _kill_runs(root, lanes[i], 10, seed=i), range(len(lanes))))
    finally:
        stop.set()
        for p in playing:
            p.kill()
        talking.join(15)
    saved = {p: d for s in stats for p, d in s["saved"].items()}
    kills = [n for s in stats for n in s["saves_before_kill"]]
    temps = sum(s["temps"] for s in stats)
    # the next session removes whatever temp files the kills left, and keeps every take
    recs = [Recorder("--speaker", speaker, "--root", str(root), "--digits", "0", "--takes-per-digit", "1",
                     "--take-timeout", "0.3", "--max-attempts", "1") for speaker in lanes]
    for speaker, rec in zip(lanes, recs):
        rec.expect("DONE", timeout=30)
        assert rec.close() == 0
        assert not [p for p in (root / speaker).iterdir() if p.name.startswith(".")]
    wavs = list(root.glob("*/*.wav"))
    assert len(kills) == 30 and saved and set(saved) <= {str(p) for p in wavs}
    for p, digest in saved.items():
        assert hashlib.sha256(Path(p).read_bytes()).hexdigest() == digest
    print(f"\nSIGKILL x{len(kills)}: {len(wavs)} takes on disk ({len(saved)} announced SAVED; runs killed after "
          f"0/1/2+ saves: {kills.count(0)}/{kills.count(1)}/{sum(n > 1 for n in kills)}), all complete and unchanged; "
          f"temp files left by kills: {temps}, all removed by the next session")


def test_sigterm_mid_take_ends_the_session_cleanly(vmic, espeak_digit, tmp_path):
    """SIGTERM while a digit is being spoken: exit 130 with the summary and no traceback; the takes
    saved before stay complete, the one in progress leaves nothing behind."""
    root = tmp_path / "recordings"
    rec = Recorder("--speaker", "term-test", "--root", str(root), "--takes-per-digit", "1", "--seed", "3",
                   "--take-timeout", "6", "--max-attempts", "1")
    try:
        saved = []
        for _ in range(2):
            digit = int(rec.expect("PROMPT").split()[2])
            player = play(espeak_digit(digit, "us"))
            saved.append(rec.expect("SAVED", "REJECTED", "SKIPPED"))
            player.wait(10)
        digit = int(rec.expect("PROMPT").split()[2])
        player = play(espeak_digit(digit, "us"))
        time.sleep(0.25)  # inside the word
        rec.proc.send_signal(signal.SIGTERM)
        code = rec.close()
        player.wait(10)
    finally:
        rec.close(1)
    assert code == 130, rec.stderr[-800:]
    assert "Traceback" not in rec.stderr
    assert "interrupted; saved 2 take(s)" in " ".join(rec.stderr.split())
    assert all(s.startswith("SAVED") for s in saved), saved
    folder = root / "term-test"
    assert sorted(p.name for p in folder.glob("*.wav")) == sorted(Path(s.split(" ", 1)[1]).name for s in saved)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    for s in saved:
        assert sf.info(s.split(" ", 1)[1]).frames > 0
