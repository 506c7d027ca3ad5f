"""`audrey listen` / `audrey transcribe`: latency, string accuracy, false accepts, CPU, memory, speed.

    /tmp/venv/bin/python benchmarks/listen.py [--model models/starter.safetensors] [--strings 30]

Needs espeak-ng and, for the live figures, PulseAudio (../shared/tools/vmic-up is run first). The
model needs its rejection calibration beside it (`audrey calibrate --model ...`).

Material: espeak-ng voices that neither the model (`--synth N` uses the first N), nor the rejection's
detector, nor its calibration heard (scenes.HELD_OUT_VOICES), saying strings of 3-7 random digits with
150-600 ms between digits, at random speeds; non-digit words (wordlist.HELD_OUT_WORDS, in no training or
calibration list) and synthetic noise bursts from a seed no calibration used.

1. Latency through the virtual microphone: `audrey listen --json` runs as its own process; one long
   track of strings is played into the sink with paplay. The time each digit ends in the room is the
   moment paplay returns (its drain completes when the sink has played everything) minus the audio
   after that digit; the latency is from there to the digit's JSON line arriving on the pipe. Also
   reported: the listener's own figure (from the capture of the block holding the end of speech).
2. Exact-string accuracy: the strings `listen` printed for that track (clean, live), and offline with
   `transcribe`'s pipeline on more strings, clean and with pink noise at 10 dB SNR. The noise is one
   steady level for the whole track, as in a room: 10 dB below the strings' mean level, so the
   voices' own levels spread each string's SNR (0.5-17 dB, median 9.4 dB, for the 150 strings).
3. False accepts: the share of non-digit words (clean, and at 10-30 dB SNR) and noise bursts that
   produce any digit event.
4. CPU while listening to silence: the listener process's utime+stime over 30 s (/proc/PID/stat).
5. Memory over a 30-minute stream, fed through DigitStream faster than real time: RSS every minute.
6. Transcribe speed: seconds of audio per second of compute, for a 10-minute recording.
Results go to benchmarks/results/listen.json.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VMIC_UP = REPO.parent / "shared/tools/vmic-up"
RATE = 16000
CLI = [sys.executable, "-c", "from audrey.cli import main; main()"]


# --- material -------------------------------------------------------------------------------------


def digit_clips(root: Path, voice_ids, seed: int) -> dict:
    """(voice index, digit, speed) -> trimmed clip at RATE, for the held-out voices."""
    from audrey import DIGIT_WORDS
    from audrey.data import synth
    from audrey.data.scenes import render_clips, voice_list

    voices = voice_list(voice_ids)
    jobs = [(w, v, s) for v in voices for w in DIGIT_WORDS for s in synth.SPEEDS]
    clips = render_clips(jobs, root, RATE, "espeak-ng held-out voices")
    return {(i // 40, (i % 40) // 4, synth.SPEEDS[i % 4]): c for i, c in enumerate(clips)}


def make_strings(clips: dict, n: int, seed: int) -> list[dict]:
    """n strings of 3-7 digits, one voice and speed each, 150-600 ms pauses."""
    from audrey.data import synth
    from audrey.data.scenes import compose

    rng = np.random.default_rng(seed)
    n_voices = max(v for v, _, _ in clips) + 1
    out = []
    for _ in range(n):
        digits = "".join(str(d) for d in rng.integers(0, 10, rng.integers(3, 8)))
        voice, speed = int(rng.integers(n_voices)), int(synth.SPEEDS[rng.integers(len(synth.SPEEDS))])
        pieces = [clips[(voice, int(c), speed)] for c in digits]
        audio, spans = compose(pieces, list(rng.uniform(0.15, 0.6, len(digits) - 1)), RATE, lead=0.0, tail=0.0)
        out.append({"digits": digits, "audio": audio, "spans": spans, "voice": voice, "speed": speed,
                    "rms": float(np.sqrt(np.mean(np.concatenate(pieces) ** 2)))})
    return out


def track(strings: list[dict], gap: float = 1.6, lead: float = 1.0, noise_snr: float | None = None, seed: int = 0
          ) -> tuple[np.ndarray, list[int]]:
    """The strings one after another with `gap` s between them; and every digit's end (sample)."""
    from audrey.data.noise import add_noise

    parts, ends, pos = [np.zeros(int(lead * RATE), np.float32)], [], int(lead * RATE)
    for s in strings:
        parts += [s["audio"], np.zeros(int(gap * RATE), np.float32)]
        ends += [pos + b for _, b in s["spans"]]
        pos += len(s["audio"]) + int(gap * RATE)
    audio = np.concatenate(parts)
    if noise_snr is not None:
        rms = float(np.mean([s["rms"] for s in strings]))
        audio = add_noise(audio, noise_snr, np.random.default_rng(seed), "pink", rms, RATE)
    return audio, ends


