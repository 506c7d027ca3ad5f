"""Connected digit strings: the CTC digit-string model against PocketSphinx and segment-and-classify.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/strings_ctc.py     # the shipped recipe (RECIPE), ~80 min
    PYTHONPATH=$PWD python benchmarks/strings_ctc.py [--epochs 12] [--retrain] [--classic-sample 60]
    PYTHONPATH=$PWD python benchmarks/strings_ctc.py --no-peers --ctc-model models/digits.ctc.safetensors

Trains the model (audrey.models.ctc) on held-in speakers, or loads it from $AUDREY_CACHE/strings-ctc/
when the same material and settings were trained before, then scores three recognizers on the
same held-out-speaker clips, side by side:
- ctc: `audrey transcribe --engine ctc` (audrey.live.ctc_transcribe.transcribe_ctc on the clip written
  as a WAV file: cut into chunks at pauses, each chunk decoded greedily, all strings joined); on the
  phone numbers and in noise also `ctc digits=N` (`--digits N`: N known);
- ctc whole clip (and `ctc whole clip digits=N`): the model over the whole clip at once, no chunks;
- pocketsphinx: PocketSphinx with the digit-loop grammar (benchmarks/peers.py);
- segment+classify: today's `transcribe` (audrey.live.stream.transcribe_file with the starter's
  Judge), all strings of a file joined.

Material (audrey.data.strings): AN4 and the phone numbers, speakers held out by a hash of their name
(AN4 25%, phone numbers 50%: 34 numbers in all); the digits `audrey data align` cut out of those
recordings (data/aligned or --aligned), held-out speakers dropped; FSDD and Speech Commands digits
and Speech Commands words assembled into strings; Speech Commands' background noise split in two,
one half for training and one for the noisy test.

Figures: digit error rate (edit distance / reference digits) and exact-string rate on AN4 digit-only
utterances; on AN4 utterances that mix digits with other words, the digits' error rate; on AN4
utterances with no digit, the share where anything is printed; the phone numbers; AN4 digit-only
and phone numbers again in real background noise at 10 dB SNR. Written to
benchmarks/results/strings_ctc.json; with --no-peers, the PocketSphinx and segment+classify rows
already in that file are kept (they do not depend on the CTC model).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
SHARED = REPO.parent / "shared" / "data"
MATERIAL_VERSION = 1  # bump when the material's recipe changes: the cache key includes it
# The shipped digit-string model's recipe (the defaults of --an4-share, --alnum-share, --words): the
# speakers it never heard and the Speech Commands words it trained on, which other benchmarks name.
AN4_SHARE = 0.25
ALNUM_SHARE = 0.5
WORDS = 800
# The rest of that recipe, the defaults of the other options: a plain run trains the shipped model again.
RECIPE = {"epochs": 45, "assembled": 5000, "speeds": [0.9, 1.1], "time_limit": 6000.0}


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def score(refs: list[str], hyps: list[str]) -> dict:
    errors = sum(edit_distance(r, h) for r, h in zip(refs, hyps))
    digits = sum(len(r) for r in refs)
    return {"clips": len(refs), "digits": digits, "der": round(errors / max(digits, 1), 4),
            "exact": round(float(np.mean([r == h for r, h in zip(refs, hyps)])), 4) if refs else None}


def printed_share(hyps: list[str]) -> dict:
    return {"clips": len(hyps), "printed": round(float(np.mean([h != "" for h in hyps])), 4) if hyps else None}


# --- material -------------------------------------------------------------------------------------


def split_utterances(args):
    from audrey.data.strings import held_out
    from audrey.data.utterances import read_utterances

    an4 = read_utterances(args.an4)
    alnum = read_utterances(args.alphanumeric)
    test = {"an4": [u for u in an4 if held_out(u.speaker, args.an4_share)],
            "alphanumeric": [u for u in alnum if held_out(u.speaker, args.alnum_share)]}
    train = [u for u in an4 if not held_out(u.speaker, args.an4_share)] + \
            [u for u in alnum if not held_out(u.speaker, args.alnum_share)]
    return train, test


def is_test_speaker(speaker: str, an4_share: float = AN4_SHARE, alnum_share: float = ALNUM_SHARE) -> bool:
    """Whether the digit-string model trained with these shares held `speaker` out (an AN4 or
    phone-number speaker; every other corpus trains it)."""
    from audrey.data.strings import held_out
    from audrey.data.utterances import ALPHANUMERIC_PREFIX, AN4_PREFIX

    if speaker.startswith(AN4_PREFIX):
        return held_out(speaker, an4_share)
    if speaker.startswith(ALPHANUMERIC_PREFIX):
        return held_out(speaker, alnum_share)
    return False


def noises(args) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training, test) background noise: every fourth clip is kept for the test."""
    from audrey.data.strings import read_noises

    folder = next(p for p in Path(args.speech_commands).iterdir() if p.name.startswith("_background"))
    clips = read_noises(folder)
    return [c for i, c in enumerate(clips) if i % 4], [c for i, c in enumerate(clips) if i % 4 == 0]


