"""How confident must the model be before `audrey record` flags a take as another digit?

The check (audrey.recording.check) flags a take when the model's top digit is not the prompted one
and its probability is at least FLAG_CONFIDENCE. Two errors trade against each other:

- a false flag: a correctly labelled take the model mishears with that much confidence (the speaker
  is asked about a good take);
- a missed mislabel: the speaker said another digit than the prompt, and the model is not sure
  enough to say so (the take poisons the personal weights).

The speakers must be ones the model never heard, as a new speaker's are: the models are the real
pool's fold models (benchmarks/real_pool.py, the starter's recipe: real_pool.STARTER_RECIPE), each
tested on its own fold's speakers. A mislabel is the same clip given a seeded random other digit as
its label. For each threshold: the share of correctly labelled takes flagged (false
flags) and the share of mislabelled takes caught.

    OMP_NUM_THREADS=1 python benchmarks/take_check.py
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import torch

from audrey.data.features import FeatureCache, clip_features
from audrey.models.modelfile import load_model
from audrey.recording.check import FLAG_CONFIDENCE
from audrey.training.train import predict_features
from real_pool import FOLDS, STARTER_RECIPE, corpus_of, deal_folds, read_pool, trained_folds  # benchmarks/, beside this script

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)
MAX_FALSE_FLAGS = 0.01  # the share of good takes a speaker may be asked about


def fold_probabilities(clips, folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(probabilities (N, 10), true digits (N,), corpus per clip) of every clip, each from the fold
    model that never heard its speaker."""
    fold_of = deal_folds(clips)
    probs, digits, corpora = [], [], []
    for k in range(FOLDS):
        bundle, _ = load_model(folder / f"fold{k}.safetensors")
        test = [c for c in clips if fold_of[c.speaker] == k]
        feats, kept = clip_features(test, bundle.frontend, FeatureCache(bundle.frontend), desc=f"fold{k}")
        with torch.inference_mode():
            p = predict_features(bundle.model, feats).numpy()
        acc = float((p.argmax(1) == np.array([c.digit for c in kept])).mean())
        print(f"fold{k}: {len(kept)} clips, {len({c.speaker for c in kept})} speakers, accuracy {acc:.1%}", flush=True)
        probs.append(p)
        digits += [c.digit for c in kept]
        corpora += [corpus_of(c) for c in kept]
    return np.concatenate(probs), np.array(digits), corpora


def flagged(probs: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """The check's rule on each row: top digit not the label, with at least `threshold`."""
    return (probs.argmax(1) != labels) & (probs.max(1) >= threshold)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aligned", type=Path, default=REPO / "data" / "aligned", help="`audrey data align --out` folder")
    ap.add_argument("--epochs", type=int, default=STARTER_RECIPE["epochs"], help="the fold models' recipe (real_pool.py --epochs)")
    ap.add_argument("--synth", type=int, default=STARTER_RECIPE["synth"], help="the fold models' recipe (real_pool.py --synth)")
    ap.add_argument("--seed", type=int, default=STARTER_RECIPE["seed"], help="the folds' seed, and the mislabels'")
    ap.add_argument("--out", type=Path, default=RESULTS / "take_check.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    folder = trained_folds(STARTER_RECIPE["config"], "pool", args.epochs, args.synth, args.seed, [f"fold{k}" for k in range(FOLDS)])
    clips = read_pool(args.aligned)
    probs, digits, corpora = fold_probabilities(clips, folder)
    rng = np.random.default_rng(args.seed)
    wrong = (digits + rng.integers(1, 10, len(digits))) % 10  # another digit than the one said, each equally likely

    rows = []
    for t in THRESHOLDS:
        false = flagged(probs, digits, t)
        caught = flagged(probs, wrong, t)
        per_corpus = {k: round(float(false[[c == k for c in corpora]].mean()), 4) for k in sorted(set(corpora))}
        rows.append({"threshold": t, "false_flags": round(float(false.mean()), 4), "caught": round(float(caught.mean()), 4),
                     "false_flags_per_corpus": per_corpus})
    ok = [r for r in rows if r["false_flags"] <= MAX_FALSE_FLAGS]
    choice = max(ok, key=lambda r: r["caught"])["threshold"] if ok else None

    corpora_names = sorted(set(corpora))
    print(f"\n{len(digits)} clips; accuracy {float((probs.argmax(1) == digits).mean()):.1%}")
    print(f"{'threshold':>9s} | {'false flags':>11s} | {'caught':>7s} | " + " | ".join(f"{k[:15]:>15s}" for k in corpora_names))
    for r in rows:
        print(f"{r['threshold']:9.2f} | {r['false_flags']:11.2%} | {r['caught']:7.1%} | "
              + " | ".join(f"{r['false_flags_per_corpus'][k]:15.2%}" for k in corpora_names))
    print(f"(last columns: false flags per corpus)\nmost caught with false flags <= {MAX_FALSE_FLAGS:.0%}: "
          f"threshold {choice}; FLAG_CONFIDENCE is {FLAG_CONFIDENCE}")

    out = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__, "models": folder.name,
           "clips": len(digits), "speakers": len({c.speaker for c in clips}), "seed": args.seed,
           "accuracy": round(float((probs.argmax(1) == digits).mean()), 4),
           "max_false_flags": MAX_FALSE_FLAGS, "choice": choice, "flag_confidence": FLAG_CONFIDENCE, "thresholds": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
