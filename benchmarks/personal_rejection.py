"""The rejection fitted to one voice (`audrey personalize` -> audrey.live.voice_fit.fit_to_voice), on FSDD.

For each speaker: personal weights from takes 0..k-1 of each digit (the base's rejection fitted to
those takes as the personal model hears them); test = takes 10..49 (400 clips), each through the live
segmenter with silence around it. Three judges, on the test takes and on the held-out espeak-ng words
and noise bursts of benchmarks/listen.py:

- base: the base model and its calibration;
- personal, base thresholds: the personal model, the base's thresholds as they are;
- personal, fitted: what `audrey listen --weights` uses.

The starter's rejection networks heard all six FSDD speakers. For a voice they never heard, pass
`--calibration` a calibration made without that speaker (e.g. `audrey calibrate --model
models/starter.safetensors --data <FSDD without the speaker> --out X.reject.safetensors`).

    python benchmarks/personal_rejection.py [--speakers nicolas,theo] [--takes 5] [--calibration FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("AUDREY_FSDD", REPO.parent / "shared" / "data" / "fsdd"))
RESULTS = REPO / "benchmarks" / "results"
TEST_TAKES = range(10, 50)
RATE = 8000  # FSDD's
sys.path.insert(0, str(REPO / "benchmarks"))


def take(clip) -> int:
    return int(clip.path.stem.rsplit("_", 1)[1])


def segments(clips) -> tuple[list[np.ndarray], list[float], list[int]]:
    """Each clip in silence (scenes.in_silence, as calibration and voice fitting do), through the live segmenter."""
    from audrey.audio.waveform import load_audio
    from audrey.data.scenes import in_silence
    from audrey.audio.vad import live_segmenter

    rng = np.random.default_rng(0)
    waves, seconds, digits = [], [], []
    for c in clips:
        audio = in_silence(load_audio(c.path, RATE), RATE, rng)
        seg = live_segmenter(RATE)
        found = seg.feed(audio) + seg.flush()
        if found:
            s = max(found, key=lambda s: s.speech_seconds)
            waves.append(s.audio)
            seconds.append(s.speech_seconds)
            digits.append(c.digit)
    return waves, seconds, digits


def run_speaker(speaker: str, clips, model: Path, takes: int, work: Path) -> dict:
    from listen import false_accepts

    from audrey.models.modelfile import load_model
    from audrey.models.personal_file import apply_personal
    from audrey.training.personal import personalize
    from audrey.live.recognizer import Recognizer
    from audrey.live.calibration import Calibration, find_calibration
    from audrey.live.judge import Judge

    enrol = work / f"enrol-{speaker}"
    enrol.mkdir()
    for c in clips:
        if take(c) < takes:
            (enrol / c.path.name).symlink_to(c.path.resolve())
    out = work / f"{speaker}.personal.safetensors"
    result = personalize(speaker, model, out, data=enrol, holdout=0, curve=False)
    bundle, _ = load_model(model)
    personal = apply_personal(bundle, out, model)
    judges = {
        "base": Judge.from_file(model, need_calibration=True),
        "personal, base thresholds": Judge(Recognizer(personal, fast=False), Calibration.load(find_calibration(model)), base=bundle.model),
        "personal, fitted": Judge.from_file(model, weights=out),
    }
    test = [c for c in clips if take(c) in TEST_TAKES]
    waves, seconds, digits = segments(test)
    rows = {}
    for name, judge in judges.items():
        verdicts = judge.judge(waves, seconds, RATE)
        right = sum(v.accepted and v.digit == d for v, d in zip(verdicts, digits)) / len(test)
        fa = false_accepts(judge)
        rows[name] = {"test_takes_accepted_right": round(right, 4), "words": fa["word"]["false_accept_rate"],
                      "noisy_words": fa["noisy word"]["false_accept_rate"], "noise": fa["noise"]["false_accept_rate"]}
        print(f"{speaker:9s} {name:26s} test takes accepted as the right digit {right:6.1%}   printed as digits: "
              f"words {rows[name]['words']:5.1%}  noisy words {rows[name]['noisy_words']:5.1%}  noise {rows[name]['noise']:5.1%}",
              flush=True)
    return {"fitted": result.rejection, "test_takes": len(test), **rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "starter.safetensors")
    ap.add_argument("--calibration", type=Path, default=None, help="default: the model's own")
    ap.add_argument("--speakers", default=None, help="comma-separated (default: all FSDD speakers)")
    ap.add_argument("--takes", type=int, default=5, help="enrolled takes per digit")
    ap.add_argument("--out", type=Path, default=RESULTS / "personal_rejection.json")
    args = ap.parse_args()
    from audrey.data.corpora import read_corpus
    from audrey.live.calibration import find_calibration, sidecar_path

    if not (FSDD / "recordings").is_dir():
        raise SystemExit(f"{FSDD}: no FSDD here (set AUDREY_FSDD)")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    clips = read_corpus(FSDD)
    known = sorted({c.speaker for c in clips})
    speakers = args.speakers.split(",") if args.speakers else known
    if set(speakers) - set(known):
        raise SystemExit(f"--speakers: {', '.join(sorted(set(speakers) - set(known)))} not in {FSDD} (it has {', '.join(known)})")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = work / args.model.name  # a copy, with the calibration to test beside it
        shutil.copy(args.model, model)
        shutil.copy(args.calibration or find_calibration(args.model), sidecar_path(model))
        results = {s: run_speaker(s, [c for c in clips if c.speaker == s], model, args.takes, work) for s in speakers}
    report = {"model": str(args.model), "calibration": str(args.calibration or find_calibration(args.model)),
              "takes_per_digit": args.takes, "speakers": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
