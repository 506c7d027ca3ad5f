"""Out-of-distribution score: how unlike the model's training digits an input is, read from the
penultimate activations (`head.hook_embed`).

The score is the squared Mahalanobis distance from a clip's embedding to the nearest class mean,
with one covariance shared by all classes (Lee et al., 2018, "A simple unified framework for
detecting out-of-distribution samples and adversarial attacks"; audrey.observe.mahalanobis). The
means and the covariance are fitted on clips the model was trained on; the covariance is shrunk
towards a scaled identity (`shrinkage`) so that a few hundred clips in 128 dimensions still give a
stable inverse.

The threshold that flags a clip is the `quantile` (99% by default) of the scores of speakers held
out of the fit (when the fit data has at least three speakers; otherwise of the fit clips
themselves, which is optimistic and recorded as such).

Stored without pickle beside the model as `<model>.ood.safetensors`: means and precision matrix as
tensors; threshold, layer and a digest of the model's weights as JSON metadata, so statistics are
never applied to a model they were not fitted for.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from audrey.atomic import atomic_write_bytes
from audrey.audio.frontend import features
from audrey.data.features import clip_features
from audrey.errors import AudreyError
from audrey.models.modelfile import derived_path, found_companion, model_digest, open_format
from audrey.observe.activations import activation_sizes
from audrey.observe.mahalanobis import SHRINKAGE, class_statistics, squared_distances
from audrey.schema import bounded, from_fields, parse_json, shown

FORMAT = "audrey-ood/1"
SUFFIX = ".ood.safetensors"
LAYER = "head.hook_embed"
QUANTILE = 0.99
HOLD_OUT_FRACTION = 0.25  # share of the fit speakers held out to set the threshold
MAX_CLASSES = 10  # one per digit
REMEDY = "make it again with `audrey ood-fit` (delete a damaged one first)"


def sidecar_path(model_path: str | Path) -> Path:
    """Where `audrey ood-fit` writes the statistics of `model_path` by default: models/mine.safetensors
    -> models/mine.ood.safetensors; a shipped model's go to the user's folder (modelfile.derived_path)."""
    return derived_path(model_path, SUFFIX)


def find_stats(model_path: str | Path) -> Path:
    """Where the statistics of `model_path` are read from by default: the ones `audrey ood-fit`
    wrote, else the ones beside the model (modelfile.found_companion)."""
    return found_companion(model_path, SUFFIX)


@torch.no_grad()
def embeddings(model, feats: torch.Tensor, layer: str = LAYER, batch: int = 256) -> torch.Tensor:
    """(N, D) activations at `layer` (a (batch, D) hook point) for (N, mels, frames) features."""
    model.eval()
    out = []
    for i in range(0, len(feats), batch):
        _, cache = model.run_with_cache(feats[i : i + batch], [layer])
        out.append(cache[layer].reshape(len(feats[i : i + batch]), -1).float())
    return torch.cat(out)


@dataclass
class OODStats:
    means: torch.Tensor  # (C, D)
    precision: torch.Tensor  # (D, D)
    threshold: float  # scores above this are flagged
    layer: str = LAYER
    model_digest: str = ""
    info: dict = field(default_factory=dict)  # how it was fitted: clips, speakers, shrinkage, quantile, ...
    path: Path | None = None  # the file it was read from, for errors

    def scores(self, embeds: torch.Tensor) -> torch.Tensor:
        """(N,) squared Mahalanobis distance to the nearest class mean: higher = less like training."""
        return squared_distances(embeds.float(), self.means, self.precision).min(dim=1).values

    def score_features(self, model, feats: torch.Tensor) -> torch.Tensor:
        return self.scores(embeddings(model, feats, self.layer))

    def describe(self, score: float) -> dict:
        return {"score": round(float(score), 2), "threshold": round(self.threshold, 2), "flagged": bool(score > self.threshold)}

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save


        meta = {"format": FORMAT, "layer": self.layer, "threshold": repr(float(self.threshold)),
                "model_digest": self.model_digest, "info": json.dumps(self.info)}
        blob = save({"means": self.means.contiguous(), "precision": self.precision.contiguous()}, metadata=meta)
        return atomic_write_bytes(Path(path), blob)

    @classmethod
    def load(cls, path: str | Path) -> "OODStats":
        """The statistics at `path`, checked: metadata typed and bounded (OODFileMeta), means (C, D)
        and precision (D, D) float32 and finite. Against a model: `check_model`."""
        file = open_format(path, FORMAT, "OOD statistics file", REMEDY)
        meta = file.metadata
        fields = {"layer": meta.get("layer", LAYER), "model_digest": meta.get("model_digest", ""),
                  "threshold": parse_json(meta.get("threshold"), f"{file.path}: threshold", REMEDY)}
        checked = from_fields(OODFileMeta, fields, f"{file.path}: OOD metadata", REMEDY)
        info = parse_json(meta.get("info", "{}"), f"{file.path}: info", REMEDY)
        if not isinstance(info, dict):
            raise file.error(f"info is {shown(info)}, not a JSON object")
        shape = file.entries["means"].shape if "means" in file.entries else ()
        c, d = shape if len(shape) == 2 and 1 <= shape[0] <= MAX_CLASSES and shape[1] >= 1 else (0, 0)
        file.check_layout({"means": ("F32", (c, d)), "precision": ("F32", (d, d))},
                          f"tensors are not class means (at most {MAX_CLASSES} classes) and their precision matrix")
        tensors = file.tensors()
        return cls(tensors["means"], tensors["precision"], checked.threshold, checked.layer, checked.model_digest, info,
                   path=file.path)

    def check_model(self, model, where: str | Path, frontend=None) -> None:
        """These statistics describe `model`: fitted for it (its weights' digest), on one of its hook
        points; with its `frontend`, also as wide as that layer's activation (one silent clip through
        the model: the mismatch is found now, not on the first utterance)."""
        if self.model_digest and self.model_digest != model_digest(model):
            raise AudreyError(f"{where}: OOD statistics were fitted for another model; run "
                              "`audrey ood-fit --model <this model>` again (or delete the file)")
        if self.layer not in model.hook_names():
            raise AudreyError(f"{where}: layer {shown(self.layer)} is not a hook point of this model; {REMEDY}")
        if frontend is not None:
            size = activation_sizes(model, frontend, [self.layer])[self.layer]
            if size != self.means.shape[1]:
                raise AudreyError(f"{where}: tensor means has {self.means.shape[1]} features per class; the model's "
                                  f"{self.layer} has {size}; {REMEDY}")


@dataclass(frozen=True)
class OODFileMeta:
    """An OOD statistics file's metadata, as audrey.schema checks it."""

    layer: str = bounded(LAYER, 1, 200)
    model_digest: str = bounded("", 0, 64)
    threshold: float = bounded(0.0, -1e12, 1e12)


