"""A training run end to end: corpora -> split -> (synthetic voices) -> train -> test -> model file,
tracked in W&B and summarised in a local run record. `audrey train` is a thin layer over `train_run`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from audrey.console import err
from audrey.corpora import Clip, read_corpora, read_corpus
from audrey.errors import AudreyError
from audrey.evaluate import Evaluation, evaluate, plot_confusion
from audrey.features import cache_root
from audrey.frontend import FrontendConfig
from audrey.modelfile import save_model
from audrey.models import config_from_dict
from audrey.splits import Split, audiomnist_fold, leave_one_speaker_out, random_speaker_split
from audrey.tracking import Tracker
from audrey.train import TrainConfig, TrainResult, train

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
    from audrey import synth

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
    wandb_mode: str | None = None,
    project: str | None = None,
    group: str | None = None,
    tags: list[str] | None = None,
    frontend: FrontendConfig = FrontendConfig(),
) -> RunOutput:
    config_from_dict(cfg.arch, cfg.model)  # an unknown architecture fails now, not after feature extraction
    clips = read_corpora(data)
    parts = make_split(clips, split, cfg.seed, val_speakers)
    extra = synthetic_clips(synth_voices, cfg.seed)  # training only: never in val or test
    err.print(f"data: {parts.describe()}" + (f", plus {len(extra)} synthetic clips in training" if extra else ""))
    config = {"train": cfg.to_dict(), "frontend": frontend.to_dict(), "data": [str(p) for p in data],
              "split": split, "val_speakers": val_speakers, "synth_voices": synth_voices}
    tracker = Tracker("train", config, wandb_mode, project, group, tags)
    checkpoint = out.with_suffix(".ckpt.safetensors")
    try:
        result = train(parts.train + extra, parts.val, cfg, frontend, checkpoint, resume,
                       on_epoch=lambda r: tracker.log(r, step=r["epoch"]),
                       provenance={"data": config["data"], "split": split, "synth_voices": synth_voices})
        test = evaluate(result.bundle, parts.test) if parts.test else None
        if test is not None:
            result.bundle.provenance["metrics"]["test_acc"] = test.accuracy
            result.bundle.provenance["metrics"]["test_per_speaker"] = test.per_speaker()
            plot_confusion(test.confusion(), out.with_suffix(".confusion.png"), f"{cfg.arch} test")
            tracker.summary({"test_acc": test.accuracy})
        save_model(result.bundle, out)
        record = write_record(out, config, result, test)
        tracker.summary({"best_epoch": result.best_epoch, "train_seconds": result.seconds})
    finally:
        tracker.finish()
    for path in (checkpoint, checkpoint.with_name(checkpoint.stem + ".best.safetensors")):
        path.unlink(missing_ok=True)  # the run finished: the model file supersedes its checkpoints
    return RunOutput(result, test, out, record)


def write_record(out: Path, config: dict, result: TrainResult, test: Evaluation | None) -> Path:
    """runs/<time>-<model name>.json: the figures of a run, readable without W&B."""
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": str(out), "config": config,
              "history": result.history, "best_epoch": result.best_epoch, "seconds": result.seconds,
              "test": test.summary() if test else None}
    path = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{out.stem}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=str))
    return path
