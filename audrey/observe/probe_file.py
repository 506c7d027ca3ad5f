"""The probe file, `<model>.probes.safetensors`: digit probes for every layer, fitted on all the
probe data, that `listen --observe` reads the model with (format `audrey-probes/1`: per layer i,
tensors `i.mean`, `i.std`, `i.weight`, `i.bias`; metadata: target, classes, layers, pooling bins,
the model's digest and each layer's cross-validated accuracy)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save

from audrey.atomic import atomic_write_bytes
from audrey.data.corpora import Clip
from audrey.errors import AudreyError
from audrey.models.modelfile import derived_path, found_companion, model_digest, open_format
from audrey.observe.activations import FREQ_BINS, TIME_BINS, activation_sizes, capture
from audrey.observe.probe_targets import class_order, label_of, target_problem
from audrey.observe.probes import L2, LinearProbe, fit_probe
from audrey.observe.probing import ProbeReport
from audrey.schema import bounded, from_fields, parse_json, shown

PROBES_FORMAT = "audrey-probes/1"
PROBES_SUFFIX = ".probes.safetensors"
REMEDY = "make it again with `audrey probe --model <model> --data <corpus>`"


def probes_path(model_path: str | Path) -> Path:
    """Where `audrey probe` writes the probes of `model_path` by default: models/mine.safetensors ->
    models/mine.probes.safetensors; a shipped model's go to the user's folder (modelfile.derived_path)."""
    return derived_path(model_path, PROBES_SUFFIX)


def find_probes(model_path: str | Path) -> Path:
    """Where `listen --observe` looks for the probes of `model_path`: the ones `audrey probe` wrote,
    else the ones beside the model (modelfile.found_companion)."""
    return found_companion(model_path, PROBES_SUFFIX)


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
    path: Path | None = None  # the file it was read from, for errors

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
        """The probe file at `path`, checked: metadata fields typed and bounded (ProbeFileMeta), each
        layer's four tensors float32 with shapes that agree ((D,), (D,), (D, classes), (classes,)),
        a positive std, no NaN or infinity (but -inf in a bias: a class the probe never saw).
        Against a model: `check_model`."""
        file = open_format(path, PROBES_FORMAT, "probe file", REMEDY)
        meta = file.metadata
        where = f"{file.path}: probe metadata"
        fields = {"target": meta.get("target"), "model_digest": meta.get("model_digest", "")}
        for key in ("classes", "layers", "time_bins", "freq_bins"):
            fields[key] = parse_json(meta.get(key), f"{file.path}: {key}", REMEDY)
        info = from_fields(ProbeFileMeta, fields, where, REMEDY)
        accuracy = parse_json(meta.get("accuracy", "{}"), f"{file.path}: accuracy", REMEDY)
        if not isinstance(accuracy, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in accuracy.values()):
            raise file.error(f"accuracy is {shown(accuracy)}; expected a table of layer -> accuracy from 0 to 1")
        n = len(info.classes)
        expected = {}
        for i in range(len(info.layers)):
            dim = file.entries[f"{i}.mean"].shape if f"{i}.mean" in file.entries else ()
            d = dim[0] if len(dim) == 1 else 0
            expected.update({f"{i}.mean": ("F32", (d,)), f"{i}.std": ("F32", (d,)), f"{i}.weight": ("F32", (d, n)),
                             f"{i}.bias": ("F32", (n,))})
        file.check_layout(expected, f"tensors do not fit the {len(info.layers)} layers and {n} classes it names")
        tensors = file.tensors(minus_inf_ok={f"{i}.bias" for i in range(len(info.layers))})
        probes = {}
        for i, name in enumerate(info.layers):
            if not bool((tensors[f"{i}.std"] > 0).all()):
                raise file.error(f"tensor {i}.std (layer {name}) is not positive throughout")
            if bool((tensors[f"{i}.bias"] == -math.inf).all()):
                raise file.error(f"tensor {i}.bias (layer {name}) is -inf throughout: the probe can predict no class")
            probes[name] = LinearProbe(*(tensors[f"{i}.{part}"] for part in ("mean", "std", "weight", "bias")))
        return cls(info.target, list(info.classes), probes, info.time_bins, info.freq_bins, info.model_digest,
                   {str(k): float(v) for k, v in accuracy.items()}, path=file.path)

    def check_model(self, bundle, model_path: str | Path) -> None:
        """These probes read `bundle`'s model: fitted for it (its weights' digest), each layer one of
        its hook points, each probe as wide as that layer's pooled activation (one silent clip through
        the model: the mismatch is found now, not on the first utterance)."""
        where = self.path or "probe file"
        if self.model_digest and self.model_digest != model_digest(bundle.model):
            raise AudreyError(f"{where}: probes were fitted for another model; run `audrey probe --model {model_path} ...` again")
        hooks = bundle.model.hook_names()
        unknown = [name for name in self.layers if name not in hooks]
        if unknown:
            raise AudreyError(f"{where}: layer {shown(unknown[0])} is not a hook point of {model_path}; {REMEDY}")
        sizes = activation_sizes(bundle.model, bundle.frontend, self.layers, self.time_bins, self.freq_bins)
        for i, (name, probe) in enumerate(self.probes.items()):
            if probe.mean.shape[0] != sizes[name]:
                raise AudreyError(f"{where}: tensor {i}.mean (layer {name}) has {probe.mean.shape[0]} features; "
                                  f"{model_path} gives {sizes[name]} there with {self.time_bins} time and "
                                  f"{self.freq_bins} frequency bins; {REMEDY}")


@dataclass(frozen=True)
class ProbeFileMeta:
    """A probe file's metadata, as audrey.schema checks it."""

    target: str = bounded("digit", 1, 32)
    classes: tuple[str, ...] = bounded(("0",), 1, 64, items=(1, 1000))
    layers: tuple[str, ...] = bounded(("hook_input",), 1, 200, items=(1, 256))
    time_bins: int = bounded(TIME_BINS, 1, 64)
    freq_bins: int = bounded(FREQ_BINS, 1, 64)
    model_digest: str = bounded("", 0, 64)

    def inconsistency(self) -> str | None:
        if len(set(self.layers)) != len(self.layers):
            return "field layers names a layer twice"
        if len(set(self.classes)) != len(self.classes):
            return "field classes names a class twice"
        return None


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
