"""A small residual CNN over log-mel spectrograms (depthwise-separable convolutions)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from audrey.hooks import HookedModule, HookPoint
from audrey.models.common import Head, RangeNorm


@dataclass(frozen=True)
class CNNConfig:
    n_mels: int = 40
    n_classes: int = 10
    stem: int = 32
    channels: tuple[int, ...] = (64, 96, 128, 160)
    dropout: float = 0.2


def separable(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_in, 3, stride, 1, groups=c_in, bias=False),
        nn.BatchNorm2d(c_in),
        nn.Conv2d(c_in, c_out, 1, bias=False),
        nn.BatchNorm2d(c_out),
    )


class ResBlock(nn.Module):
    """Two separable convs with a (strided 1x1) shortcut; halves time and frequency."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = separable(c_in, c_out, 2)
        self.conv2 = separable(c_out, c_out, 1)
        self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, 2, bias=False), nn.BatchNorm2d(c_out))
        self.act = nn.ReLU()
        self.hook_out = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(self.act(self.conv1(x)))
        return self.hook_out(self.act(y + self.shortcut(x)))


class CNN(HookedModule):
    """(batch, mels, frames) log-mel -> (batch, n_classes) logits."""

    def __init__(self, cfg: CNNConfig = CNNConfig()):
        super().__init__()
        self.cfg = cfg
        self.norm = RangeNorm()
        self.hook_input = HookPoint()
        self.stem = nn.Sequential(nn.Conv2d(1, cfg.stem, 3, 1, 1, bias=False), nn.BatchNorm2d(cfg.stem), nn.ReLU())
        self.hook_stem = HookPoint()
        widths = (cfg.stem, *cfg.channels)
        self.blocks = nn.ModuleList(ResBlock(a, b) for a, b in zip(widths, widths[1:]))
        self.head = Head(widths[-1], cfg.n_classes, cfg.dropout)
        self.setup_hooks()

    def embed(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.hook_input(self.norm(feats))
        x = self.hook_stem(self.stem(x[:, None]))
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(feats))
