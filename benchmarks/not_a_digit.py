""""Not a digit" on real speech (issue 22): the shipped rejection measured on real words, noise and
spelled names, and one principled fix measured speaker-disjointly.

Material (all real, read-only under $AUDREY_SHARED_DATA):
- digit    the real pool of benchmarks/real_pool.py (FSDD, the Speech Commands digits, the digits
           `audrey data align` cut from AN4 and the alphanumeric phone numbers)
- word     every Speech Commands clip of a word that is not a digit (yes, no, on, tree, ...)
- noise    the Speech Commands `_background_` clips
- name     alphanumeric names/: a name spelled letter by letter (no digit in it)
- an4      the AN4 utterances whose transcript holds no digit word (split below into those with no
           number word at all and those with one: "enter sixty", "march twentieth ...")
- stream   per fold, that fold's words joined by 0.3-1.5 s of silence (scenes.compose): false
           accepts per hour of real non-digit speech

Every file goes through what `audrey transcribe` does with it (stream.transcribe_file): its noise
floor primed from its first 30 s, the live segmenter fed 1 s blocks, each segment judged; what a
file prints is the digits of its accepted segments. The segments are computed once and both parts
score the same ones (a sample of files is checked against transcribe_file itself).

A. Today's stack: models/starter.safetensors with models/starter.reject.safetensors (given
   explicitly, so a user calibration cannot stand in for the shipped one). The starter trained on
   every real pool speaker's digits, so its digit figure is NOT speaker-disjoint; the words, noise,
   names and AN4 sentences are material it never trained on (AN4 and alphanumeric speakers' digits
   it did hear). Also which of the six tests refused what: the first refusal (the verdict's reason)
   and the refusals no other test would have made (what each test buys on its own).
B. The "other" class learned from real negatives, speaker-disjoint. Every speaker has a fold: the
   pool's by real_pool.deal_folds, any other (Speech Commands word speakers who say no digit, names
   and AN4 speakers outside the pool) by a stable hash of the speaker id; background clips by a hash
   of the file name. For fold k: the existing detector (audrey.live.detector.train_detector, ten
   digits + other) trained for EPOCHS epochs on the real digits and real negatives of three folds;
   its threshold chosen on the fourth (fold k+1, whose speakers it never heard) so that TARGET of
   those digits pass (its probability for the digit said, on segments the length test passes);
   then on fold k: the digit from real_pool's fold model that never heard fold k
   (`fold{k}.safetensors`), accepted when the length test passes and the detector's probability
   for that digit reaches the threshold (the Judge's p_digit). Nothing here is synthetic; nothing
   about fold k's speakers sets anything.

C. A with the digit-string model's second opinion (`--confirm`, audrey.live.confirm; the default of
   `transcribe` and `listen`): every file through transcribe_file with the check, and each fold's
   word stream through DigitStream; each accepted word's string_p (the string model's posterior for
   the digit inside the word, reading the whole stretch of speech) is recorded, so any threshold's
   output follows. The threshold reported is the one that keeps CONFIRM_SHARE of A's right digits on
   half the AN4 and phone-number speakers the string model never heard (split by a hash); their other
   half, and words the string model never trained on, are reported on their own. The classifier and
   its rejection are A's (they heard every pool speaker).

Results are cached under $AUDREY_CACHE/not_a_digit/ (the segments and the starter's verdicts once,
then each fold), so a rerun only prints.

    OMP_NUM_THREADS=1 python benchmarks/not_a_digit.py --aligned /work/main/data/aligned
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from audrey import DIGIT_WORDS
from audrey.audio import frontend as fe
from audrey.audio.vad import live_segmenter, prime_floor_db
from audrey.audio.waveform import SAMPLE_RATE, load_audio, open_audio
from audrey.data.corpora import read_non_digits
from audrey.data.features import FeatureCache, cache_root, clip_features, file_digest
from audrey.data.scenes import compose
from audrey.data.utterances import read_utterances
from audrey.live.detector import OTHER, train_detector
from audrey.live.hiss import MIN_HISS_DB
from audrey.live.judge import Judge
from audrey.live.stream import PRIME_SECONDS, transcribe_file
from audrey.live.thresholds import BACKED_P_DIGIT, TARGET_ACCEPT
from audrey.models.modelfile import load_model
from audrey.training.train import predict_features
from real_pool import FOLDS, SHARED, STARTER_RECIPE, corpus_of, deal_folds, read_pool, trained_folds  # benchmarks/, beside this script

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
STARTER = REPO / "models" / "starter.safetensors"
STARTER_REJECT = REPO / "models" / "starter.reject.safetensors"
ESPEAK_OPTIONS = {"voices_per_word": 12, "common_voices": 8}  # half the shipped recipe's voices per word (time)
EPOCHS = 6  # the fix's detector (5-8 asked; the shipped one trains 10 on ~10x the material)
TARGET = TARGET_ACCEPT  # of the held-out training-fold digits the fix's threshold passes (the shipped operating point)
BLOCK_SECONDS = 1.0  # transcribe_file's block
GAP_SECONDS = (0.3, 1.5)  # silence between the words of a stream
CHECK_FILES = 120  # files also run through transcribe_file itself, to check the segments are its own
BATCH_ITEMS = 200  # files segmented and judged at once
# Speech Commands words heard as one digit by ear; "fine" and the single letters (A/eight, E and
# V/three) are not in the corpora as clips: the spelled names carry the letters.
NEAR_MISSES = {"tree": 3, "on": 1, "no": 9}
# Letters heard as a digit, from the AN4 utterances with no digit word that spell them ("R O B E R T"):
# the share of utterances holding the letter that print its digit, against those holding none of
# that digit's letters (utterances have no word times, so a letter is measured by where it occurs).
LETTER_NEAR_MISSES = {"A": 8, "E": 3, "V": 3}
# AN4 words that are numbers but not digit words ("sixty" holds "six", "fifteen" "five"-ish)
NUMBER_WORD = re.compile(r"(teen|ty|tieth|teenth)$|^(ten|eleven|twelve|hundred|thousand|first|second|third|fourth|"
                         r"fifth|sixth|seventh|eighth|ninth|tenth|twelfth)$")
KINDS = ("digit", "word", "noise", "name", "an4")
TESTS = ("length", "detector", "phone", "distance", "confidence", "hiss")  # the six of audrey.live.judge
VERSION = 1  # of the cached segment/verdict format
CONFIRM_SHARE = 0.99  # of the calibration half's right digits that --confirm's threshold keeps
FIXES = {"B": False, "B+espeak": True}  # part B's detectors: real material only; real + espeak-ng (whether espeak_set is added)
METHODS = {
    "B": "audrey.live.detector.train_detector (10 digits + other) on the real digits, Speech Commands non-digit words "
         "and background clips of 3 folds; threshold = the detector's probability for the digit said that TARGET of the "
         "4th fold's digit files reach (best length-passing segment); tested on the 5th: accepted when the length test "
         "passes and the detector's probability for the fold model's digit reaches it",
    "B+espeak": "as B, the detector also trained on detector.detector_data's espeak-ng material (ESPEAK_OPTIONS); "
                "thresholds from real digits only"}


@dataclass(frozen=True)
class Item:
    path: Path
    kind: str  # KINDS
    speaker: str  # "" for background noise
    label: str  # digit: "0".."9"; word: the word; an4: the transcript; name, noise: ""
    fold: int
    corpus: str


def stable_fold(name: str) -> int:
    return int(hashlib.sha1(name.encode()).hexdigest(), 16) % FOLDS


def material(aligned: Path) -> list[Item]:
    pool = read_pool(aligned)
    fold_of = deal_folds(pool)

    def fold(speaker: str) -> int:
        return fold_of[speaker] if speaker in fold_of else stable_fold(speaker)

    items = [Item(c.path, "digit", c.speaker, str(c.digit), fold_of[c.speaker], corpus_of(c)) for c in pool]
    for w in read_non_digits(SHARED / "speech-commands"):
        if w.is_noise:
            items.append(Item(w.path, "noise", "", "", stable_fold(w.path.name), "speech-commands"))
        else:
            items.append(Item(w.path, "word", w.speaker, w.word, fold(w.speaker), "speech-commands"))
    for u in read_utterances(SHARED / "alphanumeric"):
        if u.path.parent.name == "names":
            items.append(Item(u.path, "name", u.speaker, "", fold(u.speaker), "alphanumeric"))
    for u in read_utterances(SHARED / "an4"):
        if not u.digits:
            items.append(Item(u.path, "an4", u.speaker, " ".join(u.words), fold(u.speaker), "an4"))
    return items


def has_number_word(text: str) -> bool:
    return any(NUMBER_WORD.search(w) for w in text.split())


# --- segments: what transcribe does with each file ------------------------------------------------

def read_mono(path: Path) -> tuple[np.ndarray, int]:
    with open_audio(path) as fh:
        data = fh.read(dtype="float32", always_2d=True)
        return data.mean(axis=1).astype(np.float32), fh.samplerate


def segments_of(audio: np.ndarray, rate: int) -> list:
    """transcribe_file's segments of a recording: the floor primed from its first PRIME_SECONDS, the
    live segmenter fed BLOCK_SECONDS blocks, then flushed."""
    seg = live_segmenter(rate, prime_floor_db(audio[: int(PRIME_SECONDS * rate)], rate))
    block = max(1, int(BLOCK_SECONDS * rate))
    out = []
    for i in range(0, len(audio), block):
        out += seg.feed(audio[i : i + block])
    return out + seg.flush()


def judge_segments(judge: Judge, segs: list, rate: int) -> tuple[list[dict], torch.Tensor]:
    """The starter's verdict on each segment (what Judge.judge gives) and the segment's features at
    the model's rate (what the models see), from one resampling."""
    verdicts, feats = [], []
    for i in range(0, len(segs), 64):
        part = segs[i : i + 64]
        waves, hiss = judge.inputs([s.audio for s in part], rate)
        verdicts += [asdict(v) for v in judge.decide(*judge.forward(waves), [s.speech_seconds for s in part], hiss)]
        feats.append(fe.features(waves, judge.recognizer.bundle.frontend))
    cfg = judge.recognizer.bundle.frontend
    return verdicts, torch.cat(feats) if feats else torch.zeros(0, cfg.n_mels, cfg.n_frames)


