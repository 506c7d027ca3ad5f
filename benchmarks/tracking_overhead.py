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
    from audrey.runs import train_run
    from audrey.tracking import TrackingOptions
    from audrey.train import TrainConfig

    cfg = replace(TrainConfig(arch="cnn"), epochs=args.epochs, patience=10**6)
    results = {"disabled": [], "offline": []}
    tracker_seconds = []
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
                        tracker_seconds.append(json.loads(Path(run.record_path).read_text())["summary"]["tracking_seconds"])
                    print(f"  {mode:8s} run {r}: epochs {', '.join(f'{e:.1f}' for e in epochs)} s", flush=True)
        finally:
            os.chdir(cwd)
    epoch_off, epoch_dis = statistics.median(results["offline"]), statistics.median(results["disabled"])
    per_epoch_calls = statistics.median(tracker_seconds) / args.epochs
    out = {"epochs": args.epochs, "repeats": args.repeats,
           "median_epoch_seconds": {"disabled": epoch_dis, "offline": epoch_off},
           "tracker_seconds_per_run": tracker_seconds, "tracker_seconds_per_epoch": per_epoch_calls,
           "overhead_calls_pct": 100 * per_epoch_calls / epoch_dis,
           "overhead_epoch_time_pct": 100 * (epoch_off - epoch_dis) / epoch_dis}
    print(f"\nmedian epoch: disabled {epoch_dis:.2f} s, offline {epoch_off:.2f} s "
          f"({out['overhead_epoch_time_pct']:+.1f}%)")
    print(f"time inside tracker calls: {per_epoch_calls:.3f} s per epoch ({out['overhead_calls_pct']:.1f}% of an epoch; "
          f"whole run incl. tables, media and artifact: {statistics.median(tracker_seconds):.2f} s)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "tracking_overhead.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
