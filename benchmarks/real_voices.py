"""Audrey's starter model and its peers, side by side on the same real isolated digits.

Clips: a seeded sample of FSDD (`--per-speaker`, default 100 of each speaker's 500 clips), every
Speech Commands digit clip (231, 115 speakers), and any other labelled folder given with `--data`
(any layout `audrey.data.corpora.read_corpus` reads). Each method scores every clip:

- audrey predict     the starter model's classifier (`audrey predict`: Recognizer, one clip at a time)
- audrey transcribe  `audrey transcribe` on the clip (segmenter + classifier + rejection): right only
                     when it prints exactly the one right digit; a rejected or split clip is wrong
- pocketsphinx       PocketSphinx 5 (CMU en-us model from its wheel), JSGF grammar of one digit word,
                     16 kHz int16, full_utt (FSDD's 8 kHz resampled up to 16 kHz)
- dtw                DTW over MFCCs, 1-nearest template, speaker-independent: for each test speaker,
                     `--templates` clips per digit drawn (seeded) from every *other* speaker's clips
                     in this run, never the speaker's own

Reports accuracy per corpus, its worst speaker (among speakers with at least MIN_SPEAKER_CLIPS clips;
Speech Commands has 1-7 clips per speaker, too few to rank), per gender where the corpus says it, and
ms per clip (model or decoder loading excluded; one torch thread). Writes benchmarks/results/
real_voices.json and real_voices.png on a full run (the default methods, no --limit).

The starter model trained on all of FSDD: its FSDD rows are on its own training clips and are marked
so (from the model file's provenance); Speech Commands and `--data` folders it never saw are zero-shot.

    python benchmarks/real_voices.py                                 # ~3-4 min on a busy 2-core CPU
    python benchmarks/real_voices.py --data /path/to/an4-digits      # plus another labelled folder
    python benchmarks/real_voices.py --limit 20 --method pocketsphinx --method dtw   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from audrey.data.corpora import Clip, read_corpus
from peers import DIGIT_LOOP, ONE_DIGIT, DTWTemplates, PocketSphinxDigits, dtw_cost, mfcc  # benchmarks/peers.py

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results"
MODEL = REPO / "models" / "starter.safetensors"
MIN_SPEAKER_CLIPS = 10  # a speaker with fewer clips is left out of "worst speaker" (one clip = 0% or 100%)
WARMUP_CALLS = 3  # untimed calls before timing: TorchScript's profiling executor optimises on its first runs
DEFAULT_TEMPLATES = 60  # DTW templates per digit: 600 per clip, ~2 min for 831 clips on a busy 2-core CPU (10: 67%, 30: 66%, 60: 72%)

METHODS = {
    "predict": "audrey predict",
    "transcribe": "audrey transcribe",
    "pocketsphinx": "PocketSphinx, one digit",
    "pocketsphinx-loop": "PocketSphinx, digit loop",  # not in the default run
    "dtw": "DTW templates",
}
DEFAULT_METHODS = ("predict", "transcribe", "pocketsphinx", "dtw")
AUDREY_METHODS = ("predict", "transcribe")


# --- clips ----------------------------------------------------------------------------------------


def sample_per_speaker(clips: list[Clip], n: int, seed: int) -> list[Clip]:
    """At most `n` clips of each speaker, drawn reproducibly; speakers with fewer keep all theirs."""
    by_speaker: dict[str, list[Clip]] = defaultdict(list)
    for c in clips:
        by_speaker[c.speaker].append(c)
    out = []
    for speaker in sorted(by_speaker):
        mine = sorted(by_speaker[speaker], key=lambda c: c.path.name)
        out += mine if len(mine) <= n else random.Random(f"{seed}-{speaker}").sample(mine, n)
    return sorted(out, key=lambda c: str(c.path))


def load_clips(folders: list[Path], per_speaker: int, seed: int, limit: int | None) -> dict[Path, list[Clip]]:
    out = {}
    for folder in folders:
        mine = sample_per_speaker(read_corpus(folder), per_speaker, seed)
        if limit:
            mine = random.Random(seed).sample(mine, min(limit, len(mine)))
        out[folder] = mine
    return out


def trained_on(model: Path, folder: Path) -> bool:
    """Whether the model file's provenance names `folder` (or a folder inside or around it) as training
    data: then Audrey's figures there are on clips it learned from, not zero-shot. Provenance paths are
    relative to the repository, where `audrey train` ran."""
    from audrey.models.modelfile import load_model

    bundle, _ = load_model(model)
    here = folder.resolve()
    for data in bundle.provenance.get("data") or []:
        seen = (REPO / data).resolve()
        if seen == here or seen in here.parents or here in seen.parents:
            return True
    return False


# --- the methods: each says what it heard in a clip ("7", "", "77") --------------------------------


def recognizer_for(name: str, model: Path) -> Callable[[Path], str]:
    """One clip's file in, what the method heard out. Loading happens here, outside the timing."""
    if name == "predict":
        from audrey.live.recognizer import Recognizer

        recognizer = Recognizer.from_file(model)
        return lambda path: str(recognizer.predict_files([path])[0].digit)
    if name == "transcribe":
        from audrey.live.judge import Judge
        from audrey.live.stream import transcribe_file

        judge = Judge.from_file(model, need_calibration=True)
        return lambda path: transcribe_file(path, judge).text.replace(" ", "")
    decoder = PocketSphinxDigits(ONE_DIGIT if name == "pocketsphinx" else DIGIT_LOOP)
    return decoder.recognize_file


