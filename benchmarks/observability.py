"""Observability figures for a model (issue 7): per-layer probes with controls, the deletion test of
its attributions, the OOD score's AUROC, and the live logit lens.

    python benchmarks/observability.py                 # the bundled starter model on FSDD
    python benchmarks/observability.py --model m.safetensors --deletion-clips 300

1. Probes on all of FSDD (digit, speaker) at every hook point, with the Hewitt & Liang control task
   and a randomly initialised twin; then FSDD-vs-synthetic `source` on 12 of the model's synthetic
   training voices and as many FSDD clips.
2. Deletion test over >= 200 FSDD clips (stratified by speaker and digit): integrated gradients and
   occlusion; top-attributed cells vs random cells, random audible cells and the loudest cells.
3. OOD: statistics fitted on the model's training material minus FSDD takes 0-4; in-distribution
   test = FSDD takes 0-4 and digits from espeak-ng voices nobody trains on; out-of-distribution =
   noise bursts and non-digit words said by those same unseen voices. AUROC of the Mahalanobis
   score, and of 1 - max softmax as the baseline it has to beat.
4. Logit lens, leave one speaker out: digit probes fitted on five FSDD speakers read the sixth;
   from which layer on the probes agree with the model's answer.

Writes benchmarks/results/observability.json, observability-probes.png and an example heatmap PNG
and audible WAV.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from audrey import DIGIT_WORDS
from audrey.audio import waveform
from audrey.data import synth
from audrey.data.corpora import read_corpus
from audrey.observe.explain import attribute, deletion_test, explain_file
from audrey.data.features import cache_root, clip_features
from audrey.audio.frontend import features
from audrey.models.modelfile import load_model
from audrey.observe.ood import embeddings, fit_ood
from audrey.observe.separation import auroc
from audrey.observe.activations import capture, short_layer
from audrey.observe.observer import Observer
from audrey.observe.probe_file import fit_probe_set
from audrey.observe.probe_report import plot_report, print_report
from audrey.observe.probing import run_probes
from audrey.training.runs import synthetic_clips

REPO = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("AUDREY_FSDD", REPO.parent / "shared" / "data" / "fsdd"))
RESULTS = REPO / "benchmarks" / "results"
# Voices and words no training or calibration uses (the rejection calibration keeps voices 240-279
# of a 280-voice pool for tests and benchmarks; training uses the first N).
VOICE_POOL = 280
HELD_OUT_VOICES = range(240, 280)
WORDS = ("hello", "yes", "heaven", "often", "no", "okay", "stop", "weather", "computer", "sure", "nothing", "hi",
         "apple", "window", "table", "water", "music", "garden", "purple", "yellow")


def log(msg: str) -> None:
    print(msg, flush=True)


# --- material ------------------------------------------------------------------------------------


def espeak_waves(texts_voices: list[tuple[str, synth.Voice]], rate: int, speed: int = 160) -> list[np.ndarray]:
    root = cache_root() / "observability"
    waves = []
    for text, voice in texts_voices:
        out = root / voice.name / f"{text.replace(' ', '-')}_{speed}.wav"
        if not out.exists():
            synth.say(text, voice, speed, out)
        waves.append(waveform.load_audio(out, rate))
    return waves


def noise_bursts(n: int, rate: int, seed: int = 0) -> list[np.ndarray]:
    """White, pink and brown noise, hum, chirps, clicks and band-passed hiss, 0.2-0.8 s, faded."""
    rng = np.random.default_rng(seed)
    kinds = ("white", "pink", "brown", "hum", "chirp", "clicks", "band")
    out = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        m = int(rng.uniform(0.2, 0.8) * rate)
        t = np.arange(m) / rate
        if kind in ("white", "pink", "brown", "band"):
            spec = np.fft.rfft(rng.normal(size=m))
            f = np.fft.rfftfreq(m, 1 / rate)
            f[0] = f[1]
            if kind == "pink":
                spec /= np.sqrt(f)
            elif kind == "brown":
                spec /= f
            elif kind == "band":
                lo = rng.uniform(200, 2500)
                spec *= (f > lo) & (f < lo * rng.uniform(1.2, 1.8))
            x = np.fft.irfft(spec, m)
        elif kind == "hum":
            base = rng.choice([50.0, 60.0, 120.0])
            x = sum(np.sin(2 * np.pi * base * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
        elif kind == "chirp":
            f0, f1 = rng.uniform(200, 3000, 2)
            x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
        else:
            x = np.zeros(m)
            x[rng.integers(0, m, int(rng.integers(3, 12)))] = 1.0
            x = np.convolve(x, np.exp(-np.arange(80) / 10), "same")
        fade = np.minimum(1, np.minimum(t, t[-1] - t) / 0.02)
        x = x * fade
        out.append((0.5 * x / (np.abs(x).max() + 1e-9)).astype(np.float32))
    return out


def stratified(clips, n: int, seed: int = 0):
    """n clips spread evenly over (speaker, digit)."""
    rng = random.Random(seed)
    groups: dict = {}
    for c in clips:
        groups.setdefault((c.speaker, c.digit), []).append(c)
    for g in groups.values():
        rng.shuffle(g)
    out, i = [], 0
    while len(out) < n:
        for key in sorted(groups):
            if i < len(groups[key]) and len(out) < n:
                out.append(groups[key][i])
        i += 1
    return out


# --- the four parts ------------------------------------------------------------------------------


def probes_part(bundle, fsdd, synth_voices: int, folds: int) -> dict:
    t0 = time.perf_counter()
    feats, clips = clip_features(fsdd, bundle.frontend, desc="features (FSDD)")
    report = run_probes(bundle.model, feats, clips, ["digit", "speaker"], folds=folds)
    extra = synthetic_clips(synth_voices, bundle.provenance.get("train", {}).get("seed", 0)) if synth_voices else []
    source = None
    if extra:  # as many FSDD clips as synthetic ones, spread over speakers and digits
        both = stratified(clips, len(extra)) + extra
        bfeats, both = clip_features(both, bundle.frontend, desc="features (source)")
        source = run_probes(bundle.model, bfeats, both, ["source"], folds=folds)
        report.rows += source.rows
    seconds = time.perf_counter() - t0
    print_report(report)
    png = plot_report(report, RESULTS / "observability-probes.png",
                      f"{bundle.arch} starter model: linear probes on FSDD" + (" (+ synthetic voices for source)" if extra else ""))
    log(f"probe plot: {png.relative_to(REPO)}; {seconds:.0f} s")
    return {**report.to_dict(), "seconds": round(seconds, 1), "source_clips": 2 * len(extra)}


def deletion_part(bundle, fsdd, n: int, fractions: tuple[float, ...]) -> dict:
    t0 = time.perf_counter()
    chosen = stratified(fsdd, n)
    feats, chosen = clip_features(chosen, bundle.frontend, desc="features (deletion)")
    out = {"clips": len(chosen)}
    for method in ("ig", "occlusion"):
        attrs, targets = attribute(bundle.model, feats, method=method, steps=32)
        out[method] = {}
        for frac in fractions if method == "ig" else (0.1,):
            s = deletion_test(bundle.model, feats, attrs, targets, frac, repeats=4).summary()
            out[method][str(frac)] = s
            log(f"deletion {method:9s} top {frac:4.0%}: drop top {s['drop_top']:.3f}, random {s['drop_random']:.3f}, "
                f"random audible {s['drop_random_audible']:.3f}, loudest {s['drop_loudest']:.3f} | margin vs random "
                f"{s['margin_vs_random']:+.3f} ± {s['margin_vs_random_ci95']:.3f} (top worse on {s['top_beats_random']:.0%}), "
                f"vs audible {s['margin_vs_random_audible']:+.3f} ({s['top_beats_random_audible']:.0%}), "
                f"vs loudest {s['margin_vs_loudest']:+.3f} ({s['top_beats_loudest']:.0%})")
    out["accuracy"] = float((targets == torch.tensor([c.digit for c in chosen])).float().mean())
    out["seconds"] = round(time.perf_counter() - t0, 1)
    example = next(c for c in chosen if c.digit == 7)
    ex = explain_file(bundle, example.path, RESULTS, "ig")
    for src, name in ((ex.png, "observability-explain.png"), (ex.wav, "observability-relevant.wav")):
        Path(src).replace(RESULTS / name)
    out["example"] = {"clip": example.path.name, "digit": ex.digit, "confidence": round(ex.confidence, 3)}
    log(f"example heatmap: benchmarks/results/observability-explain.png, audible: observability-relevant.wav "
        f"({example.path.name}); {out['seconds']:.0f} s")
    return out


def ood_part(bundle, fsdd, fit_synth: list, n_noise: int) -> dict:
    t0 = time.perf_counter()
    cfg, model = bundle.frontend, bundle.model
    fit_clips = [c for c in fsdd if c.take >= 5] + fit_synth
    test_clips = [c for c in fsdd if c.take < 5]
    fit_feats, fit_clips = clip_features(fit_clips, cfg, desc="features (OOD fit)")
    stats = fit_ood(model, fit_feats, torch.tensor([c.digit for c in fit_clips]), [c.speaker for c in fit_clips])
    test_feats, test_clips = clip_features(test_clips, cfg, desc="features (OOD test)")
    pool = synth.voices(VOICE_POOL, 0)
    voices = [pool[i] for i in HELD_OUT_VOICES]
    unseen_digits = features(espeak_waves([(DIGIT_WORDS[d], v) for v in voices[:20] for d in range(10)], cfg.sample_rate), cfg)
    words = features(espeak_waves([(w, v) for v in voices[:10] for w in WORDS], cfg.sample_rate), cfg)
    noise = features(noise_bursts(n_noise, cfg.sample_rate), cfg)
    sets = {"fsdd_test": test_feats, "unseen_voice_digits": unseen_digits, "words": words, "noise": noise}
    scores, msp = {}, {}
    with torch.no_grad():
        for name, f in sets.items():
            scores[name] = stats.scores(embeddings(model, f)).numpy()
            msp[name] = (1 - model(f).softmax(-1).max(-1).values).numpy()
    pairs = [("fsdd_test", "noise"), ("fsdd_test", "words"), ("unseen_voice_digits", "noise"), ("unseen_voice_digits", "words")]
    out = {"threshold": stats.threshold, "fit": stats.info, "sets": {k: len(v) for k, v in sets.items()},
           "flagged": {k: round(float((v > stats.threshold).mean()), 3) for k, v in scores.items()},
           "median_score": {k: round(float(np.median(v)), 1) for k, v in scores.items()}, "auroc": {}}
    for a, b in pairs:
        out["auroc"][f"{a} vs {b}"] = {"mahalanobis": round(auroc(scores[a], scores[b]), 4),
                                       "max_softmax": round(auroc(msp[a], msp[b]), 4)}
        log(f"OOD AUROC {a} vs {b}: Mahalanobis {out['auroc'][f'{a} vs {b}']['mahalanobis']:.3f}, "
            f"1 - max softmax {out['auroc'][f'{a} vs {b}']['max_softmax']:.3f}")
    log(f"flagged at the threshold {stats.threshold:.1f} ({stats.info['threshold_from']}): "
        + ", ".join(f"{k} {v:.1%}" for k, v in out["flagged"].items()))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out, stats


def lens_part(bundle, fsdd, stats) -> dict:
    """Leave one speaker out: digit probes fitted on five FSDD speakers read the sixth."""
    t0 = time.perf_counter()
    feats, clips = clip_features(fsdd, bundle.frontend, desc="features (lens)")
    acts = capture(bundle.model, feats)
    obs, truth, names = [], [], None
    for speaker in sorted({c.speaker for c in clips}):
        held = torch.tensor([c.speaker == speaker for c in clips])
        fit_clips = [c for c, h in zip(clips, held.tolist()) if not h]
        probe_set = fit_probe_set(bundle.model, feats[~held], fit_clips,
                                  activations={n: a[~held] for n, a in acts.items()})
        names = probe_set.layers
        obs += Observer(bundle, probe_set, stats).observe_features(feats[held])
        truth += [c.digit for c, h in zip(clips, held.tolist()) if h]
    reads = Counter(o.reads_from for o in obs)
    out = {"clips": len(obs), "protocol": "digit probes fitted on 5 FSDD speakers, read on the 6th, for each speaker",
           "probe_reads_truth": {short_layer(n): round(float(np.mean([str(t) == o.layers[j].label for o, t in zip(obs, truth)])), 3)
                                 for j, n in enumerate(names)},
           "probe_agrees_with_model": {short_layer(n): round(float(np.mean([o.layers[j].agrees for o in obs])), 3)
                                       for j, n in enumerate(names)},
           "reads_from": {short_layer(n) if n else "none": reads.get(n, 0) for n in [*names, None]},
           "model_accuracy": round(float(np.mean([o.digit == t for o, t in zip(obs, truth)])), 4),
           "example": obs[0].line(), "seconds": round(time.perf_counter() - t0, 1)}
    log("logit lens, leave one speaker out (digit probes fitted on 5 FSDD speakers, read on the 6th):")
    log("  probe reads the true digit: " + ", ".join(f"{k} {v:.0%}" for k, v in out["probe_reads_truth"].items()))
    log("  probe agrees with the model: " + ", ".join(f"{k} {v:.0%}" for k, v in out["probe_agrees_with_model"].items()))
    log("  every probe from this layer on agrees with the model: " + ", ".join(f"{k} {v}" for k, v in out["reads_from"].items()))
    log(f"  e.g. {clips[0].path.name}: {out['example']}")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "models" / "starter.safetensors")
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--source-voices", type=int, default=12, help="synthetic training voices added for the source probe")
    ap.add_argument("--deletion-clips", type=int, default=250)
    ap.add_argument("--noise", type=int, default=210)
    ap.add_argument("--skip", action="append", default=[], choices=["probes", "deletion", "ood", "lens"])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not FSDD.is_dir():
        sys.exit(f"FSDD not found at {FSDD} (set AUDREY_FSDD)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    bundle, _ = load_model(args.model)
    bundle.model.eval()
    prov = bundle.provenance
    log(f"model {args.model.name}: {bundle.arch}, trained on {prov.get('data')} + {prov.get('synth_voices', 0)} synthetic voices, "
        f"split {prov.get('split')}")
    fsdd = read_corpus(FSDD)
    results = {"model": str(args.model.relative_to(REPO) if args.model.is_relative_to(REPO) else args.model),
               "provenance": {k: prov.get(k) for k in ("data", "split", "synth_voices", "code_version")}}
    t0 = time.perf_counter()
    if "probes" not in args.skip:
        results["probes"] = probes_part(bundle, fsdd, args.source_voices, args.folds)
    if "deletion" not in args.skip:
        results["deletion"] = deletion_part(bundle, fsdd, args.deletion_clips, (0.05, 0.1, 0.2))
    stats = None
    if "ood" not in args.skip or "lens" not in args.skip:
        fit_synth = synthetic_clips(prov.get("synth_voices", 0), prov.get("train", {}).get("seed", 0))
        results["ood"], stats = ood_part(bundle, fsdd, fit_synth, args.noise)
    if "lens" not in args.skip:
        results["lens"] = lens_part(bundle, fsdd, stats)
    results["seconds"] = round(time.perf_counter() - t0, 1)
    path = RESULTS / "observability.json"
    path.write_text(json.dumps(results, indent=2, default=str))
    log(f"results: {path.relative_to(REPO)} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