def fit_ood(model, feats: torch.Tensor, labels: torch.Tensor, speakers: list[str] | None = None,
            shrinkage: float = SHRINKAGE, quantile: float = QUANTILE, seed: int = 0) -> OODStats:
    """Class means and shared covariance on every fit clip; the threshold from held-out speakers."""
    if len(feats) != len(labels):
        raise AudreyError(f"{len(feats)} feature rows but {len(labels)} labels")
    if len(set(labels.tolist())) < 2:
        raise AudreyError("OOD statistics need clips of at least two digits; pass --data with a labelled corpus")
    if not 0.5 <= quantile < 1:
        raise AudreyError(f"quantile {quantile}: expected 0.5 <= quantile < 1")
    embeds = embeddings(model, feats)
    means, precision, classes = class_statistics(embeds, labels, shrinkage)
    info = {"clips": len(feats), "classes": classes, "shrinkage": shrinkage, "quantile": quantile, "dim": embeds.shape[1]}
    spk = sorted(set(speakers)) if speakers is not None else []
    held = set()
    if len(spk) >= 3:
        held = set(random.Random(seed).sample(spk, max(1, round(HOLD_OUT_FRACTION * len(spk)))))
        mask = torch.tensor([s in held for s in speakers])
        if len(set(labels[~mask].tolist())) == len(classes):
            m, p, _ = class_statistics(embeds[~mask], labels[~mask], shrinkage)
            held_scores = squared_distances(embeds[mask].float(), m, p).min(dim=1).values
            info["threshold_from"] = f"{int(mask.sum())} clips of {len(held)} speakers held out of the fit"
        else:
            held = set()
    if not held:
        held_scores = squared_distances(embeds.float(), means, precision).min(dim=1).values
        info["threshold_from"] = "the fit clips themselves (fewer than 3 speakers: optimistic)"
    threshold = float(torch.quantile(held_scores, quantile))
    return OODStats(means, precision, threshold, LAYER, model_digest(model), info)


def fit_from_clips(bundle, clips, **kw) -> OODStats:

    feats, clips = clip_features(clips, bundle.frontend, desc="features (OOD fit)")
    stats = fit_ood(bundle.model, feats, torch.tensor([c.digit for c in clips]), [c.speaker for c in clips], **kw)
    stats.info["speakers"] = len({c.speaker for c in clips})
    stats.info["sources"] = sorted({c.source for c in clips})
    return stats


def load_for(model_path: str | Path, bundle, path: str | Path | None = None, required: bool = False) -> OODStats | None:
    """The OOD statistics found for `model_path` (find_stats, or at `path`), checked against the
    model of `bundle`; None when there are none and none were asked for."""
    path = Path(path) if path else find_stats(model_path)
    if not path.exists():
        if required:
            raise AudreyError(f"{path}: no OOD statistics for {model_path}; make them with "
                              f"`audrey ood-fit --model {model_path} --data <its training corpora>`")
        return None
    stats = OODStats.load(path)
    stats.check_model(bundle.model, path, bundle.frontend)
    return stats


def score_waves(bundle, stats: OODStats, waves: list[np.ndarray]) -> torch.Tensor:
    """OOD scores of single-digit waveforms at the model's rate (prepared here, as the recognizer does)."""
    feats = features(waves, bundle.frontend)
    return stats.score_features(bundle.model, feats)


def score_clips(model_path: Path, bundle, waves: list, required: bool = False) -> list[dict] | None:
    """{"score", "threshold", "flagged"} per single-digit waveform at the model's rate (what
    `audrey predict` has already read); None when the model has no OOD statistics (an error
    instead when `required`)."""
    stats = load_for(model_path, bundle, required=required)
    if stats is None:
        return None
    return [stats.describe(s) for s in score_waves(bundle, stats, waves).tolist()]
