"""Out-of-distribution scores from the penultimate activations (issue 7)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from audrey.errors import AudreyError
from audrey.models.hooks import HookedModule, HookPoint
from audrey.observe.ood import OODStats, fit_from_clips, fit_ood, load_for, score_waves, sidecar_path
from audrey.observe.separation import auroc
from helpers import fsdd_subset, one_line_error


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDREY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")


class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.hook_embed = HookPoint()
        self.fc = nn.Linear(40, 10)

    def forward(self, e):
        return self.fc(self.hook_embed(e))


class MeanOverTime(HookedModule):
    """Embedding = the time average of each mel band: whatever is planted there is what the OOD score sees."""

    def __init__(self):
        super().__init__()
        self.head = Head()
        self.setup_hooks()

    def forward(self, x):
        return self.head(x.mean(-1))


def planted(n_per_class: int, speakers: int, shift: float = 0.0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(10, 40, generator=torch.Generator().manual_seed(99)) * 3
    labels = torch.arange(10).repeat_interleave(n_per_class)
    emb = centres[labels] + torch.randn(len(labels), 40, generator=g) + shift
    feats = emb[:, :, None] + 0.1 * torch.randn(len(labels), 40, 101, generator=g)
    spk = [f"s{i % speakers}" for i in range(len(labels))]
    return feats, labels, spk


def test_auroc_matches_its_definition():
    rng = np.random.default_rng(0)
    neg, pos = rng.integers(0, 5, 40), rng.integers(2, 8, 30)
    brute = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auroc(neg, pos) == pytest.approx(brute)
    assert auroc([1, 2], [3, 4]) == 1.0 and auroc([3, 4], [1, 2]) == 0.0 and auroc([1, 1], [1]) == 0.5


def test_planted_outliers_score_high_and_the_threshold_holds_out_speakers():
    model = MeanOverTime().eval()
    feats, labels, spk = planted(60, speakers=6)
    stats = fit_ood(model, feats, labels, spk, quantile=0.95)
    assert "held out" in stats.info["threshold_from"]
    test_in, _, _ = planted(20, speakers=1, seed=1)
    g = torch.Generator().manual_seed(2)
    test_out = 4 * torch.randn(200, 40, 1, generator=g).expand(200, 40, 101)  # no class centre nearby
    s_in, s_out = stats.score_features(model, test_in), stats.score_features(model, test_out)
    assert auroc(s_in, s_out) > 0.95
    assert (s_in > stats.threshold).float().mean() < 0.15  # the held-out quantile carries over to new clips
    assert (s_out > stats.threshold).float().mean() > 0.8
    # two speakers: no held-out threshold, and it says so
    assert "optimistic" in fit_ood(model, *planted(20, speakers=2)).info["threshold_from"]
    with pytest.raises(AudreyError, match="at least two digits"):
        fit_ood(model, feats[:10], torch.zeros(10, dtype=torch.long))


def test_stats_round_trip_and_refusals(tmp_path):
    model = MeanOverTime().eval()
    stats = fit_ood(model, *planted(20, speakers=4))
    path = stats.save(tmp_path / "m.ood.safetensors")
    back = OODStats.load(path)
    assert torch.equal(back.means, stats.means) and torch.equal(back.precision, stats.precision)
    assert back.threshold == stats.threshold and back.info == stats.info
    back.check_model(model, path)
    with pytest.raises(AudreyError, match="another model"):
        back.check_model(MeanOverTime(), path)
    bad = tmp_path / "bad.ood.safetensors"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(AudreyError, match="bad.ood.safetensors"):
        OODStats.load(bad)
    assert sidecar_path(tmp_path / "starter.safetensors").name == "starter.ood.safetensors"
    assert load_for(tmp_path / "nothing.safetensors", model) is None
    with pytest.raises(AudreyError, match="ood-fit"):
        load_for(tmp_path / "nothing.safetensors", model, required=True)


def test_trained_model_separates_held_out_digits_from_noise(tiny_bundle):
    from audrey.audio.waveform import load_audio

    bundle = tiny_bundle
    stats = fit_from_clips(bundle, fsdd_subset())
    rate = bundle.frontend.sample_rate
    digits = [load_audio(c.path, rate) for c in fsdd_subset(takes=6) if c.take >= 4]  # takes it never saw
    rng = np.random.default_rng(0)
    noise = [rng.normal(0, 0.1, rate // 2).astype(np.float32) for _ in range(20)]
    hum = [(0.3 * np.sin(2 * np.pi * f * np.arange(rate // 2) / rate)).astype(np.float32) for f in range(100, 2100, 100)]
    s_in = score_waves(bundle, stats, digits)
    s_out = score_waves(bundle, stats, noise + hum)
    assert auroc(s_in, s_out) > 0.9


@pytest.fixture
def small_corpus(tmp_path):
    dest = tmp_path / "corpus" / "recordings"
    dest.mkdir(parents=True)
    for c in fsdd_subset(takes=2):
        shutil.copy(c.path, dest / c.path.name)
    return dest.parent


def test_ood_fit_and_predict_json_cli(tmp_path, small_corpus, tiny_bundle, monkeypatch):
    from audrey.cli import app
    from audrey.models.modelfile import save_model

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    model = save_model(tiny_bundle, tmp_path / "m.safetensors")
    clip = next(iter(sorted((small_corpus / "recordings").iterdir())))

    result = runner.invoke(app, ["predict", str(clip), "--model", str(model), "--json"])
    assert result.exit_code == 0 and "ood" not in json.loads(result.stdout)  # no statistics: no field
    result = runner.invoke(app, ["predict", str(clip), "--model", str(model), "--ood"])
    assert result.exit_code == 2 and "ood-fit" in one_line_error(result.output)
    result = runner.invoke(app, ["ood-fit", "--model", str(model)])  # provenance names no corpora
    assert result.exit_code == 2 and "--data" in one_line_error(result.output)

    result = runner.invoke(app, ["ood-fit", "--model", str(model), "--data", str(small_corpus)])
    assert result.exit_code == 0, result.output
    assert sidecar_path(model).exists()
    result = runner.invoke(app, ["predict", str(clip), "--model", str(model), "--json"])
    assert result.exit_code == 0, result.output
    ood = json.loads(result.stdout)["ood"]
    assert set(ood) == {"score", "threshold", "flagged"} and ood["score"] >= 0
