"""Which parts of the spectrogram a prediction rests on: attributions over the log-mel input, a
heatmap, an audible heatmap, and a deletion test of whether the attribution is faithful.

- Integrated gradients (Sundararajan et al., 2017) of the predicted class's logit w.r.t. the log-mel
  input, along the straight path from a baseline to the clip (midpoint rule, `steps` points). The
  baseline is the clip's own silence floor: every mel band held at its quietest level in the clip,
  i.e. the clip with the speech removed and its background kept. Completeness holds up to the
  Riemann error: the attributions sum to logit(clip) - logit(baseline).
- Occlusion (Zeiler & Fergus, 2014): each patch of mels x frames is set to the floor in turn; a
  cell's attribution is the drop of the predicted class's probability when its patch is removed.
- Audible heatmap (after the AudioMNIST authors' LRP audio): the top `keep` share of the mel cells
  by positive attribution averaged over 3x3 neighbourhoods (regions rather than speckle), spread back onto STFT bins through the transposed mel filterbank (each STFT
  bin takes the weighted average of the mel bands it feeds), masks the STFT of the prepared clip;
  an inverse STFT gives the part of the sound the model listened to.
- Deletion test: set the top `fraction` of cells by attribution to the floor, and the same number
  of cells chosen three other ways, and compare the drop in the predicted class's probability.
  Against random cells anywhere (the test the issue asks for), against random cells within the
  audible part (no more than 40 dB below the clip's peak: random cells are mostly silence, which a
  model ignores, so beating "anywhere" is easy), and against the loudest cells (does the attribution
  know more than the spectrogram's own energy?).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from audrey.audio.frontend import features, load_clip, mel_filters, prepare
from audrey.audio.waveform import write_audio
from audrey.errors import AudreyError
from audrey.plots import pyplot, save_figure

METHODS = ("ig", "occlusion")
AUDIBLE_DB = 40.0  # cells within this many dB of the clip's peak count as audible


def silence_floor(feats: torch.Tensor) -> torch.Tensor:
    """The baseline: each mel band at its quietest level in the clip. (..., M, T) -> (..., M, T)."""
    return feats.amin(dim=-1, keepdim=True).expand_as(feats)


def integrated_gradients(model, feats: torch.Tensor, target: int, baseline: torch.Tensor | None = None,
                         steps: int = 32) -> torch.Tensor:
    """(M, T) attribution of logit[target] for one (M, T) clip."""
    model.eval()
    baseline = silence_floor(feats) if baseline is None else baseline
    alphas = (torch.arange(steps, dtype=feats.dtype) + 0.5) / steps
    path = (baseline[None] + alphas[:, None, None] * (feats - baseline)[None]).detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(path)
        (grads,) = torch.autograd.grad(logits[:, target].sum(), path)
    return ((feats - baseline) * grads.mean(0)).detach()


@torch.no_grad()
def occlusion(model, feats: torch.Tensor, target: int, baseline: torch.Tensor | None = None,
              patch: tuple[int, int] = (4, 5)) -> torch.Tensor:
    """(M, T) attribution: drop of p(target) when the patch holding each cell is set to the floor."""
    model.eval()
    baseline = silence_floor(feats) if baseline is None else baseline
    m, t = feats.shape
    pm, pt = patch
    variants, spans = [], []
    for i in range(0, m, pm):
        for j in range(0, t, pt):
            x = feats.clone()
            x[i : i + pm, j : j + pt] = baseline[i : i + pm, j : j + pt]
            variants.append(x)
            spans.append((i, j))
    p0 = model(feats[None]).softmax(-1)[0, target]
    probs = torch.cat([model(torch.stack(variants[k : k + 256])).softmax(-1)[:, target] for k in range(0, len(variants), 256)])
    attr = torch.zeros_like(feats)
    for (i, j), p in zip(spans, probs):
        attr[i : i + pm, j : j + pt] = p0 - p
    return attr


def attribute(model, feats: torch.Tensor, targets: torch.Tensor | None = None, method: str = "ig",
              steps: int = 32, patch: tuple[int, int] = (4, 5)) -> tuple[torch.Tensor, torch.Tensor]:
    """Attributions (N, M, T) for (N, M, T) features, of `targets` (default: the predicted classes)."""
    if method not in METHODS:
        raise AudreyError(f"unknown attribution method {method!r}; use one of {', '.join(METHODS)}")
    model.eval()
    if targets is None:
        with torch.no_grad():
            targets = torch.cat([model(feats[i : i + 256]).argmax(-1) for i in range(0, len(feats), 256)])
    out = []
    for x, y in zip(feats, targets.tolist()):
        if method == "ig":
            out.append(integrated_gradients(model, x, y, steps=steps))
        else:
            out.append(occlusion(model, x, y, patch=patch))
    return torch.stack(out), targets


# --- the deletion test ---------------------------------------------------------------------------


@dataclass
class DeletionResult:
    fraction: float
    p_before: np.ndarray  # p(predicted class) of the intact clip
    drop_top: np.ndarray  # after deleting the top-attributed cells
    drop_random: np.ndarray  # mean over repeats: random cells anywhere
    drop_random_audible: np.ndarray  # mean over repeats: random audible cells
    drop_loudest: np.ndarray  # the loudest cells

    def summary(self) -> dict:
        n = len(self.drop_top)

        def mean_ci(v: np.ndarray) -> list[float]:
            half = 1.96 * v.std(ddof=1) / math.sqrt(len(v)) if len(v) > 1 else float("nan")
            return [round(float(v.mean()), 4), round(float(half), 4)]

        out = {"clips": n, "fraction": self.fraction, "p_before": round(float(self.p_before.mean()), 4)}
        for name, other in (("random", self.drop_random), ("random_audible", self.drop_random_audible),
                            ("loudest", self.drop_loudest)):
            margin = self.drop_top - other
            out[f"drop_{name}"] = round(float(other.mean()), 4)
            out[f"margin_vs_{name}"], out[f"margin_vs_{name}_ci95"] = mean_ci(margin)
            out[f"top_beats_{name}"] = round(float((margin > 0).mean()), 4)
        out["drop_top"] = round(float(self.drop_top.mean()), 4)
        return out


def _delete(x: torch.Tensor, floor: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    y = x.flatten().clone()
    y[cells] = floor.flatten()[cells]
    return y.view_as(x)


@torch.no_grad()
def deletion_test(model, feats: torch.Tensor, attributions: torch.Tensor, targets: torch.Tensor | None = None,
                  fraction: float = 0.1, repeats: int = 4, seed: int = 0) -> DeletionResult:
    """Deleting the top `fraction` of cells by attribution vs the same number chosen otherwise."""
    if not 0 < fraction < 1:
        raise AudreyError(f"deletion fraction {fraction}: expected a share between 0 and 1 (e.g. 0.1)")
    model.eval()
    g = torch.Generator().manual_seed(seed)
    n_cells = feats[0].numel()
    k = max(1, round(fraction * n_cells))
    audible_range = AUDIBLE_DB * math.log(10) / 10
    p_before, top, rnd, aud, loud = [], [], [], [], []
    for i, (x, a) in enumerate(zip(feats, attributions)):
        floor = silence_floor(x)
        probs0 = model(x[None]).softmax(-1)[0]
        y = int(probs0.argmax()) if targets is None else int(targets[i])
        variants = [_delete(x, floor, a.flatten().topk(k).indices)]
        for _ in range(repeats):
            variants.append(_delete(x, floor, torch.randperm(n_cells, generator=g)[:k]))
        audible = (x.flatten() >= x.max() - audible_range).nonzero().flatten()
        for _ in range(repeats):
            if len(audible) >= k:
                cells = audible[torch.randperm(len(audible), generator=g)[:k]]
            else:  # fewer audible cells than k: all of them, and random others
                rest = torch.randperm(n_cells, generator=g)
                rest = rest[~torch.isin(rest, audible)][: k - len(audible)]
                cells = torch.cat([audible, rest])
            variants.append(_delete(x, floor, cells))
        variants.append(_delete(x, floor, x.flatten().topk(k).indices))
        p = model(torch.stack(variants)).softmax(-1)[:, y]
        drop = probs0[y] - p
        p_before.append(float(probs0[y]))
        top.append(float(drop[0]))
        rnd.append(float(drop[1 : 1 + repeats].mean()))
        aud.append(float(drop[1 + repeats : 1 + 2 * repeats].mean()))
        loud.append(float(drop[-1]))
    return DeletionResult(fraction, *(np.array(v) for v in (p_before, top, rnd, aud, loud)))


# --- the audible heatmap -------------------------------------------------------------------------


def regions(attr: torch.Tensor, size: int = 3) -> torch.Tensor:
    """Attribution averaged over size x size neighbourhoods: regions, not speckle, for what is kept."""
    return F.avg_pool2d(attr[None, None], size, stride=1, padding=size // 2, count_include_pad=False)[0, 0]


def keep_mask(attr: torch.Tensor, keep: float, smooth: int = 3) -> torch.Tensor:
    """1 on the top `keep` share of cells by (region-averaged) attribution, positive ones only, else 0."""
    if not 0 < keep <= 1:
        raise AudreyError(f"--keep {keep}: expected a share between 0 and 1 (e.g. 0.2)")
    score = regions(attr, smooth) if smooth > 1 else attr
    k = max(1, round(keep * attr.numel()))
    mask = torch.zeros(attr.numel())
    idx = score.flatten().topk(k).indices
    mask[idx[score.flatten()[idx] > 0]] = 1
    return mask.view_as(attr)


def audible_heatmap(wave: np.ndarray, attr: torch.Tensor, cfg, keep: float = 0.2) -> np.ndarray:
    """The prepared waveform with everything but the top `keep` attributed regions removed."""
    mel_mask = keep_mask(attr, keep)  # (M, T)
    fb = torch.from_numpy(mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max))  # (M, F)
    weights = fb.T / fb.T.sum(1, keepdim=True).clamp_min(1e-12)  # (F, M): each STFT bin averages its bands
    window = torch.hann_window(cfg.win_length)
    x = torch.as_tensor(wave, dtype=torch.float32)
    spec = torch.stft(x, cfg.n_fft, cfg.hop_length, cfg.win_length, window, return_complex=True)  # (F, T)
    stft_mask = (weights @ mel_mask)[:, : spec.shape[1]]
    out = torch.istft(spec * stft_mask, cfg.n_fft, cfg.hop_length, cfg.win_length, window, length=len(x))
    return out.numpy().astype(np.float32)


def plot_attribution(feats: torch.Tensor, attr: torch.Tensor, path: str | Path, title: str = "", keep: float = 0.2,
                     cfg=None) -> Path:
    """Three panels: log-mel spectrogram, attribution (red = for the prediction), kept regions."""
    plt = pyplot()

    db = feats.numpy() * 10 / math.log(10)
    a = attr.numpy()
    # a robust colour scale: RangeNorm ties every cell to the clip's loudest one, so IG gives that one
    # cell an outsized share; the 99th percentile keeps the rest of the map visible
    lim = float(np.percentile(np.abs(a), 99)) or float(np.abs(a).max()) or 1.0
    mask = keep_mask(attr, keep).numpy()
    hop_s = (cfg.hop_length / cfg.sample_rate) if cfg else 0.01
    extent = [0, feats.shape[1] * hop_s, 0, feats.shape[0]]
    fig, axes = plt.subplots(3, 1, figsize=(7, 7.5), sharex=True)
    vmax = db.max()
    im0 = axes[0].imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax, extent=extent)
    axes[0].set_title("log-mel power (dB)")
    fig.colorbar(im0, ax=axes[0], fraction=0.03)
    im1 = axes[1].imshow(a, origin="lower", aspect="auto", cmap="bwr", vmin=-lim, vmax=lim, extent=extent)
    axes[1].set_title("attribution (red: for the prediction; colours clipped at the 99th percentile)")
    fig.colorbar(im1, ax=axes[1], fraction=0.03)
    axes[2].imshow(np.where(mask > 0, db, np.nan), origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80,
                   vmax=vmax, extent=extent)
    axes[2].set_title(f"kept in the audible heatmap (top {keep:.0%} of cells by 3x3-averaged attribution)")
    for ax in axes:
        ax.set_ylabel("mel band")
    axes[2].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=110)


# --- one file end to end -------------------------------------------------------------------------


@dataclass
class Explanation:
    file: str
    digit: int
    confidence: float
    method: str
    png: str
    wav: str
    deletion: dict  # this clip's deletion test

    def to_dict(self) -> dict:
        return {"file": self.file, "digit": self.digit, "confidence": round(self.confidence, 4), "method": self.method,
                "heatmap_png": self.png, "audible_wav": self.wav, "deletion": self.deletion}


def explain_file(bundle, path: str | Path, out_dir: str | Path, method: str = "ig", keep: float = 0.2,
                 fraction: float = 0.1, steps: int = 32) -> Explanation:
    """Heatmap PNG and audible WAV for one clip in `out_dir`, with its deletion test."""
    path, out_dir = Path(path), Path(out_dir)
    cfg = bundle.frontend
    raw = load_clip(path, cfg)
    wave = prepare(raw, cfg)  # the audible heatmap is played over the prepared clip
    feats = features([raw], cfg)
    attrs, targets = attribute(bundle.model, feats, method=method, steps=steps)
    with torch.no_grad():
        probs = bundle.model.eval()(feats).softmax(-1)[0]
    digit = int(targets[0])
    deletion = deletion_test(bundle.model, feats, attrs, targets, fraction).summary()
    label = bundle.labels[digit] if digit < len(bundle.labels) else str(digit)
    png = plot_attribution(feats[0], attrs[0], out_dir / f"{path.stem}.explain.png", cfg=cfg, keep=keep,
                           title=f"{path.name}: predicted {label} (p={float(probs[digit]):.2f}), {method}")
    kept = audible_heatmap(wave, attrs[0], cfg, keep)
    peak = float(np.abs(kept).max())
    if peak > 0:
        kept = kept * (0.9 / peak)
    wav = write_audio(out_dir / f"{path.stem}.relevant.wav", kept, cfg.sample_rate)
    return Explanation(str(path), digit, float(probs[digit]), method, str(png), str(wav), deletion)