def segment_all(items: list[Item], judge: Judge, folder: Path) -> dict:
    """Per segment: its item, the starter's verdict, its features (float16); per item its seconds.
    Cached in `folder`."""
    feats_path, meta_path = folder / "segments.npy", folder / "segments.json"
    if feats_path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return {**meta, "feats": np.load(feats_path, mmap_mode="r")}
    item_of, verdicts, feats, seconds = [], [], [], []
    t0 = time.perf_counter()
    for start in range(0, len(items), BATCH_ITEMS):
        by_rate: dict[int, list] = defaultdict(list)
        for j, it in enumerate(items[start : start + BATCH_ITEMS], start):
            audio, rate = read_mono(it.path)
            seconds.append(len(audio) / rate)
            by_rate[rate] += [(j, s) for s in segments_of(audio, rate)]
        for rate, segs in by_rate.items():
            v, f = judge_segments(judge, [s for _, s in segs], rate)
            item_of += [j for j, _ in segs]
            verdicts += v
            feats.append(f.numpy().astype(np.float16))
        print(f"  segmented {min(start + BATCH_ITEMS, len(items))}/{len(items)} files "
              f"({len(item_of)} segments, {time.perf_counter() - t0:.0f} s)", flush=True)
    order = np.argsort(np.array(item_of), kind="stable")  # segments in file order, within a file in time order
    meta = {"item": [item_of[i] for i in order], "verdicts": [verdicts[i] for i in order], "item_seconds": seconds,
            "paths": [str(it.path) for it in items]}
    folder.mkdir(parents=True, exist_ok=True)
    np.save(feats_path, np.concatenate(feats)[order])
    meta_path.write_text(json.dumps(meta))
    return {**meta, "feats": np.load(feats_path, mmap_mode="r")}


def check_against_transcribe(items: list[Item], seg: dict, judge: Judge, n: int, seed: int) -> dict:
    """transcribe_file on a seeded sample of files: the digits it prints against the digits of the
    segments here (the two must be the same path)."""
    printed = printed_digits(seg, len(items))
    rng = random.Random(seed)
    sample = sorted(rng.sample(range(len(items)), min(n, len(items))))
    same = sum(transcribe_file(items[j].path, judge).text.replace(" ", "") == printed[j] for j in sample)
    return {"files": len(sample), "same": same}


def printed_digits(seg: dict, n_items: int) -> list[str]:
    """What each file prints with the starter: the digits of its accepted segments."""
    out = [""] * n_items
    for j, v in zip(seg["item"], seg["verdicts"]):
        if v["accepted"]:
            out[j] += str(v["digit"])
    return out


# --- A: which test refused what -------------------------------------------------------------------

def failed_tests(v: dict, cal) -> list[str]:
    """The tests of audrey.live.judge a verdict fails, recomputed from its scores."""
    s, pd, m, d, c, h = v["seconds"], v["p_digit"], v["phone_match"], v["distance"], v["confidence"], v["hiss_db"]
    fails = {"length": s < cal.min_seconds or s > cal.max_seconds,
             "detector": pd is not None and pd < cal.min_p_digit,
             # test 3: under the veto, or a weak match the detector does not back
             "phone": m is not None and (m < cal.min_phone_match
                                         or (pd is not None and m < cal.sure_phone_match and pd < BACKED_P_DIGIT)),
             "distance": d is not None and d > cal.max_distance,
             "confidence": c < cal.min_confidence,
             "hiss": v["digit"] in (6, 7) and h is not None and h < MIN_HISS_DB}
    return [t for t in TESTS if fails[t]]


def first_reason(reason: str | None) -> str:
    if reason is None:
        return "accepted"
    for prefix, test in (("too short", "length"), ("too long", "length"), ("not like a", "detector"),
                         ("sounds like", "phone"), ("not clearly", "phone"), ("unlike any", "distance"),
                         ("unsure which", "confidence"), ("not a ", "hiss")):
        if reason.startswith(prefix):
            return test
    return "other"