def training_words(speech_commands: Path, rng: np.random.Generator, n: int = WORDS) -> list:
    """The Speech Commands non-digit words the string model trains on: the first draw of the
    material's generator (so `training_words(sc, np.random.default_rng(0))` names the shipped model's)."""
    from audrey.data.corpora import read_non_digits

    words = [w for w in read_non_digits(speech_commands) if not w.is_noise]
    return [words[i] for i in rng.permutation(len(words))[:n]]


def build_material(args, train_utts, train_noise) -> tuple[list, list, dict]:
    """(waves, token sequences, counts) of the training material."""
    from audrey.data.corpora import read_corpus
    from audrey.data.strings import assembled_strings, load_piece, mix_background, speed_perturbed, utterance_example
    from audrey.models.ctc import OTHER, digit_token

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    examples = [utterance_example(u) for u in train_utts]
    print(f"  {len(examples)} utterances read ({time.perf_counter() - t0:.0f} s)", flush=True)
    clips = read_corpus(args.fsdd) + read_corpus(args.speech_commands)
    if args.aligned.is_dir():
        aligned = read_corpus(args.aligned)
        clips += [c for c in aligned if not is_test_speaker(c.speaker, args.an4_share, args.alnum_share)]
    digits = [load_piece(c.path, digit_token(c.digit), c.speaker) for c in clips]
    words = training_words(args.speech_commands, rng, args.words)
    word_pieces = [load_piece(w.path, OTHER, w.speaker) for w in words]
    print(f"  {len(digits)} digit clips, {len(word_pieces)} words read ({time.perf_counter() - t0:.0f} s)", flush=True)
    examples += assembled_strings(digits, word_pieces, args.assembled, rng)
    def in_a_room(wave: np.ndarray) -> np.ndarray:
        """`noisy_share` of the material in background noise at 0-25 dB SNR, the rest nearly clean."""
        snr = rng.uniform(0, 25) if rng.random() < args.noisy_share else rng.uniform(35, 50)
        return mix_background(wave, train_noise, snr, rng)

    waves, targets = [in_a_room(ex.wave) for ex in examples], [ex.tokens for ex in examples]
    # the real utterances once more, in noise: they are the rarest and the closest to the test
    for ex in examples[: len(train_utts)]:
        waves.append(mix_background(ex.wave, train_noise, rng.uniform(0, 20), rng))
        targets.append(ex.tokens)
    # and at each of --speeds, in a room as the rest
    for factor in args.speeds:
        for ex in examples[: len(train_utts)]:
            waves.append(in_a_room(speed_perturbed(ex, factor).wave))
            targets.append(ex.tokens)
    counts = {"utterances": len(train_utts), "digit_clips": len(digits), "words": len(word_pieces),
              "assembled": args.assembled, "speeds": list(args.speeds), "examples": len(waves)}
    return waves, targets, counts


