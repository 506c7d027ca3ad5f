"""Personal k-shot benchmark on FSDD (protocol P2 of ../shared/notes/baselines.md), DTW side by side.

For each of the 6 speakers: a base model trained without that speaker (the leave-one-speaker-out
fold models of benchmarks/loso.py, reused from --bases or trained here); enrollment = takes 0..k-1
of each digit of that speaker, k in {1, 3, 5}; test = takes 10..49 (400 clips). Reports accuracy
before (the base) and after `audrey.training.personal.adapt`, adaptation wall time, the personal file's size
and load time, and the classic speaker-dependent recognizer on the same enrollment: DTW templates
over MFCCs (1-nearest template). Takes 5..9 are the validation takes the adaptation settings were
chosen on (`--select` reruns that choice); the test takes are never used to choose anything.

    python benchmarks/personal.py --bases benchmarks/cache/bases      # trains missing bases (~2-3 min each)
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

from audrey.data.corpora import read_corpus
from audrey.data.features import FeatureCache, clip_features
from audrey.models.modelfile import load_model, save_model
from audrey.models.personal_file import load_bundle, save_personal
from audrey.training.personal import AdaptConfig, accuracy, adapt, first_takes
from audrey.training.runs import synthetic_clips
from audrey.data.splits import leave_one_speaker_out
from audrey.training.train import TrainConfig, train
from peers import DTWTemplates, mfcc  # benchmarks/peers.py, beside this script

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("AUDREY_FSDD", REPO.parent / "shared" / "data" / "fsdd"))
RESULTS = REPO / "benchmarks" / "results"
KS = (1, 3, 5)
VAL_TAKES = range(5, 10)
TEST_TAKES = range(10, 50)


# --- bases ----------------------------------------------------------------------------------------


def base_for(speaker: str, clips, bases: Path, synth: int, epochs: int):
    path = bases / f"cnn-without-{speaker}.safetensors"
    if not path.exists():
        print(f"  training the base without {speaker} -> {path}", flush=True)
        split = leave_one_speaker_out(clips, speaker, n_val=0)
        cfg = replace(TrainConfig(arch="cnn"), epochs=epochs, patience=10**6)
        result = train(split.train + synthetic_clips(synth, cfg.seed), [], cfg)
        bases.mkdir(parents=True, exist_ok=True)
        save_model(result.bundle, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bases", type=Path, default=REPO / "benchmarks" / "cache" / "bases")
    parser.add_argument("--synth", type=int, default=100, help="synthetic voices in a base trained here")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--speaker", action="append", help="only these speakers (default all 6)")
    parser.add_argument("--select", action="store_true", help="score on the validation takes 5-9 instead of 10-49")
    parser.add_argument("--no-dtw", action="store_true")
    parser.add_argument("--set", action="append", default=[], help="override an AdaptConfig field, e.g. --set steps=80")
    args = parser.parse_args()
    if not FSDD.exists():
        sys.exit(f"FSDD not found at {FSDD}; set AUDREY_FSDD to the folder holding recordings/")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    cfg = AdaptConfig()
    for item in args.set:
        key, value = item.split("=", 1)
        cfg = replace(cfg, **{key: type(getattr(cfg, key))(value)})
    clips = read_corpus(FSDD)
    speakers = args.speaker or sorted({c.speaker for c in clips})
    test_takes = VAL_TAKES if args.select else TEST_TAKES
    rows = []
    for speaker in speakers:
        base_path = base_for(speaker, clips, args.bases, args.synth, args.epochs)
        base, _ = load_model(base_path)
        mine = [c for c in clips if c.speaker == speaker]
        test = [c for c in mine if c.take in test_takes]
        cache = FeatureCache(base.frontend)
        tx, test = clip_features(test, base.frontend, cache, "test")
        ty = torch.tensor([c.digit for c in test])
        before = accuracy(base, tx, ty)
        dtw_tests = None if args.no_dtw else [(mfcc(c.path), c.digit) for c in test]
        for k in KS:
            enroll = first_takes([c for c in mine if c.take < 5], k)
            ex, enroll = clip_features(enroll, base.frontend, cache, "enroll")
            ey = torch.tensor([c.digit for c in enroll])
            t0 = time.perf_counter()
            personal = adapt(base, ex, ey, cfg)
            seconds = time.perf_counter() - t0
            after = accuracy(personal, tx, ty)
            with tempfile.TemporaryDirectory() as tmp:
                wpath = save_personal(Path(tmp) / "p.personal.safetensors", base, personal, {"speaker": speaker})
                t1 = time.perf_counter()
                load_bundle(base_path, wpath)
                load_s = time.perf_counter() - t1
                size = wpath.stat().st_size
            row = {"speaker": speaker, "k": k, "before": before, "after": after, "adapt_seconds": seconds,
                   "file_bytes": size, "load_seconds": load_s}
            if dtw_tests is not None:
                row["dtw"], row["dtw_ms_per_clip"] = DTWTemplates([(mfcc(c.path), c.digit) for c in enroll]).accuracy(dtw_tests)
            rows.append(row)
            dtw = f"  dtw {row['dtw']:.2%}" if "dtw" in row else ""
            print(f"  {speaker:9s} k={k}  before {before:.2%}  after {after:.2%}{dtw}  adapt {seconds:4.1f} s  "
                  f"file {size / 1e3:.0f} kB  load {1000 * load_s:.0f} ms", flush=True)

    summary = {}
    print(f"\nFSDD personal k-shot ({'validation takes 5-9' if args.select else 'test takes 10-49'}; "
          f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__})")
    print(f"{'k':>3s} {'before':>8s} {'after':>8s} {'worst':>16s} {'dtw':>8s} {'dtw worst':>10s} {'adapt s':>8s}")
    for k in KS:
        r = [x for x in rows if x["k"] == k]
        worst = min(r, key=lambda x: x["after"])
        s = {"before": statistics.mean(x["before"] for x in r), "after": statistics.mean(x["after"] for x in r),
             "worst": worst["after"], "worst_speaker": worst["speaker"],
             "adapt_seconds": statistics.mean(x["adapt_seconds"] for x in r),
             "adapt_seconds_max": max(x["adapt_seconds"] for x in r),
             "file_bytes": r[0]["file_bytes"], "load_seconds_max": max(x["load_seconds"] for x in r)}
        if "dtw" in r[0]:
            s["dtw"] = statistics.mean(x["dtw"] for x in r)
            s["dtw_worst"] = min(x["dtw"] for x in r)
        summary[k] = s
        dtw = f"{s['dtw']:8.2%} {s['dtw_worst']:10.2%}" if "dtw" in s else f"{'-':>8s} {'-':>10s}"
        print(f"{k:3d} {s['before']:8.2%} {s['after']:8.2%} {s['worst']:7.2%} {s['worst_speaker']:>8s} {dtw} {s['adapt_seconds']:8.1f}")
    if not args.select and not args.speaker:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = {"config": cfg.to_dict(), "rows": rows, "summary": summary,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"}
        (RESULTS / "personal.json").write_text(json.dumps(out, indent=2))
        plot(rows, RESULTS / "personal.png")
        print(f"results: {RESULTS / 'personal.json'}, plot: {RESULTS / 'personal.png'}")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speakers = sorted({r["speaker"] for r in rows})
    fig, axes = plt.subplots(1, len(KS), figsize=(4 * len(KS), 3.6), sharey=True)
    for ax, k in zip(axes, KS):
        r = {x["speaker"]: x for x in rows if x["k"] == k}
        x = np.arange(len(speakers))
        ax.bar(x - 0.27, [100 * r[s]["before"] for s in speakers], 0.27, label="base (before)", color="#bbb")
        if "dtw" in rows[0]:
            ax.bar(x, [100 * r[s]["dtw"] for s in speakers], 0.27, label="DTW templates", color="#e9a23b")
        ax.bar(x + 0.27, [100 * r[s]["after"] for s in speakers], 0.27, label="personal weights", color="#2b7bba")
        ax.set_xticks(x, speakers, rotation=30, fontsize=8)
        ax.set_title(f"k = {k} take(s) per digit")
        ax.set_ylim(80, 100)
        ax.grid(axis="y", lw=0.3)
    axes[0].set_ylabel("accuracy on takes 10-49 (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("FSDD personal k-shot: each speaker's base never heard them")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
