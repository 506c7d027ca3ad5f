"""A training run end to end: corpora -> split -> (synthetic voices) -> train -> test -> model file,
tracked in W&B and summarised in a local run record. `audrey train` is a thin layer over `train_run`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audrey.console import err
from audrey.data.corpora import Clip, read_corpora, read_corpus
from audrey.errors import AudreyError
from audrey.training.evaluate import Evaluation, evaluate, plot_confusion
from audrey.data.features import cache_root
from audrey.audio.frontend import FrontendConfig
from audrey.models.modelfile import model_digest, save_model
from audrey.models import config_from_dict
from audrey.data.splits import Split, audiomnist_fold, leave_one_speaker_out, random_speaker_split
from audrey.tracking.wandb_run import Tracker, TrackingOptions, log_evaluation
from audrey.training.checkpoint import best_weights_path, resume_point
from audrey.training.train import TrainConfig, TrainResult, train

SPLITS_HELP = "random | loso:SPEAKER | audiomnist:FOLD | none (no test set)"


def make_split(clips: list[Clip], spec: str, seed: int = 0, val_speakers: int = 1) -> Split:
    """Parse a split spec (see SPLITS_HELP) into a speaker-disjoint Split."""
    kind, _, arg = spec.partition(":")
    if kind == "random":
        return random_speaker_split(clips, seed=seed)
    if kind == "loso" and arg:
        return leave_one_speaker_out(clips, arg, n_val=val_speakers, seed=seed)
    if kind == "audiomnist" and arg.isdigit():
        return audiomnist_fold(clips, int(arg))
    if kind == "none":
        return random_speaker_split(clips, val_fraction=0.15 if val_speakers else 0.0, test_fraction=0.0, seed=seed)
    raise AudreyError(f"unknown split {spec!r}; use {SPLITS_HELP}")


def synthetic_clips(voices: int, seed: int) -> list[Clip]:
    """espeak-ng digits for `voices` voices, rendered once into the cache folder."""
    from audrey.data import synth

    if voices <= 0:
        return []
    root = synth.synthesize_digits(cache_root() / "synth", voices, seed)
    wanted = {v.name for v in synth.voices(voices, seed)}
    return [c for c in read_corpus(root, source="synthetic") if c.speaker in wanted]


@dataclass
class RunOutput:
    result: TrainResult
    test: Evaluation | None
    model_path: Path
    record_path: Path


def train_run(
    data: list[Path],
    out: Path,
    cfg: TrainConfig,
    split: str = "random",
    val_speakers: int = 1,
    synth_voices: int = 0,
    resume: bool = False,
    tracking: TrackingOptions = TrackingOptions(),
    frontend: FrontendConfig = FrontendConfig(),
) -> RunOutput:
    config_from_dict(cfg.arch, cfg.model)  # an unknown architecture fails now, not after feature extraction
    checkpoint = out.with_suffix(".ckpt.safetensors")
    resume = resume and resume_point(checkpoint) is not None  # so does a damaged checkpoint; none is a note
    clips = read_corpora(data)
    parts = make_split(clips, split, cfg.seed, val_speakers)
    extra = synthetic_clips(synth_voices, cfg.seed)  # training only: never in val or test
    err.print(f"data: {parts.describe()}" + (f", plus {len(extra)} synthetic clips in training" if extra else ""))
    config = {"train": cfg.to_dict(), "frontend": frontend.to_dict(), "data": [str(p) for p in data],
              "split": split, "val_speakers": val_speakers, "synth_voices": synth_voices, "out": str(out),
              "clips": {"train": len(parts.train) + len(extra), "val": len(parts.val), "test": len(parts.test)},
              "speakers": {"train": sorted({c.speaker for c in parts.train}), "val": sorted({c.speaker for c in parts.val}),
                           "test": sorted({c.speaker for c in parts.test})}}
    with Tracker("train", config, tracking, name=out.stem) as tracker:
        result = train(parts.train + extra, parts.val, cfg, frontend, checkpoint, resume,
                       on_epoch=lambda r: tracker.log(r, step=r["epoch"]),
                       provenance={"data": config["data"], "split": split, "synth_voices": synth_voices})
        test = evaluate(result.bundle, parts.test) if parts.test else None
        if test is not None:
            result.bundle.provenance["metrics"]["test_acc"] = test.accuracy
            result.bundle.provenance["metrics"]["test_per_speaker"] = test.per_speaker()
            png = plot_confusion(test.confusion(), out.with_suffix(".confusion.png"), f"{cfg.arch} test")
            log_evaluation(tracker, test, result.bundle, "test")
            tracker.image("test/confusion_plot", png)
        save_model(result.bundle, out)
        best = result.history[result.best_epoch - 1]
        tracker.summary({"best_epoch": result.best_epoch, "train_seconds": result.seconds,
                         **{f"best_{k}": v for k, v in best.items() if k.startswith("val_")},
                         "params": sum(p.numel() for p in result.bundle.model.parameters()), "file_bytes": out.stat().st_size})
        tracker.artifact(out, out.stem, "model", model_digest(result.bundle.model),
                         {"arch": cfg.arch, "data": config["data"], "split": split, "best_epoch": result.best_epoch})
    for path in (checkpoint, best_weights_path(checkpoint)):
        path.unlink(missing_ok=True)  # the run finished: the model file supersedes its checkpoints
    return RunOutput(result, test, out, tracker.path)
