"""The probe file, `<model>.probes.safetensors`: digit probes for every layer, fitted on all the
probe data, that `listen --observe` reads the model with (format `audrey-probes/1`: per layer i,
tensors `i.mean`, `i.std`, `i.weight`, `i.bias`; metadata: target, classes, layers, pooling bins,
the model's digest and each layer's cross-validated accuracy)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save

from audrey.atomic import atomic_write_bytes
from audrey.data.corpora import Clip
from audrey.errors import AudreyError
from audrey.models.modelfile import companion_path, model_digest, read_safetensors
from audrey.observe.activations import FREQ_BINS, TIME_BINS, capture
from audrey.observe.probe_targets import class_order, label_of, target_problem
from audrey.observe.probes import L2, LinearProbe, fit_probe
from audrey.observe.probing import ProbeReport

PROBES_FORMAT = "audrey-probes/1"
PROBES_SUFFIX = ".probes.safetensors"


def probes_path(model_path: str | Path) -> Path:
    """models/starter.safetensors -> models/starter.probes.safetensors"""
    return companion_path(model_path, PROBES_SUFFIX)


@dataclass
class ProbeSet:
    """Digit probes for every layer, fitted on all the probe data, to read a model live."""

    target: str
    classes: list[str]
    probes: dict[str, LinearProbe]
    time_bins: int = TIME_BINS
    freq_bins: int = FREQ_BINS
    model_digest: str = ""
    accuracy: dict[str, float] = field(default_factory=dict)  # cross-validated, from the report

    @property
    def layers(self) -> list[str]:
        return list(self.probes)

    def save(self, path: str | Path) -> Path:
        tensors = {}
        for i, (name, p) in enumerate(self.probes.items()):
            for part in ("mean", "std", "weight", "bias"):
                tensors[f"{i}.{part}"] = getattr(p, part).contiguous()
        meta = {"format": PROBES_FORMAT, "target": self.target, "classes": json.dumps(self.classes),
                "layers": json.dumps(self.layers), "time_bins": str(self.time_bins), "freq_bins": str(self.freq_bins),
                "model_digest": self.model_digest, "accuracy": json.dumps(self.accuracy)}
        return atomic_write_bytes(Path(path), save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> "ProbeSet":
        meta, tensors = read_safetensors(path, PROBES_FORMAT, "probe file",
                                         "make one with `audrey probe --model <model> --data <corpus>`")
        try:
            layers = json.loads(meta["layers"])
            probes = {name: LinearProbe(*(tensors[f"{i}.{part}"] for part in ("mean", "std", "weight", "bias")))
                      for i, name in enumerate(layers)}
            return cls(meta["target"], json.loads(meta["classes"]), probes, int(meta["time_bins"]),
                       int(meta["freq_bins"]), meta.get("model_digest", ""), json.loads(meta.get("accuracy", "{}")))
        except (KeyError, ValueError) as exc:
            raise AudreyError(f"{path}: damaged probe file ({exc}); run `audrey probe` again") from None


def fit_probe_set(model, feats: torch.Tensor, clips: list[Clip], target: str = "digit", report: ProbeReport | None = None,
                  time_bins: int = TIME_BINS, freq_bins: int = FREQ_BINS, l2: float = L2,
                  activations: dict[str, torch.Tensor] | None = None) -> ProbeSet:
    """Probes for `target` on every layer, fitted on all the clips (the report holds their held-out accuracy)."""
    problem = target_problem(clips, target)
    if problem:
        raise AudreyError(f"cannot fit {target} probes: {problem}")
    acts = activations if activations is not None else capture(model, feats, None, time_bins, freq_bins)
    labels = [label_of(c, target) for c in clips]
    keep = torch.tensor([v is not None for v in labels])
    classes = class_order(labels)
    y = torch.tensor([classes.index(v) for v in labels if v is not None])
    probes = {name: fit_probe(x[keep], y, len(classes), l2) for name, x in acts.items()}
    acc = {r.layer: round(r.acc, 4) for r in report.for_target(target)} if report else {}
    return ProbeSet(target, classes, probes, time_bins, freq_bins, model_digest(model), acc)
