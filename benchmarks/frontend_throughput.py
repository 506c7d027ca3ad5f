"""Feature extraction throughput on FSDD: clips/s cold (decode, resample, trim, log-mel, write the
cache) and warm (read the cache), through audrey.data.features.clip_features.

    python benchmarks/frontend_throughput.py [FSDD folder] [--limit N] [--threads T]

FSDD defaults to shared/data/fsdd beside the repository, or $AUDREY_FSDD. The cache lives in a
temporary folder, so ~/.cache is untouched and "cold" really is cold.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from audrey.data.corpora import read_corpus
from audrey.data.features import FeatureCache, clip_features
from audrey.audio.frontend import FrontendConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FSDD = Path(os.environ.get("AUDREY_FSDD", REPO.parent / "shared" / "data" / "fsdd"))


def timed(clips, cfg, cache) -> tuple[float, int]:
    start = time.perf_counter()
    feats, kept = clip_features(clips, cfg, cache)
    return time.perf_counter() - start, len(kept)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fsdd", nargs="?", type=Path, default=DEFAULT_FSDD)
    ap.add_argument("--limit", type=int, default=None, help="use the first N clips only")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the cost of one core)")
    args = ap.parse_args()
    if not args.fsdd.is_dir():
        sys.exit(f"FSDD not found at {args.fsdd}; pass its folder or set AUDREY_FSDD")
    torch.set_num_threads(args.threads)

    clips = read_corpus(args.fsdd)[: args.limit]
    cfg = FrontendConfig()
    with tempfile.TemporaryDirectory(prefix="audrey-bench-") as tmp:
        os.environ["AUDREY_CACHE"] = tmp
        cache = FeatureCache(cfg, Path(tmp))
        # import librosa & build the filterbank outside the timing (a one-off, not per clip)
        clip_features(clips[:1], cfg, FeatureCache(cfg, Path(tmp) / "warmup"))
        cold, n_cold = timed(clips, cfg, cache)
        warm, n_warm = timed(clips, cfg, cache)
        cache_mb = sum(p.stat().st_size for p in cache.dir.rglob("*.npy")) / 1e6

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    print(f"corpus: {args.fsdd} ({len(clips)} clips)")
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores ({usable} usable), "
          f"torch threads {torch.get_num_threads()}, python {platform.python_version()}, torch {torch.__version__}")
    print(f"frontend: {cfg.sample_rate} Hz, {cfg.n_mels} mels {cfg.f_min:.0f}-{cfg.f_max:.0f} Hz, "
          f"features {cfg.n_mels}x{cfg.n_frames} per clip; cache {cache_mb:.1f} MB")
    print()
    print(f"{'pass':<6} {'clips':>6} {'seconds':>8} {'clips/s':>9} {'ms/clip':>8}")
    for name, secs, n in (("cold", cold, n_cold), ("warm", warm, n_warm)):
        print(f"{name:<6} {n:>6} {secs:>8.2f} {n / secs:>9.0f} {1000 * secs / n:>8.2f}")
    print(f"\nwarm/cold speed-up: {cold / warm:.1f}x")


if __name__ == "__main__":
    main()