def reason_table(items: list[Item], seg: dict, cal) -> tuple[dict, int]:
    """Per kind: segments, refused first by each test, and refused by that test alone; and the
    number of verdicts whose recomputed tests disagree with the verdict (should be 0)."""
    table = {k: {"segments": 0, "accepted": 0, "first": Counter(), "alone": Counter(), "first_phone_unbacked": 0}
             for k in KINDS}
    mismatch = 0
    for j, v in zip(seg["item"], seg["verdicts"]):
        row = table[items[j].kind]
        fails = failed_tests(v, cal)
        mismatch += (not fails) != v["accepted"]
        row["segments"] += 1
        row["accepted"] += v["accepted"]
        if not v["accepted"]:
            row["first"][first_reason(v["reason"])] += 1
            row["first_phone_unbacked"] += v["reason"].startswith("not clearly")
        if len(fails) == 1:
            row["alone"][fails[0]] += 1
    return {k: {**r, "first": dict(r["first"]), "alone": dict(r["alone"])} for k, r in table.items()}, mismatch


# --- figures both parts report --------------------------------------------------------------------

def figures(items: list[Item], printed: list[str], seconds: list[float], folds=None) -> dict:
    """The issue's figures from what each file printed (over the items of `folds`, default all)."""
    sel = [j for j, it in enumerate(items) if folds is None or it.fold in folds]

    def of(kind):
        return [j for j in sel if items[j].kind == kind]

    def share(js, test):
        return round(sum(test(j) for j in js) / len(js), 4) if js else None

    words, digits = of("word"), of("digit")
    out = {"words": len(words), "words_printing_a_digit": share(words, lambda j: printed[j] != ""),
           "noise": len(of("noise")), "noise_printing_a_digit": share(of("noise"), lambda j: printed[j] != ""),
           "digits": len(digits), "digits_accepted_and_right": share(digits, lambda j: printed[j] == items[j].label),
           "digits_accepted_wrong": share(digits, lambda j: printed[j] not in ("", items[j].label)),
           "digits_refused": share(digits, lambda j: printed[j] == "")}
    out["digits_accepted_and_right_per_corpus"] = {
        c: share([j for j in digits if items[j].corpus == c], lambda j: printed[j] == items[j].label)
        for c in sorted({items[j].corpus for j in digits})}
    per_word = defaultdict(list)
    for j in words:
        per_word[items[j].label].append(j)
    out["per_word"] = {w: {"clips": len(js), "printing_a_digit": share(js, lambda j: printed[j] != "")}
                       for w, js in sorted(per_word.items())}
    out["near_misses"] = {f"{w}/{DIGIT_WORDS[d]}": {"clips": len(per_word[w]),
                                                     "printing_a_digit": share(per_word[w], lambda j: printed[j] != ""),
                                                     f"printing_{d}": share(per_word[w], lambda j, d=d: str(d) in printed[j])}
                          for w, d in NEAR_MISSES.items()}
    an4 = of("an4")
    out["letter_near_misses"] = {}
    for letter, d in LETTER_NEAR_MISSES.items():
        rivals = {x for x, dx in LETTER_NEAR_MISSES.items() if dx == d}
        with_it = [j for j in an4 if letter in items[j].label.upper().split()]
        without = [j for j in an4 if not rivals & set(items[j].label.upper().split())]
        out["letter_near_misses"][f"{letter}/{DIGIT_WORDS[d]}"] = {
            "utterances": len(with_it), f"printing_{d}": share(with_it, lambda j, d=d: str(d) in printed[j]),
            "utterances_without": len(without), f"without_printing_{d}": share(without, lambda j, d=d: str(d) in printed[j])}
    for kind, groups in (("name", {"all": of("name")}),
                         ("an4", {"no number word": [j for j in of("an4") if not has_number_word(items[j].label)],
                                  "with a number word": [j for j in of("an4") if has_number_word(items[j].label)]})):
        for group, js in groups.items():
            minutes = sum(seconds[j] for j in js) / 60
            n = sum(len(printed[j]) for j in js)
            out[f"{kind}: {group}"] = {
                "utterances": len(js), "minutes": round(minutes, 2), "digits_printed": n,
                "digits_per_minute": round(n / minutes, 3) if minutes else None,
                "utterances_printing_a_digit": share(js, lambda j: printed[j] != ""),
                "digits_printed_by_digit": dict(sorted(Counter("".join(printed[j] for j in js)).items()))}
    return out


# --- B: the detector learnt from real negatives, per fold -----------------------------------------

def training_set(items: list[Item], folds: set[int], cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip features (FeatureCache) and labels (digit or OTHER) of the digits, words and noise of `folds`."""
    chosen = [it for it in items if it.fold in folds and it.kind in ("digit", "word", "noise")]
    feats, kept = clip_features(chosen, cfg, FeatureCache(cfg), f"features (folds {sorted(folds)})")
    labels = [int(it.label) if it.kind == "digit" else OTHER for it in kept]
    return feats, torch.tensor(labels)


def espeak_set(cfg, folder: Path, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The shipped detector's synthetic material (detector.detector_data: espeak-ng digits, words,
    near misses, made-up words, reversed digits, noise bursts) with fewer voices per word
    (ESPEAK_OPTIONS), without any real digit; cached beside `folder`."""
    from audrey.live.detector import detector_data

    key = hashlib.sha1(json.dumps([cfg.key(), ESPEAK_OPTIONS, seed]).encode()).hexdigest()[:10]
    path = folder.parent / f"espeak-{key}.npz"  # the same for every run: not keyed by the material
    if not path.is_file():
        x, y, _ = detector_data(cfg, torch.zeros(0, cfg.n_mels, cfg.n_frames), torch.zeros(0, dtype=torch.long), seed=seed,
                                **ESPEAK_OPTIONS)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=x.numpy().astype(np.float16), y=y.numpy())
    data = np.load(path)
    return torch.from_numpy(data["x"].astype(np.float32)), torch.from_numpy(data["y"])