def material_key(args) -> str:
    # folders by their real path: the same material whichever link leads to it
    fields = {k: os.path.realpath(getattr(args, k)) for k in ("an4", "alphanumeric", "fsdd", "speech_commands", "aligned")}
    fields |= {k: str(getattr(args, k)) for k in ("an4_share", "alnum_share", "assembled", "words", "noisy_share", "seed")}
    fields["version"] = MATERIAL_VERSION
    if args.speeds:  # absent without speed perturbation, so the keys of earlier material stay valid
        fields["speeds"] = list(args.speeds)
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]


def trained_model(args, train_utts, train_noise):
    from audrey.data.features import cache_root
    from audrey.models.ctc import STRING_FRONTEND, CTCConfig
    from audrey.models.ctc_file import CTCBundle, load_ctc, save_ctc
    from audrey.training.ctc_train import CTCTraining, features_of, train_ctc

    folder = cache_root() / "strings-ctc"
    key = material_key(args)
    training = CTCTraining(epochs=args.epochs, batch_frames=args.batch_frames, lr=args.lr, seed=args.seed,
                           time_limit_s=args.time_limit)
    cfg = CTCConfig(n_layers=args.layers, d_model=args.d_model, ffn_dim=2 * args.d_model)
    model_key = hashlib.sha1(json.dumps([key, asdict(training), asdict(cfg)]).encode()).hexdigest()[:12]
    model_path = folder / f"model-{model_key}.safetensors"
    if model_path.exists() and not args.retrain:
        print(f"model: cached {model_path}")
        return load_ctc(model_path), model_path
    feats_path = folder / f"material-{key}.pt"
    if feats_path.exists():
        saved = torch.load(feats_path, weights_only=True)
        feats, targets, counts = saved["feats"], [tuple(t) for t in saved["targets"]], saved["counts"]
        print(f"material: cached {feats_path} ({len(feats)} examples)")
    else:
        print("material: building", flush=True)
        waves, targets, counts = build_material(args, train_utts, train_noise)
        feats = features_of(waves, STRING_FRONTEND)
        del waves
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"feats": feats, "targets": [list(t) for t in targets], "counts": counts}, feats_path)
    hours = sum(f.shape[1] for f in feats) * STRING_FRONTEND.hop_length / STRING_FRONTEND.sample_rate / 3600
    print(f"training on {len(feats)} examples, {hours:.1f} h of audio: {counts}", flush=True)
    t0 = time.perf_counter()
    model = train_ctc(feats, targets, cfg, STRING_FRONTEND, training)
    bundle = CTCBundle(model, STRING_FRONTEND, {"material": counts, "training": asdict(training),
                                                "train_seconds": round(time.perf_counter() - t0, 1),
                                                "held_out": {"an4": args.an4_share, "alphanumeric": args.alnum_share}})
    save_ctc(bundle, model_path)
    print(f"model saved: {model_path}")
    return bundle, model_path


# --- test sets ------------------------------------------------------------------------------------


def test_sets(test, test_noise, args) -> dict[str, list[tuple[str, np.ndarray, str]]]:
    """name -> [(id, wave at 16 kHz, reference digits)]."""
    from audrey.audio import waveform
    from audrey.data.strings import RATE, mix_background

    def rows(utts):
        return [(u.path.stem, waveform.load_audio(u.path, RATE), u.digits) for u in utts]

    an4 = test["an4"]
    sets = {
        "an4_digits": rows([u for u in an4 if u.only_digits]),
        "an4_mixed": rows([u for u in an4 if u.digits and not u.only_digits]),
        "an4_no_digits": rows([u for u in an4 if not u.digits]),
        "phone_numbers": rows([u for u in test["alphanumeric"] if u.digits]),
    }
    rng = np.random.default_rng(args.seed + 1)
    sets["noise_10db"] = [(f"{i}-10db", mix_background(w, test_noise, 10.0, rng), d)
                          for i, w, d in sets["an4_digits"] + sets["phone_numbers"]]
    return sets


