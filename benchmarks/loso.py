"""FSDD leave-one-speaker-out benchmark (protocol P1 of ../shared/notes/baselines.md).

For each of the 6 speakers: train on the other 5 (plus synthetic espeak-ng voices when --synth > 0;
synthetic voices are never tested on), test on all 500 clips of the held-out speaker. Prints the
accuracy per fold, mean and worst speaker, train seconds per fold, parameters, model-file size and
inference ms per clip (batch 1, waveform -> features -> model) for each architecture, and writes
benchmarks/results/loso-<arch>.json plus a per-speaker bar chart PNG.

    python benchmarks/loso.py --arch cnn --arch conformer
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from audrey.audio import waveform
from audrey.data.corpora import read_corpus
from audrey.training.evaluate import evaluate
from audrey.models.modelfile import save_model
from audrey.live.recognizer import Recognizer
from audrey.training.runs import synthetic_clips
from audrey.data.splits import leave_one_speaker_out, speakers_of
from audrey.training.train import TrainConfig, train

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("AUDREY_FSDD", REPO.parent / "shared" / "data" / "fsdd"))
RESULTS = REPO / "benchmarks" / "results"


def inference_ms(recognizer: Recognizer, waves: list[np.ndarray]) -> float:
    """Median wall time of one clip through prepare -> log-mel -> model, batch 1."""
    for w in waves[:10]:
        recognizer.predict([w])
    times = []
    for w in waves:
        t = time.perf_counter()
        recognizer.predict([w])
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def run(arch: str, cfg: TrainConfig, synth: int, speakers: list[str] | None, save: Path | None = None) -> dict:
    clips = read_corpus(FSDD)
    extra = synthetic_clips(synth, cfg.seed)
    folds = []
    for speaker in speakers or speakers_of(clips):
        split = leave_one_speaker_out(clips, speaker, n_val=0)
        t0 = time.perf_counter()
        result = train(split.train + extra, [], cfg)
        seconds = time.perf_counter() - t0
        if save is not None:  # the fold models are the "base without speaker s" of benchmarks/personal.py
            save.mkdir(parents=True, exist_ok=True)
            save_model(result.bundle, save / f"{arch}-without-{speaker}.safetensors")
        ev = evaluate(result.bundle, split.test)
        cm = ev.confusion()
        confusions = [f"{i}->{int(cm[i].argmax())} ({int(cm[i].max())})" for i in range(10)
                      if int(cm[i].argmax()) != i or cm[i, i] < 40]
        folds.append({"speaker": speaker, "accuracy": ev.accuracy, "train_seconds": seconds, "weak": confusions})
        print(f"  {arch} fold {speaker:9s} acc {ev.accuracy:.2%}  train {seconds:5.0f} s  weak digits: {', '.join(confusions) or '-'}",
              flush=True)
    bundle = result.bundle
    with tempfile.TemporaryDirectory() as tmp:
        size = save_model(bundle, Path(tmp) / "m.safetensors").stat().st_size
    waves = [waveform.load_audio(c.path) for c in split.test[:200]]
    accs = [f["accuracy"] for f in folds]
    worst = min(folds, key=lambda f: f["accuracy"])
    return {
        "arch": arch, "config": cfg.to_dict(), "synth_voices": synth, "folds": folds,
        "mean": statistics.mean(accs), "worst": worst["accuracy"], "worst_speaker": worst["speaker"],
        "train_seconds_mean": statistics.mean(f["train_seconds"] for f in folds),
        "params": sum(p.numel() for p in bundle.model.parameters()), "file_bytes": size,
        "inference_ms": inference_ms(Recognizer(bundle), waves),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speakers = [f["speaker"] for f in results[0]["folds"]]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(results)
    for i, r in enumerate(results):
        x = np.arange(len(speakers)) + i * width
        ax.bar(x, [100 * f["accuracy"] for f in r["folds"]], width, label=f"{r['arch']} (mean {r['mean']:.1%})")
    ax.axhline(97, color="k", ls="--", lw=0.8, label="target mean 97%")
    ax.axhline(90.2, color="gray", ls=":", lw=0.8, label="baseline CNN 90.2%")
    ax.set_xticks(np.arange(len(speakers)) + width * (len(results) - 1) / 2, speakers)
    ax.set_ylim(50, 100)
    ax.set_ylabel("accuracy on held-out speaker (%)")
    ax.set_title("FSDD leave-one-speaker-out")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", action="append", help="cnn and/or conformer (repeatable; default both)")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--synth", type=int, default=0, help="synthetic espeak-ng voices added to training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speaker", action="append", help="only these held-out speakers (default all 6)")
    parser.add_argument("--save", type=Path, help="keep each fold's model here as <arch>-without-<speaker>.safetensors")
    args = parser.parse_args()
    if not FSDD.exists():
        sys.exit(f"FSDD not found at {FSDD}; set AUDREY_FSDD to the folder holding recordings/")
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = []
    for arch in args.arch or ["cnn", "conformer"]:
        cfg = replace(TrainConfig(arch=arch, seed=args.seed), epochs=args.epochs, patience=10**6)
        r = run(arch, cfg, args.synth, args.speaker, args.save)
        results.append(r)
        (RESULTS / f"loso-{arch}.json").write_text(json.dumps(r, indent=2))
    print(f"\nFSDD leave-one-speaker-out ({results[0]['machine']})")
    print(f"{'arch':10s} {'mean':>7s} {'worst':>16s} {'s/fold':>7s} {'params':>8s} {'file':>8s} {'ms/clip':>8s}")
    for r in results:
        print(f"{r['arch']:10s} {r['mean']:7.2%} {r['worst']:7.2%} {r['worst_speaker']:>8s} {r['train_seconds_mean']:7.0f} "
              f"{r['params']:8d} {r['file_bytes'] / 1e6:6.2f}MB {r['inference_ms']:8.2f}")
    if len(results[0]["folds"]) > 1:
        plot(results, RESULTS / "loso.png")
        print(f"plot: {RESULTS / 'loso.png'}")


if __name__ == "__main__":
    main()