def run_fold(k: int, items: list[Item], seg: dict, folder: Path, model_folder: Path, seed: int,
             espeak: bool = False) -> dict:
    """Fold k of part B, cached: per segment of fold k, the detector's probability for the fold
    model's digit and for "other"; the threshold from fold k+1; the stream of fold k's words. With
    `espeak`, the detector also trains on espeak_set."""
    name = f"fold{k}" + ("-espeak" if espeak else "")
    cached = folder / f"{name}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    inner = (k + 1) % FOLDS
    train_folds = set(range(FOLDS)) - {k, inner}
    bundle, _ = load_model(model_folder / f"fold{k}.safetensors")
    cfg = bundle.frontend
    t0 = time.perf_counter()
    x, y = training_set(items, train_folds, cfg)
    if espeak:
        xs, ys = espeak_set(cfg, folder, seed)
        x, y = torch.cat([x, xs]), torch.cat([y, ys])
    print(f"{name}: detector on folds {sorted(train_folds)}{' + espeak-ng' if espeak else ''}: "
          f"{int((y < OTHER).sum())} digits, {int((y == OTHER).sum())} others, {EPOCHS} epochs", flush=True)
    detector = train_detector(x, y, cfg, epochs=EPOCHS, seed=seed + k)
    train_seconds = time.perf_counter() - t0
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({n: v.contiguous() for n, v in detector.state_dict().items()}, str(folder / f"{name}.safetensors"))
    rows = [i for i, j in enumerate(seg["item"]) if items[j].fold in (k, inner)]
    feats = torch.from_numpy(np.asarray(seg["feats"][rows], dtype=np.float32))
    with torch.inference_mode():
        p_det = predict_features(detector, feats)
        digit = predict_features(bundle.model, feats).argmax(-1)
    # threshold: the detector's probability for the digit said, on fold `inner`'s digit segments the
    # length test passes (per file its best segment), TARGET of them at or above it
    best: dict[int, float] = {}
    for r, i in enumerate(rows):
        j, v = seg["item"][i], seg["verdicts"][i]
        if items[j].fold == inner and items[j].kind == "digit" and length_ok(v["seconds"]):
            best[j] = max(best.get(j, 0.0), float(p_det[r, int(items[j].label)]))
    threshold = float(np.quantile(list(best.values()), 1 - TARGET))
    test = [r for r, i in enumerate(rows) if items[seg["item"][i]].fold == k]
    d_test, p_test = digit[test], p_det[test]
    clip_scores = clip_level(k, items, detector, bundle)
    stream = run_stream(k, items, detector, bundle, seed)
    out = {"fold": k, "espeak": espeak, "inner": inner, "train_folds": sorted(train_folds), "train_clips": len(y),
           "train_seconds": round(train_seconds, 1), "threshold": round(threshold, 5), "inner_digit_files": len(best),
           "segments": [rows[r] for r in test], "digit": d_test.tolist(),
           "p_digit": p_test.gather(1, d_test[:, None])[:, 0].tolist(), "p_other": p_test[:, OTHER].tolist(),
           "clip": clip_scores, "stream": stream}
    folder.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(out))
    return out


def length_ok(seconds: float) -> bool:
    from audrey.live.thresholds import MAX_SECONDS, MIN_SECONDS

    return MIN_SECONDS <= seconds <= MAX_SECONDS


def clip_level(k: int, items: list[Item], detector, bundle) -> dict:
    """Fold k's digit, word and noise clips as whole clips (clip_features, no segmenter): the
    fold model's digit and the detector's probability for it."""
    chosen = [(j, it) for j, it in enumerate(items) if it.fold == k and it.kind in ("digit", "word", "noise")]
    feats, kept = clip_features([it for _, it in chosen], bundle.frontend, FeatureCache(bundle.frontend), f"fold{k} clips")
    index = {it.path: j for j, it in chosen}
    with torch.inference_mode():
        digit = predict_features(bundle.model, feats).argmax(-1)
        p = predict_features(detector, feats).gather(1, digit[:, None])[:, 0]
    return {"item": [index[it.path] for it in kept], "digit": digit.tolist(), "p_digit": p.tolist()}


def stream_audio(k: int, items: list[Item], seed: int) -> tuple[np.ndarray, int]:
    """Fold k's words, shuffled, joined by GAP_SECONDS of silence."""
    words = [it for it in items if it.kind == "word" and it.fold == k]
    random.Random(f"{seed}-stream-{k}").shuffle(words)
    rng = np.random.default_rng(seed + k)
    clips = [load_audio(it.path, SAMPLE_RATE) for it in words]
    audio, _ = compose(clips, list(rng.uniform(*GAP_SECONDS, len(clips) - 1)), SAMPLE_RATE)
    return audio, len(words)


def run_stream(k: int, items: list[Item], detector, bundle, seed: int) -> dict:
    """Both parts on fold k's stream: the same segments, judged by the starter (A) and by the fold's
    detector and model (B)."""
    audio, n_words = stream_audio(k, items, seed)
    segs = segments_of(audio, SAMPLE_RATE)
    judge = starter_judge()
    verdicts, feats = judge_segments(judge, segs, SAMPLE_RATE)
    with torch.inference_mode():
        digit = predict_features(bundle.model, feats).argmax(-1)
        p = predict_features(detector, feats).gather(1, digit[:, None])[:, 0]
    return {"seconds": len(audio) / SAMPLE_RATE, "words": n_words, "segments": len(segs),
            "a_accepted": [v["digit"] for v in verdicts if v["accepted"]],
            "seconds_of_segment": [v["seconds"] for v in verdicts], "digit": digit.tolist(), "p_digit": p.tolist()}


_JUDGE: list[Judge] = []


def starter_judge() -> Judge:
    if not _JUDGE:
        _JUDGE.append(Judge.from_file(STARTER, STARTER_REJECT, need_calibration=True))
    return _JUDGE[0]


def fix_printed(items: list[Item], seg: dict, folds: list[dict], thresholds: list[float] | None = None) -> list[str]:
    """What each file prints under the fix (per fold its own threshold, or `thresholds`)."""
    out = [""] * len(items)
    for f in folds:
        t = f["threshold"] if thresholds is None else thresholds[f["fold"]]
        for i, d, p in zip(f["segments"], f["digit"], f["p_digit"]):
            if p >= t and length_ok(seg["verdicts"][i]["seconds"]):
                out[seg["item"][i]] += str(d)
    return out


def fix_clip_figures(items: list[Item], folds: list[dict]) -> dict:
    """Part B on whole clips (no segmenter): shares of words and noise accepted, digits accepted and right."""
    hit = defaultdict(list)
    for f in folds:
        for j, d, p in zip(f["clip"]["item"], f["clip"]["digit"], f["clip"]["p_digit"]):
            hit[items[j].kind].append(d == int(items[j].label) and p >= f["threshold"] if items[j].kind == "digit"
                                      else p >= f["threshold"])
    return {"words_printing_a_digit": round(float(np.mean(hit["word"])), 4),
            "noise_printing_a_digit": round(float(np.mean(hit["noise"])), 4),
            "digits_accepted_and_right": round(float(np.mean(hit["digit"])), 4)}


def stream_figures(folds: list[dict]) -> dict:
    """False accepts on the word streams: the starter's (A) and the fold detectors' (B)."""
    hours = sum(f["stream"]["seconds"] for f in folds) / 3600
    a = sum(len(f["stream"]["a_accepted"]) for f in folds)
    b = sum(sum(p >= f["threshold"] and length_ok(s)
                for p, s in zip(f["stream"]["p_digit"], f["stream"]["seconds_of_segment"])) for f in folds)
    return {"hours": round(hours, 3), "words": sum(f["stream"]["words"] for f in folds),
            "segments": sum(f["stream"]["segments"] for f in folds),
            "A_false_accepts": a, "A_per_hour": round(a / hours, 1), "B_false_accepts": int(b), "B_per_hour": round(b / hours, 1)}


def separations(items: list[Item], seg: dict, folds: list[dict]) -> dict:
    """AUROC, real digits' segments against Speech Commands words' segments (those the length test
    passes), of the starter's p_digit (A; its digits heard) and the fold detectors' p_digit and 1 - p(other)."""
    from audrey.observe.separation import auroc

    kind = lambda i: items[seg["item"][i]].kind  # noqa: E731
    rows = [(i, pd, po) for f in folds for i, pd, po in zip(f["segments"], f["p_digit"], f["p_other"])
            if kind(i) in ("digit", "word") and length_ok(seg["verdicts"][i]["seconds"])]
    pos = [r for r in rows if kind(r[0]) == "digit"]
    neg = [r for r in rows if kind(r[0]) == "word"]
    start = lambda rs: [seg["verdicts"][i]["p_digit"] for i, _, _ in rs]  # noqa: E731
    return {"starter p_digit (A)": round(auroc(start(neg), start(pos)), 4),
            "fold detector p_digit": round(auroc([r[1] for r in neg], [r[1] for r in pos]), 4),
            "fold detector 1 - p_other": round(auroc([1 - r[2] for r in neg], [1 - r[2] for r in pos]), 4)}


