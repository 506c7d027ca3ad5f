"""Speaker-disjoint evaluation over every real speaker (issue 20's protocol), Audrey beside its peers.

The pool: FSDD (6 speakers, 8 kHz), the Speech Commands digits (115 speakers, 16 kHz) and the digits
`audrey data align` cut out of AN4 and the alphanumeric phone numbers (108 speakers, 16 kHz). Two
protocols, both speaker-disjoint:

- `pool`:  5 folds grouped by speaker; each corpus's speakers are dealt to the folds so every fold
           holds about a fifth of each corpus's clips. Train on 4 folds (plus synthetic espeak-ng
           voices, which are never tested on), test on the 5th.
- `loso`:  FSDD leave-one-speaker-out: train on the whole pool but one FSDD speaker, test on his 500.

For each model configuration (architecture x frontend) it prints accuracy per fold, per corpus and
per gender (where the corpus says it), the mean over folds and the worst corpus; each test clip is
also heard through an 8 kHz channel (resampled down and up again, as a telephone would give it),
so one table shows what a wideband frontend keeps on narrowband input. Peers on the same clips:
PocketSphinx with a one-digit grammar, and DTW templates drawn from the training folds only.
Also: inference ms per clip at batch 1 (features included, one thread) and the model-file size.

Fold results are cached (`$AUDREY_CACHE/real_pool/`), so an interrupted run continues where it
stopped; the table is always printed from every fold of every configuration in one run.

    audrey data align ../shared/data/an4 ../shared/data/alphanumeric --out data/aligned
    python benchmarks/real_pool.py --config cnn-16k --config cnn-8k --peers
    python benchmarks/real_pool.py --config cnn-16k --protocol loso
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from audrey.audio import frontend as fe
from audrey.audio import waveform
from audrey.data.augment import AugmentConfig
from audrey.data.corpora import Clip, read_corpus
from audrey.data.features import cache_root
from audrey.live.recognizer import Recognizer
from audrey.models.modelfile import save_model
from audrey.training.runs import synthetic_clips
from audrey.training.train import TrainConfig, predict_features, train
from loso import inference_ms  # benchmarks/: median ms of one clip, waveform -> features -> model

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("AUDREY_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "benchmarks" / "results"
FOLDS = 5
NARROW_RATE = 8000  # the telephone channel every test clip is also heard through

WIDEBAND = fe.FrontendConfig()  # Audrey's frontend: 16 kHz, 64 bands up to 7.8 kHz
# The frontend of the 8 kHz starter (issue 20 compares it with WIDEBAND on the same folds).
NARROWBAND = fe.FrontendConfig(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40,
                               f_min=50.0, f_max=3800.0)
CONFIGS = {
    # name: (architecture, frontend, augmentation)
    "cnn-8k": ("cnn", NARROWBAND, AugmentConfig(narrowband_p=0.0)),
    "cnn-16k": ("cnn", WIDEBAND, AugmentConfig(narrowband_p=0.3)),
    "conformer-16k": ("conformer", WIDEBAND, AugmentConfig(narrowband_p=0.3)),
    "cnn-16k-vtlp": ("cnn", WIDEBAND, AugmentConfig(narrowband_p=0.3, warp=0.12, stretch=0.15)),
}
# The bundled starter's recipe (models/README.md); the fold models of the benchmarks that need a base
# that never heard a speaker (personal, not_a_digit, take_check) are trained with it.
STARTER_RECIPE = {"config": "cnn-16k", "epochs": 30, "synth": 100, "seed": 0}


# --- the pool --------------------------------------------------------------------------------------

def clip_key(clip: Clip) -> str:
    """A clip's name in cached results: its real path, whichever link led to the folder."""
    return os.path.realpath(clip.path)


def corpus_of(clip: Clip) -> str:
    return clip.meta.get("corpus") or clip.source


def gender_of(clip: Clip) -> str:
    if clip.source == "fsdd":
        return "male"  # FSDD's SOURCE.md: six male speakers
    return clip.meta.get("gender", "") or "unknown"


def read_pool(aligned: Path) -> list[Clip]:
    for corpus in ("fsdd", "speech-commands"):
        if not (SHARED / corpus).is_dir():
            sys.exit(f"{SHARED / corpus}: not found; this benchmark needs the real corpora (set AUDREY_SHARED_DATA to their folder)")
    clips = read_corpus(SHARED / "fsdd") + read_corpus(SHARED / "speech-commands")
    if not (aligned / "manifest.json").is_file():
        sys.exit(f"{aligned}: no aligned digits; run `audrey data align {SHARED / 'an4'} {SHARED / 'alphanumeric'} --out {aligned}`")
    return clips + read_corpus(aligned)