def run_dtw(clips: list[Clip], per_digit: int, seed: int) -> tuple[list[str], list[float]]:
    """Speaker-independent DTW: each speaker's clips against templates of the other speakers.
    (heard, seconds per clip): a clip's time is its MFCCs plus its DTW against every template."""
    feats, seconds = [], []
    for c in progress(clips, "dtw features"):
        t0 = time.perf_counter()
        feats.append(mfcc(c.path))
        seconds.append(time.perf_counter() - t0)
    heard = [""] * len(clips)
    for speaker in sorted({c.speaker for c in clips}):
        rng = random.Random(f"{seed}-{speaker}")
        templates = []
        for digit in range(10):
            pool = [i for i, c in enumerate(clips) if c.speaker != speaker and c.digit == digit]
            templates += [(feats[i], digit) for i in rng.sample(pool, min(per_digit, len(pool)))]
        dtw = DTWTemplates(templates)
        for i, c in enumerate(clips):
            if c.speaker == speaker:
                t0 = time.perf_counter()
                heard[i] = str(dtw.classify(feats[i]))
                seconds[i] += time.perf_counter() - t0
    return heard, seconds


def progress(clips: list[Clip], what: str):
    """Yield the clips, printing progress every 100."""
    for i, c in enumerate(clips):
        if i and i % 100 == 0:
            print(f"    {what}: {i}/{len(clips)}", flush=True)
        yield c


def run_method(name: str, clips: list[Clip], args) -> tuple[list[str], list[float]]:
    """(what it heard, seconds) per clip, one clip at a time. Loading the model or decoder and
    WARMUP_CALLS calls before (TorchScript and numba optimise on their first calls) are not timed."""
    if name == "dtw":
        for _ in range(WARMUP_CALLS):
            dtw_cost(np.zeros((3, 12)), np.ones((4, 12)))
        return run_dtw(clips, args.templates, args.seed)
    recognize = recognizer_for(name, args.model)
    for c in clips[:WARMUP_CALLS]:
        recognize(c.path)
    heard, seconds = [], []
    for c in progress(clips, name):
        t0 = time.perf_counter()
        heard.append(recognize(c.path))
        seconds.append(time.perf_counter() - t0)
    return heard, seconds


# --- scoring --------------------------------------------------------------------------------------


def share(rows: list[dict], key: str) -> float | None:
    return sum(r[key] for r in rows) / len(rows) if rows else None