def fix_result(items: list[Item], seg: dict, folds: list[dict], method: str) -> dict:
    printed = fix_printed(items, seg, folds)
    acc = float(np.mean([d == int(items[j].label) for f in folds for j, d in zip(f["clip"]["item"], f["clip"]["digit"])
                         if items[j].kind == "digit"]))  # each fold model on its own fold's whole digit clips
    return {"speaker_disjoint": True, "epochs": EPOCHS, "target": TARGET, "method": method,
            "figures": figures(items, printed, seg["item_seconds"]), "clips": fix_clip_figures(items, folds),
            "thresholds": [f["threshold"] for f in folds], "fold_model_accuracy": round(acc, 4),
            "per_fold": [{**{k: f[k] for k in ("fold", "inner", "train_folds", "train_clips", "train_seconds", "threshold")},
                          "figures": {k: v for k, v in figures(items, printed, seg["item_seconds"], {f["fold"]}).items()
                                      if not isinstance(v, dict)}} for f in folds],
            "auroc_digits_vs_words": separations(items, seg, folds),
            "stream": stream_figures(folds), "tradeoff": tradeoff(items, seg, folds)}


def tradeoff(items: list[Item], seg: dict, folds: list[dict]) -> list[dict]:
    """Part B with one threshold for every fold, pooled (for the plot; the chosen point is per fold)."""
    rows = []
    for t in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999):
        fig = figures(items, fix_printed(items, seg, folds, [t] * FOLDS), seg["item_seconds"])
        rows.append({"threshold": t, "words": fig["words_printing_a_digit"], "digits": fig["digits_accepted_and_right"],
                     "noise": fig["noise_printing_a_digit"]})
    return rows


# --- C: A with the digit-string model's second opinion (--confirm) --------------------------------

def ctc_unheard(it: Item) -> bool:
    """A speaker the shipped digit-string model never trained on (strings_ctc.is_test_speaker; it
    trained on every FSDD and Speech Commands digit)."""
    from strings_ctc import is_test_speaker

    return it.corpus in ("an4", "alphanumeric") and is_test_speaker(it.speaker)


def ctc_trained_words() -> set[str]:
    """The Speech Commands words the shipped digit-string model heard (strings_ctc.training_words)."""
    from strings_ctc import training_words

    return {str(w.path) for w in training_words(SHARED / "speech-commands", np.random.default_rng(0))}


def confirm_half(it: Item) -> int:
    """Which half of the string model's unheard speakers an item's speaker is in: 0 chooses
    --confirm's threshold, 1 tests it."""
    return stable_fold(it.speaker + "-confirm") % 2


WORD_FIELDS = ("digit", "accepted", "string_p", "p_digit", "phone_match", "distance", "confidence", "hiss_db", "seconds")


def confirm_events(events) -> list[list]:
    """Per judged word of a transcript, in time order: WORD_FIELDS (A's verdict and its scores, and
    the string model's posterior for the digit)."""
    return [[e.digit, e.kind == "digit", e.string_p, e.p_digit, e.phone_match, e.distance, e.confidence, e.hiss_db,
             e.end - e.start] for e in events if e.kind in ("digit", "rejected")]


def run_confirm(items: list[Item], folder: Path, seed: int) -> dict:
    """Every file through transcribe_file with --confirm's check at string_p threshold 0 (A's verdicts,
    each word's string_p recorded), and each fold's word stream through DigitStream the same way;
    cached. Any threshold's output is then computed from the records (`confirmed_printed`)."""
    from audrey.models.ctc_file import SHIPPED_CTC, load_ctc

    # WORD_FIELDS' version, and the string model whose posteriors these are
    cached = folder / f"confirm-2-{file_digest(SHIPPED_CTC)[:10]}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    from audrey.live.confirm import StringCheck
    from audrey.live.stream import DigitStream

    judge, check = starter_judge(), StringCheck(load_ctc(SHIPPED_CTC), min_p=0.0)
    t0 = time.perf_counter()
    per_file = []
    for n, it in enumerate(items):
        per_file.append(confirm_events(transcribe_file(it.path, judge, confirm=check).events))
        if n % 1000 == 999:
            print(f"  C: {n + 1}/{len(items)} files ({time.perf_counter() - t0:.0f} s)", flush=True)
    streams = []
    for k in range(FOLDS):
        audio, n_words = stream_audio(k, items, seed)
        stream = DigitStream(judge, SAMPLE_RATE, confirm=check)
        block = int(BLOCK_SECONDS * SAMPLE_RATE)
        events = [e for i in range(0, len(audio), block) for e in stream.feed(audio[i : i + block])] + stream.flush()
        streams.append({"seconds": len(audio) / SAMPLE_RATE, "words": n_words, "events": confirm_events(events)})
    out = {"files": per_file, "streams": streams, "seconds": round(time.perf_counter() - t0, 1)}
    folder.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps(out))
    return out


def confirmed_digits(records: list[list], min_p: float, accept=None) -> str:
    """The digits printed at `min_p`; `accept(record)`: A's verdict recomputed (default: as judged)."""
    return "".join(str(r[0]) for r in records
                   if (r[1] if accept is None else accept(r)) and (r[2] is None or r[2] >= min_p))


def choose_min_p(items: list[Item], conf: dict, share: float) -> tuple[float, dict]:
    """The highest string_p threshold that keeps `share` of the digits A got right, on the
    calibration half of the real digits the string model never heard (speakers split by a hash);
    the other half tests it."""
    calib_items = [j for j, it in enumerate(items) if it.kind == "digit" and ctc_unheard(it) and confirm_half(it) == 0]
    kept = [max((r[2] for r in conf["files"][j] if r[1] and r[0] == int(items[j].label) and r[2] is not None), default=None)
            for j in calib_items]
    calib = [p for p in kept if p is not None]
    min_p = float(np.quantile(calib, 1 - share))
    return min_p, {"calibration_digits": len(calib), "share_kept": share,
                   "calibration_speakers": len({it.speaker for it in items if it.kind == "digit" and ctc_unheard(it) and confirm_half(it) == 0})}


ABLATIONS = {"the six tests": (), **{f"without {t}": (t,) for t in TESTS},
             "without distance, confidence": ("distance", "confidence"),
             "length, detector, phone": ("distance", "confidence", "hiss"),
             "length, phone": ("detector", "distance", "confidence", "hiss"),
             "length only": ("detector", "phone", "distance", "confidence", "hiss")}