def deal_folds(clips: list[Clip], folds: int = FOLDS, seed: int = 0) -> dict[str, int]:
    """speaker -> fold. Within each corpus, speakers (largest first, ties in seeded order) go to the
    fold holding the fewest of that corpus's clips so far: folds balanced per corpus, speaker-disjoint."""
    fold_of: dict[str, int] = {}
    by_corpus: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c in clips:
        by_corpus[corpus_of(c)][c.speaker] += 1
    for corpus in sorted(by_corpus):
        counts = by_corpus[corpus]
        order = sorted(counts)
        random.Random(f"{seed}-{corpus}").shuffle(order)
        order.sort(key=lambda s: -counts[s])
        load = [0] * folds
        for speaker in order:
            k = min(range(folds), key=lambda i: (load[i], i))
            fold_of[speaker] = k
            load[k] += counts[speaker]
    return fold_of


def splits(clips: list[Clip], protocol: str) -> list[tuple[str, list[Clip], list[Clip]]]:
    """(name, train, test) for every fold of the protocol."""
    if protocol == "pool":
        fold_of = deal_folds(clips)
        return [(f"fold{k}", [c for c in clips if fold_of[c.speaker] != k], [c for c in clips if fold_of[c.speaker] == k])
                for k in range(FOLDS)]
    fsdd = sorted({c.speaker for c in clips if c.source == "fsdd"})
    return [(s, [c for c in clips if c.speaker != s], [c for c in clips if c.speaker == s]) for s in fsdd]


# --- Audrey ----------------------------------------------------------------------------------------

def narrowband_features(clips: list[Clip], cfg: fe.FrontendConfig) -> torch.Tensor:
    """Features of each clip heard through an 8 kHz channel (down to 8 kHz, then the frontend's own
    resampling), whatever the clip's own rate."""
    waves = [waveform.load_audio(c.path, NARROW_RATE, max_seconds=waveform.MAX_CLIP_FILE_SECONDS) for c in clips]
    return fe.features(waves, cfg, rate=NARROW_RATE)


def wideband_features(clips: list[Clip], cfg: fe.FrontendConfig) -> torch.Tensor:
    return fe.features([fe.load_clip(c.path, cfg) for c in clips], cfg)


def fold_folder(config: str, protocol: str, epochs: int, synth: int, seed: int) -> Path:
    """Where the fold results and fold models of one configuration are cached (keyed by everything
    that makes them)."""
    spec = [config, repr(CONFIGS[config]), epochs, synth, seed, protocol]
    key = hashlib.sha1(json.dumps(spec).encode()).hexdigest()[:10]
    return cache_root() / "real_pool" / f"{config}-{protocol}-{key}"


def trained_folds(config: str, protocol: str, epochs: int, synth: int, seed: int, names: list[str]) -> Path:
    """The cache folder holding the fold models `names` of one configuration; when any is missing,
    exits with the command that trains them."""
    folder = fold_folder(config, protocol, epochs, synth, seed)
    missing = [n for n in names if not (folder / f"{n}.safetensors").is_file()]
    if missing:
        sys.exit(f"{folder}: no fold model(s) {', '.join(missing)}; make them with `OMP_NUM_THREADS=1 python "
                 f"benchmarks/real_pool.py --config {config} --protocol {protocol} --epochs {epochs} --synth {synth} --seed {seed}`")
    return folder


def run_fold(config: str, name: str, train_clips, test_clips, epochs: int, synth: int, seed: int, folder: Path) -> dict:
    """Train on `train_clips` (+ synthetic voices), test on `test_clips`; cached as JSON in `folder`."""
    cached = folder / f"{name}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    arch, frontend, aug = CONFIGS[config]
    cfg = TrainConfig(arch=arch, epochs=epochs, patience=epochs, seed=seed, augment=aug)
    t0 = time.perf_counter()
    result = train(train_clips + synthetic_clips(synth, seed), [], cfg, frontend)
    seconds = time.perf_counter() - t0
    save_model(result.bundle, folder / f"{name}.safetensors")  # the "base without these speakers" of later benchmarks
    model = result.bundle.model
    wide = predict_features(model, wideband_features(test_clips, frontend)).argmax(-1).tolist()
    narrow = predict_features(model, narrowband_features(test_clips, frontend)).argmax(-1).tolist()
    out = {"fold": name, "train_clips": len(train_clips), "train_seconds": round(seconds, 1),
           "clips": [clip_key(c) for c in test_clips], "wideband": wide, "narrowband": narrow}
    folder.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(out))
    return out


# --- peers -----------------------------------------------------------------------------------------

def peer_cache(name: str) -> Path:
    return cache_root() / "real_pool" / "peers" / f"{name}.json"