class Classic:
    """Today's `transcribe`: the starter's Judge through DigitStream, on a file (with `confirm`, an
    audrey.live.confirm.StringCheck, as `transcribe --confirm`)."""

    def __init__(self, model: Path, tmp: Path, confirm=None):
        from audrey.live.judge import Judge

        self.judge = Judge.from_file(model, need_calibration=True)
        self.tmp = tmp
        self.confirm = confirm

    def __call__(self, name: str, wave: np.ndarray) -> str:
        from audrey.audio import waveform
        from audrey.data.strings import RATE
        from audrey.live.stream import transcribe_file

        path = waveform.write_audio(self.tmp / f"{name}.wav", wave, RATE)
        return transcribe_file(path, self.judge, confirm=self.confirm).text.replace(" ", "")


class CTCTranscribe:
    """`audrey transcribe --engine ctc` on a file: the same library function the command calls."""

    def __init__(self, bundle, tmp: Path):
        self.bundle = bundle
        self.tmp = tmp

    def __call__(self, name: str, wave: np.ndarray, digits: int | None = None) -> str:
        from audrey.audio import waveform
        from audrey.data.strings import RATE
        from audrey.live.ctc_transcribe import transcribe_ctc

        path = waveform.write_audio(self.tmp / f"{name}.wav", wave, RATE)
        return transcribe_ctc(path, self.bundle, digits=digits).text.replace(" ", "")


PEERS = ("pocketsphinx", "segment+classify")
CONSTRAINED = ("phone_numbers", "noise_10db")  # sets where the number of digits is known in advance


def run_all(bundle, sets, args, tmp: Path) -> tuple[dict, dict]:
    from peers import DIGIT_LOOP, PocketSphinxDigits

    from audrey.data.strings import RATE
    from audrey.models.ctc_decode import digits_of

    ctc = CTCTranscribe(bundle, tmp)
    recognizers = {"ctc": ctc, "ctc whole clip": lambda name, w: digits_of(bundle.decode(w, RATE))}
    if not args.no_peers:
        sphinx = PocketSphinxDigits(DIGIT_LOOP)
        recognizers["pocketsphinx"] = lambda name, w: sphinx.recognize(w, RATE)
        recognizers["segment+classify"] = Classic(args.model, tmp)
    results, outputs = {}, {}
    for set_name, rows in sets.items():
        results[set_name], outputs[set_name] = {}, []
        sample = set(range(len(rows)))
        if args.classic_sample and len(rows) > args.classic_sample:
            sample = set(np.random.default_rng(0).choice(len(rows), args.classic_sample, replace=False).tolist())
        for method, rec in recognizers.items():
            t0 = time.perf_counter()
            idx = sorted(sample) if method == "segment+classify" else range(len(rows))
            hyps = [rec(rows[i][0], rows[i][1]) for i in idx]
            refs = [rows[i][2] for i in idx]
            r = printed_share(hyps) if set_name == "an4_no_digits" else score(refs, hyps)
            r["seconds_per_clip"] = round((time.perf_counter() - t0) / max(len(hyps), 1), 3)
            results[set_name][method] = r
            outputs[set_name] += [{"id": rows[i][0], "method": method, "ref": rows[i][2], "hyp": h} for i, h in zip(idx, hyps)]
            print(f"{set_name:14s} {method:24s} {json.dumps(r)}", flush=True)
        if set_name in CONSTRAINED:
            for method, rec in (("ctc digits=N", lambda i, w, d: ctc(i, w, digits=len(d))),
                                ("ctc whole clip digits=N", lambda i, w, d: digits_of(bundle.decode(w, RATE, digits=len(d))))):
                hyps = [rec(i, w, d) for i, w, d in rows]
                results[set_name][method] = score([d for *_, d in rows], hyps)
                outputs[set_name] += [{"id": i, "method": method, "ref": d, "hyp": h} for (i, _, d), h in zip(rows, hyps)]
                print(f"{set_name:14s} {method:24s} {json.dumps(results[set_name][method])}", flush=True)
    return results, outputs


