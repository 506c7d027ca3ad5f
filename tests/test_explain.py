"""Attributions, the audible heatmap, the deletion test and activation patching (issue 7)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn
from typer.testing import CliRunner

from audrey.errors import AudreyError
from audrey.observe.explain import (attribute, audible_heatmap, deletion_test, explain_file, integrated_gradients, occlusion,
                                    silence_floor)
from audrey.observe.patching import patched_logits
from audrey.audio.frontend import FrontendConfig, LogMel
from audrey.models.modelfile import ModelBundle, save_model
from audrey.models import build_model
from helpers import one_line_error, peak_hz

PNG = b"\x89PNG\r\n\x1a\n"
REGION = (slice(10, 16), slice(40, 60))  # mels, frames the toy model listens to
LOUD = (slice(25, 35), slice(70, 90))  # a louder blob it ignores


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDREY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")


class Toy(nn.Module):
    """Logit 1 = mean level in REGION + 7; logit 0 = 0. The attribution is known: everything in
    REGION, nothing elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        level = x[:, REGION[0], REGION[1]].mean(dim=(1, 2))
        return torch.stack([torch.zeros_like(level), level + 7], dim=1)


def toy_clip(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = -14 + 0.1 * torch.randn(40, 101, generator=g)  # floor
    x[REGION] += 10 + torch.rand(6, 20, generator=g)
    x[LOUD] += 13  # louder than the region, but ignored by the model
    return x


def test_integrated_gradients_recover_the_known_attribution_and_are_complete():
    model, x = Toy(), toy_clip()
    attr = integrated_gradients(model, x, target=1, steps=16)
    inside = torch.zeros_like(x, dtype=torch.bool)
    inside[REGION] = True
    assert (attr[inside] > 0).all()
    assert attr[~inside].abs().max() < 1e-3 * attr[inside].abs().max()
    base = silence_floor(x)
    with torch.no_grad():
        gap = model(x[None])[0, 1] - model(base[None])[0, 1]
    assert float(attr.sum()) == pytest.approx(float(gap), rel=1e-3)


def test_occlusion_peaks_inside_the_region():
    model, x = Toy(), toy_clip()
    attr = occlusion(model, x, target=1, patch=(2, 5))
    m, t = divmod(int(attr.argmax()), x.shape[1])
    assert REGION[0].start <= m < REGION[0].stop and REGION[1].start <= t < REGION[1].stop
    assert attr[LOUD].abs().max() < 1e-6


def test_deletion_of_the_top_cells_hurts_more_than_random_audible_or_loudest_cells():
    model = Toy()
    feats = torch.stack([toy_clip(s) for s in range(8)])
    attrs, targets = attribute(model, feats, method="ig", steps=8)
    assert (targets == 1).all()
    summary = deletion_test(model, feats, attrs, targets, fraction=0.03, repeats=3).summary()
    assert summary["clips"] == 8
    assert summary["drop_top"] > 0.5
    assert summary["margin_vs_random"] > 0.4 and summary["top_beats_random"] == 1.0
    assert summary["margin_vs_random_audible"] > 0.2
    assert summary["margin_vs_loudest"] > 0.4  # the loudest cells are the ignored blob
    with pytest.raises(AudreyError, match="fraction"):
        deletion_test(model, feats, attrs, fraction=1.5)


def test_audible_heatmap_keeps_the_attributed_sound_and_drops_the_rest():
    cfg = FrontendConfig()
    sr, n = cfg.sample_rate, cfg.clip_samples
    t = np.arange(n) / sr
    wave = np.where(t < 0.5, 0.5 * np.sin(2 * np.pi * 500 * t), 0.5 * np.sin(2 * np.pi * 2000 * t)).astype(np.float32)
    feats = LogMel(cfg)(torch.from_numpy(wave)[None])[0]
    # attribution: the mel bands of the 500 Hz tone during its half only
    band = int(feats[:, 10:40].mean(1).argmax())
    attr = torch.zeros_like(feats)
    attr[max(0, band - 1) : band + 2, 5:45] = 1.0
    out = audible_heatmap(wave, attr, cfg, keep=0.2)
    assert out.shape == wave.shape and out.dtype == np.float32
    first, second = out[: n // 2], out[n // 2 :]
    assert np.sqrt(np.mean(first**2)) > 10 * np.sqrt(np.mean(second**2))
    assert abs(peak_hz(first, sr) - 500) < 60


def test_explain_file_writes_a_png_and_a_wav_and_reports_deletion(tmp_path, espeak_digit):
    torch.manual_seed(0)
    bundle = ModelBundle(build_model("cnn").eval(), FrontendConfig())
    ex = explain_file(bundle, espeak_digit(7), tmp_path / "out", method="ig", keep=0.2, steps=8)
    from pathlib import Path

    assert Path(ex.png).read_bytes()[:8] == PNG
    audio, rate = sf.read(ex.wav)
    assert rate == bundle.frontend.sample_rate and len(audio) == bundle.frontend.clip_samples
    assert np.abs(audio).max() > 0.1
    assert set(ex.deletion) >= {"drop_top", "drop_random", "margin_vs_random", "top_beats_random"}
    json.dumps(ex.to_dict())
    occl = explain_file(bundle, espeak_digit(7), tmp_path / "occl", method="occlusion")
    assert Path(occl.png).exists() and occl.digit == ex.digit


def test_explain_cli_and_its_errors(tmp_path, espeak_digit, monkeypatch):
    from audrey.cli import app

    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    model = save_model(ModelBundle(build_model("cnn").eval(), FrontendConfig()), tmp_path / "m.safetensors")
    runner = CliRunner()
    clips = [str(espeak_digit(3)), str(espeak_digit(5))]
    result = runner.invoke(app, ["explain", *clips, "--model", str(model), "--steps", "8", "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and all((tmp_path / "explain" / f"{n}.explain.png").exists() for n in ("3_us_150", "5_us_150"))
    assert (tmp_path / "explain" / "3_us_150.relevant.wav").exists()

    not_audio = tmp_path / "notes.wav"
    not_audio.write_text("not audio")
    result = runner.invoke(app, ["explain", str(not_audio), "--model", str(model)])
    assert result.exit_code == 2 and "notes.wav" in one_line_error(result.output)
    result = runner.invoke(app, ["explain", clips[0], "--model", str(model), "--method", "lrp"])
    assert result.exit_code == 2 and "'lrp'" in one_line_error(result.output)
    result = runner.invoke(app, ["explain", clips[0], "--model", str(model), "--keep", "2"])
    assert result.exit_code == 2 and "--keep" in one_line_error(result.output)


def test_activation_patching_restores_or_leaves_the_output():
    torch.manual_seed(0)
    model = build_model("cnn").eval()
    clean, corrupt = torch.randn(1, 40, 101), torch.randn(1, 40, 101)
    with torch.no_grad():
        clean_logits, cache = model.run_with_cache(clean)
        corrupt_logits = model(corrupt)
    name = "blocks.2.hook_out"
    # the CNN is a chain: patching a whole block's output gives the clean run's output
    assert torch.allclose(patched_logits(model, corrupt, name, cache[name]), clean_logits, atol=1e-5)
    nowhere = torch.zeros_like(cache[name], dtype=torch.bool)
    assert torch.allclose(patched_logits(model, corrupt, name, cache[name], nowhere), corrupt_logits, atol=1e-6)
    half = torch.zeros_like(nowhere)
    half[..., :2] = True  # the first time steps only
    partial = patched_logits(model, corrupt, name, cache[name], half)
    assert not torch.allclose(partial, corrupt_logits) and not torch.allclose(partial, clean_logits)
    with pytest.raises(AudreyError, match="does not match"):
        patched_logits(model, corrupt, name, cache["blocks.1.hook_out"])