def ablation(items: list[Item], seg: dict, conf: dict, min_p: float, cal) -> tuple[dict, int]:
    """With the string model's check at `min_p`: the figures when some of A's six tests are left out
    (each verdict recomputed from its recorded scores); and how many recomputed verdicts of the
    full set disagree with the recorded ones (should be 0)."""
    def accept(dropped):
        return lambda r: not [t for t in failed_tests(dict(zip(WORD_FIELDS, r)), cal) if t not in dropped]

    mismatch = sum(accept(())(r) != r[1] for recs in conf["files"] for r in recs)
    hours = sum(s["seconds"] for s in conf["streams"]) / 3600
    out = {}
    for name, dropped in ABLATIONS.items():
        ok = accept(dropped)
        prn = [confirmed_digits(r, min_p, ok) for r in conf["files"]]
        f = figures(items, prn, seg["item_seconds"])
        out[name] = {"words": f["words_printing_a_digit"], "digits": f["digits_accepted_and_right"],
                     "noise": f["noise_printing_a_digit"], "names_per_minute": f["name: all"]["digits_per_minute"],
                     "an4_per_minute": f["an4: no number word"]["digits_per_minute"],
                     "per_hour": round(sum(len(confirmed_digits(st["events"], min_p, ok)) for st in conf["streams"]) / hours, 1)}
    return out, mismatch


def confirm_result(items: list[Item], seg: dict, conf: dict, share: float) -> dict:
    min_p, how = choose_min_p(items, conf, share)
    ablation_table, mismatch = ablation(items, seg, conf, min_p, starter_judge().calibration)
    trained = ctc_trained_words()

    def printed(t):
        return [confirmed_digits(r, t) for r in conf["files"]]

    def subsets(out, prn):
        digits_unheard_test = [j for j, it in enumerate(items) if it.kind == "digit" and ctc_unheard(it) and confirm_half(it) == 1]
        words = {"unseen": [j for j, it in enumerate(items) if it.kind == "word" and str(it.path) not in trained],
                 "seen": [j for j, it in enumerate(items) if it.kind == "word" and str(it.path) in trained]}
        out["digits_unheard_by_both_test_half"] = {
            "clips": len(digits_unheard_test),
            "accepted_and_right": round(float(np.mean([prn[j] == items[j].label for j in digits_unheard_test])), 4)}
        out["words_by_string_model_training"] = {k: {"clips": len(js), "printing_a_digit": round(float(np.mean([prn[j] != "" for j in js])), 4)}
                                                 for k, js in words.items()}
        return out

    from audrey.live.confirm import MIN_STRING_P

    a_printed = printed(-1.0)
    c_printed = printed(min_p)
    shipped_printed = printed(MIN_STRING_P)
    same_as_a = sum(a == b for a, b in zip(a_printed, printed_digits(seg, len(items))))
    hours = sum(s["seconds"] for s in conf["streams"]) / 3600
    per_hour = lambda t: round(sum(len(confirmed_digits(s["events"], t)) for s in conf["streams"]) / hours, 1)  # noqa: E731
    tradeoff = [{"min_string_p": t, **{k: v for k, v in figures(items, printed(t), seg["item_seconds"]).items()
                                        if k in ("words_printing_a_digit", "digits_accepted_and_right", "noise_printing_a_digit")},
                 "per_hour": per_hour(t)} for t in (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5)]
    return {"min_string_p": round(min_p, 4), "chosen": how, "speaker_disjoint": "partly: see note",
            "note": "the classifier and its rejection are A's (heard every pool speaker); the string model trained on every FSDD "
                    "and Speech Commands digit and 800 Speech Commands words; digits_unheard_by_both_test_half are AN4 and "
                    "phone-number digits of speakers the string model never heard, the half not used to choose min_string_p",
            "figures": subsets(figures(items, c_printed, seg["item_seconds"]), c_printed),
            "A_figures_same_path": subsets(figures(items, a_printed, seg["item_seconds"]), a_printed),
            "files_same_as_A_segments": same_as_a, "stream": {"hours": round(hours, 3), "A_per_hour": per_hour(-1.0),
                                                              "C_per_hour": per_hour(min_p)},
            "shipped": {"min_string_p": MIN_STRING_P, "per_hour": per_hour(MIN_STRING_P),
                        "figures": subsets(figures(items, shipped_printed, seg["item_seconds"]), shipped_printed)},
            "tradeoff": tradeoff, "seconds": conf["seconds"], "ablation": ablation_table, "ablation_mismatches": mismatch}


# --- output ---------------------------------------------------------------------------------------

def pct(v) -> str:
    return f"{v:7.2%}" if v is not None else f"{'-':>7s}"


