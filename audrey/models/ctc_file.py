"""The digit-string model's file: safetensors weights plus JSON metadata (config, frontend, tokens).

Its own format (`audrey-ctc/1`), not the classifier's: it outputs frames of tokens, not one digit,
so no command that expects a classifier may load it by mistake. Read like every Audrey file:
bounded header first (safe_file), metadata through audrey.schema, tensor shapes checked against
the architecture built on the meta device, NaN refused, and nothing executed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from audrey.atomic import atomic_write_bytes
from audrey.audio import waveform
from audrey.audio.frontend import FrontendConfig, LogMel
from audrey.models.ctc import SUBSAMPLE, TOKENS, CTCConfig, CTCModel
from audrey.models.ctc_decode import Token, constrained, greedy
from audrey.models.modelfile import SHIPPED_MODELS, code_version, open_format
from audrey.models.safe_file import layout_of
from audrey.schema import from_fields, parse_json, shown

FORMAT = "audrey-ctc/1"
SHIPPED_CTC = SHIPPED_MODELS / "digits.ctc.safetensors"  # `transcribe --engine ctc` reads it by default
REMEDY = "train it again with `python benchmarks/strings_ctc.py`"


@dataclass
class CTCBundle:
    model: CTCModel
    frontend: FrontendConfig
    provenance: dict = field(default_factory=dict)

    @property
    def frame_seconds(self) -> float:
        """Seconds per output frame."""
        return SUBSAMPLE * self.frontend.hop_length / self.frontend.sample_rate

    @torch.inference_mode()
    def log_probs(self, wave: np.ndarray, rate: int) -> torch.Tensor:
        """(frames, tokens) log-probabilities of a whole recording at `rate` (any length)."""
        wave = waveform.resample(np.asarray(wave, np.float32).reshape(-1), rate, self.frontend.sample_rate)
        if len(wave) < self.frontend.n_fft:
            wave = np.pad(wave, (0, self.frontend.n_fft - len(wave)))
        feats = LogMel(self.frontend)(torch.from_numpy(wave)[None])
        return self.model(feats)[0]

    def decode(self, wave: np.ndarray, rate: int, digits: int | None = None) -> list[Token]:
        """The tokens said in a recording, with times and confidences; with `digits`, exactly that many digits."""
        lp = self.log_probs(wave, rate)
        return greedy(lp, self.frame_seconds) if digits is None else constrained(lp, self.frame_seconds, digits)


def save_ctc(bundle: CTCBundle, path: str | Path) -> Path:
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in bundle.model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "model_config": json.dumps(asdict(bundle.model.cfg)),
        "frontend": json.dumps(bundle.frontend.to_dict()),
        "tokens": json.dumps(list(TOKENS)),
        "provenance": json.dumps({"code_version": code_version(), **bundle.provenance}),
    }
    return atomic_write_bytes(Path(path), save(tensors, metadata=metadata))


def load_ctc(path: str | Path) -> CTCBundle:
    """A digit-string model from its file; every failure is one line naming the file."""
    path = Path(path)
    file = replace(open_format(path, FORMAT, "digit-string model file"), remedy=REMEDY)
    meta = file.metadata

    def metadata_json(key: str, default: str | None = None):
        return parse_json(meta.get(key, default), f"{path}: {key}", REMEDY)

    cfg = from_fields(CTCConfig, metadata_json("model_config"), f"{path}: model_config", REMEDY)
    frontend = FrontendConfig.from_dict(metadata_json("frontend"), f"{path}: frontend", REMEDY)
    tokens, provenance = metadata_json("tokens"), metadata_json("provenance", "{}")
    if tokens != list(TOKENS) or cfg.n_tokens != len(TOKENS):
        raise file.error(f"tokens are {shown(tokens)} (n_tokens {cfg.n_tokens}); this audrey's are blank, 0-9 and <other>")
    if cfg.n_mels != frontend.n_mels:
        raise file.error(f"model_config field n_mels is {cfg.n_mels} but its frontend makes {frontend.n_mels} mel bands")
    if not isinstance(provenance, dict):
        raise file.error(f"provenance is {shown(provenance)}, not a JSON object")
    with torch.device("meta"):
        layout = layout_of(CTCModel(cfg))
    file.check_layout(layout, "weights do not fit the digit-string architecture its config describes")
    model = CTCModel(cfg)
    model.load_state_dict(file.tensors(), strict=True)  # cannot fail: the layout was checked
    model.eval()
    return CTCBundle(model, frontend, provenance)
