"""`audrey listen` / `audrey transcribe`: latency, string accuracy, false accepts, CPU, memory, speed.

    /tmp/venv/bin/python benchmarks/listen.py [--model models/starter.safetensors] [--strings 30]
    /tmp/venv/bin/python benchmarks/listen.py --engine ctc [--ctc-model models/digits.ctc.safetensors]
    /tmp/venv/bin/python benchmarks/listen.py --confirm     # the segments engine with --confirm, live and offline

Without `--confirm` the segments engine runs as `listen --no-confirm` (each digit printed as it
ends), live and offline alike. `--confirm` (listen's default) prints a stretch's digits once its
pause has passed, so its per-digit latency includes the --string-gap pause; and its string model
is weak on espeak-ng voices, the material here, so its accuracy here is not a figure for people
(benchmarks/not_a_digit.py measures it on real speech).

Needs espeak-ng and, for the live figures, PulseAudio (the project's tools/vmic-up is run first). The
model needs its rejection calibration beside it (`audrey calibrate --model ...`). `--engine ctc`
measures `listen --engine ctc` (the digit-string model, audrey.live.ctc_transcribe.CTCStream)
instead: the same figures through that stream, with the latency per string (its line comes once
the --string-gap pause has passed: reported also less that pause), and no classifier call times.

Material: espeak-ng voices that neither the model (`--synth N` uses the first N), nor the rejection's
detector, nor its calibration heard (scenes.HELD_OUT_VOICES), saying strings of 3-7 random digits with
150-600 ms between digits, at random speeds; non-digit words (wordlist.HELD_OUT_WORDS, in no training or
calibration list) and synthetic noise bursts from a seed no calibration used.

1. Latency through the virtual microphone: `audrey listen --json` runs as its own process; one long
   track of strings is played into the sink with paplay. The time each digit ends in the room is the
   moment paplay returns (its drain completes when the sink has played everything) minus the audio
   after that digit; the latency is from there to the digit's JSON line arriving on the pipe. Also
   reported: the listener's own figure (from the capture of the block holding the end of speech).
   Per string: from the end of its last digit to its string line (both engines wait for the pause).
2. Exact-string accuracy: the strings `listen` printed for that track (clean, live), and offline with
   `transcribe`'s pipeline on more strings, clean and with pink noise at 10 dB SNR. The noise is one
   steady level for the whole track, as in a room: 10 dB below the strings' mean level, so the
   voices' own levels spread each string's SNR (0.5-17 dB, median 9.4 dB, for the 150 strings).
3. False accepts: the share of non-digit words (clean, and at 10-30 dB SNR) and noise bursts that
   produce any digit event.
4. CPU while listening to silence: the listener process's utime+stime over 30 s (/proc/PID/stat).
5. Memory over a 30-minute stream, fed through the engine's stream faster than real time: RSS every minute.
6. Transcribe speed: seconds of audio per second of compute, for a 10-minute recording.
Results go to benchmarks/results/listen.json (--confirm: listen-confirm.json; --engine ctc: listen_ctc.json).
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
VMIC_UP = REPO / "tools" / "vmic-up"
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
    def __init__(self, options: list[str]):
        """`options`: the engine's, e.g. ["--model", path] or ["--engine", "ctc"]."""
        self.proc = subprocess.Popen(CLI + ["listen", "--json", *options], stdout=subprocess.PIPE,
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


def live_run(options: list[str], strings: list[dict], tmp: Path, string_gap: float = 0.9) -> dict:
    """Per digit for the segments engine (its digit lines come as each digit ends); per string for
    both (the ctc engine's digits come with their string)."""
    audio, ends = track(strings)
    string_ends = np.cumsum([len(s["spans"]) for s in strings]) - 1  # index in `ends` of each string's last digit
    path = write(tmp / "live.wav", audio)
    lis = Listener(options)
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
    printed = [e["string"] for e in lis.events if e["event"] == "string"]
    truth = [s["digits"] for s in strings]
    out = {"device": hello["device"], "rate": hello["rate"], "engine": hello.get("engine", "segments")}
    if out["engine"] == "segments":
        lat, internal, missed = first_events(lis.events, ("digit", "rejected"), t_end, 1.0)
        out.update(digits=len(ends), matched=len(lat), missed=missed, latency_ms=pct(lat), latency_in_process_ms=pct(internal))
    lat, internal, missed = first_events(lis.events, ("string",), [t_end[i] for i in string_ends], string_gap + 1.5)
    out.update(strings=len(truth), strings_printed=len(printed), strings_matched=len(lat), strings_missed=missed,
               string_latency_ms=pct(lat), string_latency_after_pause_ms=pct([x - string_gap for x in lat]),
               string_latency_in_process_ms=pct(internal),
               string_accuracy=string_accuracy(printed, truth), examples=list(zip(truth, printed))[:8])
    return out


def first_events(events: list[dict], kinds: tuple, t_end: list[float], within: float) -> tuple[list, list, int]:
    """For each moment in `t_end`: the first event of `kinds` after it (within `within` s, before the
    next moment); its delay, the listener's own latency figure, and how many moments had none."""
    results = [e for e in events if e["event"] in kinds]
    lat, internal, missed = [], [], 0
    for i, t in enumerate(t_end):
        nxt = t_end[i + 1] if i + 1 < len(t_end) else np.inf
        ev = next((e for e in results if t - 0.05 < e["_t"] < min(t + within, nxt)), None)
        if ev is None:
            missed += 1
            continue
        lat.append(ev["_t"] - t)
        if "latency_ms" in ev:
            internal.append(ev["latency_ms"] / 1000)
    return lat, internal, missed


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


def cpu_on_silence(options: list[str], seconds: float = 30.0) -> dict:
    lis = Listener(options)
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


class Engine:
    """The stream `listen` and `transcribe` run for one engine, and the `listen` options that pick it."""

    def __init__(self, name: str, model: Path, ctc_model: Path | None, confirm: bool = False):
        self.name = name
        self.check = None  # the segments engine's --confirm: an audrey.live.confirm.StringCheck
        if name == "ctc":
            from audrey.models.ctc_file import SHIPPED_CTC, load_ctc

            self.model = Path(ctc_model or SHIPPED_CTC)
            self.bundle = load_ctc(self.model)
            self.options = ["--engine", "ctc"] + (["--ctc-model", str(self.model)] if ctc_model else [])
            self.judge = None
        else:
            from audrey.live.judge import Judge

            self.model = model
            self.judge = Judge.from_file(model, need_calibration=True)
            self.options = ["--model", str(model), "--confirm" if confirm else "--no-confirm"] + \
                (["--ctc-model", str(ctc_model)] if confirm and ctc_model else [])
            if confirm:
                from audrey.live.confirm import StringCheck

                self.check = StringCheck.from_file(ctc_model)

    def stream(self):
        if self.judge is None:
            from audrey.live.ctc_transcribe import CTCStream

            return CTCStream(self.bundle, RATE)
        from audrey.live.stream import DigitStream

        return DigitStream(self.judge, RATE, confirm=self.check)

    def transcribe(self, path: Path):
        if self.judge is None:
            from audrey.live.ctc_transcribe import transcribe_ctc

            return transcribe_ctc(path, self.bundle)
        from audrey.live.stream import transcribe_file

        return transcribe_file(path, self.judge, confirm=self.check)


def offline_accuracy(engine: Engine, strings: list[dict], noise_snr: float | None, seed: int) -> dict:
    audio, _ = track(strings, noise_snr=noise_snr, seed=seed)
    stream = engine.stream()
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


def false_accepts(engine: Engine, seed: int = 2) -> dict:
    from audrey.data.scenes import HELD_OUT_VOICES, scenes_for
    from audrey.data.wordlist import HELD_OUT_WORDS

    scenes = [s for s in scenes_for(RATE, HELD_OUT_VOICES, HELD_OUT_WORDS, speeds=(150,), bursts=400, seed=seed)
              if s.kind != "digit"]
    by: dict[str, list[bool]] = {}
    for sc in scenes:
        stream = engine.stream()
        events = stream.feed(sc.audio) + stream.flush()
        key = sc.kind if sc.kind == "noise" else ("word" if sc.snr is None else "noisy word")
        by.setdefault(key, []).append(any(e.kind == "digit" for e in events))
        by.setdefault(f"{sc.kind}:{sc.text}", []).append(any(e.kind == "digit" for e in events))
    summary = {k: {"n": len(v), "false_accept_rate": round(float(np.mean(v)), 4)} for k, v in by.items() if ":" not in k}
    summary["per_item"] = {k.split(":", 1)[1]: round(float(np.mean(v)), 3) for k, v in sorted(by.items()) if ":" in k}
    return summary


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory_30_minutes(engine: Engine, strings: list[dict], minutes: int = 30, seed: int = 3) -> dict:
    """A 30-minute stream (digit strings, words, noise bursts, long silences over a steady -60 dBFS
    hiss) fed in 20 ms blocks through one stream of the engine, as fast as it goes; RSS every simulated minute."""
    from audrey.data.noise import noise_burst

    rng = np.random.default_rng(seed)
    stream = engine.stream()
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


def transcribe_speed(engine: Engine, strings: list[dict], tmp: Path, minutes: float = 10.0) -> dict:
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
    t = engine.transcribe(path)
    elapsed = time.perf_counter() - t0
    out = {"audio_seconds": round(t.seconds, 1), "compute_seconds": round(elapsed, 2),
           "x_real_time": round(t.seconds / elapsed, 1), "strings": len(t.strings)}
    if engine.judge is None:
        return out
    judge = engine.judge
    seg = [np.zeros(int(0.5 * RATE), np.float32) + 0.01 * rng.standard_normal(int(0.5 * RATE)).astype(np.float32)]
    from audrey.audio.waveform import resample

    w = [resample(seg[0], RATE, judge.sample_rate)]
    times = []
    for _ in range(50):
        a = time.perf_counter()
        judge.judge(w, [0.4])
        times.append(time.perf_counter() - a)
    return {**out, "classifier_call_ms": pct(times)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=("segments", "ctc"), default="segments")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "starter.safetensors", help="--engine segments")
    ap.add_argument("--ctc-model", type=Path, help="--engine ctc, or --confirm's string model (default: the bundled digits.ctc.safetensors)")
    ap.add_argument("--confirm", action="store_true", help="--engine segments with the digit-string model's second opinion "
                    "(listen's default on real speech; live and offline alike; default: --no-confirm, each digit as it ends)")
    ap.add_argument("--strings", type=int, default=30, help="strings played live (>= 100 digits at 30)")
    ap.add_argument("--offline-strings", type=int, default=150)
    ap.add_argument("--no-live", action="store_true", help="skip the virtual-microphone figures")
    ap.add_argument("--offline", nargs="*", metavar="PART", help="only these offline parts (default: all; none: --offline alone): "
                    "accuracy_clean accuracy_10db false_accepts memory_30_minutes transcribe_speed")
    ap.add_argument("--out", type=Path, help="default: benchmarks/results/listen.json (--confirm: listen-confirm.json; "
                    "--engine ctc: listen_ctc.json)")
    args = ap.parse_args()
    import torch

    from audrey.data.scenes import HELD_OUT_VOICES

    torch.set_num_threads(1)
    if args.confirm and args.engine != "segments":
        sys.exit("--confirm is the segments engine's option")
    engine = Engine(args.engine, args.model, args.ctc_model, args.confirm)
    name = "listen_ctc" if args.engine == "ctc" else "listen-confirm" if args.confirm else "listen"
    out_path = args.out or REPO / "benchmarks" / "results" / f"{name}.json"
    results: dict = {"engine": engine.name, "model": str(engine.model), "confirm": args.confirm}
    if engine.judge is not None:
        results["rejection"] = engine.judge.calibration.report
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        from audrey.data.scenes import material_root

        clips = digit_clips(material_root(), HELD_OUT_VOICES, 0)
        live_strings = make_strings(clips, args.strings, seed=10)
        offline_strings = make_strings(clips, args.offline_strings, seed=11)

        def step(name, fn, offline=True):
            if offline and args.offline is not None and name not in args.offline:
                return
            t = time.perf_counter()
            results[name] = fn()
            print(f"{name} ({time.perf_counter() - t:.0f} s): {json.dumps(results[name])}", flush=True)

        if not args.no_live:
            up = subprocess.run([str(VMIC_UP)], capture_output=True, text=True)
            if up.returncode != 0:
                sys.exit(f"virtual microphone did not start: {up.stderr.strip()}")
            step("live", lambda: live_run(engine.options, live_strings, tmp), offline=False)
            step("cpu_on_silence", lambda: cpu_on_silence(engine.options), offline=False)
        step("accuracy_clean", lambda: offline_accuracy(engine, offline_strings, None, 0))
        step("accuracy_10db", lambda: offline_accuracy(engine, offline_strings, 10.0, 1))
        step("false_accepts", lambda: false_accepts(engine))
        step("memory_30_minutes", lambda: memory_30_minutes(engine, offline_strings))
        step("transcribe_speed", lambda: transcribe_speed(engine, offline_strings, tmp))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"written to {out_path}")


if __name__ == "__main__":
    main()