def print_tables(res: dict) -> None:
    cols = {"A": res["A"]["figures"], **{v: res[v]["figures"] for v in FIXES}}
    streams = {"A": res["B"]["stream"]["A_per_hour"], **{v: res[v]["stream"]["B_per_hour"] for v in FIXES}}
    print("\nA = shipped starter + starter.reject through transcribe's path. The starter trained on EVERY real pool "
          "speaker's digits:\n    its digit rows are NOT speaker-disjoint; the words, noise, names and AN4 sentences are "
          "material it never trained on.")
    print("B = per fold, the detector trained on real digits + real negatives (SC words, SC background) of 3 folds, its "
          "threshold\n    from the 4th fold's digits (97% pass), tested on the 5th with its fold model's digit and the "
          "length test: speaker-disjoint.")
    print("B+espeak = B's detector also trained on the shipped recipe's espeak-ng material (half its voices per word); "
          "thresholds still from real digits only.")
    head = " | ".join(f"{c:>9s}" for c in cols)
    print(f"\n{'':42s} | {head} | target")
    line = lambda label, vals, target="": print(f"{label:42s} | " + " | ".join(vals) + f" | {target}")  # noqa: E731
    for label, key, target in (("SC non-digit words printing a digit", "words_printing_a_digit", "<= 2%"),
                               ("SC background clips printing a digit", "noise_printing_a_digit", "<= 0.5%"),
                               ("real digits accepted and right", "digits_accepted_and_right", ">= 97%"),
                               ("real digits accepted wrong", "digits_accepted_wrong", ""),
                               ("real digits refused", "digits_refused", "")):
        line(label, [f"{pct(f[key]):>9s}" for f in cols.values()], target)
    for key, label in (("name: all", "spelled names: digits per minute"),
                       ("an4: no number word", "AN4, no number word: digits per minute"),
                       ("an4: with a number word", "AN4, a number word: digits per minute")):
        line(label, [f"{f[key]['digits_per_minute']:9.2f}" if f[key]["digits_per_minute"] is not None else f"{'-':>9s}"
                     for f in cols.values()], "<= 1/min" if key.startswith("name") else "")
        a = cols["A"][key]
        line("  utterances printing any digit", [f"{pct(f[key]['utterances_printing_a_digit']):>9s}" for f in cols.values()],
             f"({a['utterances']} utterances, {a['minutes']:.1f} min)")
    s = res["B"]["stream"]
    line("false accepts per hour (word stream)", [f"{v:9.1f}" for v in streams.values()],
         f"<= 5/hour  ({s['words']} words, {s['hours']:.2f} h, {s['segments']} segments)")
    for v in FIXES:
        c = res[v]["clips"]
        print(f"  {v} on whole clips (no segmenter): words {pct(c['words_printing_a_digit']).strip()}, noise "
              f"{pct(c['noise_printing_a_digit']).strip()}, digits accepted and right {pct(c['digits_accepted_and_right']).strip()}; "
              f"thresholds per fold {', '.join(f'{t:.3f}' for t in res[v]['thresholds'])}")
        print("    AUROC real digits vs SC words (segments): " + ", ".join(f"{k} {a:.3f}" for k, a in res[v]["auroc_digits_vs_words"].items()))
    print(f"  fold models alone, each on its unheard fold (the ceiling of B's digit row): accuracy {res['B']['fold_model_accuracy']:.2%}")
    print("\nreal digits accepted and right, per corpus:")
    for c in cols["A"]["digits_accepted_and_right_per_corpus"]:
        print(f"  {c:16s} " + "  ".join(f"{n} {pct(f['digits_accepted_and_right_per_corpus'][c]).strip()}" for n, f in cols.items()))
    print("\nnear misses (share printing any digit / printing that digit):")
    for k in cols["A"]["near_misses"]:
        na = cols["A"]["near_misses"][k]
        d = [x for x in na if x.startswith("printing_") and x != "printing_a_digit"][0]
        print(f"  {k:12s} ({na['clips']:3d} clips)  " + "   ".join(
            f"{n} {pct(f['near_misses'][k]['printing_a_digit']).strip()} / {pct(f['near_misses'][k][d]).strip()}" for n, f in cols.items()))
    for k, la in cols["A"]["letter_near_misses"].items():
        d = str(LETTER_NEAR_MISSES[k.split("/")[0]])
        print(f"  AN4 letter {k:8s} ({la['utterances']:3d} utterances with it / {la['utterances_without']:3d} without any of "
              f"{d}'s letters) printing a {d}:  " + "   ".join(
                  f"{n} {pct(f['letter_near_misses'][k]['printing_' + d]).strip()} / "
                  f"{pct(f['letter_near_misses'][k]['without_printing_' + d]).strip()}" for n, f in cols.items()))
    print("  digits printed on spelled names, by digit (the letters A/eight; B C D E G P T V/three): "
          + "  ".join(f"{n} {f['name: all']['digits_printed_by_digit']}" for n, f in cols.items()))
    print("\nper word (share printing a digit: " + " / ".join(cols) + "):")
    words = list(cols["A"]["per_word"])
    for i in range(0, len(words), 4):
        print("  " + "  ".join(f"{w:>8s} {cols['A']['per_word'][w]['clips']:3d} "
                               + "/".join(pct(f['per_word'][w]['printing_a_digit']).strip() for f in cols.values())
                               for w in words[i : i + 4]))
    r = res["A"]["reasons"]
    print(f"\nA: which test refused what, in segments. first = the test the verdict names (the Judge stops at the first "
          f"failing test);\nalone = refused by that test and no other (what that test buys on its own). Tests recomputed "
          f"from the verdicts' scores disagree with {res['A']['reason_mismatches']} verdicts.")
    print(f"{'test':>16s} | " + " | ".join(f"{k + ' first':>12s} {'alone':>6s}" for k in KINDS))
    print(f"{'(segments)':>16s} | " + " | ".join(f"{r[k]['segments']:>12d} {'':>6s}" for k in KINDS))
    print(f"{'(accepted)':>16s} | " + " | ".join(f"{r[k]['accepted']:>12d} {'':>6s}" for k in KINDS))
    for t in TESTS:
        print(f"{t:>16s} | " + " | ".join(f"{r[k]['first'].get(t, 0):>12d} {r[k]['alone'].get(t, 0):>6d}" for k in KINDS))
    print(f"{'':>16s}   (phone = test 3: the veto, or a weak match the detector does not back; of its first refusals, "
          "unbacked: " + ", ".join(f"{k} {r[k]['first_phone_unbacked']}" for k in KINDS) + ")")
    print_confirm(res["C"])
    c = res["A"]["check"]
    print(f"\ncheck: transcribe_file itself printed the same digits as the segments here on {c['same']} of {c['files']} files")


def rate(v) -> str:
    return f"{v:7.2f}" if v is not None else f"{'-':>7s}"


def print_confirm(c: dict) -> None:
    a, f = c["A_figures_same_path"], c["figures"]
    print(f"\nC = A with --confirm: a digit is printed only where the digit-string model, reading the whole stretch of "
          f"speech,\n    gives it at least min_string_p = {c['min_string_p']:.3f} inside the word (chosen to keep "
          f"{c['chosen']['share_kept']:.0%} of A's right digits\n    of {c['chosen']['calibration_speakers']} AN4 and phone-number "
          f"speakers the string model never heard; the shipped threshold is audrey.live.confirm.MIN_STRING_P).\n    {c['note']}")
    shipped = c["shipped"]["figures"]
    print(f"{'':42s} | {'A':>9s} | {'C':>9s} | C at the shipped {c['shipped']['min_string_p']:.3f}")
    rows = [("SC non-digit words printing a digit", lambda x: pct(x["words_printing_a_digit"])),
            ("  words the string model never heard", lambda x: pct(x["words_by_string_model_training"]["unseen"]["printing_a_digit"])),
            ("  the 800 words it trained on", lambda x: pct(x["words_by_string_model_training"]["seen"]["printing_a_digit"])),
            ("SC background clips printing a digit", lambda x: pct(x["noise_printing_a_digit"])),
            ("real digits accepted and right", lambda x: pct(x["digits_accepted_and_right"])),
            ("  of speakers the string model never heard", lambda x: pct(x["digits_unheard_by_both_test_half"]["accepted_and_right"])),
            ("spelled names: digits per minute", lambda x: rate(x['name: all']['digits_per_minute'])),
            ("AN4, no number word: digits per minute", lambda x: rate(x['an4: no number word']['digits_per_minute'])),
            ("AN4, a number word: digits per minute", lambda x: rate(x['an4: with a number word']['digits_per_minute']))]
    for label, fn in rows:
        print(f"{label:42s} | {fn(a):>9s} | {fn(f):>9s} | {fn(shipped):>9s}")
    s = c["stream"]
    print(f"{'false accepts per hour (word stream)':42s} | {s['A_per_hour']:9.1f} | {s['C_per_hour']:9.1f} | "
          f"{c['shipped']['per_hour']:9.1f}")
    print("  near misses (printing any digit): " + "  ".join(
        f"{k} {pct(a['near_misses'][k]['printing_a_digit']).strip()} -> {pct(f['near_misses'][k]['printing_a_digit']).strip()}"
        for k in a["near_misses"]))
    print("  AN4 letters (utterances with it printing its digit): " + "  ".join(
        f"{k} {pct(v['printing_' + str(LETTER_NEAR_MISSES[k[0]])]).strip()} -> "
        f"{pct(f['letter_near_misses'][k]['printing_' + str(LETTER_NEAR_MISSES[k[0]])]).strip()}"
        for k, v in a["letter_near_misses"].items()))
    print(f"  A through --confirm's path printed what A's segments print for {c['files_same_as_A_segments']} files")
    print(f"  which of A's six tests still pull their weight with --confirm (each verdict recomputed from its scores; "
          f"{c['ablation_mismatches']} disagree with the recorded ones):")
    print(f"    {'':34s} {'words':>7s} {'digits':>7s} {'noise':>6s} {'names/min':>9s} {'AN4/min':>8s} {'per hour':>8s}")
    for name, r in c["ablation"].items():
        print(f"    {name:34s} {pct(r['words'])} {pct(r['digits'])} {pct(r['noise']):>6s} {rate(r['names_per_minute']):>9s} "
              f"{rate(r['an4_per_minute']):>8s} {r['per_hour']:8.1f}")
    print("  trade-off (min_string_p: words / digits / per hour): " + "; ".join(
        f"{t['min_string_p']:g}: {t['words_printing_a_digit']:.1%} / {t['digits_accepted_and_right']:.1%} / {t['per_hour']:.0f}"
        for t in c["tradeoff"]))