def summarize(rows: list[dict], methods: list[str]) -> dict:
    """Per corpus and method: accuracy, answered share, worst speaker, per gender, per speaker."""
    out = {}
    for corpus in sorted({r["corpus"] for r in rows}):
        mine = [r for r in rows if r["corpus"] == corpus]
        speakers = defaultdict(list)
        genders = defaultdict(list)
        for r in mine:
            speakers[r["speaker"]].append(r)
            if r["gender"]:
                genders[r["gender"]].append(r)
        ranked = [s for s, rs in speakers.items() if len(rs) >= MIN_SPEAKER_CLIPS]
        entry = {"clips": len(mine), "speakers": len(speakers), "ranked_speakers": len(ranked),
                 "clip_counts": {s: len(rs) for s, rs in sorted(speakers.items())}, "methods": {}}
        for m in methods:
            per_speaker = {s: share(rs, f"{m}_right") for s, rs in sorted(speakers.items())}
            worst = min(ranked, key=lambda s: (per_speaker[s], s)) if ranked else None
            entry["methods"][m] = {
                "accuracy": share(mine, f"{m}_right"),
                "answered": sum(bool(r[m]) for r in mine) / len(mine),
                "worst_speaker": worst,
                "worst_speaker_accuracy": per_speaker[worst] if worst else None,
                "speakers_all_right": sum(a == 1.0 for a in per_speaker.values()) / len(per_speaker),
                "per_gender": {g: share(rs, f"{m}_right") for g, rs in sorted(genders.items())},
                "per_speaker": per_speaker,
                "ms_per_clip_median": statistics.median(r[f"{m}_ms"] for r in mine),
                "ms_per_clip_mean": statistics.mean(r[f"{m}_ms"] for r in mine),
            }
        out[corpus] = entry
    return out


def print_table(summary: dict, methods: list[str], model: Path) -> None:
    print(f"\nReal isolated digits, one run on the same clips ({platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__})")
    print(f"{'corpus':16s} {'clips':>5s} {'spk':>4s}  {'method':25s} {'right':>7s} {'answered':>8s} "
          f"{'worst speaker (>=%d clips)' % MIN_SPEAKER_CLIPS:>28s} {'per gender':>22s} {'ms/clip':>8s}")
    for corpus, entry in summary.items():
        for i, m in enumerate(methods):
            s = entry["methods"][m]
            worst = (f"{s['worst_speaker_accuracy']:.1%} {s['worst_speaker']}" if s["worst_speaker"]
                     else f"({s['speakers_all_right']:.0%} of speakers all right)")
            gender = "  ".join(f"{g} {a:.1%}" for g, a in s["per_gender"].items()) or "-"
            head = f"{corpus:16s} {entry['clips']:5d} {entry['speakers']:4d}" if i == 0 else " " * 27
            seen = "*" if entry["model_trained_on_it"] and m in AUDREY_METHODS else " "
            print(f"{head} {seen}{METHODS[m]:25s} {s['accuracy']:7.1%} {s['answered']:8.1%} {worst:>28s} {gender:>22s} "
                  f"{s['ms_per_clip_median']:8.1f}")
    print("right: the clip's digit and nothing else; answered: it output any digit (transcribe rejects, "
          "PocketSphinx may hear none). ms/clip: median over the corpus's clips, one clip at a time, loading excluded.")
    if any(e["model_trained_on_it"] for e in summary.values()):
        print(f"* {model.name} was trained on this corpus (its provenance names it): these are figures on its own "
              "training clips, not zero-shot. For held-out speakers see benchmarks/loso.py.")


