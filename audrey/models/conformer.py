"""A small Conformer: conv subsampling front, torchaudio Conformer layers, mean-pooled head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchaudio.models.conformer import ConformerLayer

from audrey.audio.frontend import FrontendConfig
from audrey.models.hooks import HookedModule, HookPoint
from audrey.models.common import Head, RangeNorm
from audrey.schema import bounded


def conformer_inconsistency(d_model: int, n_heads: int, kernel_size: int) -> str | None:
    """What torchaudio's Conformer layers need of their sizes together (None when they have it)."""
    if d_model % n_heads:
        return f"d_model {d_model} is not a multiple of n_heads {n_heads}"
    if kernel_size % 2 == 0:
        return f"kernel_size {kernel_size} is even; the convolution module needs an odd one"
    return None


@dataclass(frozen=True)
class ConformerConfig:
    """Read back from model files: every field bounded (see schema), and `inconsistency` states
    what torchaudio's layers need of them together."""

    n_mels: int = bounded(FrontendConfig.n_mels, 1, 128)  # what the default frontend makes
    n_classes: int = bounded(10, 1, 1000)
    # Sized for a 2-core CPU: attention over 26 frames is cheap, per-layer overhead is not.
    d_model: int = bounded(64, 1, 1024)
    n_heads: int = bounded(4, 1, 64)
    ffn_dim: int = bounded(128, 1, 4096)
    n_layers: int = bounded(2, 1, 32)
    kernel_size: int = bounded(7, 1, 63)
    dropout: float = bounded(0.1, 0.0, 0.95)

    def inconsistency(self) -> str | None:
        return conformer_inconsistency(self.d_model, self.n_heads, self.kernel_size)


class Subsample(nn.Module):
    """Two stride-2 convs: 4x fewer frames for attention, as in the Conformer paper."""

    def __init__(self, n_mels: int, d_model: int, channels: int = 32):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, 2, 1), nn.ReLU(), nn.Conv2d(channels, channels, 3, 2, 1), nn.ReLU()
        )
        freq = (n_mels + 1) // 2
        freq = (freq + 1) // 2
        self.proj = nn.Linear(channels * freq, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, mels, T) -> (B, T/4, d_model)
        y = self.conv(x[:, None])  # (B, C, F', T')
        b, c, f, t = y.shape
        return self.proj(y.permute(0, 3, 1, 2).reshape(b, t, c * f))


class Block(nn.Module):
    def __init__(self, cfg: ConformerConfig):
        super().__init__()
        self.layer = ConformerLayer(cfg.d_model, cfg.ffn_dim, cfg.n_heads, cfg.kernel_size, cfg.dropout)
        self.hook_out = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (T, B, D), torchaudio's layout
        return self.hook_out(self.layer(x, None))


class Conformer(HookedModule):
    """(batch, mels, frames) log-mel -> (batch, n_classes) logits."""

    def __init__(self, cfg: ConformerConfig = ConformerConfig()):
        super().__init__()
        self.cfg = cfg
        self.norm = RangeNorm()
        self.hook_input = HookPoint()
        self.subsample = Subsample(cfg.n_mels, cfg.d_model)
        self.hook_subsample = HookPoint()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.head = Head(cfg.d_model, cfg.n_classes, cfg.dropout)
        self.setup_hooks()

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.hook_subsample(self.subsample(self.hook_input(self.norm(feats))))
        x = x.transpose(0, 1)
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=0)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(feats))
