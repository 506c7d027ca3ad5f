"""The live observer behind `listen --observe`: per utterance, what each layer's digit probe reads
(a logit lens) and the OOD score, from one forward pass with a cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audrey.audio.frontend import features
from audrey.errors import AudreyError
from audrey.models.modelfile import load_model
from audrey.observe.activations import pool, short_layer
from audrey.observe.ood import load_for
from audrey.observe.probe_file import ProbeSet, find_probes


@dataclass
class LayerReading:
    layer: str
    label: str  # the probe's top class
    p: float
    agrees: bool  # with the model's own answer


@dataclass
class Observation:
    digit: int  # the model's answer
    confidence: float
    layers: list[LayerReading]
    reads_from: str | None  # first layer from which every probe agrees with the answer
    ood: dict | None  # {"score", "threshold", "flagged"}

    def to_dict(self) -> dict:
        return {"digit": self.digit, "confidence": round(self.confidence, 4), "reads_from": self.reads_from,
                "lens": [{"layer": r.layer, "reads": r.label, "p": round(r.p, 3), "agrees": r.agrees} for r in self.layers],
                "ood": self.ood}

    def line(self) -> str:
        """One line for people: `lens input 3 .21 | b0 8 .30 | ... reads from b3; OOD 41.2 (ok, < 180.0)`."""
        parts = [f"{short_layer(r.layer)} {r.label}{'*' if r.agrees else ''} {r.p:.2f}" for r in self.layers]
        text = "lens " + " | ".join(parts) if parts else "lens -"
        text += f"; reads from {short_layer(self.reads_from) if self.reads_from else 'no layer'}"
        if self.ood:
            state = "OUT OF DISTRIBUTION" if self.ood["flagged"] else "ok"
            text += f"; OOD {self.ood['score']:.1f} ({state}, threshold {self.ood['threshold']:.1f})"
        return text


class Observer:
    """Reads a model while it recognises: per layer, what the digit probes say (a logit lens), and
    the OOD score, all from one forward pass with a cache."""

    def __init__(self, bundle, probes: ProbeSet | None = None, ood=None):
        if probes is None and ood is None:
            raise AudreyError("nothing to observe: neither probes nor OOD statistics were given")
        self.bundle, self.probes, self.ood = bundle, probes, ood
        self.model = bundle.model.eval()
        names = list(probes.layers) if probes else []
        if ood is not None and ood.layer not in names:
            names.append(ood.layer)
        missing = [n for n in names if n not in self.model.hook_names()]
        if missing:
            raise AudreyError(f"probe/OOD layer(s) {', '.join(missing)} are not hook points of this model")
        self.names = names

    @classmethod
    def from_file(cls, model_path: str | Path, probes: str | Path | None = None, ood: str | Path | None = None) -> "Observer":
        """The model, and the probe and OOD files found for it (probe_file.find_probes,
        ood.find_stats) or at the paths given; at least one must exist. Both are read and checked
        against the model here, when the session is set up, so a bad one fails before listening."""
        model_path = Path(model_path)
        bundle, _ = load_model(model_path)
        ppath = Path(probes) if probes else find_probes(model_path)
        probe_set = None
        if ppath.exists():
            probe_set = ProbeSet.load(ppath)
            probe_set.check_model(bundle, model_path)
        elif probes:
            raise AudreyError(f"{ppath}: no such probe file")
        stats = load_for(model_path, bundle, ood, required=bool(ood))
        if probe_set is None and stats is None:
            raise AudreyError(f"nothing to observe for {model_path}: make probes with `audrey probe --model {model_path} "
                              f"--data <corpus>` and/or OOD statistics with `audrey ood-fit --model {model_path}`")
        return cls(bundle, probe_set, stats)

    @torch.no_grad()
    def observe_features(self, feats: torch.Tensor) -> list[Observation]:
        """(N, mels, frames) or (mels, frames) log-mel features -> one Observation per clip."""
        if feats.dim() == 2:
            feats = feats[None]
        logits, cache = self.model.run_with_cache(feats, self.names)
        probs = logits.softmax(-1)
        answer = probs.argmax(-1)
        labels = self.bundle.labels
        readings: list[list[LayerReading]] = [[] for _ in range(len(feats))]
        if self.probes:
            for name, probe in self.probes.probes.items():
                pp = probe.logits(pool(self.model, name, cache[name], self.probes.time_bins, self.probes.freq_bins)).softmax(-1)
                top = pp.argmax(-1)
                for i in range(len(feats)):
                    label = self.probes.classes[int(top[i])]
                    readings[i].append(LayerReading(name, label, float(pp[i, top[i]]), label == labels[int(answer[i])]))
        scores = self.ood.scores(cache[self.ood.layer].reshape(len(feats), -1)) if self.ood else None
        out = []
        for i in range(len(feats)):
            reads_from = None
            for j in range(len(readings[i]) - 1, -1, -1):
                if not readings[i][j].agrees:
                    break
                reads_from = readings[i][j].layer
            out.append(Observation(int(answer[i]), float(probs[i, answer[i]]), readings[i], reads_from,
                                   self.ood.describe(float(scores[i])) if scores is not None else None))
        return out

    def observe_wave(self, wave: np.ndarray, rate: int | None = None) -> Observation:
        """One utterance (any length up to a few seconds; at `rate`, default the model's): resampled,
        trimmed and centred like every clip, then observed."""
        feats = features([wave], self.bundle.frontend, rate)
        return self.observe_features(feats)[0]
