"""The rejection's detector (test 2 of audrey.live.judge): a small CNN on the digit model's log-mel
features with eleven classes, the ten digits and "other" (OTHER), trained by `audrey calibrate` on
the model's training digits and espeak-ng digits against espeak-ng words, near misses, made-up
words, time-reversed digits and noise bursts (`detector_data`, which the phone recogniser trains
on too)."""

from __future__ import annotations

import numpy as np
import torch

from audrey import DIGIT_WORDS
from audrey.audio.frontend import features
from audrey.console import progress
from audrey.data.noise import noise_burst
from audrey.data.scenes import DETECTOR_VOICES, material_root, render_clips, voice_list
from audrey.data.wordlist import COMMON_WORDS, DETECTOR_WORDS, NEAR_MISSES, pseudo_words

DETECTOR_CONFIG = {"channels": (16, 24, 32, 48, 64), "dropout": 0.2, "n_classes": 11}  # ~1/3 of the digit CNN's work
OTHER = 10  # the detector's class for "not a digit"
OTHER_WEIGHT = 3.0  # in the detector's loss, "not a digit" weighs as much as this many digit classes


def training_features(bundle, clips, max_per_class: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of (up to max_per_class per digit of) the model's training clips, from the feature cache."""
    from audrey.data.features import FeatureCache, clip_features

    rng = np.random.default_rng(seed)
    by_digit: dict[int, list] = {}
    for c in clips:
        by_digit.setdefault(c.digit, []).append(c)
    chosen = []
    for _, cs in sorted(by_digit.items()):
        chosen += [cs[i] for i in sorted(rng.permutation(len(cs))[:max_per_class])]
    feats, kept = clip_features(chosen, bundle.frontend, FeatureCache(bundle.frontend), "features (training digits)")
    return feats, torch.tensor([c.digit for c in kept])


def detector_data(frontend_cfg, digit_feats: torch.Tensor, digit_labels: torch.Tensor, words=DETECTOR_WORDS,
                  voices_per_word: int = 25, near_miss_voices: int = 10, common_words=None, common_voices: int = 16,
                  pseudo: int = 1500, digit_voices: int = 150, bursts: int = 1500, reversed_fraction: float = 0.4,
                  seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str] | None]]:
    """(features, label 0-9 or OTHER, what was said) for the detector and the phone recogniser: the
    model's training digits and espeak-ng digits against espeak-ng words (DETECTOR_WORDS in many
    voices, wordlist.COMMON_WORDS in a few), near misses and made-up words, time-reversed digits
    (human-sounding and no word at all) and noise bursts; voices from DETECTOR_VOICES. What was said
    is (text, accent): ("", "") for a noise burst, None for a reversed digit (no phones to name)."""
    from audrey.data import synth

    rng = np.random.default_rng(seed)
    rate = frontend_cfg.sample_rate
    voices = voice_list(DETECTOR_VOICES)
    pick = lambda: voices[rng.integers(len(voices))]  # noqa: E731
    speed = lambda: int(synth.SPEEDS[rng.integers(len(synth.SPEEDS))])  # noqa: E731
    digit_jobs = [(w, voices[i], speed()) for i in rng.permutation(len(voices))[:digit_voices] for w in DIGIT_WORDS]
    word_jobs = [(w, pick(), speed()) for w in words for _ in range(voices_per_word)]
    word_jobs += [(w, pick(), speed()) for w in NEAR_MISSES for _ in range(near_miss_voices)]
    word_jobs += [(w, pick(), speed()) for w in (COMMON_WORDS if common_words is None else common_words) for _ in range(common_voices)]
    word_jobs += [(w, pick(), speed()) for w in pseudo_words(pseudo, rng)]
    clips = render_clips(digit_jobs + word_jobs, material_root(), rate, "espeak-ng detector clips")
    pos = torch.cat([digit_feats, features(clips[: len(digit_jobs)], frontend_cfg)])
    pos_labels = torch.cat([digit_labels, torch.tensor([DIGIT_WORDS.index(w) for w, _, _ in digit_jobs], dtype=torch.long)])
    noise = features([noise_burst(rng, rate) for _ in range(bursts)], frontend_cfg)
    flip = pos[torch.from_numpy(rng.permutation(len(pos))[: int(reversed_fraction * len(pos))])].flip(-1)
    neg = torch.cat([features(clips[len(digit_jobs) :], frontend_cfg), noise, flip])
    # the model's training digits are real or synthetic voices of any accent: spelt as en-us says them
    said = [(DIGIT_WORDS[int(d)], "en-us") for d in digit_labels] + [(w, v.accent) for w, v, _ in digit_jobs + word_jobs]
    said += [("", "")] * len(noise) + [None] * len(flip)
    return torch.cat([pos, neg]), torch.cat([pos_labels, torch.full((len(neg),), OTHER, dtype=torch.long)]), said


def train_detector(feats: torch.Tensor, labels: torch.Tensor, frontend_cfg, epochs: int = 10, seed: int = 0,
                   batch_size: int = 64, lr: float = 3e-3) -> torch.nn.Module:
    """The detector: a CNN over the ten digits and "other", with the digit model's feature
    augmentation and more noise. (Ten digit classes rather than one "digit" class: it has to learn what
    each digit sounds like, which is what tells "hive" from "five".)"""
    import torch.nn.functional as F

    from audrey.data.augment import AugmentConfig, augment_batch
    from audrey.models import build_model
    from audrey.training.train import batches, warmup_cosine

    torch.manual_seed(seed)
    model = build_model("cnn", n_mels=frontend_cfg.n_mels, **DETECTOR_CONFIG)
    aug = AugmentConfig(noise_p=0.5, snr_db=(5.0, 30.0))
    gen = torch.Generator().manual_seed(seed)
    counts = torch.bincount(labels, minlength=OTHER + 1).clamp_min(1).float()
    weight = counts[:OTHER].mean() / counts  # balanced digit classes...
    weight[OTHER] *= OTHER_WEIGHT  # ...and "other" as heavy as OTHER_WEIGHT of them
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = warmup_cosine(opt, epochs * len(batches(len(feats), batch_size, torch.Generator())))
    with progress(transient=True) as bar:
        task = bar.add_task("train the detector (digits + other)", total=epochs, status="")
        for _ in range(epochs):
            model.train()
            for idx in batches(len(feats), batch_size, gen):
                loss = F.cross_entropy(model(augment_batch(feats[idx], frontend_cfg, aug, gen)), labels[idx], weight=weight)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
            bar.update(task, advance=1, status=f"loss {loss.item():.3f}")
    return model.eval()
