"""Log-mel frontend: waveform at SAMPLE_RATE -> log-mel spectrogram, plus SpecAugment masks.

The parameters live in one dataclass that is saved inside every model file, so a model is always
fed the features it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from audrey.audio import waveform
from audrey.errors import AudreyError


@dataclass(frozen=True)
class FrontendConfig:
    sample_rate: int = waveform.SAMPLE_RATE
    clip_seconds: float = waveform.CLIP_SECONDS
    trim_top_db: float = waveform.TRIM_TOP_DB
    n_fft: int = 256
    win_length: int = 200  # 25 ms
    hop_length: int = 80  # 10 ms
    n_mels: int = 40
    f_min: float = 50.0
    # Top of the band: below 4 kHz (Nyquist of 8 kHz sources) and below the roll-off of the
    # anti-aliasing filters that FSDD and phone audio went through on their way to 8 kHz.
    f_max: float = 3800.0
    log_floor: float = 1e-6

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def n_frames(self) -> int:
        return self.clip_samples // self.hop_length + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FrontendConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise AudreyError(f"frontend config has unknown fields {sorted(unknown)}; upgrade audrey")
        return cls(**data)

    def key(self) -> str:
        """Short stable hash: the feature cache keeps one folder per frontend config."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


def prepare(wave: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """A single-digit waveform at cfg.sample_rate, made into the fixed-length clip the frontend expects."""
    return waveform.prepare_clip(wave, cfg.clip_samples, cfg.trim_top_db, cfg.sample_rate)


def prepared_batch(waves, cfg: FrontendConfig, rate: int | None = None) -> torch.Tensor:
    """(N, clip_samples) float32 from single-digit waveforms of any length at `rate` (default the
    frontend's): resampled, trimmed, centred and padded. What every model, traced or eager, is fed."""
    if rate and rate != cfg.sample_rate:
        waves = [waveform.resample(np.asarray(w, np.float32).reshape(-1), rate, cfg.sample_rate) for w in waves]
    if not len(waves):
        return torch.zeros(0, cfg.clip_samples)
    return torch.from_numpy(np.stack([prepare(np.asarray(w, np.float32).reshape(-1), cfg) for w in waves]))


def load_clip(path, cfg: FrontendConfig) -> np.ndarray:
    """One single-digit clip from a file, at the frontend's rate (`features` prepares it)."""
    return waveform.load_audio(path, cfg.sample_rate, max_seconds=waveform.MAX_CLIP_FILE_SECONDS)


@torch.no_grad()
def features(waves, cfg: FrontendConfig, rate: int | None = None, batch: int = 256) -> torch.Tensor:
    """The one waveform -> model-features path: (N, n_mels, frames) log-mel features of single-digit
    waveforms at `rate` (`prepared_batch`, then `LogMel`), computed `batch` clips at a time."""
    frontend = LogMel(cfg)
    out = [frontend(prepared_batch(waves[i : i + batch], cfg, rate)) for i in range(0, len(waves), batch)]
    return torch.cat(out) if out else torch.zeros(0, cfg.n_mels, cfg.n_frames)


@lru_cache(maxsize=None)
def mel_filters(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """Slaney-normalised mel filterbank (n_mels, n_fft // 2 + 1), computed once per config."""
    import librosa

    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max).astype(np.float32)


class LogMel(nn.Module):
    """(batch, samples) float waveform -> (batch, n_mels, frames) natural-log mel power."""

    def __init__(self, cfg: FrontendConfig = FrontendConfig()):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)
        fb = mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
        self.register_buffer("filters", torch.from_numpy(fb), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        spec = torch.stft(
            wave, cfg.n_fft, cfg.hop_length, cfg.win_length, self.window, return_complex=True
        )
        power = spec.abs() ** 2
        return torch.log(self.filters @ power + cfg.log_floor)


def spec_augment(
    feats: torch.Tensor,
    freq_masks: int = 2,
    freq_width: int = 6,
    time_masks: int = 2,
    time_width: int = 12,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) masks on (batch, mels, frames), filled with each clip's mean."""
    b, n_mels, n_frames = feats.shape
    out = feats.clone()
    fill = feats.mean(dim=(1, 2), keepdim=True).expand_as(feats)
    mels = torch.arange(n_mels, device=feats.device)[None, :, None]
    frames = torch.arange(n_frames, device=feats.device)[None, None, :]
    for axis_len, count, width, pos in (
        (n_mels, freq_masks, freq_width, mels),
        (n_frames, time_masks, time_width, frames),
    ):
        for _ in range(count):
            w = torch.randint(0, width + 1, (b, 1, 1), generator=generator, device=feats.device)
            start = (torch.rand((b, 1, 1), generator=generator, device=feats.device) * (axis_len - w)).long()
            mask = (pos >= start) & (pos < start + w)
            out = torch.where(mask, fill, out)
    return out
