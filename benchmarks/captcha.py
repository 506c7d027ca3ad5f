"""Audio CAPTCHAs: 4-8 digits said by a voice no digit-string model trained on, distorted, and the
share each recognizer solves exactly.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/captcha.py [--clips 300] [--seed 0]
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/captcha.py --clips 12   # a smoke run

Each clip (its recipe drawn from a generator seeded by (--seed, clip index), so clip i is the same
whatever --clips is) is one voice saying 4-8 digits:
- voice, two families: "real", one held-out speaker's isolated digits that `audrey data align` cut
  from AN4 and the phone numbers (--aligned), the speakers benchmarks/strings_ctc.py holds out of the
  digit-string model's training (is_test_speaker: AN4 25%, phone numbers 50% by a hash of the name;
  39 speakers, 641 digits). A speaker did not say every digit, so each digit of the string is drawn
  from the digits that speaker has. "espeak", an espeak-ng voice of scenes.HELD_OUT_VOICES (no model
  trains on them), each digit rendered alone at 150 words a minute. Every third clip is espeak.
- gap: one gap for all the digits of a clip, from -0.05 s (the next digit starts on the tail of the
  last) to 0.8 s (audrey.data.strings.assemble, which also sets each digit's level within 6 dB);
- speed: 0.8-1.25, by resampling each digit (tempo and pitch change together, as a tape played
  faster), before the gaps are laid;
- background: clean (1 in 5), Speech Commands `_background_` noise (the test quarter strings_ctc.py
  keeps out of training: every fourth clip), or babble: 3-6 talkers, each a run of Speech Commands
  non-digit words end to end, summed into a bed as long as the clip; noise and babble at an SNR
  drawn from 0-20 dB relative to the digits' speech level (audrey.data.strings.mix_background).
Every draw is recorded per clip in the results, so the figures break down by each.

Recognizers, on the same clips in the same run:
- ctc: `audrey transcribe --engine ctc` (audrey.live.ctc_transcribe.transcribe_ctc on the clip as a
  WAV file, the shipped models/digits.ctc.safetensors), and `ctc digits=N` (`--digits N`: the
  CAPTCHA's length is known);
- segments+confirm: `audrey transcribe` as it runs by default (the starter's Judge through
  DigitStream with the digit-string model's second opinion, audrey.live.confirm.StringCheck), and
  segments without it (`--no-confirm`);
- pocketsphinx: PocketSphinx with the digit-loop grammar (benchmarks/peers.py).
The starter model under the segments engine trained on all the aligned digits, these speakers' too
(models/README.md), so for it only the espeak family and the distortions are unseen; the
digit-string model never heard either family.

Figures: the share of clips solved exactly (every digit right, nothing more) and the digit error rate
(edit distance / digits), overall and by SNR, background, gap, speed, length and voice family.
Printed side by side, written to benchmarks/results/captcha.json, plotted in captcha.png. The
recognizers' outputs are cached per clip under $AUDREY_CACHE/captcha/, keyed by the clip's recipe
and the model files, so a rerun prints at once.

What breaks it (300 clips, seed 0; exact-solved share): any background at all. ctc solves 62% of
clean clips (80% of the real speakers', 26% of espeak's), 25% at 15-20 dB, 9% at 0-5 dB; babble (9%)
breaks it harder than noise (20%). Its failures are mostly dropped digits (half or more of the noisy
clips come out short): knowing the length (`ctc digits=N`) recovers many (36% overall; in noise 34%
vs 20%), fewer in babble (17% vs 9%). The digit-string model also drops digits of espeak-ng voices
in clean clips, the whole clip decoded at once as well, so the chunking is not the cause. Slowed
speech (0.8-0.9: 14%) hurts it more than short gaps do (overlap 23%, no gap 35%). The segments
engine needs a pause: 0% with gaps under 0.1 s and in any babble, 3-8% in noise; it drops digits
rather than misreading them, and --confirm costs it exact strings here (15% -> 10%, espeak clean
70% -> 39%). PocketSphinx's digit loop cannot say "not a digit": in noise and babble it prints
digits for the background (digit error rates over 100%); 9% solved overall, 33% clean. The run takes
about 10 minutes on one core (PocketSphinx 2 s a clip); a rerun prints from the cache in seconds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
SHARED = REPO.parent / "shared" / "data"
RECIPE_VERSION = 1  # bump when the way a recipe becomes audio changes: the cache key includes it
ESPEAK_SPEED = 150  # words a minute
LENGTHS = (4, 8)
GAP = (-0.05, 0.8)
SPEED = (0.8, 1.25)
SNR = (0.0, 20.0)
BACKGROUNDS = ("clean", "noise", "babble")
BACKGROUND_P = (0.2, 0.4, 0.4)
TALKERS = (3, 6)
WORD_POOL = 600  # Speech Commands non-digit words the babble draws from
METHODS = ("ctc", "ctc digits=N", "segments+confirm", "segments", "pocketsphinx")
MARKERS = "osD^v"


@dataclass(frozen=True)
class Recipe:
    """Everything drawn for one clip; with the material it fixes the clip's audio."""

    index: int
    family: str  # "real" | "espeak"
    voice: str  # the speaker id, or the espeak voice's name
    digits: str
    takes: tuple[str, ...]  # per digit: the aligned clip's file name, or the espeak voice index
    gap: float  # seconds between digits (negative: overlap)
    speed: float
    background: str  # one of BACKGROUNDS
    snr: float | None  # dB, None when clean
    talkers: int | None  # babble only


