"""Personal weights against DTW templates on real voices, in one run, on the same takes.

Every base model here never heard the speaker it is adapted to: they are the real pool's fold
models (benchmarks/real_pool.py, the starter's recipe: real_pool.STARTER_RECIPE).

- **FSDD k-shot** (protocol P2 of ../shared/notes/baselines.md): 6 speakers, each with the real
  pool's leave-that-speaker-out model (`real_pool.py --protocol loso`, trained on every other real
  speaker). Enrollment: takes 0..k-1 of each digit, k = 1, 2, 3, 5, 10; test: takes 10-49 (400
  clips). The adaptation settings were chosen on takes 5-9 with k <= 5 (`--select` scores there);
  the test takes choose nothing.
- **Another day**: the same test takes in the conditions of conditions.py (another microphone, a
  room, real noise, faster and slower speech), enrollment clean, k = 1 and 5.
- **Size**: at k = 5, the personal file at each rank of change kept (0 = every change whole) and
  with the head alone adapted: accuracy, file size, load time.
- **AN4 cross-utterance**: the digits `audrey data align` cut from each AN4 speaker's utterances
  (about 13 utterances, 2-3 takes per digit). The utterances alternate into two halves; enroll from
  one half (k = 1 take per digit where the half has one, or every take in it) and test on the other
  half, then swap. Base: the pool fold model whose test fold holds the speaker. Digits a half never
  says have no template: DTW cannot answer them, the personal model falls back on the base.

DTW templates (benchmarks/peers.py: MFCCs, 1-nearest template) use the same enrollment takes and
are tested on the same clips everywhere.

    OMP_NUM_THREADS=1 python benchmarks/personal.py            # ~30 min on 2 cores
    python benchmarks/personal.py --only fsdd --select         # the settings' validation score
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
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from audrey.audio import frontend as fe
from audrey.audio import waveform
from audrey.data.corpora import Clip, read_corpus
from audrey.data.features import FeatureCache, clip_features
from audrey.models.modelfile import load_model
from audrey.models.personal_file import load_bundle, save_personal
from audrey.training.personal import AdaptConfig, accuracy, adapt, first_takes
from conditions import Conditions  # benchmarks/, beside this script
from peers import DTW_RATE, DTWTemplates, mfcc_features
from real_pool import FOLDS, SHARED, STARTER_RECIPE, clip_key, deal_folds, read_pool, trained_folds

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
KS = (1, 2, 3, 5, 10)
CONDITION_KS = (1, 5)
SIZE_K = 5
RANKS = (0, 1, 2, 4, 8)
ENROLL_TAKES = range(0, 10)
VAL_TAKES = range(5, 10)
TEST_TAKES = range(10, 50)


def base_folder(protocol: str, names: list[str]) -> Path:
    return trained_folds(STARTER_RECIPE["config"], protocol, STARTER_RECIPE["epochs"], STARTER_RECIPE["synth"], STARTER_RECIPE["seed"], names)


# --- the two methods on one enrollment ------------------------------------------------------------

class Takes:
    """One speaker's clips with their 16 kHz waveforms, features and DTW MFCCs, computed once."""

    def __init__(self, clips: list[Clip], cfg: fe.FrontendConfig, cache: FeatureCache):
        feats, self.clips = clip_features(clips, cfg, cache, "features")
        self.feats, self.cfg = feats, cfg
        self.index = {clip_key(c): i for i, c in enumerate(self.clips)}
        self.labels = torch.tensor([c.digit for c in self.clips])
        self.waves = [fe.load_clip(c.path, cfg) for c in self.clips]
        self.mfccs = [mfcc_features(waveform.resample(w, cfg.sample_rate, DTW_RATE)) for w in self.waves]

    def ids(self, clips: list[Clip]) -> list[int]:
        return [self.index[clip_key(c)] for c in clips]

    def heard_in(self, condition: str, ids: list[int], conditions: Conditions) -> tuple[torch.Tensor, list[np.ndarray]]:
        """(features, MFCCs) of the clips `ids` in `condition`."""
        if condition == "clean":
            return self.feats[ids], [self.mfccs[i] for i in ids]
        waves = [conditions.apply(self.waves[i], condition, clip_key(self.clips[i])) for i in ids]
        return (fe.features(waves, self.cfg, rate=self.cfg.sample_rate),
                [mfcc_features(waveform.resample(w, self.cfg.sample_rate, DTW_RATE)) for w in waves])