def run_pocketsphinx(clips: list[Clip]) -> dict[str, str]:
    """path -> the digit PocketSphinx heard ("" for none); cached per clip."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from peers import PocketSphinxDigits

    path = peer_cache("pocketsphinx")
    heard = json.loads(path.read_text()) if path.is_file() else {}
    todo = [c for c in clips if clip_key(c) not in heard]
    if todo:
        ps = PocketSphinxDigits()
        for i, c in enumerate(todo):
            heard[clip_key(c)] = ps.recognize(waveform.load_audio(c.path, 16000), 16000)
            if i % 500 == 499:
                print(f"    pocketsphinx {i + 1}/{len(todo)}", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(heard))
    return heard


def run_dtw(folds, per_digit: int, seed: int, protocol: str) -> dict[str, str]:
    """path -> DTW's digit: 1-nearest of `per_digit` templates per digit drawn from the fold's
    training speakers only (never the test speaker's own); cached per protocol."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from peers import DTWTemplates, mfcc

    path = peer_cache(f"dtw-{per_digit}" + ("" if protocol == "pool" else f"-{protocol}"))
    heard = json.loads(path.read_text()) if path.is_file() else {}
    feats: dict[str, np.ndarray] = {}

    def feat(c: Clip) -> np.ndarray:
        key = clip_key(c)
        if key not in feats:
            feats[key] = mfcc(c.path)
        return feats[key]

    for name, train_clips, test_clips in folds:
        todo = [c for c in test_clips if clip_key(c) not in heard]
        if not todo:
            continue
        rng = random.Random(f"{seed}-{name}")
        templates = []
        for digit in range(10):
            pool = [c for c in train_clips if c.digit == digit]
            templates += [(feat(c), digit) for c in rng.sample(pool, min(per_digit, len(pool)))]
        dtw = DTWTemplates(templates)
        for i, c in enumerate(todo):
            heard[clip_key(c)] = str(dtw.classify(feat(c)))
            if i % 500 == 499:
                print(f"    dtw {name} {i + 1}/{len(todo)}", flush=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(heard))
    return heard


# --- tables ----------------------------------------------------------------------------------------

def tally(rows: list[tuple[Clip, bool]]) -> dict:
    """Accuracy overall, per corpus and per gender of (clip, right) rows."""
    def acc(sel):
        return round(sum(r for _, r in sel) / len(sel), 4) if sel else None

    out = {"clips": len(rows), "accuracy": acc(rows), "corpus": {}, "gender": {}}
    for key, group in (("corpus", corpus_of), ("gender", gender_of)):
        for value in sorted({group(c) for c, _ in rows}):
            out[key][value] = acc([(c, r) for c, r in rows if group(c) == value])
    return out


def summarize(clips: list[Clip], folds: list[dict], methods: dict[str, dict[str, str]]) -> dict:
    by_path = {clip_key(c): c for c in clips}
    table: dict[str, dict] = {}
    for label, key in (("audrey", "wideband"), ("audrey via 8 kHz", "narrowband")):
        rows_by_fold = [[(by_path[p], int(h) == by_path[p].digit) for p, h in zip(f["clips"], f[key])] for f in folds]
        table[label] = summary_of(rows_by_fold, [f["fold"] for f in folds])
    for label, heard in methods.items():
        rows_by_fold = [[(by_path[p], heard.get(p) == str(by_path[p].digit)) for p in f["clips"]] for f in folds]
        table[label] = summary_of(rows_by_fold, [f["fold"] for f in folds])
    return table


def summary_of(rows_by_fold, names) -> dict:
    folds = {n: tally(r) for n, r in zip(names, rows_by_fold)}
    accs = [f["accuracy"] for f in folds.values()]
    total = tally([r for rows in rows_by_fold for r in rows])
    worst_corpus = min(total["corpus"].items(), key=lambda kv: kv[1])
    return {"mean": round(statistics.mean(accs), 4), "worst_fold": min(accs), "all": total,
            "worst_corpus": {"corpus": worst_corpus[0], "accuracy": worst_corpus[1]}, "folds": folds}


def print_table(title: str, table: dict) -> None:
    corpora = sorted({k for s in table.values() for k in s["all"]["corpus"]})
    genders = [g for g in ("female", "male") if any(g in s["all"]["gender"] for s in table.values())]
    folds = list(next(iter(table.values()))["folds"])
    head = ["method", "mean", "worst fold"] + corpora + genders
    print(f"\n{title}")
    print(" | ".join(f"{h:>16s}" if i == 0 else f"{h[:11]:>11s}" for i, h in enumerate(head)))
    for label, s in table.items():
        cells = [s["mean"], s["worst_fold"]] + [s["all"]["corpus"].get(c) for c in corpora] + \
                [s["all"]["gender"].get(g) for g in genders]
        print(f"{label:>16s} | " + " | ".join(f"{v:11.2%}" if v is not None else f"{'-':>11s}" for v in cells))
    print("  per fold: " + "; ".join(
        f"{label}: " + " ".join(f"{n} {s['folds'][n]['accuracy']:.1%}" for n in folds) for label, s in table.items()
        if not label.startswith(("pocketsphinx", "dtw"))))


def plot(tables: dict[str, dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tables), figsize=(6 * len(tables), 5.0), squeeze=False)
    for ax, (title, table) in zip(axes[0], tables.items()):
        # a bar per corpus for the pool; per held-out speaker for leave-one-speaker-out
        per_fold = title.startswith("loso")
        groups = list(next(iter(table.values()))["folds"]) if per_fold else \
            sorted({k for s in table.values() for k in s["all"]["corpus"]})
        width = 0.8 / len(table)
        for i, (label, s) in enumerate(table.items()):
            vals = [100 * ((s["folds"][g]["accuracy"] if per_fold else s["all"]["corpus"].get(g)) or 0) for g in groups]
            ax.bar(np.arange(len(groups)) + i * width, vals, width, label=label)
        ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, groups)
        ax.set_ylim(30, 100)
        ax.axhline(94, color="grey", lw=0.8, ls="--")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", action="append", choices=sorted(CONFIGS), help="model configuration (repeatable)")
    ap.add_argument("--protocol", action="append", choices=["pool", "loso"], help="default: pool")
    ap.add_argument("--aligned", type=Path, default=REPO / "data" / "aligned", help="`audrey data align --out` folder")
    ap.add_argument("--epochs", type=int, default=STARTER_RECIPE["epochs"])
    ap.add_argument("--synth", type=int, default=STARTER_RECIPE["synth"], help="synthetic espeak-ng voices added to training")
    ap.add_argument("--seed", type=int, default=STARTER_RECIPE["seed"])
    ap.add_argument("--peers", action="store_true", help="PocketSphinx and DTW on the same clips")
    ap.add_argument("--dtw-templates", type=int, default=3, help="DTW templates per digit, from the training folds")
    ap.add_argument("--out", type=Path, default=RESULTS / "real_pool.json")
    args = ap.parse_args()
    torch.set_num_threads(1)  # two threads on a shared 2-core CPU wait on each other (10x slower)
    configs, protocols = args.config or ["cnn-16k"], args.protocol or ["pool"]

    clips = read_pool(args.aligned)
    print(f"pool: {len(clips)} clips, {len({c.speaker for c in clips})} speakers; "
          + ", ".join(f"{k} {sum(corpus_of(c) == k for c in clips)}" for k in sorted({corpus_of(c) for c in clips})), flush=True)
    results = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
               "epochs": args.epochs, "synth_voices": args.synth, "seed": args.seed, "protocols": {}}
    tables = {}
    for protocol in protocols:
        folds = splits(clips, protocol)
        for name, tr, te in folds:
            assert not {c.speaker for c in tr} & {c.speaker for c in te}
        methods = {}
        if args.peers:
            methods["pocketsphinx"] = run_pocketsphinx(clips)
            methods[f"dtw ({args.dtw_templates}/digit)"] = run_dtw(folds, args.dtw_templates, args.seed, protocol)
        per_config = {}
        for config in configs:
            folder = fold_folder(config, protocol, args.epochs, args.synth, args.seed)
            fold_results = []
            for name, tr, te in folds:
                print(f"{config} {protocol} {name}: train {len(tr)} clips, test {len(te)} clips / "
                      f"{len({c.speaker for c in te})} speakers", flush=True)
                fold_results.append(run_fold(config, name, tr, te, args.epochs, args.synth, args.seed, folder))
            table = summarize(clips, fold_results, methods)
            model_file = folder / f"{folds[0][0]}.safetensors"
            recognizer = Recognizer.from_file(model_file)
            waves = [fe.load_clip(c.path, recognizer.bundle.frontend) for c in folds[0][2][:200]]
            table["audrey"]["inference_ms"] = round(inference_ms(recognizer, waves), 2)
            table["audrey"]["model_bytes"] = model_file.stat().st_size
            table["audrey"]["train_seconds"] = [f["train_seconds"] for f in fold_results]
            tables[f"{protocol}: {config}"] = {**{f"audrey {config}" if k == "audrey" else k.replace("audrey", f"audrey {config}"): v
                                                   for k, v in table.items()}}
            per_config[config] = table
            print_table(f"{protocol} / {config} ({args.epochs} epochs, +{args.synth} synthetic voices)", table)
            print(f"  inference {table['audrey']['inference_ms']} ms/clip (batch 1, features included); "
                  f"model file {table['audrey']['model_bytes'] / 1e6:.2f} MB", flush=True)
        results["protocols"][protocol] = per_config
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    plot(tables, args.out.with_suffix(".png"))
    print(f"\nwrote {args.out} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