def plot(summary: dict, methods: list[str], path: Path) -> None:
    from audrey.plots import pyplot, save_figure

    plt = pyplot()
    colors = {"predict": "#2b7bba", "transcribe": "#8fc0e3", "pocketsphinx": "#d62728", "pocketsphinx-loop": "#f19c99",
              "dtw": "#e9a23b"}
    ranked = [(corpus, s) for corpus, e in summary.items() for s, n in e["clip_counts"].items() if n >= MIN_SPEAKER_CLIPS]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [max(1, len(summary)), max(1, len(ranked)) / 2]})
    width = 0.8 / len(methods)
    for ax, groups, label in ((axes[0], [(c, None) for c in summary], "corpus"), (axes[1], ranked, "speaker")):
        x = np.arange(len(groups))
        for j, m in enumerate(methods):
            values = [100 * (summary[c]["methods"][m]["accuracy"] if s is None else summary[c]["methods"][m]["per_speaker"][s])
                      for c, s in groups]
            ax.bar(x + (j - (len(methods) - 1) / 2) * width, values, width, label=METHODS[m], color=colors[m])
        names = [s + ("*" if summary[c]["model_trained_on_it"] else "") if s is not None else f"{c}\n({summary[c]['clips']} clips" +
                 ("; Audrey trained on them)" if summary[c]["model_trained_on_it"] else ")") for c, s in groups]
        ax.set_xticks(x, names, rotation=0 if label == "corpus" else 30, fontsize=8)
        ax.set_ylim(0, 100)
        ax.grid(axis="y", lw=0.3)
        seen = any(e["model_trained_on_it"] for e in summary.values())
        ax.set_title(f"per {label}" + ("" if label == "corpus" else f" (speakers with >= {MIN_SPEAKER_CLIPS} clips"
                                        + ("; * Audrey's model trained on them)" if seen else ")")))
    axes[0].set_ylabel("right (%)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(methods), fontsize=8, frameon=False)
    fig.suptitle("Real isolated digits: Audrey's model and its peers on the same clips (DTW: templates of other speakers)")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    save_figure(fig, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--fsdd", type=Path, default=DATA / "fsdd")
    parser.add_argument("--speech-commands", type=Path, default=DATA / "speech-commands")
    parser.add_argument("--data", type=Path, action="append", default=[], help="another labelled folder (repeatable)")
    parser.add_argument("--only-data", action="store_true", help="leave FSDD and Speech Commands out")
    parser.add_argument("--per-speaker", type=int, default=100, help="at most this many clips per speaker (seeded)")
    parser.add_argument("--templates", type=int, default=DEFAULT_TEMPLATES, help="DTW templates per digit")
    parser.add_argument("--method", action="append", choices=list(METHODS), help=f"default: {', '.join(DEFAULT_METHODS)}")
    parser.add_argument("--limit", type=int, help="at most this many clips per corpus (a smoke run; nothing saved)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # One thread, as `audrey listen` runs: PocketSphinx and DTW are single-threaded too, and on a shared
    # CPU two OpenMP threads that wait on each other made one 1-s clip 80 ms instead of 1 ms.
    torch.set_num_threads(1)
    folders = ([] if args.only_data else [args.fsdd, args.speech_commands]) + args.data
    for folder in folders:
        if not folder.is_dir():
            sys.exit(f"{folder}: no such folder (see --fsdd, --speech-commands, --data)")
    methods = args.method or list(DEFAULT_METHODS)
    by_folder = load_clips(folders, args.per_speaker, args.seed, args.limit)
    clips = [c for mine in by_folder.values() for c in mine]
    seen = sorted({c.source for folder, mine in by_folder.items() if trained_on(args.model, folder) for c in mine})
    print(f"{len(clips)} clips: " + ", ".join(f"{s} {n}" for s, n in sorted(Counter(c.source for c in clips).items())), flush=True)

    rows = [{"path": str(c.path), "corpus": c.source, "speaker": c.speaker, "digit": c.digit,
             "gender": (c.meta.get("gender") or "").lower() or None} for c in clips]
    ms = {}
    for m in methods:
        print(f"  {METHODS[m]} ...", flush=True)
        heard, seconds = run_method(m, clips, args)
        for r, h, t in zip(rows, heard, seconds):
            r[m], r[f"{m}_right"], r[f"{m}_ms"] = h, h == str(r["digit"]), round(1000 * t, 2)
        ms[m] = {"median": 1000 * statistics.median(seconds), "mean": 1000 * statistics.mean(seconds)}
        print(f"  {METHODS[m]}: {share(rows, f'{m}_right'):.1%} right, {ms[m]['median']:.1f} ms per clip (median; "
              f"mean {ms[m]['mean']:.1f})", flush=True)

    summary = summarize(rows, methods)
    for corpus, entry in summary.items():
        entry["model_trained_on_it"] = corpus in seen
    print_table(summary, methods, args.model)
    if args.limit or args.method:
        print("(a partial run: results not saved)")
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {"model": str(args.model.relative_to(REPO) if args.model.is_relative_to(REPO) else args.model),
           "folders": [str(f) for f in folders], "per_speaker": args.per_speaker, "templates_per_digit": args.templates,
           "seed": args.seed, "min_speaker_clips": MIN_SPEAKER_CLIPS, "ms_per_clip": ms,
           "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
           "summary": summary, "clips": rows}
    (RESULTS / "real_voices.json").write_text(json.dumps(out, indent=1))
    plot(summary, methods, RESULTS / "real_voices.png")
    print(f"results: {RESULTS / 'real_voices.json'}, plot: {RESULTS / 'real_voices.png'}")


if __name__ == "__main__":
    main()
