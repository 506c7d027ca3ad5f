"""Personal weights: the base model adapted to one voice from a few takes per digit.

How (each step chosen by measurement on FSDD's personal k-shot protocol; see benchmarks/personal.py):
1. **Fine-tune every layer, gently.** Batches of the enrollment takes, each copy perturbed by the
   training augmentation turned up (warps, stretches, shifts, noise, masks), so five takes become
   hundreds of plausible variants. BatchNorm statistics stay frozen (a batch of one voice would
   overwrite the base's), and an L2-SP penalty pulls every weight towards the base (Li et al., 2018):
   the base knows digits, the takes only need to move it towards one voice.
2. **A prototype head folded into the classifier.** The mean embedding of each digit's takes (a class
   prototype) is a nearest-class-mean classifier, and squared distances to prototypes are linear in
   the embedding: -|e - m|^2 = 2 m.e - |m|^2 - |e|^2, where the last term is the same for every class.
   So the prototypes are added to the head's linear layer; nothing about the architecture changes.
3. **Only the main directions of change kept.** Each large weight (the convolutions past the first)
   keeps the top `rank` singular directions of its change from the base, before the prototypes
   are folded in: 4 directions cost nothing measurable on FSDD and make the file ~45 kB instead
   of ~770 kB (benchmarks/personal.py, its size table).

The result is saved as a personal weights file (audrey.models.personal_file: what differs from the
base, the large changes as low-rank factors, applying to that base only). When the base has a
rejection calibration, its thresholds fitted to the takes go into the file too (`fit_rejection`):
the calibration's voices are synthetic, and a real voice may need a looser test.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from audrey import DIGIT_WORDS
from audrey.data.augment import AugmentConfig, augment_batch
from audrey.console import warn
from audrey.data.corpora import Clip, read_corpus
from audrey.errors import AudreyError
from audrey.data.features import FeatureCache, clip_features
from audrey.models.modelfile import ModelBundle, load_model, model_digest, writable_output
from audrey.models.personal_file import (changed_tensors, factor_change, low_rank_eligible, personal_path,
                                         save_personal)
from audrey.training.train import predict_features

MAX_RANK = 64  # a bound for --rank: past the size where factors outgrow a weight, file_tensors stores it whole
MIN_TAKES = 1  # per digit: one take per digit already beats the base on that voice


@dataclass(frozen=True)
class AdaptConfig:
    # Chosen on takes 5-9 of FSDD speakers (never on the test takes 10-49); benchmarks/personal.py.
    steps: int = 60
    batch_size: int = 40  # augmented enrollment copies per step
    lr: float = 1e-3
    l2sp: float = 1.0  # weight of sum |w - w_base|^2 (per-parameter mean), pulling towards the base
    prototype_weight: float = 1.0  # how much the prototype classifier adds to the adapted head
    layers: str = "all"  # "all" | "head" | "none" (prototypes only)
    rank: int = 4  # each large weight keeps the top `rank` directions of its change (0: every change whole)
    seed: int = 0
    augment: AugmentConfig = field(default_factory=lambda: AugmentConfig(
        warp=0.08, stretch=0.15, shift=0.15, noise_p=0.3, snr_db=(5.0, 30.0), band_p=0.5,
        freq_masks=2, freq_width=6, time_masks=2, time_width=12))

    def to_dict(self) -> dict:
        return asdict(self)


# --- enrollment -----------------------------------------------------------------------------------


def speaker_clips(speaker: str | None, recordings: Path = Path("recordings"), data: Path | None = None) -> tuple[str, list[Clip]]:
    """(speaker, clips): `recordings/<speaker>/`, or the speaker's clips in any labelled folder `data`."""
    if data is None:
        if not speaker:
            raise AudreyError("--speaker NAME is needed (the folder recordings/NAME made by `audrey record`), or --data PATH")
        folder = Path(recordings) / speaker
        if not folder.is_dir():
            raise AudreyError(f"{folder}: no recordings for speaker {speaker!r}; record some with "
                              f"`audrey record --speaker {speaker}` or pass --data PATH")
        clips = [c for c in read_corpus(folder) if c.speaker == speaker] or read_corpus(folder)
        return speaker, clips
    clips = read_corpus(Path(data))
    speakers = sorted({c.speaker for c in clips})
    if speaker:
        mine = [c for c in clips if c.speaker == speaker]
        if not mine:
            raise AudreyError(f"{data}: no clips of speaker {speaker!r}; it holds {', '.join(speakers[:12])}")
        return speaker, mine
    if len(speakers) > 1:
        raise AudreyError(f"{data}: holds {len(speakers)} speakers ({', '.join(speakers[:12])}); pick one with --speaker")
    return speakers[0], clips