def plot(res: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = {"A: shipped stack (digits heard)": res["A"]["figures"], **{f"{v} (speaker-disjoint)": res[v]["figures"] for v in FIXES},
            "C: A + --confirm (the default)": res["C"]["figures"]}
    per_hour = [res["B"]["stream"]["A_per_hour"]] + [res[v]["stream"]["B_per_hour"] for v in FIXES] + [res["C"]["stream"]["C_per_hour"]]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.0))
    width = 0.8 / len(cols)
    labels = ["words\nprinted", "noise\nprinted", "tree/three", "on/one", "no/nine", "digits\naccepted+right"]
    x = np.arange(len(labels))
    for i, (name, f) in enumerate(cols.items()):
        vals = [f["words_printing_a_digit"], f["noise_printing_a_digit"]] + \
            [f["near_misses"][k]["printing_a_digit"] for k in f["near_misses"]] + [f["digits_accepted_and_right"]]
        axes[0].bar(x + i * width, [100 * (v or 0) for v in vals], width, label=name)
    axes[0].set_xticks(x + 0.4 - width / 2, labels, fontsize=8)
    axes[0].set_ylabel("% of clips")
    axes[0].legend(fontsize=7)
    axes[0].set_title("SC words / noise printing a digit; real digits accepted and right", fontsize=9)
    rates = ["name: all", "an4: no number word", "an4: with a number word"]
    x = np.arange(len(rates) + 1)
    for i, (name, f) in enumerate(cols.items()):
        axes[1].bar(x + i * width, [f[k]["digits_per_minute"] or 0 for k in rates] + [per_hour[i] / 60], width, label=name)
    axes[1].axhline(1.0, color="grey", lw=0.8, ls="--")
    axes[1].set_xticks(x + 0.4 - width / 2, ["spelled\nnames", "AN4 no\nnumber word", "AN4 with\nnumber word", "SC word\nstream"], fontsize=8)
    axes[1].set_ylabel("digits printed per minute")
    axes[1].legend(fontsize=7)
    axes[1].set_title("digits printed per minute of non-digit speech (target for names: 1/min)", fontsize=9)
    for v in FIXES:
        t = res[v]["tradeoff"]
        curve = axes[2].plot([100 * r["words"] for r in t], [100 * r["digits"] for r in t], "o-", ms=3,
                             label=f"{v}, one threshold for all folds")[0]
        f = res[v]["figures"]
        axes[2].plot([100 * f["words_printing_a_digit"]], [100 * f["digits_accepted_and_right"]], "s", ms=8,
                     color=curve.get_color(), label=f"{v}, thresholds chosen per fold")
    a = res["A"]["figures"]
    axes[2].plot([100 * a["words_printing_a_digit"]], [100 * a["digits_accepted_and_right"]], "^", ms=8, label="A (digits heard)")
    t = res["C"]["tradeoff"]
    curve = axes[2].plot([100 * r["words_printing_a_digit"] for r in t], [100 * r["digits_accepted_and_right"] for r in t], "o-",
                         ms=3, label="C: A + --confirm, min_string_p 0-0.5")[0]
    f = res["C"]["figures"]
    axes[2].plot([100 * f["words_printing_a_digit"]], [100 * f["digits_accepted_and_right"]], "s", ms=8,
                 color=curve.get_color(), label=f"C at min_string_p {res['C']['min_string_p']:.3f}")
    axes[2].axvline(2, color="grey", lw=0.8, ls="--")
    axes[2].axhline(97, color="grey", lw=0.8, ls="--")
    axes[2].set_xlabel("SC words printing a digit (%)")
    axes[2].set_ylabel("real digits accepted and right (%)")
    axes[2].legend(fontsize=7)
    axes[2].set_title("trade-off (targets dashed)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aligned", type=Path, default=REPO / "data" / "aligned", help="`audrey data align --out` folder")
    ap.add_argument("--epochs", type=int, default=STARTER_RECIPE["epochs"], help="the fold models' recipe (real_pool.py --epochs)")
    ap.add_argument("--synth", type=int, default=STARTER_RECIPE["synth"], help="the fold models' recipe (real_pool.py --synth)")
    ap.add_argument("--seed", type=int, default=STARTER_RECIPE["seed"])
    ap.add_argument("--limit", type=int, help="a smoke run: at most this many files of each kind per fold "
                                              "(results are then not written unless --out is given)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)

    model_folder = trained_folds(STARTER_RECIPE["config"], "pool", args.epochs, args.synth, args.seed, [f"fold{k}" for k in range(FOLDS)])
    items = material(args.aligned)
    if args.limit:
        rng = random.Random(args.seed)
        groups = defaultdict(list)
        for it in items:
            groups[(it.kind, it.fold)].append(it)
        items = [it for g in groups.values() for it in rng.sample(g, min(args.limit, len(g)))]
    print("material: " + ", ".join(f"{k} {sum(it.kind == k for it in items)}" for k in KINDS) + "; per fold: "
          + ", ".join(str(sum(it.fold == k for it in items)) for k in range(FOLDS)), flush=True)
    spec = [VERSION, file_digest(STARTER), file_digest(STARTER_REJECT), model_folder.name, EPOCHS, TARGET,
            GAP_SECONDS, args.seed, [str(it.path) for it in items]]
    folder = cache_root() / "not_a_digit" / hashlib.sha1(json.dumps(spec).encode()).hexdigest()[:10]
    judge = starter_judge()
    seg = segment_all(items, judge, folder)
    check = check_against_transcribe(items, seg, judge, CHECK_FILES, args.seed)
    reasons, mismatch = reason_table(items, seg, judge.calibration)

    res = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "material": {k: sum(it.kind == k for it in items) for k in KINDS}, "fold_models": model_folder.name,
           "A": {"model": str(STARTER.relative_to(REPO)), "calibration": str(STARTER_REJECT.relative_to(REPO)),
                 "speaker_disjoint": False,
                 "note": "the starter trained on every real pool speaker's digits (FSDD, Speech Commands digits, "
                         "AN4 and alphanumeric aligned digits): its digit figure is on heard speakers; the words, "
                         "noise, names and AN4 sentences are material it never trained on",
                 "figures": figures(items, printed_digits(seg, len(items)), seg["item_seconds"]), "reasons": reasons,
                 "reason_mismatches": mismatch, "check": check}}
    for name, espeak in FIXES.items():
        folds = [run_fold(k, items, seg, folder, model_folder, args.seed, espeak) for k in range(FOLDS)]
        res[name] = fix_result(items, seg, folds, METHODS[name])
    res["C"] = confirm_result(items, seg, run_confirm(items, folder, args.seed), CONFIRM_SHARE)
    print_tables(res)
    out = args.out or (None if args.limit else RESULTS / "not_a_digit.json")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
        plot(res, out.with_suffix(".png"))
        print(f"\nwrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