# --- the generator --------------------------------------------------------------------------------


@dataclass
class Material:
    real: dict[str, list]  # held-out speaker -> their aligned clips (audrey.data.corpora.Clip)
    voices: list  # espeak synth.Voice of HELD_OUT_VOICES
    voice_ids: list[int]
    noises: list[np.ndarray]  # the test quarter of Speech Commands' background noise
    words: list  # Speech Commands non-digit WordClips for babble
    espeak_root: Path


def read_material(args) -> Material:
    from strings_ctc import is_test_speaker, noises

    from audrey.data.corpora import read_corpus, read_non_digits
    from audrey.data.features import cache_root
    from audrey.data.scenes import HELD_OUT_VOICES, voice_list

    real: dict[str, list] = defaultdict(list)
    for clip in read_corpus(args.aligned):
        if is_test_speaker(clip.speaker, args.an4_share, args.alnum_share):
            real[clip.speaker].append(clip)
    words = [w for w in read_non_digits(args.speech_commands) if not w.is_noise]
    pick = np.random.default_rng(12345).permutation(len(words))[:WORD_POOL]
    return Material(real=dict(sorted(real.items())), voices=voice_list(HELD_OUT_VOICES), voice_ids=list(HELD_OUT_VOICES),
                    noises=noises(args)[1], words=[words[i] for i in sorted(pick)],
                    espeak_root=cache_root() / "captcha" / "espeak")


def draw_recipe(index: int, seed: int, material: Material, espeak_every: int = 3) -> Recipe:
    """Clip `index`'s recipe: a generator of its own, so it does not depend on how many clips run."""
    rng = np.random.default_rng([seed, index])
    n = int(rng.integers(LENGTHS[0], LENGTHS[1] + 1))
    if index % espeak_every == espeak_every - 1:
        v = int(rng.integers(len(material.voices)))
        digits = "".join(str(d) for d in rng.integers(0, 10, n))
        family, voice, takes = "espeak", material.voices[v].name, (str(material.voice_ids[v]),) * n
    else:
        speakers = list(material.real)
        voice = speakers[int(rng.integers(len(speakers)))]
        by_digit = defaultdict(list)
        for clip in material.real[voice]:
            by_digit[clip.digit].append(clip.path.name)
        have = sorted(by_digit)
        chosen = [have[int(rng.integers(len(have)))] for _ in range(n)]
        digits = "".join(str(d) for d in chosen)
        family, takes = "real", tuple(sorted(by_digit[d])[int(rng.integers(len(by_digit[d])))] for d in chosen)
    background = BACKGROUNDS[int(rng.choice(len(BACKGROUNDS), p=BACKGROUND_P))]
    snr = None if background == "clean" else round(float(rng.uniform(*SNR)), 2)
    talkers = int(rng.integers(TALKERS[0], TALKERS[1] + 1)) if background == "babble" else None
    return Recipe(index, family, voice, digits, takes, round(float(rng.uniform(*GAP)), 3),
                  round(float(rng.uniform(*SPEED)), 3), background, snr, talkers)


def sped(wave: np.ndarray, speed: float) -> np.ndarray:
    """`wave` played `speed` times as fast (tempo and pitch together): resampled as if recorded at
    RATE * speed."""
    from audrey.audio import waveform
    from audrey.data.strings import RATE

    return waveform.resample(wave, int(round(RATE * speed)), RATE)


