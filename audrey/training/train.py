"""Training: cached log-mel features, feature-space augmentation, AdamW + one-cycle LR, early stopping
on a speaker-disjoint validation set, an atomic checkpoint every epoch, exact `--resume`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from audrey.data.augment import AugmentConfig, augment_batch
from audrey.training.checkpoint import (best_weights_path, load_checkpoint, load_weights, resume_point,
                                       save_checkpoint, save_weights)
from audrey.console import err, progress, quiet
from audrey.data.corpora import Clip
from audrey.errors import AudreyError
from audrey.data.features import FeatureCache, clip_features
from audrey.audio.frontend import FrontendConfig
from audrey.models.modelfile import ModelBundle
from audrey.models import build_model


@dataclass(frozen=True)
class TrainConfig:
    arch: str = "cnn"
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    patience: int = 8  # epochs without a better validation accuracy before stopping
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: dict = field(default_factory=dict)  # overrides of the architecture's config

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    bundle: ModelBundle
    history: list[dict]
    best_epoch: int
    seconds: float


def batches(n: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    perm = torch.randperm(n, generator=generator)
    return [perm[i : i + size] for i in range(0, n - size + 1, size)] or [perm]


@torch.no_grad()
def predict_features(model: torch.nn.Module, feats: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Class probabilities for (N, mels, frames) features, in eval mode."""
    model.eval()
    return torch.cat([model(feats[i : i + batch]).softmax(-1) for i in range(0, len(feats), batch)])


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup: float = 0.2):
    """Linear warm-up over the first 20% of steps, then cosine decay to zero (one-cycle style,
    but well-defined for runs of a handful of steps)."""
    warm = max(1, round(warmup * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def labels_of(clips: list[Clip]) -> torch.Tensor:
    return torch.tensor([c.digit for c in clips])


def train(
    train_clips: list[Clip],
    val_clips: list[Clip],
    cfg: TrainConfig = TrainConfig(),
    frontend: FrontendConfig = FrontendConfig(),
    checkpoint: Path | None = None,
    resume: bool = False,
    on_epoch=None,
    provenance: dict | None = None,
) -> TrainResult:
    """Train a model; `on_epoch(record)` is called after each epoch (for W&B and run records)."""
    if not train_clips:
        raise AudreyError("no training clips; pass --data with at least one corpus")
    resume_from = resume_point(checkpoint) if resume else None  # a damaged checkpoint fails before any work
    torch.manual_seed(cfg.seed)
    cache = FeatureCache(frontend)
    x_train, train_clips = clip_features(train_clips, frontend, cache, "features (train)")
    y_train = labels_of(train_clips)
    if val_clips:
        x_val, val_clips = clip_features(val_clips, frontend, cache, "features (val)")
        y_val = labels_of(val_clips)

    model = build_model(cfg.arch, n_mels=frontend.n_mels, **cfg.model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(batches(len(x_train), cfg.batch_size, torch.Generator()))
    scheduler = warmup_cosine(optimizer, cfg.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(cfg.seed)
    state = {"epoch": 0, "best_acc": -1.0, "best_loss": float("inf"), "best_epoch": 0, "history": [], "seconds": 0.0}
    best_weights = None
    if resume_from:
        state = load_checkpoint(resume_from, model, optimizer, scheduler, generator)
        best_weights = load_weights(best_weights_path(resume_from), model)  # written before every checkpoint
        err.print(f"resuming from {resume_from} after epoch {state['epoch']}")

    start = time.perf_counter() - state["seconds"]
    with progress(transient=False) as bar:
        task = bar.add_task("train", total=cfg.epochs, completed=state["epoch"], status="")
        while state["epoch"] < cfg.epochs and state["epoch"] - state["best_epoch"] < cfg.patience:
            epoch_start = time.perf_counter()
            model.train()
            total_loss = correct = seen = 0
            for idx in batches(len(x_train), cfg.batch_size, generator):
                x = augment_batch(x_train[idx], frontend, cfg.augment, generator)
                logits = model(x)
                loss = F.cross_entropy(logits, y_train[idx], label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                total_loss += loss.item() * len(idx)
                correct += (logits.argmax(-1) == y_train[idx]).sum().item()
                seen += len(idx)
            state["epoch"] += 1
            record = {"epoch": state["epoch"], "train_loss": total_loss / seen, "train_acc": correct / seen,
                      "lr": scheduler.get_last_lr()[0], "epoch_seconds": 0.0}
            improved = True
            if val_clips:
                probs = predict_features(model, x_val)
                record["val_loss"] = F.nll_loss(probs.clamp_min(1e-9).log(), y_val).item()
                record["val_acc"] = (probs.argmax(-1) == y_val).float().mean().item()
                improved = (record["val_acc"], -record["val_loss"]) > (state["best_acc"], -state["best_loss"])
                if improved:
                    state["best_acc"], state["best_loss"] = record["val_acc"], record["val_loss"]
            if improved:
                state["best_epoch"] = state["epoch"]
                best_weights = {k: v.clone() for k, v in model.state_dict().items()}
            record["epoch_seconds"] = time.perf_counter() - epoch_start
            state["history"].append(record)
            state["seconds"] = time.perf_counter() - start
            if checkpoint:
                if improved:
                    save_weights(best_weights_path(checkpoint), best_weights)
                save_checkpoint(checkpoint, model, optimizer, scheduler, generator, state)
            if on_epoch:
                on_epoch(record)
            status = f"loss {record['train_loss']:.3f} acc {record['train_acc']:.3f}"
            if "val_acc" in record:
                status += f" | val acc {record['val_acc']:.3f} (best {state['best_acc']:.3f} @ {state['best_epoch']})"
            bar.update(task, completed=state["epoch"], status=status)
            if quiet():  # no live bar (CI, logs, pipes): one plain line per epoch instead
                err.print(f"epoch {state['epoch']}/{cfg.epochs}: {status} ({record['epoch_seconds']:.0f} s)")

    model.load_state_dict(best_weights)
    model.eval()
    metrics = {k: v for k, v in state["history"][state["best_epoch"] - 1].items() if k.startswith("val_")}
    bundle = ModelBundle(model, frontend, provenance={
        **(provenance or {}),
        "train": cfg.to_dict(),
        "train_clips": len(train_clips),
        "val_clips": len(val_clips),
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "train_seconds": round(time.perf_counter() - start, 1),
        "metrics": metrics,
    })
    return TrainResult(bundle, state["history"], state["best_epoch"], time.perf_counter() - start)

