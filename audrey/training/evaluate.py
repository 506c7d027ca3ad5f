"""Evaluation: accuracy overall, per speaker and per digit, confusion matrix (and its PNG), worst clips."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from audrey.data.corpora import Clip
from audrey.data.features import clip_features
from audrey.models.modelfile import ModelBundle
from audrey.training.train import labels_of, predict_features
from audrey.plots import pyplot, save_figure


@dataclass
class Evaluation:
    clips: list[Clip]
    probs: torch.Tensor  # (N, classes)

    @property
    def labels(self) -> torch.Tensor:
        return labels_of(self.clips)

    @property
    def predictions(self) -> torch.Tensor:
        return self.probs.argmax(-1)

    @property
    def accuracy(self) -> float:
        return (self.predictions == self.labels).float().mean().item()

    def accuracy_by(self, key) -> dict:
        hits: dict = defaultdict(list)
        for clip, ok in zip(self.clips, (self.predictions == self.labels).tolist()):
            hits[key(clip)].append(ok)
        return {k: sum(v) / len(v) for k, v in sorted(hits.items())}

    def per_speaker(self) -> dict[str, float]:
        return self.accuracy_by(lambda c: c.speaker)

    def per_digit(self) -> dict[int, float]:
        return self.accuracy_by(lambda c: c.digit)

    def confusion(self, n_classes: int = 10) -> torch.Tensor:
        cm = torch.zeros(n_classes, n_classes, dtype=torch.long)
        cm.index_put_((self.labels, self.predictions), torch.ones(len(self.clips), dtype=torch.long), accumulate=True)
        return cm

    def worst(self, n: int = 10) -> list[dict]:
        """Misclassified clips, most confidently wrong first."""
        true_p = self.probs[torch.arange(len(self.clips)), self.labels]
        wrong = (self.predictions != self.labels).nonzero().flatten().tolist()
        wrong.sort(key=lambda i: true_p[i].item())
        return [
            {"path": str(self.clips[i].path), "speaker": self.clips[i].speaker, "digit": self.clips[i].digit,
             "predicted": int(self.predictions[i]), "confidence": float(self.probs[i].max()), "p_true": float(true_p[i])}
            for i in wrong[:n]
        ]

    def summary(self) -> dict:
        per_speaker = self.per_speaker()
        return {
            "accuracy": self.accuracy,
            "clips": len(self.clips),
            "worst_speaker": min(per_speaker.items(), key=lambda kv: kv[1]) if per_speaker else None,
            "per_speaker": per_speaker,
            "per_digit": self.per_digit(),
        }


def evaluate(bundle: ModelBundle, clips: list[Clip]) -> Evaluation:
    feats, clips = clip_features(clips, bundle.frontend, desc="features (eval)")
    return Evaluation(clips, predict_features(bundle.model, feats))


def plot_confusion(cm: torch.Tensor, path: Path, title: str = "") -> Path:
    plt = pyplot()

    n = cm.shape[0]
    rates = cm.float() / cm.sum(1, keepdim=True).clamp_min(1)
    fig, ax = plt.subplots(figsize=(6, 5.2))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("spoken digit")
    acc = cm.diag().sum().item() / max(1, cm.sum().item())
    ax.set_title(f"{title} accuracy {acc:.1%}".strip())
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of spoken digit")
    return save_figure(fig, path, dpi=120)
