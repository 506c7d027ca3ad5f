"""Log-mel frontend: waveform at SAMPLE_RATE -> log-mel spectrogram, plus SpecAugment masks.

The parameters live in one dataclass that is saved inside every model file, so a model is always
fed the features it was trained on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import nn

from audrey.audio import waveform
from audrey.schema import bounded, from_fields


MAX_FRAMES = 2000  # frames per clip (101 by default): bounds what one clip costs every model


@dataclass(frozen=True)
class FrontendConfig:
    """Read back from every model file: each field typed and bounded (audrey.schema), and
    `inconsistency` states what the STFT and the mel filterbank need of the fields together."""

    sample_rate: int = bounded(waveform.SAMPLE_RATE, 1000, 192_000)
    clip_seconds: float = bounded(waveform.CLIP_SECONDS, 0.1, waveform.MAX_CLIP_FILE_SECONDS)
    trim_top_db: float = bounded(waveform.TRIM_TOP_DB, 1.0, 120.0)
    n_fft: int = bounded(512, 16, 8192)
    win_length: int = bounded(400, 16, 8192)  # 25 ms
    hop_length: int = bounded(160, 1, 8192)  # 10 ms
    n_mels: int = bounded(64, 1, 128)
    f_min: float = bounded(50.0, 0.0, 96_000.0)
    # Top of the band: just below the 8 kHz Nyquist frequency of 16 kHz audio, under the roll-off
    # of the resampler's anti-aliasing filter.
    f_max: float = bounded(7800.0, 1.0, 96_000.0)
    log_floor: float = bounded(1e-6, 1e-12, 1.0)  # > 0: log(0) is -inf

    def inconsistency(self) -> str | None:
        bins = self.n_fft // 2 + 1
        if self.win_length > self.n_fft:
            return f"win_length {self.win_length} is longer than n_fft {self.n_fft}"
        if self.hop_length > self.win_length:
            return f"hop_length {self.hop_length} is longer than win_length {self.win_length} (frames would skip audio)"
        if self.n_mels > bins:
            return f"n_mels {self.n_mels} is more than the {bins} frequency bins of n_fft {self.n_fft}"
        if not self.f_min < self.f_max <= self.sample_rate / 2:
            return (f"the band f_min {self.f_min:g} to f_max {self.f_max:g} Hz does not fit below the Nyquist "
                    f"frequency of sample_rate {self.sample_rate} ({self.sample_rate / 2:g} Hz)")
        if self.clip_samples <= self.n_fft // 2:
            return f"clip_seconds {self.clip_seconds:g} is too short for n_fft {self.n_fft} at sample_rate {self.sample_rate}"
        if self.n_frames > MAX_FRAMES:
            return (f"hop_length {self.hop_length} makes {self.n_frames} frames of a {self.clip_seconds:g} s clip "
                    f"at sample_rate {self.sample_rate}; at most {MAX_FRAMES}")
        return None

    @property
    def clip_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def n_frames(self) -> int:
        return self.clip_samples // self.hop_length + 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "frontend config", remedy: str = "") -> "FrontendConfig":
        """From untrusted JSON (a model file's metadata): every field checked; `where` names the source."""
        return from_fields(cls, data, where, remedy)

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
