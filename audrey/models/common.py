"""Pieces both architectures share: input normalisation and the classifier head."""

from __future__ import annotations

import math

import torch
from torch import nn

from audrey.models.hooks import HookPoint


class RangeNorm(nn.Module):
    """Per-clip level normalisation of log-mel power: the loudest bin becomes 1, everything more
    than `top_db` below it is clamped to -1.

    Clips arrive at any level and with any silence floor (digital zeros in one corpus, hiss in
    another); after this they all span the same range, as whisper's log-mel clamp does.
    """

    def __init__(self, top_db: float = 80.0):
        super().__init__()
        self.range = top_db * math.log(10) / 10  # dB -> natural-log power units

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, mels, frames)
        peak = x.amax(dim=(1, 2), keepdim=True)
        x = torch.maximum(x, peak - self.range)
        return (x - peak) / (self.range / 2) + 1


class Head(nn.Module):
    """Pooled embedding -> logits, with hook points on both (probes and OOD scores read them)."""

    def __init__(self, dim: int, n_classes: int, dropout: float):
        super().__init__()
        self.hook_embed = HookPoint()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, n_classes)
        self.hook_logits = HookPoint()

    def forward(self, embed: torch.Tensor) -> torch.Tensor:
        return self.hook_logits(self.fc(self.dropout(self.hook_embed(embed))))
