"""Latency of `audrey record` from the end of speech to "saved", through the virtual microphone.

    /tmp/venv/bin/python benchmarks/record_latency.py [--takes 20]

Needs espeak-ng and PulseAudio (the project's tools/vmic-up is run first). Two views:
1. in-process, the recorder's own clock: from the arrival of the audio block that holds the last
   loud frame to the take renamed into place (includes the end-of-take pause the recorder waits
   for, vad.RECORDER.hangover, which is there to catch a second word; the rest is processing);
2. from outside, `audrey record --auto` as a subprocess: from the moment the end of the spoken
   digit leaves paplay (paplay's exit minus the clip's trailing silence) to the SAVED line.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VMIC_UP = REPO / "tools" / "vmic-up"
VOICES = (("en-us", "m3", 50), ("en-gb", "f2", 60))


def render(tmp: Path) -> dict[tuple[int, int], tuple[Path, float]]:
    """(digit, voice) -> (wav, seconds of trailing silence after the speech)."""
    from audrey import DIGIT_WORDS
    from audrey.audio.waveform import load_audio, speech_bounds
    from audrey.data.synth import Voice, say

    clips = {}
    for v, (accent, variant, pitch) in enumerate(VOICES):
        for d, word in enumerate(DIGIT_WORDS):
            path = say(word, Voice(accent, variant, pitch), 150, tmp / f"{d}_{v}.wav")
            audio = load_audio(path, 16000)
            _, end = speech_bounds(audio, sr=16000)
            end = max(0, end - int(0.05 * 16000))  # speech_bounds adds a 50 ms margin
            clips[(d, v)] = (path, (len(audio) - end) / 16000)
    return clips


def play(path: Path) -> subprocess.Popen:
    return subprocess.Popen(["paplay", "--device=vmic", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def in_process(clips, takes: int, root: Path) -> list[float]:
    from audrey.recording.session import record

    class Speaker(io.StringIO):
        n = 0

        def write(self, text):
            for line in text.splitlines():
                if line.startswith("PROMPT"):
                    play(clips[(int(line.split()[2]), self.n % len(VOICES))][0])
                    self.n += 1
            return len(text)

    result = record("bench", root, takes_per_digit=max(1, takes // 10), auto=True, seed=0, take_timeout=6,
                    max_attempts=1, out=Speaker())
    return [s.latency for s in result.saved]


def external(clips, takes: int, root: Path) -> list[float]:
    cmd = [sys.executable, "-c", "from audrey.cli import main; main()", "record", "--auto", "--speaker", "bench-cli",
           "--root", str(root), "--takes-per-digit", str(max(1, takes // 10)), "--seed", "1", "--take-timeout", "6",
           "--max-attempts", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
    latencies, n = [], 0
    for line in proc.stdout:
        if line.startswith("PROMPT"):
            path, tail = clips[(int(line.split()[2]), n % len(VOICES))]
            n += 1
            player = play(path)
            done = {}
            threading.Thread(target=lambda p=player: (p.wait(), done.setdefault("t", time.monotonic())), daemon=True).start()
        elif line.startswith("SAVED"):
            t_saved = time.monotonic()
            player.wait()
            while "t" not in done:
                time.sleep(0.001)
            latencies.append(t_saved - (done["t"] - tail))
        elif line.startswith(("REJECTED", "SKIPPED")):
            print("  ", line.strip(), file=sys.stderr)
    proc.wait()
    return latencies


def show(name: str, lat: list[float], takes: int) -> None:
    ms = np.array(lat) * 1000
    print(f"{name}: {len(ms)}/{takes} takes saved; end of speech -> saved: "
          f"p50 {np.percentile(ms, 50):.0f} ms, p95 {np.percentile(ms, 95):.0f} ms, max {ms.max():.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--takes", type=int, default=20)
    args = ap.parse_args()
    up = subprocess.run([str(VMIC_UP)], capture_output=True, text=True)
    if up.returncode != 0:
        sys.exit(f"virtual microphone did not start: {up.stderr.strip()}")
    from audrey.audio.vad import RECORDER

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = render(tmp)
        lat = in_process(clips, args.takes, tmp / "rec")
        show("in-process (recorder clock)", lat, args.takes)
        proc = np.array(lat) * 1000 - RECORDER.hangover * 1000
        print(f"  of which the end-of-take pause is {RECORDER.hangover * 1000:.0f} ms by design; "
              f"the rest (segmenting, gate, fsync'd write): p50 {np.percentile(proc, 50):.0f} ms, p95 {np.percentile(proc, 95):.0f} ms")
        show("external (audrey record --auto, from paplay)", external(clips, args.takes, tmp / "rec"), args.takes)


if __name__ == "__main__":
    main()
