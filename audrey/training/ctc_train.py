"""Training the digit-string model: CTC loss over padded batches of whole recordings.

Batches are drawn from length-sorted buckets so little of each batch is padding; SpecAugment
(frontend.spec_augment) masks every training batch. Features are computed once by the caller
(`features_of`); epochs cost only the model.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from audrey.audio.frontend import FrontendConfig, LogMel, spec_augment
from audrey.models.ctc import BLANK, CTCConfig, CTCModel, output_lengths


@dataclass(frozen=True)
class CTCTraining:
    epochs: int = 12
    batch_frames: int = 12000  # feature frames per batch (120 s of audio at a 10 ms hop)
    lr: float = 2e-3
    weight_decay: float = 1e-2
    seed: int = 0
    spec_augment: bool = True
    time_limit_s: float = 900.0  # stop after the epoch that crosses this


@torch.no_grad()
def features_of(waves: list[np.ndarray], cfg: FrontendConfig) -> list[torch.Tensor]:
    """(n_mels, frames) log-mel of each whole waveform (at cfg.sample_rate), float16 to halve the memory."""
    frontend = LogMel(cfg)
    out = []
    for wave in waves:
        wave = np.asarray(wave, np.float32)
        if len(wave) < cfg.n_fft:
            wave = np.pad(wave, (0, cfg.n_fft - len(wave)))
        out.append(frontend(torch.from_numpy(wave)[None])[0].to(torch.float16))
    return out


def pad_batch(feats: list[torch.Tensor], floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([f.shape[1] for f in feats])
    batch = torch.full((len(feats), feats[0].shape[0], int(lengths.max())), floor)
    for i, f in enumerate(feats):
        batch[i, :, : f.shape[1]] = f.float()
    return batch, lengths


def batches(lengths: list[int], batch_frames: int, rng: np.random.Generator) -> list[list[int]]:
    """Index batches of similar length, about `batch_frames` padded frames each, in random order."""
    order = np.argsort(np.array(lengths) + rng.uniform(0, 30, len(lengths)))
    out, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * lengths[i] > batch_frames:
            out.append(cur)
            cur = []
        cur.append(int(i))
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def ctc_loss(model: CTCModel, feats: torch.Tensor, lengths: torch.Tensor, targets: list[tuple[int, ...]]) -> torch.Tensor:
    log_probs = model(feats, lengths)  # (B, T', V)
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
    target_lengths = torch.tensor([len(seq) for seq in targets])
    return F.ctc_loss(log_probs.transpose(0, 1), flat, output_lengths(lengths), target_lengths,
                      blank=BLANK, reduction="mean", zero_infinity=True)


def train_ctc(feats: list[torch.Tensor], targets: list[tuple[int, ...]], cfg: CTCConfig, frontend: FrontendConfig,
              training: CTCTraining = CTCTraining(), log: Callable[[str], None] = print) -> CTCModel:
    """A model trained on (n_mels, frames) features and their token sequences."""
    torch.manual_seed(training.seed)
    rng = np.random.default_rng(training.seed)
    gen = torch.Generator().manual_seed(training.seed)
    model = CTCModel(cfg)
    floor = math.log(frontend.log_floor)
    lengths = [f.shape[1] for f in feats]
    steps_per_epoch = len(batches(lengths, training.batch_frames, np.random.default_rng(0)))
    opt = torch.optim.AdamW(model.parameters(), lr=training.lr, weight_decay=training.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, training.lr, total_steps=training.epochs * steps_per_epoch + 1,
                                                pct_start=0.15)
    t0 = time.perf_counter()
    for epoch in range(training.epochs):
        model.train()
        total, n = 0.0, 0
        for idx in batches(lengths, training.batch_frames, rng):
            x, lens = pad_batch([feats[i] for i in idx], floor)
            if training.spec_augment:
                x = spec_augment(x, freq_masks=2, freq_width=8, time_masks=2, time_width=10, generator=gen)
            loss = ctc_loss(model, x, lens, [targets[i] for i in idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            if sched.last_epoch < sched.total_steps - 1:
                sched.step()
            total += loss.item() * len(idx)
            n += len(idx)
        elapsed = time.perf_counter() - t0
        log(f"epoch {epoch + 1}/{training.epochs}: CTC loss {total / max(n, 1):.3f} ({elapsed:.0f} s)")
        if elapsed > training.time_limit_s:
            log(f"stopping: {elapsed:.0f} s is past the {training.time_limit_s:.0f} s limit")
            break
    model.eval()
    return model
