"""Single digits and single words: `audrey transcribe --engine ctc` against today's `--engine segments`.

    PYTHONPATH=$PWD python benchmarks/isolated_ctc.py [--ctc-model models/digits.ctc.safetensors]

Each clip is one file with one word in it, transcribed by both engines through the library functions
the command calls (audrey.live.ctc_transcribe.transcribe_ctc; audrey.live.stream.transcribe_file with
the starter's Judge). For a digit: the share printed exactly right, the share printing nothing and the
share printing anything else (a wrong digit, or more than one). For a word that is not a digit: the
share printing a digit.

Sets, and what each model heard in training (neither set of real digits is held out from either):
- sc_digits: the 231 Speech Commands v0.02 test-set digits. The starter trained on all of them; the
  CTC model trained on them too, trimmed and assembled into strings (benchmarks/strings_ctc.py).
- fsdd: 300 FSDD clips, takes 0-4 of every digit of its six speakers. The starter trained on every
  FSDD clip; the CTC model on every one, assembled into strings.
- sc_words: 200 Speech Commands non-digit words, drawn from those the CTC model did not train on (it
  trained on 800 of them: strings_ctc.training_words). The starter's rejection was
  calibrated on synthetic voices only.
- synth_digits / synth_words: espeak-ng voices held out of every training and calibration
  (scenes.HELD_OUT_VOICES), saying each digit and the held-out words (wordlist.HELD_OUT_WORDS) with
  0.3-0.6 s of silence before and 0.5 s after: the one set neither model heard in any form.
Written to benchmarks/results/isolated_ctc.json, with every clip an engine got wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SYNTH_VOICES = 12


def digit_clips(args) -> dict[str, list[tuple[Path, int | None]]]:
    from audrey.data.corpora import read_corpus, read_non_digits
    from strings_ctc import training_words

    sc = [(c.path, c.digit) for c in read_corpus(args.speech_commands)]
    fsdd = [(c.path, c.digit) for c in read_corpus(args.fsdd) if c.take < 5]
    words = [w for w in read_non_digits(args.speech_commands) if not w.is_noise]
    trained = {w.path for w in training_words(args.speech_commands, np.random.default_rng(0))}
    unseen = [w for w in words if w.path not in trained]
    pick = np.random.default_rng(1).choice(len(unseen), args.words, replace=False)
    return {"sc_digits": sc, "fsdd": fsdd, "sc_words": [(unseen[i].path, None) for i in sorted(pick)]}


def synthetic_clips(tmp: Path) -> dict[str, list[tuple[Path, int | None]]]:
    from audrey import DIGIT_WORDS
    from audrey.audio import waveform
    from audrey.data.features import cache_root
    from audrey.data.scenes import HELD_OUT_VOICES, render_clips, voice_list
    from audrey.data.wordlist import HELD_OUT_WORDS

    rate = waveform.SAMPLE_RATE
    rng = np.random.default_rng(2)
    voices = voice_list(list(HELD_OUT_VOICES)[:SYNTH_VOICES])
    out = {}
    for name, texts in (("synth_digits", list(DIGIT_WORDS)), ("synth_words", list(HELD_OUT_WORDS))):
        jobs = [(t, v, 150) for v in voices for t in texts]
        waves = render_clips(jobs, cache_root() / "isolated-ctc", rate, f"espeak-ng {name}")
        rows = []
        for k, ((text, _, _), wave) in enumerate(zip(jobs, waves)):
            padded = np.concatenate([np.zeros(int(rng.uniform(0.3, 0.6) * rate), np.float32), wave,
                                     np.zeros(int(0.5 * rate), np.float32)])
            path = waveform.write_audio(tmp / f"{name}-{k}.wav", padded, rate)
            rows.append((path, DIGIT_WORDS.index(text) if name == "synth_digits" else None))
        out[name] = rows
    return out


def tally(rows: list[tuple[Path, int | None]], texts: list[str]) -> dict:
    n = len(rows)
    if rows and rows[0][1] is None:
        return {"clips": n, "printed_a_digit": round(sum(t != "" for t in texts) / n, 4)}
    right = sum(t == str(d) for (_, d), t in zip(rows, texts))
    nothing = sum(t == "" for t in texts)
    return {"clips": n, "right": round(right / n, 4), "nothing": round(nothing / n, 4),
            "wrong": round((n - right - nothing) / n, 4),
            "more_than_one_digit": round(sum(len(t) > 1 for t in texts) / n, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fsdd", type=Path, default=SHARED / "fsdd")
    ap.add_argument("--speech-commands", type=Path, default=SHARED / "speech-commands")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "starter.safetensors", help="the segments engine's model")
    ap.add_argument("--ctc-model", type=Path, default=REPO / "models" / "digits.ctc.safetensors")
    ap.add_argument("--words", type=int, default=200)
    ap.add_argument("--no-synthetic", action="store_true", help="skip the espeak-ng held-out voices")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "isolated_ctc.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from audrey.live.ctc_transcribe import transcribe_ctc
    from audrey.live.judge import Judge
    from audrey.live.stream import transcribe_file
    from audrey.models.ctc_file import load_ctc

    judge = Judge.from_file(args.model, need_calibration=True)
    bundle = load_ctc(args.ctc_model)
    engines = {"segments": lambda p: transcribe_file(p, judge), "ctc": lambda p: transcribe_ctc(p, bundle)}
    results, outputs = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        sets = digit_clips(args)
        if not args.no_synthetic:
            sets.update(synthetic_clips(Path(tmp)))
        for set_name, rows in sets.items():
            results[set_name] = {}
            for engine, run in engines.items():
                t0 = time.perf_counter()
                texts = [run(path).text.replace(" ", "") for path, _ in rows]
                r = tally(rows, texts)
                r["seconds_per_clip"] = round((time.perf_counter() - t0) / len(rows), 3)
                results[set_name][engine] = r
                outputs += [{"set": set_name, "engine": engine, "file": path.name if set_name.startswith("synth") else str(path),
                             "digit": d, "printed": t} for (path, d), t in zip(rows, texts) if t != ("" if d is None else str(d))]
                print(f"{set_name:13s} {engine:9s} {json.dumps(r)}", flush=True)

    print("\n| set | engine | right | nothing | wrong | printed a digit |")
    print("|---|---|---|---|---|---|")
    for set_name, by in results.items():
        for engine, r in by.items():
            if "right" in r:
                print(f"| {set_name} (n={r['clips']}) | {engine} | {r['right']:.1%} | {r['nothing']:.1%} | {r['wrong']:.1%} | |")
            else:
                print(f"| {set_name} (n={r['clips']}) | {engine} | | | | {r['printed_a_digit']:.1%} |")
    out = {"ctc_model": str(args.ctc_model), "segments_model": str(args.model), "results": results,
           "misses": outputs}  # every clip an engine did not get right
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    sys.exit(main())