def write(path: Path, audio: np.ndarray) -> Path:
    import soundfile as sf

    sf.write(str(path), np.clip(audio, -1, 1), RATE, subtype="PCM_16")
    return path


# --- the listener as a process -------------------------------------------------------------------


class Listener:
    def __init__(self, model: Path):
        self.proc = subprocess.Popen(CLI + ["listen", "--json", "--model", str(model)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.events: list[dict] = []
        self.q: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: setattr(self, "stderr", self.proc.stderr.read()), daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            ev = json.loads(line)
            ev["_t"] = time.monotonic()
            self.events.append(ev)
            self.q.put(ev)
        self.q.put(None)

    def wait_for(self, kind: str, timeout: float = 60) -> dict:
        end = time.monotonic() + timeout
        while True:
            ev = self.q.get(timeout=max(0.01, end - time.monotonic()))
            if ev is None:
                raise SystemExit(f"listener exited: {getattr(self, 'stderr', '')[-500:]}")
            if ev["event"] == kind:
                return ev

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(30)
        time.sleep(0.2)


def play(path: Path) -> float:
    """Play into the virtual microphone; returns time.monotonic() when playback has drained."""
    subprocess.run(["paplay", "--device=vmic", str(path)], check=True)
    return time.monotonic()


def live_run(model: Path, strings: list[dict], tmp: Path) -> dict:
    audio, ends = track(strings)
    path = write(tmp / "live.wav", audio)
    lis = Listener(model)
    try:
        hello = lis.wait_for("listening")
        time.sleep(1.0)
        t_done = play(path)
        time.sleep(2.0)
        lis.stop()
    finally:
        if lis.proc.poll() is None:
            lis.proc.kill()
    t_end = [t_done - (len(audio) - e) / RATE for e in ends]
    results = [e for e in lis.events if e["event"] in ("digit", "rejected")]
    lat, internal, missed = [], [], 0
    for i, t in enumerate(t_end):
        nxt = t_end[i + 1] if i + 1 < len(t_end) else np.inf
        ev = next((e for e in results if t - 0.05 < e["_t"] < min(t + 1.0, nxt)), None)
        if ev is None:
            missed += 1
            continue
        lat.append(ev["_t"] - t)
        if "latency_ms" in ev:
            internal.append(ev["latency_ms"] / 1000)
    printed = [e["string"] for e in lis.events if e["event"] == "string"]
    truth = [s["digits"] for s in strings]
    return {"device": hello["device"], "rate": hello["rate"], "digits": len(ends), "matched": len(lat), "missed": missed,
            "latency_ms": pct(lat), "latency_in_process_ms": pct(internal),
            "strings": len(truth), "strings_printed": len(printed),
            "string_accuracy": string_accuracy(printed, truth), "examples": list(zip(truth, printed))[:8]}


def pct(xs) -> dict:
    ms = np.array(xs) * 1000
    if not len(ms):
        return {}
    return {"n": len(ms), "p50": round(float(np.percentile(ms, 50)), 1), "p95": round(float(np.percentile(ms, 95)), 1),
            "max": round(float(ms.max()), 1), "mean": round(float(ms.mean()), 1)}


def string_accuracy(printed: list[str], truth: list[str]) -> float:
    """Exact matches, aligned in order (a missing or extra string costs only itself)."""
    import difflib

    sm = difflib.SequenceMatcher(a=truth, b=printed, autojunk=False)
    return round(sum(b.size for b in sm.get_matching_blocks()) / max(1, len(truth)), 4)


def cpu_on_silence(model: Path, seconds: float = 30.0) -> dict:
    lis = Listener(model)
    try:
        lis.wait_for("listening")
        time.sleep(3.0)
        c0, t0 = lis.cpu_seconds(), time.monotonic()
        time.sleep(seconds)
        c1, t1 = lis.cpu_seconds(), time.monotonic()
        rss = int(Path(f"/proc/{lis.proc.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        lis.stop()
    finally:
        if lis.proc.poll() is None:
            lis.proc.kill()
    return {"seconds": round(t1 - t0, 1), "cpu_percent_of_one_core": round(100 * (c1 - c0) / (t1 - t0), 2),
            "rss_mb": round(rss / 2**20, 1)}


# --- offline --------------------------------------------------------------------------------------


def offline_accuracy(judge, strings: list[dict], noise_snr: float | None, seed: int) -> dict:
    from audrey.live.stream import DigitStream

    audio, _ = track(strings, noise_snr=noise_snr, seed=seed)
    stream = DigitStream(judge, RATE)
    events = []
    for i in range(0, len(audio), 320):
        events += stream.feed(audio[i : i + 320])
    events += stream.flush()
    printed = [e.string for e in events if e.kind == "string"]
    truth = [s["digits"] for s in strings]
    digits = sum(len(s) for s in truth)
    wrong = [(t, p) for t, p in zip(truth, printed) if t != p][:6]
    return {"strings": len(truth), "digits": digits, "snr_db": noise_snr,
            "string_accuracy": string_accuracy(printed, truth),
            "digits_printed": sum(e.kind == "digit" for e in events),
            "rejected_events": sum(e.kind == "rejected" for e in events), "some_errors": wrong}


def false_accepts(judge, seed: int = 2) -> dict:
    from audrey.data.scenes import HELD_OUT_VOICES, scenes_for
    from audrey.data.wordlist import HELD_OUT_WORDS
    from audrey.live.stream import DigitStream

    scenes = [s for s in scenes_for(RATE, HELD_OUT_VOICES, HELD_OUT_WORDS, speeds=(150,), bursts=400, seed=seed)
              if s.kind != "digit"]
    by: dict[str, list[bool]] = {}
    for sc in scenes:
        stream = DigitStream(judge, RATE)
        events = stream.feed(sc.audio) + stream.flush()
        key = sc.kind if sc.kind == "noise" else ("word" if sc.snr is None else "noisy word")
        by.setdefault(key, []).append(any(e.kind == "digit" for e in events))
        by.setdefault(f"{sc.kind}:{sc.text}", []).append(any(e.kind == "digit" for e in events))
    summary = {k: {"n": len(v), "false_accept_rate": round(float(np.mean(v)), 4)} for k, v in by.items() if ":" not in k}
    summary["per_item"] = {k.split(":", 1)[1]: round(float(np.mean(v)), 3) for k, v in sorted(by.items()) if ":" in k}
    return summary


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_30_minutes(judge, strings: list[dict], minutes: int = 30, seed: int = 3) -> dict:
    """A 30-minute stream (digit strings, words, noise bursts, long silences over a steady -60 dBFS
    hiss) fed in 20 ms blocks through one DigitStream, as fast as it goes; RSS every simulated minute."""
    from audrey.data.noise import noise_burst
    from audrey.live.stream import DigitStream

    rng = np.random.default_rng(seed)
    stream = DigitStream(judge, RATE)
    block = RATE // 50
    per_minute = 60 * RATE
    rss, counts = [], {"digit": 0, "rejected": 0, "string": 0}
    buf = np.zeros(0, np.float32)
    fed = 0
    t0 = time.perf_counter()
    while fed < minutes * per_minute:
        if len(buf) < block:
            r = rng.random()
            if r < 0.5:
                piece = strings[rng.integers(len(strings))]["audio"]
            elif r < 0.7:
                piece = noise_burst(rng, RATE)
            else:
                piece = np.zeros(int(rng.uniform(1, 20) * RATE), np.float32)
            buf = np.concatenate([buf, piece, np.zeros(int(rng.uniform(1.0, 3.0) * RATE), np.float32)])
        b, buf = buf[:block], buf[block:]
        b = b + (0.001 * rng.standard_normal(block)).astype(np.float32)
        for e in stream.feed(b):
            counts[e.kind] += 1
        fed += block
        if fed % per_minute == 0:
            rss.append(rss_bytes())
    elapsed = time.perf_counter() - t0
    mb = np.array(rss) / 2**20
    return {"minutes": minutes, "compute_seconds": round(elapsed, 1), "x_real_time": round(minutes * 60 / elapsed, 1),
            "rss_mb_minute_1": round(float(mb[0]), 1), "rss_mb_minute_30": round(float(mb[-1]), 1),
            "rss_mb_growth_after_minute_2": round(float(mb[-1] - mb[1]), 2), "rss_mb_max": round(float(mb.max()), 1),
            "events": counts}


def transcribe_speed(judge, strings: list[dict], tmp: Path, minutes: float = 10.0) -> dict:
    from audrey.live.stream import transcribe_file

    rng = np.random.default_rng(4)
    parts, total = [], 0
    while total < minutes * 60 * RATE:
        s = strings[rng.integers(len(strings))]["audio"]
        parts += [s, np.zeros(int(rng.uniform(1.5, 8.0) * RATE), np.float32)]
        total += len(s) + len(parts[-1])
    audio = np.concatenate(parts)
    from audrey.data.noise import add_noise

    path = write(tmp / "long.wav", add_noise(audio, 25, rng, "pink", 0.1, RATE))
    t0 = time.perf_counter()
    t = transcribe_file(path, judge)
    elapsed = time.perf_counter() - t0
    seg = [np.zeros(int(0.5 * RATE), np.float32) + 0.01 * rng.standard_normal(int(0.5 * RATE)).astype(np.float32)]
    from audrey.audio.waveform import resample

    w = [resample(seg[0], RATE, judge.sample_rate)]
    times = []
    for _ in range(50):
        a = time.perf_counter()
        judge.judge(w, [0.4])
        times.append(time.perf_counter() - a)
    return {"audio_seconds": round(t.seconds, 1), "compute_seconds": round(elapsed, 2),
            "x_real_time": round(t.seconds / elapsed, 1), "strings": len(t.strings),
            "classifier_call_ms": pct(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "starter.safetensors")
    ap.add_argument("--strings", type=int, default=30, help="strings played live (>= 100 digits at 30)")
    ap.add_argument("--offline-strings", type=int, default=150)
    ap.add_argument("--no-live", action="store_true", help="skip the virtual-microphone figures")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "listen.json")
    args = ap.parse_args()
    import torch

    from audrey.data.scenes import HELD_OUT_VOICES
    from audrey.live.judge import Judge

    torch.set_num_threads(1)
    judge = Judge.from_file(args.model, need_calibration=True)
    results: dict = {"model": str(args.model), "rejection": judge.calibration.report}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from audrey.data.scenes import material_root

        clips = digit_clips(material_root(), HELD_OUT_VOICES, 0)
        live_strings = make_strings(clips, args.strings, seed=10)
        offline_strings = make_strings(clips, args.offline_strings, seed=11)

        def step(name, fn):
            t = time.perf_counter()
            results[name] = fn()
            print(f"{name} ({time.perf_counter() - t:.0f} s): {json.dumps(results[name])}", flush=True)

        if not args.no_live:
            up = subprocess.run([str(VMIC_UP)], capture_output=True, text=True)
            if up.returncode != 0:
                sys.exit(f"virtual microphone did not start: {up.stderr.strip()}")
            step("live", lambda: live_run(args.model, live_strings, tmp))
            step("cpu_on_silence", lambda: cpu_on_silence(args.model))
        step("accuracy_clean", lambda: offline_accuracy(judge, offline_strings, None, 0))
        step("accuracy_10db", lambda: offline_accuracy(judge, offline_strings, 10.0, 1))
        step("false_accepts", lambda: false_accepts(judge))
        step("memory_30_minutes", lambda: memory_30_minutes(judge, offline_strings))
        step("transcribe_speed", lambda: transcribe_speed(judge, offline_strings, tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