def check_enrollment(clips: list[Clip], need: int = MIN_TAKES, where: str = "", speaker: str = "NAME") -> dict[int, int]:
    """Takes per digit; a clear error naming every digit with fewer than `need`."""
    counts = Counter(c.digit for c in clips)
    short = [d for d in range(10) if counts[d] < need]
    if short:
        listing = ", ".join(f"{d} ({DIGIT_WORDS[d]}): {counts[d]}" for d in short)
        raise AudreyError(f"{where or 'enrollment'}: too few takes; need at least {need} per digit, missing: {listing}. "
                          f"Record them with `audrey record --speaker {speaker} --digits " + ",".join(map(str, short)) + "`")
    return {d: counts[d] for d in range(10)}


def take_order(clips: list[Clip]) -> list[Clip]:
    return sorted(clips, key=lambda c: (c.digit, c.take, str(c.path)))


def split_takes(clips: list[Clip], holdout: int) -> tuple[list[Clip], list[Clip]]:
    """(enroll, held out): the last `holdout` takes of each digit are held out, as long as each digit
    keeps at least one take to enroll with."""
    by_digit = defaultdict(list)
    for c in take_order(clips):
        by_digit[c.digit].append(c)
    enroll, held = [], []
    for d in sorted(by_digit):
        takes = by_digit[d]
        h = min(holdout, len(takes) - 1)
        enroll += takes[: len(takes) - h]
        held += takes[len(takes) - h :]
    return enroll, held


def first_takes(clips: list[Clip], k: int) -> list[Clip]:
    """The first `k` takes of each digit (by take number)."""
    seen: Counter = Counter()
    out = []
    for c in take_order(clips):
        if seen[c.digit] < k:
            out.append(c)
            seen[c.digit] += 1
    return out


# --- adaptation -----------------------------------------------------------------------------------


