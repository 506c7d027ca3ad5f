"""A digit-string recogniser: log-mel frames -> per-frame posteriors over 12 CTC tokens.

Tokens: CTC's blank, the ten digits ("oh" is 0) and one token for any speech that is not a digit
(letters, teens and tens, commands), so that "SIXTY" or "ENTER" has somewhere to go other than a
digit. Trained with CTC (Graves et al., 2006), which needs transcripts but no word times.

The encoder: a 1-D convolution front that keeps 1 frame in 4 (40 ms at a 10 ms hop; a digit lasts
200-600 ms), then Conformer layers (torchaudio's) over the whole utterance, then a linear layer per
frame. Hook points like the classifier's: the normalised input, the subsampled frames, every
block's output and the per-frame log-probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchaudio.models.conformer import ConformerLayer

from audrey.audio.frontend import FrontendConfig
from audrey.models.common import RangeNorm
from audrey.models.conformer import conformer_inconsistency
from audrey.models.hooks import HookedModule, HookPoint
from audrey.schema import bounded

BLANK = 0
OTHER = 11  # speech that is not a digit
TOKENS = ("<blank>",) + tuple(str(d) for d in range(10)) + ("<other>",)
SUBSAMPLE = 4  # feature frames per output frame
STRING_FRONTEND = FrontendConfig()  # the digit classifier's: strings and single digits are heard alike


def digit_token(digit: int) -> int:
    return digit + 1


def token_digit(token: int) -> int | None:
    """The digit a token stands for; None for the blank and for non-digit speech."""
    return token - 1 if 1 <= token <= 10 else None


@dataclass(frozen=True)
class CTCConfig:
    """Read back from model files: every field bounded (see audrey.schema)."""

    n_mels: int = bounded(FrontendConfig.n_mels, 1, 128)
    n_tokens: int = bounded(len(TOKENS), 2, 64)
    d_model: int = bounded(64, 8, 512)
    n_heads: int = bounded(4, 1, 16)
    ffn_dim: int = bounded(128, 8, 2048)
    n_layers: int = bounded(3, 1, 16)
    kernel_size: int = bounded(15, 3, 63)
    dropout: float = bounded(0.1, 0.0, 0.9)

    def inconsistency(self) -> str | None:
        return conformer_inconsistency(self.d_model, self.n_heads, self.kernel_size)


def output_lengths(frames: torch.Tensor) -> torch.Tensor:
    """Output frames for `frames` input frames: each stride-2 convolution (kernel 5, padding 2) keeps ceil(n / 2)."""
    for _ in range(2):
        frames = (frames + 1) // 2
    return frames


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    """(B, 1, frames) 1.0 on each clip's real frames, 0.0 on padding."""
    return (torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None])[:, None, :].float()


class Subsample(nn.Module):
    """Two stride-2 1-D convolutions over time, the mel bands as channels: 4x fewer frames. With
    `lengths`, padding is zeroed before each convolution, as the convolution's own padding is."""

    def __init__(self, n_mels: int, d_model: int):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d_model, 5, 2, 2)
        self.conv2 = nn.Conv1d(d_model, d_model, 5, 2, 2)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        # (B, mels, T) -> (B, T/4, d_model)
        for conv in (self.conv1, self.conv2):
            if lengths is not None:
                x = x * frame_mask(lengths, x.shape[2])
                lengths = (lengths + 1) // 2
            x = self.act(conv(x))
        return x.transpose(1, 2)


class Block(nn.Module):
    """One Conformer layer. With a padding mask, padded frames are kept out of attention (the
    layer's own mask) and out of the depthwise convolution (zeroed at its input, as its own zero
    padding would be), so a padded clip comes out as it would alone."""

    def __init__(self, cfg: CTCConfig):
        super().__init__()
        self.layer = ConformerLayer(cfg.d_model, cfg.ffn_dim, cfg.n_heads, cfg.kernel_size, cfg.dropout)
        self.hook_out = HookPoint()
        self._keep: torch.Tensor | None = None  # (B, 1, T) 1.0 on real frames, while a masked forward runs
        depthwise = self.layer.conv_module.sequential[2]
        depthwise.register_forward_pre_hook(lambda _mod, args: None if self._keep is None else (args[0] * self._keep,))

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:  # (T, B, D)
        self._keep = None if pad_mask is None else (~pad_mask)[:, None, :].to(x.dtype)
        try:
            return self.hook_out(self.layer(x, pad_mask))
        finally:
            self._keep = None


class CTCModel(HookedModule):
    """(batch, mels, frames) log-mel -> (batch, frames / 4, n_tokens) log-probabilities.

    `lengths` (batch,) gives each clip's real frames when a batch is padded; padding never reaches
    the attention of the real frames, and RangeNorm's peak is taken over the whole padded clip,
    which padding at the log floor does not change."""

    def __init__(self, cfg: CTCConfig = CTCConfig()):
        super().__init__()
        self.cfg = cfg
        self.norm = RangeNorm()
        self.hook_input = HookPoint()
        self.subsample = Subsample(cfg.n_mels, cfg.d_model)
        self.hook_subsample = HookPoint()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.out = nn.Linear(cfg.d_model, cfg.n_tokens)
        self.hook_logits = HookPoint()
        self.setup_hooks()

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        lengths = None if lengths is None else lengths.to(torch.long)
        x = self.hook_subsample(self.subsample(self.hook_input(self.norm(feats)), lengths))
        mask = None
        if lengths is not None:
            keep = output_lengths(lengths)
            mask = torch.arange(x.shape[1], device=x.device)[None, :] >= keep[:, None]  # True: padding
        x = x.transpose(0, 1)
        for block in self.blocks:
            x = block(x, mask)
        return self.hook_logits(self.out(x.transpose(0, 1)).log_softmax(-1))
