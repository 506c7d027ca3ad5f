"""Inference latency per clip at batch 1, features included (trim -> log-mel -> model -> softmax),
for the eager model and the frozen TorchScript path the Recognizer uses.

    python benchmarks/inference.py [models/starter.safetensors] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from audrey.audio import waveform
from audrey.data import synth
from audrey.models.modelfile import load_model
from audrey.live.recognizer import Recognizer

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("AUDREY_FSDD", REPO.parent / "shared" / "data" / "fsdd"))


def clips(n: int) -> list:
    if (FSDD / "recordings").is_dir():
        return [waveform.load_audio(p) for p in sorted((FSDD / "recordings").glob("*.wav"))[:n]]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:  # no FSDD here: espeak-ng digits instead
        return [waveform.load_audio(synth.say(synth.DIGIT_WORDS[i % 10], v, 150, Path(tmp) / f"{i}.wav"))
                for i, v in enumerate(synth.voices(n // 10 + 1))][:n]


def per_clip_ms(recognizer: Recognizer, waves: list) -> tuple[float, float]:
    for w in waves[:20]:
        recognizer.predict([w])
    times = []
    for w in waves:
        t = time.perf_counter()
        recognizer.predict([w])
        times.append(1000 * (time.perf_counter() - t))
    times.sort()
    return statistics.median(times), times[int(0.95 * len(times))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", nargs="?", type=Path, default=REPO / "models" / "starter.safetensors")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--clips", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundle, _ = load_model(args.model)
    waves = clips(args.clips)
    print(f"{args.model} ({bundle.arch}, {sum(p.numel() for p in bundle.model.parameters())} params), "
          f"{len(waves)} clips, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f}")
    for name, fast in (("eager", False), ("frozen", True)):
        p50, p95 = per_clip_ms(Recognizer(bundle, fast=fast), waves)
        print(f"  {name:7s} median {p50:.2f} ms/clip   p95 {p95:.2f} ms/clip")


if __name__ == "__main__":
    main()