def keep_peers(results: dict, outputs: dict, previous: Path) -> None:
    """With --no-peers: the peers' rows (and outputs) of the previous results file, unchanged."""
    if not previous.exists():
        return
    old = json.loads(previous.read_text())
    for set_name, by in old.get("results", {}).items():
        for method in PEERS:
            if method in by and set_name in results:
                results[set_name][method] = by[method]
    for set_name, rows in old.get("outputs", {}).items():
        if set_name in outputs:
            outputs[set_name] += [r for r in rows if r["method"] in PEERS]


def print_table(results: dict) -> None:
    methods = ["ctc", "ctc digits=N", "ctc whole clip", "ctc whole clip digits=N", "pocketsphinx", "segment+classify"]
    print("\n| set | " + " | ".join(methods) + " |")
    print("|---|" + "---|" * len(methods))
    for set_name, by in results.items():
        cells = []
        for m in methods:
            r = by.get(m)
            if r is None:
                cells.append("")
            elif "printed" in r:
                cells.append(f"printed {r['printed']:.0%} (n={r['clips']})")
            else:
                cells.append(f"DER {r['der']:.1%}, exact {r['exact']:.0%} (n={r['clips']})")
        print(f"| {set_name} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--an4", type=Path, default=SHARED / "an4")
    ap.add_argument("--alphanumeric", type=Path, default=SHARED / "alphanumeric")
    ap.add_argument("--fsdd", type=Path, default=SHARED / "fsdd")
    ap.add_argument("--speech-commands", type=Path, default=SHARED / "speech-commands")
    ap.add_argument("--aligned", type=Path, default=REPO / "data" / "aligned", help="`audrey data align --out` folder")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "starter.safetensors", help="segment+classify's model")
    ap.add_argument("--an4-share", type=float, default=AN4_SHARE)
    ap.add_argument("--alnum-share", type=float, default=ALNUM_SHARE)
    ap.add_argument("--assembled", type=int, default=RECIPE["assembled"])
    ap.add_argument("--words", type=int, default=WORDS, help="Speech Commands non-digit words used in assembled strings")
    ap.add_argument("--noisy-share", type=float, default=0.5)
    ap.add_argument("--speeds", type=float, nargs="*", default=RECIPE["speeds"],
                    help="the real utterances again at these speed factors (e.g. 0.9 1.1)")
    ap.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    ap.add_argument("--batch-frames", type=int, default=6000, help="feature frames per batch (10 ms each)")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--time-limit", type=float, default=RECIPE["time_limit"], help="seconds of training before it stops")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--no-peers", action="store_true", help="only the CTC model (the peers' rows already in --out are kept)")
    ap.add_argument("--ctc-model", type=Path, default=None, help="score this digit-string model file instead of training one")
    ap.add_argument("--classic-sample", type=int, default=0, help="segment+classify on at most this many clips per set")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "strings_ctc.json")
    args = ap.parse_args()
    from audrey.data.strings import MAX_SPEED, MIN_SPEED

    if any(not MIN_SPEED <= f <= MAX_SPEED for f in args.speeds):
        ap.error(f"--speeds {' '.join(map(str, args.speeds))}: each factor from {MIN_SPEED} to {MAX_SPEED} (e.g. 0.9 1.1)")
    torch.set_num_threads(1)

    train_utts, test = split_utterances(args)
    train_noise, test_noise = noises(args)
    if args.ctc_model is not None:
        from audrey.models.ctc_file import load_ctc

        bundle, model_path = load_ctc(args.ctc_model), args.ctc_model
    else:
        bundle, model_path = trained_model(args, train_utts, train_noise)
    sets = test_sets(test, test_noise, args)
    with tempfile.TemporaryDirectory() as tmp:
        results, outputs = run_all(bundle, sets, args, Path(tmp))
    if args.no_peers:
        keep_peers(results, outputs, args.out)
    print_table(results)
    size = model_path.stat().st_size
    out = {"model": {"file": str(model_path), "bytes": size, "params": sum(p.numel() for p in bundle.model.parameters()),
                     "provenance": bundle.provenance},
           "held_out_speakers": {"an4": len({u.speaker for u in test["an4"]}),
                                 "alphanumeric": len({u.speaker for u in test["alphanumeric"]})},
           "results": results, "outputs": outputs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