def _freeze_batchnorm(model: torch.nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def trainable(model: torch.nn.Module, layers: str) -> list[torch.nn.Parameter]:
    if layers == "all":
        return list(model.parameters())
    if layers == "head":
        return list(model.head.parameters())
    if layers == "none":
        return []
    raise AudreyError(f"layers {layers!r}: expected all, head or none")


@torch.no_grad()
def embed(model: torch.nn.Module, feats: torch.Tensor) -> torch.Tensor:
    model.eval()
    return model.embed(feats)


@torch.no_grad()
def fold_prototypes(model: torch.nn.Module, feats: torch.Tensor, labels: torch.Tensor, weight: float) -> None:
    """Add a nearest-class-mean classifier over the enrollment embeddings to the head's linear layer.

    Logit_c += weight * (2 m_c.e - |m_c|^2) / (2 s^2), where s^2 is the mean squared distance of an
    embedding to its own prototype: a Gaussian with that spread per class. Only when every digit has
    a take: a nearest-mean classifier hears a digit without a prototype as its nearest enrolled one.
    """
    n_classes = model.head.fc.out_features
    if weight <= 0 or len(torch.unique(labels)) < n_classes:
        return
    e = embed(model, feats)
    means = torch.stack([e[labels == d].mean(0) for d in range(n_classes)])
    spread = ((e - means[labels]) ** 2).sum(1).mean().clamp_min(1e-3)
    if len(e) <= n_classes:  # one take per digit: no spread within a class; use the spread between classes
        spread = torch.cdist(means, means).pow(2).mean().clamp_min(1e-3) / 2
    fc = model.head.fc
    fc.weight += weight * 2 * means / (2 * spread)
    fc.bias += weight * -(means**2).sum(1) / (2 * spread)


@torch.no_grad()
def low_rank_change(base: torch.nn.Module, model: torch.nn.Module, rank: int) -> None:
    """Keep only the top `rank` singular directions of each large weight's change from the base
    (what the personal file stores; see audrey.models.personal_file)."""
    if rank <= 0:
        return
    b = base.state_dict()
    for name, p in model.named_parameters():
        if low_rank_eligible(p):
            u, v = factor_change(p - b[name], rank)
            p.copy_(b[name] + (u @ v).reshape(p.shape))


def adapt(base: ModelBundle, feats: torch.Tensor, labels: torch.Tensor, cfg: AdaptConfig = AdaptConfig()) -> ModelBundle:
    """A copy of `base` adapted to (N, mels, frames) enrollment features and their digits."""
    import copy

    torch.manual_seed(cfg.seed)
    model = copy.deepcopy(base.model)
    params = trainable(model, cfg.layers)
    if params and cfg.steps > 0:
        anchors = [p.detach().clone() for p in params]
        enrolled = torch.bincount(labels, minlength=model.head.fc.out_features) > 0
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
        g = torch.Generator().manual_seed(cfg.seed)
        model.train()
        _freeze_batchnorm(model)
        for p in model.parameters():
            p.requires_grad_(any(p is q for q in params))
        for step in range(cfg.steps):
            lr = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            for group in opt.param_groups:
                group["lr"] = lr
            idx = torch.randint(0, len(feats), (cfg.batch_size,), generator=g)
            x = augment_batch(feats[idx], base.frontend, cfg.augment, g)
            # only the enrolled digits compete: a digit with no take is not taught to be unlikely
            loss = F.cross_entropy(model(x).masked_fill(~enrolled, float("-inf")), labels[idx])
            if cfg.l2sp:
                loss = loss + cfg.l2sp * sum(((p - a) ** 2).mean() for p, a in zip(params, anchors)) / len(params)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        for p in model.parameters():
            p.requires_grad_(True)
    model.eval()
    low_rank_change(base.model, model, cfg.rank)
    fold_prototypes(model, feats, labels, cfg.prototype_weight)
    return ModelBundle(model, base.frontend, list(base.labels), dict(base.provenance))


def accuracy(bundle: ModelBundle, feats: torch.Tensor, labels: torch.Tensor) -> float:
    if len(feats) == 0:
        return float("nan")
    right = int((predict_features(bundle.model, feats).argmax(-1) == labels).sum())
    return right / len(feats)  # from counts: a float32 mean makes 27/30 come out below 0.9


# --- the command ----------------------------------------------------------------------------------


@dataclass
class PersonalResult:
    path: Path
    speaker: str
    takes: dict[int, int]
    held_out: int
    before: float | None
    after: float | None
    curve: list[dict]
    advice: str
    adapt_seconds: float
    file_bytes: int
    changed: int
    rejection: dict | None = None  # the base's rejection fitted to these takes (fit_rejection)
    rank: int = 0  # directions of change kept per large weight (0: every change whole)


def learning_curve_advice(curve: list[dict], takes_per_digit: int) -> str:
    """Plain words from held-out accuracy at several takes per digit: would more takes help?"""
    if len(curve) < 2:
        return "record at least 2 takes per digit (one is held out) to see how more takes would help"
    first, last = curve[0], curve[-1]
    err0, err1 = 1 - first["accuracy"], 1 - last["accuracy"]
    if err1 <= 0.005:
        return f"held-out accuracy is {last['accuracy']:.1%} with {last['takes_per_digit']} takes per digit; more takes would add little"
    if err0 > err1 > 0 and last["takes_per_digit"] > first["takes_per_digit"]:
        # error ~ a * k^-b through the first and last points; takes for half the current error
        b = math.log(err0 / err1) / math.log(last["takes_per_digit"] / first["takes_per_digit"])
        if b > 0.05:
            k_half = last["takes_per_digit"] * 2 ** (1 / b)
            more = max(1, math.ceil(k_half - takes_per_digit))
            return (f"held-out error fell from {err0:.1%} ({first['takes_per_digit']}/digit) to {err1:.1%} "
                    f"({last['takes_per_digit']}/digit); about {more} more take(s) per digit should halve it")
    return (f"held-out accuracy did not improve from {first['takes_per_digit']} to {last['takes_per_digit']} takes "
            "per digit; check the worst takes (`audrey eval --weights`) rather than recording more")


def personalize(
    speaker: str | None,
    base_path: Path,
    out: Path | None = None,
    data: Path | None = None,
    recordings: Path = Path("recordings"),
    holdout: int = 1,
    curve: bool = True,
    cfg: AdaptConfig = AdaptConfig(),
    tracking=None,
) -> PersonalResult:
    """Adapt the base to a speaker: measure on held-out takes, then adapt on all takes and save.
    Tracked as a `personalize` run (record + W&B, see audrey.tracking) when `tracking` is given."""
    from audrey.tracking.wandb_run import Tracker, TrackingOptions

    if holdout < 0:
        raise AudreyError(f"--holdout {holdout}: must be 0 or more")
    if cfg.steps < 0:
        raise AudreyError(f"--steps {cfg.steps}: must be 0 or more")
    if not 0 <= cfg.rank <= MAX_RANK:
        raise AudreyError(f"--rank {cfg.rank}: expected 0 (every change whole) up to {MAX_RANK}")
    if out is not None:
        writable_output(out, "--out")
    with Tracker("personalize", {}, tracking or TrackingOptions("disabled"), name=speaker or "personal") as tracker:
        return _personalize(speaker, Path(base_path), out, data, recordings, holdout, curve, cfg, tracker)


def _personalize(speaker, base_path: Path, out, data, recordings, holdout, curve, cfg, tracker) -> PersonalResult:
    from audrey.console import err

    base, _ = load_model(base_path)
    speaker, clips = speaker_clips(speaker, recordings, data)
    where = str(data) if data is not None else str(Path(recordings) / speaker)
    counts = check_enrollment(clips, MIN_TAKES, where, speaker)
    cache = FeatureCache(base.frontend)
    feats, clips = clip_features(take_order(clips), base.frontend, cache, f"features ({speaker})")
    check_enrollment(clips, MIN_TAKES, where, speaker)  # again: unreadable takes were dropped
    index = {str(c.path): i for i, c in enumerate(clips)}
    labels = torch.tensor([c.digit for c in clips])

    def pick(subset: list[Clip]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.tensor([index[str(c.path)] for c in subset], dtype=torch.long)
        return feats[ids], labels[ids]

    enroll, held = split_takes(clips, holdout)
    before = after = None
    points: list[dict] = []
    if held:
        hx, hy = pick(held)
        before = accuracy(base, hx, hy)
        per_digit = min(Counter(c.digit for c in enroll).values())
        ks = sorted({1, (per_digit + 1) // 2, per_digit}) if curve else [per_digit]
        for k in ks:
            ex, ey = pick(first_takes(enroll, k))
            acc = accuracy(adapt(base, ex, ey, cfg), hx, hy)
            points.append({"takes_per_digit": k, "accuracy": acc})
            err.print(f"  {k} take(s) per digit -> {acc:.1%} on {len(held)} held-out takes")
        after = points[-1]["accuracy"]
    t0 = time.perf_counter()
    personal = adapt(base, feats, labels, cfg)  # the file: every take
    seconds = time.perf_counter() - t0
    rejection = fit_rejection(base_path, base, personal, clips)
    info = {
        "base": str(base_path), "speaker": speaker, "source": where,
        "takes": {str(d): n for d, n in counts.items()}, "take_files": [c.path.name for c in clips],
        "held_out_takes": len(held), "before": before, "after": after, "curve": points,
        "adapt": cfg.to_dict(), "adapt_seconds": round(seconds, 2),
    }
    if rejection is not None:
        info["rejection"] = rejection
    path = Path(out) if out is not None else personal_path(speaker)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_personal(path, base, personal, info, cfg.rank)
    base_digest = model_digest(base.model)
    tracker.config.update({"base": str(base_path), "base_digest": base_digest, "arch": base.arch, "speaker": speaker,
                           "source": where, "holdout": holdout, "adapt": cfg.to_dict(), "out": str(path)})
    if tracker.run is not None:
        tracker.run.config.update(tracker.config, allow_val_change=True)
    tracker.table("personal/takes", ["digit", "takes"], [[d, n] for d, n in counts.items()])
    tracker.table("personal/curve", ["takes_per_digit", "accuracy"], [[p["takes_per_digit"], p["accuracy"]] for p in points])
    tracker.summary({"before": before, "after": after, "held_out_takes": len(held), "takes": len(clips),
                     "adapt_seconds": seconds, "file_bytes": path.stat().st_size})
    tracker.artifact(path, f"{speaker}-personal", "personal-weights", model_digest(personal.model),
                     {"speaker": speaker, "before": before, "after": after, "base_digest": base_digest},
                     uses=[{"path": str(base_path), "name": base_path.name.split(".")[0], "type": "model", "digest": base_digest}])
    return PersonalResult(path, speaker, counts, len(held), before, after, points,
                          learning_curve_advice(points, max(counts.values())), seconds, path.stat().st_size,
                          len(changed_tensors(base.model, personal.model)), rejection, cfg.rank)


def fit_rejection(base_path: Path, base: ModelBundle, personal: ModelBundle, clips: list[Clip]) -> dict | None:
    """The base's rejection (its calibration file) fitted to the speaker's takes, as the personal
    model hears them (audrey.live.voice_fit.fit_to_voice); None when the base has no calibration for it
    (with a warning when the calibration there belongs to another model)."""
    from audrey.audio.waveform import load_audio
    from audrey.live.calibration import Calibration, sidecar_path
    from audrey.live.judge import Judge
    from audrey.live.recognizer import Recognizer
    from audrey.live.voice_fit import fit_to_voice

    side = sidecar_path(base_path)
    if not side.exists():
        return None
    cal = Calibration.load(side)
    if cal.model_digest and cal.model_digest != model_digest(base.model):
        warn(f"{side}: calibrated for another model, so the rejection is not fitted to your voice; "
             f"run `audrey calibrate --model {base_path}`, then personalize again")
        return None
    rate = base.frontend.sample_rate
    judge = Judge(Recognizer(personal, fast=False), cal, base=base.model)
    return fit_to_voice(judge, [load_audio(c.path, rate) for c in clips], [c.digit for c in clips], rate)


def with_overrides(cfg: AdaptConfig, **kw) -> AdaptConfig:
    return replace(cfg, **{k: v for k, v in kw.items() if v is not None})
