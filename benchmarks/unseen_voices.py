"""Accuracy of a model on espeak-ng voices it did not train on.

Training with `--synth N --seed S` uses the first N voices of `audrey.data.synth.voices(., S)`; this
script tests on the next `--voices` voices of the same list, which training never saw.

    python benchmarks/unseen_voices.py models/starter.safetensors --trained-voices 200 --voices 50
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from audrey.data import synth
from audrey.data.corpora import read_corpus
from audrey.training.evaluate import evaluate
from audrey.models.modelfile import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--trained-voices", type=int, required=True, help="--synth the model was trained with")
    parser.add_argument("--voices", type=int, default=50, help="unseen voices to test on")
    parser.add_argument("--seed", type=int, default=0, help="--seed the model was trained with")
    args = parser.parse_args()

    bundle, _ = load_model(args.model)
    unseen = synth.voices(args.trained_voices + args.voices, args.seed)[args.trained_voices :]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for voice in unseen:
            for digit, word in enumerate(synth.DIGIT_WORDS):
                for take, speed in enumerate(synth.SPEEDS):
                    synth.say(word, voice, speed, root / voice.name / f"{digit}_{voice.name}_{take}.wav")
        ev = evaluate(bundle, read_corpus(root, source="synthetic"))
        per_speaker = ev.per_speaker()
    worst = sorted(per_speaker.items(), key=lambda kv: kv[1])[:3]
    print(f"{args.model}: {ev.accuracy:.2%} on {len(ev.clips)} clips from {len(unseen)} unseen espeak-ng voices")
    print("per digit: " + "  ".join(f"{d}:{a:.0%}" for d, a in ev.per_digit().items()))
    print("worst voices: " + ", ".join(f"{v} {a:.0%}" for v, a in worst))


if __name__ == "__main__":
    main()
