"""The rejection calibration file, `<model>.reject.safetensors` beside the model, stored without
pickle: detector and phone recogniser weights, class means and precision matrix as tensors;
thresholds, temperature, both networks' architectures, the phone inventory and each digit's
pronunciations (so listening needs no espeak-ng) and the calibration report as JSON metadata; and
a digest of the digit model's weights, so a calibration is never applied to a model it was not
made for. Neither network depends on the digit model: `audrey calibrate --detector
OTHER.reject.safetensors` re-uses both and only recalibrates the thresholds (under a minute instead
of most of an hour on two cores, e.g. for personal weights). Made by audrey.live.calibrate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from audrey.errors import AudreyError
from audrey.live.thresholds import BACKING, MAX_SECONDS, MIN_SECONDS, SCORES
from audrey.models.modelfile import companion_path
from audrey.observe.mahalanobis import squared_distances

FORMAT = "audrey-reject/1"
SUFFIX = ".reject.safetensors"


@dataclass
class Calibration:
    means: torch.Tensor  # (10, D) class means of the embedding
    precision: torch.Tensor  # (D, D) inverse of the shared, shrunk covariance
    detector: torch.nn.Module | None
    phones: torch.nn.Module | None = None  # phones.PhoneNet
    pronunciations: list | None = None  # each digit's phone strings, fixed at calibration (no espeak-ng at listen time)
    temperature: float = 1.0
    min_p_digit: float = 0.0
    min_phone_match: float = -float("inf")
    sure_phone_match: float = -float("inf")  # below this (and above min_phone_match) the detector must back the digit
    min_confidence: float = 0.0
    max_distance: float = float("inf")
    min_seconds: float = MIN_SECONDS
    max_seconds: float = MAX_SECONDS
    model_digest: str = ""
    frontend_key: str = ""
    report: dict = field(default_factory=dict)

    def distances(self, embed: torch.Tensor) -> torch.Tensor:
        """(N,) Mahalanobis distance of (N, D) embeddings to the nearest class mean."""
        d2 = squared_distances(embed.double(), self.means.double(), self.precision.double())
        return d2.clamp_min(0).min(dim=1).values.sqrt().float()

    def thresholds(self) -> dict:
        return {"temperature": self.temperature, "min_p_digit": self.min_p_digit, "min_phone_match": self.min_phone_match,
                "sure_phone_match": self.sure_phone_match, "min_confidence": self.min_confidence,
                "max_distance": self.max_distance, "min_seconds": self.min_seconds, "max_seconds": self.max_seconds}

    def loosen(self, thresholds: dict[str, float]) -> None:
        """For each thresholded test, the looser of its own threshold and `thresholds`' (fitted to one
        voice by voice_fit.fit_to_voice): a voice can widen what passes, never narrow it."""
        for name, higher in (*SCORES.values(), BACKING):
            if name in thresholds:
                mine, theirs = getattr(self, name), float(thresholds[name])
                setattr(self, name, min(mine, theirs) if higher else max(mine, theirs))

    def save(self, path: Path) -> Path:
        from safetensors.torch import save

        from audrey.atomic import atomic_write_bytes
        from audrey.models import config_dict

        meta = {"format": FORMAT, "model_digest": self.model_digest, "frontend_key": self.frontend_key,
                "thresholds": json.dumps(self.thresholds()), "report": json.dumps(self.report)}
        tensors = {"means": self.means.float().contiguous(), "precision": self.precision.float().contiguous()}
        if self.detector is not None:
            meta["detector_config"] = json.dumps(config_dict(self.detector))
            tensors.update({f"detector.{k}": v.detach().contiguous() for k, v in self.detector.state_dict().items()})
        if self.phones is not None:
            meta["phone_config"] = json.dumps({**self.phones.config, "pronunciations": self.pronunciations})
            tensors.update({f"phones.{k}": v.detach().contiguous() for k, v in self.phones.state_dict().items()})
        return atomic_write_bytes(Path(path), save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: Path) -> "Calibration":
        from audrey.models.modelfile import read_safetensors
        from audrey.models import build_model

        path = Path(path)
        redo = "delete it and run `audrey calibrate`"
        meta, tensors = read_safetensors(path, FORMAT, "rejection calibration", f"make one with `audrey calibrate` ({redo} if it is damaged)")
        try:
            t = json.loads(meta["thresholds"])
            detector = None
            if "detector_config" in meta:
                detector = build_model("cnn", **json.loads(meta["detector_config"]))
                detector.load_state_dict({k[len("detector."):]: v for k, v in tensors.items() if k.startswith("detector.")})
                detector.eval()
            phones, prons = None, None
            if "phone_config" in meta:
                from audrey.models.phones import build_phone_model

                config = json.loads(meta["phone_config"])
                prons = [[tuple(p) for p in d] for d in config.pop("pronunciations")]
                phones = build_phone_model(config)
                phones.load_state_dict({k[len("phones."):]: v for k, v in tensors.items() if k.startswith("phones.")})
                phones.eval()
            return cls(tensors["means"], tensors["precision"], detector, phones, prons, **{k: float(v) for k, v in t.items()},
                       model_digest=meta.get("model_digest", ""), frontend_key=meta.get("frontend_key", ""),
                       report=json.loads(meta.get("report", "{}")))
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise AudreyError(f"{path}: damaged rejection calibration ({str(exc).splitlines()[0]}); {redo}") from None


def sidecar_path(model_path: Path) -> Path:
    """models/starter.safetensors -> models/starter.reject.safetensors"""
    return companion_path(model_path, SUFFIX)
