"""The digit model with its frontend: waveform in, digit probabilities out (`Recognizer`).

`audrey predict` calls it as it is. `audrey listen` and `audrey transcribe` go through the Judge
(audrey.live.judge), which builds its one forward pass on the same frontend and model and adds
the rejection's detector and phone recogniser to it: the same digit probabilities, plus what
decides "not a digit".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audrey.audio import gate, waveform
from audrey.errors import AudreyError
from audrey.audio.frontend import LogMel, prepare, prepared_batch
from audrey.models.modelfile import ModelBundle
from audrey.models.personal_file import load_bundle


@dataclass
class Prediction:
    digit: int
    confidence: float
    top3: list[tuple[int, float]]
    probs: list[float]

    def to_dict(self) -> dict:
        return {"digit": self.digit, "confidence": round(self.confidence, 4),
                "top3": [{"digit": d, "p": round(p, 4)} for d, p in self.top3]}


class FeaturesToProbs(torch.nn.Module):
    """Frontend and model as one module, so it can be traced and frozen as a whole."""

    def __init__(self, frontend: LogMel, model: torch.nn.Module):
        super().__init__()
        self.frontend, self.model = frontend, model

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.model(self.frontend(wave)).softmax(-1)


def frozen(module: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """TorchScript-trace and freeze for inference: folds BatchNorm into the convolutions and drops
    Python overhead per layer; at batch 1 that more than halves the latency on a CPU.
    Hook points are Python-side, so observability code uses the eager model instead."""
    import warnings

    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        return torch.jit.freeze(torch.jit.trace(module.eval(), example))


class Recognizer:
    def __init__(self, bundle: ModelBundle, fast: bool = True):
        self.bundle = bundle
        self.frontend = LogMel(bundle.frontend)
        self.model = bundle.model.eval()
        self.pipeline = FeaturesToProbs(self.frontend, self.model).eval()
        if fast:
            self.pipeline = frozen(self.pipeline, torch.zeros(1, bundle.frontend.clip_samples))

    @classmethod
    def from_file(cls, path: str | Path, weights: str | Path | None = None) -> "Recognizer":
        """The model file, with personal weights (`audrey personalize`) applied when given."""
        return cls(load_bundle(Path(path), Path(weights) if weights else None))

    @property
    def sample_rate(self) -> int:
        return self.bundle.frontend.sample_rate

    def prepare(self, wave: np.ndarray) -> np.ndarray:
        return prepare(wave, self.bundle.frontend)

    @torch.inference_mode()
    def probabilities(self, waves: list[np.ndarray]) -> torch.Tensor:
        """Class probabilities for single-digit waveforms at the model's rate (trimmed here)."""
        return self.pipeline(prepared_batch(waves, self.bundle.frontend))

    def predict(self, waves: list[np.ndarray]) -> list[Prediction]:
        out = []
        for p in self.probabilities(waves):
            top = torch.topk(p, 3)
            out.append(Prediction(int(top.indices[0]), float(top.values[0]),
                                  [(int(i), float(v)) for i, v in zip(top.indices, top.values)], p.tolist()))
        return out

    def predict_files(self, paths: list[Path]) -> list[Prediction]:
        """Clips known to hold a digit (the corpus's own); the first unreadable one raises."""
        if not paths:
            raise AudreyError("no audio files given")
        waves = [waveform.load_audio(p, self.sample_rate, max_seconds=waveform.MAX_CLIP_FILE_SECONDS) for p in paths]
        return self.predict(waves)

    def read_each(self, paths: list[Path]) -> list[np.ndarray | AudreyError]:
        """`audrey predict`'s input: per file, its waveform at the model's rate, or the error that
        says why it holds no digit (not readable audio, too little audio, no speech in it). One bad
        file does not cost the others theirs."""
        if not paths:
            raise AudreyError("no audio files given")
        out: list[np.ndarray | AudreyError] = []
        for path in paths:
            try:
                wave = waveform.load_audio(path, self.sample_rate, max_seconds=waveform.MAX_CLIP_FILE_SECONDS)
                problem = gate.speech_problem(wave, self.sample_rate)
                out.append(AudreyError(f"{path}: {problem}") if problem else wave)
            except AudreyError as exc:
                out.append(exc)
        return out
