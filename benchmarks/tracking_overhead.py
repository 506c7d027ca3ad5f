"""W&B logging overhead per epoch (target: under 5% of the epoch time).

Trains the same CNN on one FSDD fold (train on 4 speakers, validate on 1, test on 1) with tracking
`disabled`, then `offline`, alternating, and reports (a) the time spent inside the tracker's calls per
epoch (logging the epoch's metrics; at the end the tables, confusion plot, worst clips with audio and
spectrograms, the model artifact) and (b) the median epoch time in each mode, which also counts the W&B
service process competing for the CPU.

    python benchmarks/tracking_overhead.py --epochs 4 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("AUDREY_FSDD", REPO.parent / "shared" / "data" / "fsdd"))
RESULTS = REPO / "benchmarks" / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not FSDD.exists():
        sys.exit(f"FSDD not found at {FSDD}; set AUDREY_FSDD")
    from audrey.training.runs import train_run
    from audrey.tracking.wandb_run import TrackingOptions
    from audrey.training.train import TrainConfig

    cfg = replace(TrainConfig(arch="cnn"), epochs=args.epochs, patience=10**6)
    results = {"disabled": [], "offline": []}
    tracker_seconds, timings, run_seconds = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["WANDB_DIR"] = tmp
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            for r in range(args.repeats):
                for mode in ("disabled", "offline"):
                    run = train_run([FSDD], Path(tmp) / f"{mode}{r}.safetensors", cfg, "loso:theo", 1, 0,
                                    tracking=TrackingOptions(mode))
                    epochs = [h["epoch_seconds"] for h in run.result.history]
                    results[mode] += epochs
                    if mode == "offline":
                        rec = json.loads(Path(run.record_path).read_text())
                        tracker_seconds.append(rec["summary"]["tracking_seconds"])
                        timings.append(rec["tracking_timing"])
                        run_seconds.append(rec["seconds"])
                    print(f"  {mode:8s} run {r}: epochs {', '.join(f'{e:.1f}' for e in epochs)} s", flush=True)
        finally:
            os.chdir(cwd)
    epoch_off, epoch_dis = statistics.median(results["offline"]), statistics.median(results["disabled"])
    per_epoch_log = statistics.median(t.get("log", 0.0) for t in timings) / args.epochs
    one_off = statistics.median(sum(v for k, v in t.items() if k != "log") for t in timings)
    out = {"epochs": args.epochs, "repeats": args.repeats,
           "median_epoch_seconds": {"disabled": epoch_dis, "offline": epoch_off},
           "epoch_time_change_pct": 100 * (epoch_off - epoch_dis) / epoch_dis,
           "log_seconds_per_epoch": per_epoch_log, "log_pct_of_epoch": 100 * per_epoch_log / epoch_dis,
           "one_off_seconds_per_run": one_off, "one_off_pct_of_run": 100 * one_off / statistics.median(run_seconds),
           "timing_by_call": timings, "run_seconds": run_seconds}
    print(f"\nmedian epoch: disabled {epoch_dis:.2f} s, offline {epoch_off:.2f} s ({out['epoch_time_change_pct']:+.1f}%)")
    print(f"per-epoch logging (metrics): {1000 * per_epoch_log:.1f} ms per epoch = {out['log_pct_of_epoch']:.2f}% of an epoch")
    print(f"once per run (W&B start, tables, confusion plot, worst clips with audio + spectrograms, model artifact, "
          f"finish): {one_off:.2f} s = {out['one_off_pct_of_run']:.1f}% of a {statistics.median(run_seconds):.0f} s run of "
          f"{args.epochs} epochs")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tracking_overhead.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
