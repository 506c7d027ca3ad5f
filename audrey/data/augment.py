"""Training-time augmentation, done on batches of log-mel features.

Working on cached features keeps augmentation nearly free on a 2-core CPU, and each waveform-level
effect has a close feature-level counterpart:
- speed/pitch perturbation -> a time stretch and a vocal-tract-length warp of the mel axis (VTLP),
- time shift -> a translation of the time axis,
- background noise -> noise power added in the mel-power domain at a random SNR,
- band-limiting (telephones, cheap microphones) -> attenuating mel bins above/below random cut-offs,
- an 8 kHz source heard by a wideband frontend -> every bin above a random cut-off near 4 kHz
  set to the frontend's log floor, where resampling 8 kHz audio up leaves it,
- SpecAugment masks.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from audrey.audio.frontend import FrontendConfig, spec_augment


@dataclass(frozen=True)
class AugmentConfig:
    # Defaults chosen on FSDD leave-one-speaker-out folds: mild warps, masks and shifts helped;
    # strong warps, loud noise and frequent band-limiting cost accuracy on new speakers.
    warp: float = 0.05  # VTLP factor drawn from [1 - warp, 1 + warp]
    stretch: float = 0.1  # time stretch factor drawn from [1 - stretch, 1 + stretch]
    shift: float = 0.1  # time shift, as a fraction of the clip
    noise_p: float = 0.2  # probability of adding noise
    snr_db: tuple[float, float] = (10.0, 30.0)
    band_p: float = 0.1  # probability of band-limiting
    # Probability of hearing a clip as an 8 kHz source would give it (only where the frontend's band
    # reaches above 4 kHz): a wideband model must still know FSDD's and telephones' digits.
    narrowband_p: float = 0.3
    freq_masks: int = 2
    freq_width: int = 6
    time_masks: int = 2
    time_width: int = 12

    def to_dict(self) -> dict:
        return asdict(self)


NO_AUGMENT = AugmentConfig(0, 0, 0, 0, (0, 0), 0, 0, 0, 0, 0, 0)

# The top of an 8 kHz source after its anti-aliasing filter: the cut-off is drawn from this range.
NARROWBAND_HZ = (3400.0, 4000.0)


@lru_cache(maxsize=None)
def mel_centers(cfg: FrontendConfig) -> np.ndarray:
    import librosa

    return librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.f_min, fmax=cfg.f_max)[1:-1]


def vtlp_source_bins(cfg: FrontendConfig, alpha: torch.Tensor) -> torch.Tensor:
    """For each clip's warp factor, the (fractional) source mel bin of every output bin.

    Warping by alpha moves the energy at frequency f to alpha * f, so output bin m reads from
    the frequency f_m / alpha.
    """
    centers = torch.from_numpy(mel_centers(cfg)).float()
    src_freq = centers[None, :] / alpha[:, None]
    idx = torch.searchsorted(centers, src_freq.contiguous()).clamp(1, len(centers) - 1)
    lo, hi = centers[idx - 1], centers[idx]
    return (idx - 1).float() + ((src_freq - lo) / (hi - lo)).clamp(-1, 2)


def augment_batch(
    feats: torch.Tensor, cfg: FrontendConfig, aug: AugmentConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Randomly perturbed copy of a (batch, mels, frames) log-mel batch."""
    b, n_mels, n_frames = feats.shape
    g = generator

    def uniform(lo: float, hi: float, shape=(b,)) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    x = feats
    if aug.warp or aug.stretch or aug.shift:
        alpha = uniform(1 - aug.warp, 1 + aug.warp)
        rate = uniform(1 - aug.stretch, 1 + aug.stretch)
        shift = uniform(-aug.shift, aug.shift) * 2  # in grid units ([-1, 1] spans the clip)
        # grid_sample coordinates: x is time, y is mel bin, both in [-1, 1]
        src_bins = vtlp_source_bins(cfg, alpha)  # (b, mels)
        gy = src_bins / (n_mels - 1) * 2 - 1
        t = torch.linspace(-1, 1, n_frames)
        gx = t[None, :] / rate[:, None] - shift[:, None]
        grid = torch.stack(torch.broadcast_tensors(gx[:, None, :], gy[:, :, None]), dim=-1)
        floor = feats.amin(dim=(1, 2), keepdim=True)
        x = F.grid_sample((x - floor)[:, None], grid, align_corners=True, padding_mode="zeros")[:, 0] + floor
    if aug.noise_p:
        x = add_noise(x, aug, g)
    if aug.band_p:
        x = band_limit(x, aug.band_p, g)
    if aug.narrowband_p and cfg.f_max > NARROWBAND_HZ[1]:
        x = narrowband(x, cfg, aug.narrowband_p, g)
    if aug.freq_masks or aug.time_masks:
        x = spec_augment(x, aug.freq_masks, aug.freq_width, aug.time_masks, aug.time_width, g)
    return x


def add_noise(x: torch.Tensor, aug: AugmentConfig, g: torch.Generator | None) -> torch.Tensor:
    """Coloured, time-varying noise added in the mel-power domain at a random SNR."""
    b, n_mels, n_frames = x.shape
    power = x.exp()
    speech = power.mean(dim=(1, 2), keepdim=True)
    lo, hi = aug.snr_db
    snr = lo + (hi - lo) * torch.rand((b, 1, 1), generator=g)
    tilt = (torch.rand((b, 1, 1), generator=g) * 2 - 1) * torch.linspace(-1, 1, n_mels)[None, :, None]
    shape = torch.exp(2.0 * tilt)  # from bright (white-ish) to dark (pink/brown-ish)
    shape = shape / shape.mean(dim=1, keepdim=True)
    fluct = -torch.log(torch.rand((b, n_mels, n_frames), generator=g).clamp_min(1e-6))  # exp(1) periodogram
    noise = speech * 10 ** (-snr / 10) * shape * fluct
    apply = (torch.rand((b, 1, 1), generator=g) < aug.noise_p).float()
    return torch.log(power + apply * noise)


def band_limit(x: torch.Tensor, p: float, g: torch.Generator | None) -> torch.Tensor:
    """Attenuate bins above a random high cut and below a random low cut (by 30-50 dB)."""
    b, n_mels, _ = x.shape
    bins = torch.arange(n_mels)[None, :, None]
    high = n_mels - torch.randint(0, n_mels // 4 + 1, (b, 1, 1), generator=g)
    low = torch.randint(0, 4, (b, 1, 1), generator=g)
    depth = (30 + 20 * torch.rand((b, 1, 1), generator=g)) * np.log(10) / 10  # dB -> natural log power
    outside = ((bins >= high) | (bins < low)).float()
    apply = (torch.rand((b, 1, 1), generator=g) < p).float()
    return x - apply * outside * depth


def narrowband(x: torch.Tensor, cfg: FrontendConfig, p: float, g: torch.Generator | None) -> torch.Tensor:
    """With probability p per clip, every mel bin centred above a cut-off drawn from NARROWBAND_HZ
    takes the value an empty band has, log(log_floor): what 8 kHz audio resampled to a wideband
    frontend's rate gives there."""
    b = x.shape[0]
    centers = torch.from_numpy(mel_centers(cfg)).float()[None, :, None]
    lo, hi = NARROWBAND_HZ
    cut = lo + (hi - lo) * torch.rand((b, 1, 1), generator=g)
    apply = torch.rand((b, 1, 1), generator=g) < p
    return torch.where(apply & (centers > cut), torch.tensor(math.log(cfg.log_floor)), x)