def score(personal, dtw: DTWTemplates | None, feats: torch.Tensor, mfccs: list, labels: torch.Tensor) -> dict:
    """Accuracy of the personal model and of DTW on the same test clips. A digit with no template
    is one DTW cannot answer: it counts as wrong."""
    row = {"personal": accuracy(personal, feats, labels), "clips": len(labels)}
    if dtw is not None:
        row["dtw"], row["dtw_ms_per_clip"] = dtw.accuracy(list(zip(mfccs, labels.tolist())))
    return row


def file_figures(base_path: Path, base, personal, rank: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_personal(Path(tmp) / "p.personal.safetensors", base, personal, {"speaker": "benchmark"}, rank)
        t0 = time.perf_counter()
        load_bundle(base_path, path)
        return {"file_bytes": path.stat().st_size, "load_ms": 1000 * (time.perf_counter() - t0)}


# --- FSDD -----------------------------------------------------------------------------------------

def fsdd_rows(cfg: AdaptConfig, select: bool, speakers: list[str] | None, conditions: Conditions) -> list[dict]:
    clips = read_corpus(SHARED / "fsdd")
    folder = base_folder("loso", sorted({c.speaker for c in clips}))
    test_takes = VAL_TAKES if select else TEST_TAKES
    ks = tuple(k for k in KS if k <= 5) if select else KS
    rows = []
    for speaker in speakers or sorted({c.speaker for c in clips}):
        base_path = folder / f"{speaker}.safetensors"
        base, _ = load_model(base_path)
        mine = [c for c in clips if c.speaker == speaker]
        takes = Takes([c for c in mine if c.take in ENROLL_TAKES or c.take in test_takes], base.frontend, FeatureCache(base.frontend))
        test = takes.ids([c for c in takes.clips if c.take in test_takes])
        ty = takes.labels[test]
        heard = {cond: takes.heard_in(cond, test, conditions) for cond in conditions.names}
        before = {cond: accuracy(base, f, ty) for cond, (f, _) in heard.items()}
        for k in ks:
            enroll = takes.ids(first_takes([c for c in takes.clips if c.take < (5 if select else 10)], k))
            ex, ey = takes.feats[enroll], takes.labels[enroll]
            dtw = DTWTemplates([(takes.mfccs[i], int(takes.labels[i])) for i in enroll])
            for rank in (RANKS if k == SIZE_K and not select else (cfg.rank,)):
                for layers in (("all", "head") if rank == cfg.rank and k == SIZE_K and not select else ("all",)):
                    t0 = time.perf_counter()
                    personal = adapt(base, ex, ey, replace(cfg, rank=rank, layers=layers))
                    seconds = time.perf_counter() - t0
                    main_row = rank == cfg.rank and layers == "all"
                    for cond, (feats, mfccs) in heard.items():
                        if cond != "clean" and not (main_row and k in CONDITION_KS):
                            continue
                        row = {"protocol": "fsdd", "speaker": speaker, "k": k, "condition": cond, "rank": rank,
                               "layers": layers, "before": before[cond], "adapt_seconds": seconds,
                               **score(personal, dtw if main_row else None, feats, mfccs, ty),
                               **file_figures(base_path, base, personal, rank)}
                        rows.append(row)
                        if cond == "clean" or main_row:
                            dtw_s = f"  dtw {row['dtw']:.2%}" if "dtw" in row else ""
                            print(f"  {speaker:9s} k={k:<2d} {cond:12s} rank {rank} {layers:4s} before {row['before']:.2%}  "
                                  f"personal {row['personal']:.2%}{dtw_s}  adapt {seconds:4.1f} s  "
                                  f"file {row['file_bytes'] / 1e3:.0f} kB", flush=True)
    return rows


# --- AN4 ------------------------------------------------------------------------------------------

def utterance_of(aligned: Path) -> dict[str, str]:
    """Aligned clip (real path) -> the utterance it was cut from (data/aligned/manifest.json)."""
    manifest = json.loads((aligned / "manifest.json").read_text())
    return {os.path.realpath(aligned / d["clip"]): u["source"] for u in manifest["utterances"] for d in u["digits"] if d.get("clip")}


def an4_rows(cfg: AdaptConfig, aligned: Path, speakers: list[str] | None) -> list[dict]:
    folder = base_folder("pool", [f"fold{k}" for k in range(FOLDS)])
    pool = read_pool(aligned)
    fold_of = deal_folds(pool)
    utt = utterance_of(aligned)
    an4 = [c for c in pool if c.meta.get("corpus") == "an4"]
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    for c in an4:
        by_speaker[c.speaker].append(c)
    rows, bases = [], {}
    for speaker in speakers or sorted(by_speaker):
        clips = by_speaker[speaker]
        utterances = sorted({utt[clip_key(c)] for c in clips})
        if len(utterances) < 2:
            continue
        k_fold = fold_of[speaker]
        if k_fold not in bases:
            bases[k_fold] = load_model(folder / f"fold{k_fold}.safetensors")[0]
        base = bases[k_fold]
        takes = Takes(clips, base.frontend, FeatureCache(base.frontend))
        halves = [set(utterances[0::2]), set(utterances[1::2])]
        for h, enroll_utts in enumerate(halves):
            enroll_clips = [c for c in takes.clips if utt[clip_key(c)] in enroll_utts]
            test = takes.ids([c for c in takes.clips if utt[clip_key(c)] not in enroll_utts])
            if not enroll_clips or not test:
                continue
            ty = takes.labels[test]
            tf, tm = takes.feats[test], [takes.mfccs[i] for i in test]
            before = accuracy(base, tf, ty)
            for k in ("1", "all"):
                enroll = takes.ids(first_takes(enroll_clips, 1) if k == "1" else enroll_clips)
                t0 = time.perf_counter()
                personal = adapt(base, takes.feats[enroll], takes.labels[enroll], cfg)
                seconds = time.perf_counter() - t0
                dtw = DTWTemplates([(takes.mfccs[i], int(takes.labels[i])) for i in enroll])
                covered = set(takes.labels[enroll].tolist())
                rows.append({"protocol": "an4", "speaker": speaker, "half": h, "k": k, "condition": "clean",
                             "enroll_takes": len(enroll), "digits_enrolled": len(covered),
                             "test_in_enrolled_digits": int(sum(int(y) in covered for y in ty)),
                             "before": before, "adapt_seconds": seconds, **score(personal, dtw, tf, tm, ty)})
        done = [r for r in rows if r["speaker"] == speaker]
        if done:
            mean = lambda key, k: statistics.mean(r[key] for r in done if r["k"] == k)  # noqa: E731
            print(f"  {speaker:12s} before {mean('before', '1'):.1%}  k=1 personal {mean('personal', '1'):.1%} dtw {mean('dtw', '1'):.1%}  "
                  f"all: personal {mean('personal', 'all'):.1%} dtw {mean('dtw', 'all'):.1%}", flush=True)
    return rows


# --- tables ---------------------------------------------------------------------------------------

def pooled(rows: list[dict], key: str) -> float:
    """Accuracy over all test clips of `rows` (each row's accuracy weighted by its clips)."""
    return sum(r[key] * r["clips"] for r in rows) / sum(r["clips"] for r in rows)


def summarize(rows: list[dict], cfg: AdaptConfig) -> dict:
    out: dict = {}
    fsdd = [r for r in rows if r["protocol"] == "fsdd"]
    main = [r for r in fsdd if r["rank"] == cfg.rank and r["layers"] == "all"]
    for cond in sorted({r["condition"] for r in main}, key=lambda c: (c != "clean", c)):
        for k in sorted({r["k"] for r in main if r["condition"] == cond}):
            sel = [r for r in main if r["condition"] == cond and r["k"] == k]
            worst = min(sel, key=lambda r: r["personal"])
            s = {"before": statistics.mean(r["before"] for r in sel), "personal": statistics.mean(r["personal"] for r in sel),
                 "worst": worst["personal"], "worst_speaker": worst["speaker"],
                 "adapt_seconds_max": max(r["adapt_seconds"] for r in sel), "file_bytes": max(r["file_bytes"] for r in sel)}
            if all("dtw" in r for r in sel):
                s["dtw"] = statistics.mean(r["dtw"] for r in sel)
                s["dtw_worst"] = min(r["dtw"] for r in sel)
            out.setdefault("fsdd", {}).setdefault(cond, {})[str(k)] = s
    size = [r for r in fsdd if r["k"] == SIZE_K and r["condition"] == "clean"]
    for rank, layers in sorted({(r["rank"], r["layers"]) for r in size}):
        sel = [r for r in size if r["rank"] == rank and r["layers"] == layers]
        out.setdefault("size", []).append({"rank": rank, "layers": layers, "personal": statistics.mean(r["personal"] for r in sel),
                                           "worst": min(r["personal"] for r in sel), "file_bytes": max(r["file_bytes"] for r in sel),
                                           "load_ms_max": max(r["load_ms"] for r in sel)})
    an4 = [r for r in rows if r["protocol"] == "an4"]
    for k in ("1", "all"):
        sel = [r for r in an4 if r["k"] == k]
        if not sel:
            continue
        per_speaker = defaultdict(list)
        for r in sel:
            per_speaker[r["speaker"]].append(r)
        worst = {m: min(pooled(v, m) for v in per_speaker.values()) for m in ("personal", "dtw")}
        out.setdefault("an4", {})[k] = {
            "speakers": len(per_speaker), "test_clips": sum(r["clips"] for r in sel),
            "before": pooled(sel, "before"), "personal": pooled(sel, "personal"), "dtw": pooled(sel, "dtw"),
            "personal_worst": worst["personal"], "dtw_worst": worst["dtw"],
            "enroll_takes_mean": statistics.mean(r["enroll_takes"] for r in sel),
            "digits_enrolled_mean": statistics.mean(r["digits_enrolled"] for r in sel),
            "test_in_enrolled_digits": sum(r["test_in_enrolled_digits"] for r in sel) / sum(r["clips"] for r in sel),
            "personal_beats_dtw_speakers": sum(pooled(v, "personal") > pooled(v, "dtw") for v in per_speaker.values()),
            "dtw_beats_personal_speakers": sum(pooled(v, "dtw") > pooled(v, "personal") for v in per_speaker.values()),
        }
    return out


def print_tables(summary: dict, title: str) -> None:
    print(f"\n{title}")
    for cond, by_k in summary.get("fsdd", {}).items():
        print(f"\nFSDD personal k-shot, test takes heard {cond}:")
        print(f"{'k':>3s} {'base':>8s} {'personal':>9s} {'worst':>16s} {'dtw':>8s} {'dtw worst':>10s} {'adapt s':>8s} {'file kB':>8s}")
        for k, s in by_k.items():
            dtw = f"{s['dtw']:8.2%} {s['dtw_worst']:10.2%}" if "dtw" in s else f"{'-':>8s} {'-':>10s}"
            print(f"{k:>3s} {s['before']:8.2%} {s['personal']:9.2%} {s['worst']:7.2%} {s['worst_speaker']:>8s} {dtw} "
                  f"{s['adapt_seconds_max']:8.1f} {s['file_bytes'] / 1e3:8.0f}")
    if summary.get("size"):
        print(f"\nFile size against accuracy (FSDD, k = {SIZE_K}, clean):")
        print(f"{'what is kept':>26s} {'mean':>8s} {'worst':>8s} {'file kB':>8s} {'load ms':>8s}")
        for s in summary["size"]:
            what = "head only" if s["layers"] == "head" else "every change whole" if s["rank"] == 0 else f"rank {s['rank']} per weight"
            print(f"{what:>26s} {s['personal']:8.2%} {s['worst']:8.2%} {s['file_bytes'] / 1e3:8.1f} {s['load_ms_max']:8.1f}")
    for k, s in summary.get("an4", {}).items():
        print(f"\nAN4 cross-utterance, enrolled with {'1 take per digit' if k == '1' else 'every take of the half'} "
              f"({s['speakers']} speakers, {s['test_clips']} test clips; {s['enroll_takes_mean']:.1f} takes, "
              f"{s['digits_enrolled_mean']:.1f} digits enrolled on average; {s['test_in_enrolled_digits']:.0%} of test clips of an enrolled digit):")
        print(f"  base {s['before']:.2%}   personal {s['personal']:.2%} (worst speaker {s['personal_worst']:.1%})   "
              f"DTW {s['dtw']:.2%} (worst {s['dtw_worst']:.1%});  personal ahead for {s['personal_beats_dtw_speakers']} "
              f"speakers, DTW for {s['dtw_beats_personal_speakers']}")


def plot(summary: dict, path: Path) -> None:
    from audrey.plots import save_figure

    import matplotlib.pyplot as plt

    fsdd = summary.get("fsdd", {})
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    clean = fsdd.get("clean", {})
    ks = [int(k) for k in clean]
    ax = axes[0]
    ax.plot(ks, [100 * clean[str(k)]["before"] for k in ks], "o:", color="#999", label="base (never heard the speaker)")
    ax.plot(ks, [100 * clean[str(k)]["dtw"] for k in ks], "s-", color="#e9a23b", label="DTW templates")
    ax.plot(ks, [100 * clean[str(k)]["personal"] for k in ks], "o-", color="#2b7bba", label="personal weights (mean)")
    ax.plot(ks, [100 * clean[str(k)]["worst"] for k in ks], "o--", color="#2b7bba", alpha=0.5, label="personal, worst speaker")
    ax.set_xscale("log")
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("takes per digit enrolled")
    ax.set_ylabel("accuracy on takes 10-49 (%)")
    ax.set_title("FSDD: more takes")
    ax.grid(lw=0.3)
    ax.legend(fontsize=7)
    ax = axes[1]
    conds = [c for c in fsdd if str(SIZE_K) in fsdd[c]]
    x = np.arange(len(conds))
    for off, key, color, label in ((-0.27, "before", "#bbb", "base"), (0, "dtw", "#e9a23b", "DTW"), (0.27, "personal", "#2b7bba", "personal")):
        ax.bar(x + off, [100 * fsdd[c][str(SIZE_K)][key] for c in conds], 0.27, color=color, label=label)
    ax.set_xticks(x, conds, rotation=25, fontsize=8)
    ax.set_ylim(50, 100)
    ax.set_title(f"another day (enrolled clean, k = {SIZE_K})")
    ax.grid(axis="y", lw=0.3)
    ax.legend(fontsize=7)
    ax = axes[2]
    for s in summary.get("size", []):
        label = "head" if s["layers"] == "head" else "whole" if s["rank"] == 0 else f"r{s['rank']}"
        ax.scatter(s["file_bytes"] / 1e3, 100 * s["personal"], color="#2b7bba")
        ax.annotate(label, (s["file_bytes"] / 1e3, 100 * s["personal"]), fontsize=8, xytext=(4, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("personal file (kB)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"file size (k = {SIZE_K})")
    ax.grid(lw=0.3)
    fig.suptitle("Personal weights against DTW templates: speakers the base never heard")
    fig.tight_layout()
    save_figure(fig, path)


def with_setting(cfg: AdaptConfig, item: str) -> AdaptConfig:
    """`cfg` with one `field=value` changed; `augment.field=value` for the augmentation's."""
    key, value = item.split("=", 1)
    if key.startswith("augment."):
        key = key.split(".", 1)[1]
        return replace(cfg, augment=replace(cfg.augment, **{key: type(getattr(cfg.augment, key))(value)}))
    return replace(cfg, **{key: type(getattr(cfg, key))(value)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["fsdd", "an4"], help="one protocol (default both)")
    parser.add_argument("--aligned", type=Path, default=REPO / "data" / "aligned", help="`audrey data align --out` folder")
    parser.add_argument("--speaker", action="append", help="only these speakers")
    parser.add_argument("--select", action="store_true", help="FSDD only, scored on the validation takes 5-9")
    parser.add_argument("--set", action="append", default=[], help="override an AdaptConfig field, e.g. --set steps=80")
    parser.add_argument("--out", type=Path, default=RESULTS / "personal.json")
    args = parser.parse_args()
    if not (SHARED / "fsdd").is_dir():
        sys.exit(f"{SHARED / 'fsdd'}: not found; this benchmark needs the real corpora (set AUDREY_SHARED_DATA to their folder)")
    torch.set_num_threads(1)  # one job per core: two threads on a busy 2-core CPU are slower
    cfg = AdaptConfig()
    for item in args.set:
        cfg = with_setting(cfg, item)
    conditions = Conditions(SHARED / "speech-commands" / "_background_")
    rows = []
    if args.only in (None, "fsdd"):
        rows += fsdd_rows(cfg, args.select, args.speaker, conditions)
    if args.only in (None, "an4") and not args.select:
        rows += an4_rows(cfg, args.aligned, args.speaker)
    summary = summarize(rows, cfg)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread"
    print_tables(summary, f"Personal weights ({'validation takes 5-9' if args.select else 'test takes'}; {machine})")
    if not args.select and not args.speaker:
        RESULTS.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"config": cfg.to_dict(), "summary": summary, "rows": rows, "machine": machine}, indent=1))
        plot(summary, args.out.with_suffix(".png"))
        print(f"results: {args.out}, plot: {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
