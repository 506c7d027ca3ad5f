"""A small CNN over log-mel spectrograms: five strided conv-BN-ReLU blocks, global average pool.

Channels grow as the resolution shrinks, so most weights sit where convolutions are cheap
(~8 MFLOPs per clip).

Plain 3x3 convolutions beat depthwise-separable ones on this CPU (oneDNN runs dense convs well,
depthwise ones poorly), and channels-last memory layout halves the training time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from audrey.audio.frontend import FrontendConfig
from audrey.models.hooks import HookedModule, HookPoint
from audrey.models.common import Head, RangeNorm
from audrey.schema import bounded


@dataclass(frozen=True)
class CNNConfig:
    """Read back from model files (and rejection files' detectors): every field bounded, see schema."""

    n_mels: int = bounded(FrontendConfig.n_mels, 1, 128)  # what the default frontend makes
    n_classes: int = bounded(10, 1, 1000)
    channels: tuple[int, ...] = bounded((16, 32, 64, 96, 128), 1, 512, items=(1, 8))
    dropout: float = bounded(0.3, 0.0, 0.95)


class ConvBlock(nn.Module):
    """conv3x3 with stride 2 -> BatchNorm -> ReLU: halves time and frequency.

    A strided convolution computes only the outputs a 2x2 max-pool would keep: 4x fewer FLOPs.
    """

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.ReLU()
        self.hook_out = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hook_out(self.act(self.bn(self.conv(x))))


class CNN(HookedModule):
    """(batch, mels, frames) log-mel -> (batch, n_classes) logits."""

    def __init__(self, cfg: CNNConfig = CNNConfig()):
        super().__init__()
        self.cfg = cfg
        self.norm = RangeNorm()
        self.hook_input = HookPoint()
        widths = (1, *cfg.channels)
        self.blocks = nn.ModuleList(ConvBlock(a, b) for a, b in zip(widths, widths[1:]))
        self.head = Head(widths[-1], cfg.n_classes, cfg.dropout)
        self.setup_hooks()
        self.to(memory_format=torch.channels_last)

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.hook_input(self.norm(feats))
        x = x[:, None].contiguous(memory_format=torch.channels_last)
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(feats))