def digit_pieces(recipe: Recipe, material: Material) -> list:
    from audrey.data.scenes import render_clips
    from audrey.data.strings import RATE, Piece, load_piece
    from audrey.models.ctc import digit_token

    if recipe.family == "real":
        paths = {c.path.name: c.path for c in material.real[recipe.voice]}
        pieces = [load_piece(paths[t], digit_token(int(d)), recipe.voice) for d, t in zip(recipe.digits, recipe.takes)]
    else:
        from audrey import DIGIT_WORDS

        voice = material.voices[material.voice_ids.index(int(recipe.takes[0]))]
        clips = render_clips([(DIGIT_WORDS[int(d)], voice, ESPEAK_SPEED) for d in recipe.digits], material.espeak_root, RATE)
        pieces = [Piece((c / np.abs(c).max() * 0.5).astype(np.float32), digit_token(int(d)), recipe.voice)
                  for c, d in zip(clips, recipe.digits)]
    return [Piece(sped(p.wave, recipe.speed), p.token, p.speaker) for p in pieces]


@lru_cache(maxsize=WORD_POOL)
def _word(path: Path) -> np.ndarray:
    from audrey.data.strings import load_piece
    from audrey.models.ctc import OTHER

    return load_piece(path, OTHER, "").wave


def babble(n: int, talkers: int, material: Material, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of `talkers` overlapping runs of non-digit words (each run starts mid-word)."""
    from audrey.data.strings import RATE

    bed = np.zeros(n, np.float32)
    for _ in range(talkers):
        track, pos = np.zeros(n + 2 * RATE, np.float32), 0
        while pos < len(track):
            w = _word(material.words[int(rng.integers(len(material.words)))].path)
            w = w[: len(track) - pos]
            track[pos : pos + len(w)] += w
            pos += len(w) + int(rng.uniform(0.0, 0.25) * RATE)
        start = int(rng.integers(0, RATE))
        bed += track[start : start + n] * 10 ** (rng.uniform(-6, 0) / 20)
    return bed


def render(recipe: Recipe, material: Material, seed: int) -> np.ndarray:
    """The clip of a recipe at RATE (levels and placements drawn from the clip's own generator)."""
    from audrey.data.strings import assemble, mix_background

    rng = np.random.default_rng([seed, recipe.index, 1])
    wave, _ = assemble(digit_pieces(recipe, material), rng, gap=(recipe.gap, recipe.gap))
    if recipe.background == "noise":
        wave = mix_background(wave, material.noises, recipe.snr, rng)
    elif recipe.background == "babble":
        wave = mix_background(wave, [babble(len(wave), recipe.talkers, material, rng)], recipe.snr, rng)
    peak = float(np.abs(wave).max())
    return (wave * (0.9 / peak) if peak > 0.9 else wave).astype(np.float32)


# --- recognizers ----------------------------------------------------------------------------------


def recognizers(args, tmp: Path) -> dict:
    """method -> f(name, wave, truth) -> digits printed."""
    from peers import DIGIT_LOOP, PocketSphinxDigits
    from strings_ctc import Classic, CTCTranscribe

    from audrey.data.strings import RATE
    from audrey.live.confirm import StringCheck
    from audrey.models.ctc_file import load_ctc

    ctc = CTCTranscribe(load_ctc(args.ctc_model), tmp)
    confirmed = Classic(args.model, tmp, confirm=StringCheck.from_file(args.ctc_model))
    plain = Classic(args.model, tmp)
    sphinx = PocketSphinxDigits(DIGIT_LOOP)
    return {"ctc": lambda name, w, truth: ctc(name, w),
            "ctc digits=N": lambda name, w, truth: ctc(name, w, digits=len(truth)),
            "segments+confirm": lambda name, w, truth: confirmed(name, w),
            "segments": lambda name, w, truth: plain(name, w),
            "pocketsphinx": lambda name, w, truth: sphinx.recognize(w, RATE)}


def models_key(args) -> str:
    from audrey.data.features import file_digest

    files = [args.ctc_model, args.model, args.model.with_suffix(".reject.safetensors")]
    return hashlib.sha1("|".join(file_digest(f) if f.exists() else str(f) for f in files).encode()).hexdigest()[:12]


def clip_key(recipe: Recipe, args, models: str) -> str:
    from audrey.live.confirm import MIN_STRING_P

    fields = {"recipe": asdict(recipe), "seed": args.seed, "version": RECIPE_VERSION, "models": models,
              "methods": METHODS, "min_string_p": MIN_STRING_P}
    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


def run_clips(recipes: list[Recipe], material: Material, args) -> list[dict]:
    """Per clip: its recipe, and each method's output and seconds (cached per clip)."""
    from audrey.atomic import atomic_write_bytes
    from audrey.data.features import cache_root

    folder = cache_root() / "captcha" / "outputs"
    folder.mkdir(parents=True, exist_ok=True)
    models = models_key(args)
    rows, todo = [], 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        recs = None
        for r in recipes:
            path = folder / f"{clip_key(r, args, models)}.json"
            if path.exists():
                rows.append(json.loads(path.read_text()))
                continue
            recs = recs or recognizers(args, Path(tmp))
            wave = render(r, material, args.seed)
            row = {"recipe": asdict(r), "seconds": round(len(wave) / 16000, 2), "hyp": {}, "time": {}}
            for method, rec in recs.items():
                t = time.perf_counter()
                row["hyp"][method] = rec(f"clip{r.index}", wave, r.digits)
                row["time"][method] = round(time.perf_counter() - t, 3)
            atomic_write_bytes(path, json.dumps(row).encode(), durable=False)
            rows.append(row)
            todo += 1
            if todo % 10 == 0:
                print(f"  {len(rows)}/{len(recipes)} clips ({time.perf_counter() - t0:.0f} s)", flush=True)
    print(f"{len(recipes)} clips, {todo} recognized now, {len(recipes) - todo} from the cache "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return rows


# --- figures --------------------------------------------------------------------------------------


def snr_bin(r: dict) -> str:
    if r["snr"] is None:
        return "clean"
    lo = min(int(r["snr"] // 5) * 5, 15)
    return f"{lo}-{lo + 5} dB"


def gap_bin(r: dict) -> str:
    g = r["gap"]
    return "overlap (<0 s)" if g < 0 else "0-0.1 s" if g < 0.1 else "0.1-0.3 s" if g < 0.3 else "0.3-0.8 s"


def speed_bin(r: dict) -> str:
    s = r["speed"]
    return "0.8-0.9" if s < 0.9 else "0.9-1.0" if s < 1.0 else "1.0-1.1" if s < 1.1 else "1.1-1.25"


FACTORS = {
    "snr": (snr_bin, ["0-5 dB", "5-10 dB", "10-15 dB", "15-20 dB", "clean"]),
    "background": (lambda r: r["background"], list(BACKGROUNDS)),
    "gap": (gap_bin, ["overlap (<0 s)", "0-0.1 s", "0.1-0.3 s", "0.3-0.8 s"]),
    "speed": (speed_bin, ["0.8-0.9", "0.9-1.0", "1.0-1.1", "1.1-1.25"]),
    "length": (lambda r: str(len(r["digits"])), [str(n) for n in range(LENGTHS[0], LENGTHS[1] + 1)]),
    "family": (lambda r: r["family"], ["real", "espeak"]),
    "family x background": (lambda r: f"{r['family']}, {r['background']}",
                            [f"{f}, {b}" for f in ("real", "espeak") for b in BACKGROUNDS]),
}


def figures(rows: list[dict]) -> dict:
    from strings_ctc import score

    def by_method(subset):
        return {m: score([x["recipe"]["digits"] for x in subset], [x["hyp"][m] for x in subset]) for m in METHODS}

    out = {"all": by_method(rows)}
    for name, (key, bins) in FACTORS.items():
        out[name] = {b: by_method([x for x in rows if key(x["recipe"]) == b]) for b in bins
                     if any(key(x["recipe"]) == b for x in rows)}
    return out


def print_table(fig: dict, rows: list[dict]) -> None:
    print("\nexact-solved share / digit error rate")
    print("| group | n | " + " | ".join(METHODS) + " |")
    print("|---|---|" + "---|" * len(METHODS))

    def line(label, by):
        n = next(iter(by.values()))["clips"]
        print(f"| {label} | {n} | " + " | ".join(f"{by[m]['exact']:.0%} / {by[m]['der']:.0%}" for m in METHODS) + " |")

    line("all", fig["all"])
    for name in FACTORS:
        for b, by in fig[name].items():
            line(f"{name}: {b}", by)
    secs = {m: np.mean([x["time"][m] for x in rows]) for m in METHODS}
    print("| seconds per clip | | " + " | ".join(f"{secs[m]:.2f}" for m in METHODS) + " |")


def breakers(fig: dict) -> dict:
    """Per method and distortion: its worst bin, that bin's exact-solved share, and the spread (best
    bin's share minus the worst's): the larger the spread, the more that distortion breaks it."""
    out = {}
    for m in METHODS:
        out[m] = {}
        for factor in ("snr", "background", "gap", "speed", "length", "family"):
            shares = {b: by[m]["exact"] for b, by in fig[factor].items()}
            worst = min(shares, key=shares.get)
            out[m][factor] = {"worst": worst, "exact": shares[worst],
                              "spread": round(max(shares.values()) - shares[worst], 4)}
    return out


def print_breakers(br: dict) -> None:
    factors = list(next(iter(br.values())))
    print("\nwhat breaks it: per distortion, the worst bin (its exact-solved share; best bin minus worst, points)")
    print("| method | " + " | ".join(factors) + " |")
    print("|---|" + "---|" * len(factors))
    for m, by in br.items():
        print(f"| {m} | " + " | ".join(f"{by[f]['worst']} ({by[f]['exact']:.0%}; {100 * by[f]['spread']:.0f})" for f in factors) + " |")


def plot(fig: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("snr", "background SNR (noise or babble)"), ("gap", "gap between digits"), ("speed", "speed factor")]
    f, axes = plt.subplots(1, len(panels), figsize=(16, 4.8), sharey=True)
    for ax, (factor, title) in zip(axes, panels):
        bins = list(fig[factor])
        for i, m in enumerate(METHODS):  # offset a little so lines that agree stay visible
            ax.plot(np.arange(len(bins)) + 0.04 * (i - 2), [100 * fig[factor][b][m]["exact"] for b in bins],
                    MARKERS[i], ls="-" if i % 2 == 0 else "--", label=m)
        ax.set_xticks(range(len(bins)), [f"{b}\n(n={fig[factor][b][METHODS[0]]['clips']})" for b in bins], fontsize=8)
        ax.set_title(f"exact-solved share vs {title}", fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("CAPTCHAs solved exactly (%)")
    axes[0].legend(fontsize=8)
    n = fig["all"][METHODS[0]]["clips"]
    f.suptitle(f"Audio CAPTCHAs: 4-8 digits, held-out speakers and espeak-ng voices ({n} clips, benchmarks/captcha.py)", fontsize=11)
    f.tight_layout()
    f.savefig(path, dpi=110)
    plt.close(f)


def main() -> None:
    from strings_ctc import ALNUM_SHARE, AN4_SHARE

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--aligned", type=Path, default=REPO / "data" / "aligned", help="`audrey data align --out` folder")
    ap.add_argument("--speech-commands", type=Path, default=SHARED / "speech-commands")
    ap.add_argument("--model", type=Path, default=REPO / "models" / "starter.safetensors", help="the segments engine's model")
    ap.add_argument("--ctc-model", type=Path, default=REPO / "models" / "digits.ctc.safetensors")
    ap.add_argument("--an4-share", type=float, default=AN4_SHARE, help="AN4 speakers held out (as strings_ctc.py)")
    ap.add_argument("--alnum-share", type=float, default=ALNUM_SHARE, help="phone-number speakers held out (as strings_ctc.py)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "captcha.json")
    args = ap.parse_args()
    torch.set_num_threads(1)

    material = read_material(args)
    print(f"{len(material.real)} held-out speakers ({sum(map(len, material.real.values()))} digits), "
          f"{len(material.voices)} espeak-ng voices, {len(material.noises)} noise clips, {len(material.words)} babble words",
          flush=True)
    recipes = [draw_recipe(i, args.seed, material) for i in range(args.clips)]
    rows = run_clips(recipes, material, args)
    fig = figures(rows)
    print_table(fig, rows)
    br = breakers(fig)
    print_breakers(br)
    out = {"clips": len(rows), "seed": args.seed, "methods": list(METHODS),
           "held_out": {"speakers": len(material.real), "espeak_voices": f"{material.voice_ids[0]}-{material.voice_ids[-1]}"},
           "results": fig, "breakers": br, "clips_detail": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    png = args.out.with_suffix(".png")
    plot(fig, png)
    print(f"written to {args.out} and {png}")


if __name__ == "__main__":
    main()
