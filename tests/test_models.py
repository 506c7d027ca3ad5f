"""Models, model files, training, resume, recognizer: issue 3's tests."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from audrey.data.augment import NO_AUGMENT
from audrey.audio import waveform
from audrey.data.corpora import read_corpus
from audrey.errors import AudreyError
from audrey.audio.frontend import FrontendConfig
from audrey.models.modelfile import ModelBundle, load_model, save_model
from audrey.models import build_model
from audrey.live.recognizer import Recognizer
from audrey.training.train import TrainConfig, train
from helpers import require_fsdd, require_speech_commands

STARTER = Path(__file__).resolve().parents[1] / "models" / "starter.safetensors"
NARROW_RATE = 8000  # FSDD's and telephone audio's rate

ARCHS = ["cnn", "conformer"]
SMALL = {"cnn": {}, "conformer": {"d_model": 32, "ffn_dim": 64, "n_layers": 2, "n_heads": 2}}


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDREY_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def fsdd_small():
    """Two FSDD speakers, 4 takes of every digit each: 80 real clips."""
    root = require_fsdd()
    clips = [c for c in read_corpus(root) if c.speaker in ("george", "theo") and c.take < 4]
    return clips


@pytest.mark.parametrize("arch", ARCHS)
def test_hook_names_stable_and_complete(arch):
    model = build_model(arch, **SMALL[arch])
    names = model.hook_names()
    assert names == build_model(arch, **SMALL[arch]).hook_names()
    assert names[0] == "hook_input" and names[-2:] == ["head.hook_embed", "head.hook_logits"]
    n_blocks = len(model.blocks)
    assert [n for n in names if n.startswith("blocks.")] == [f"blocks.{i}.hook_out" for i in range(n_blocks)]


@pytest.mark.parametrize("arch", ARCHS)
def test_cache_matches_plain_forward_and_ablation_changes_output(arch):
    torch.manual_seed(0)
    model = build_model(arch, **SMALL[arch]).eval()
    x = torch.randn(3, FrontendConfig.n_mels, 101)
    with torch.no_grad():
        plain = model(x)
        logits, cache = model.run_with_cache(x)
        assert torch.allclose(plain, logits)
        assert set(cache) == set(model.hook_names())
        assert torch.allclose(cache["head.hook_logits"], plain)
        ablated = model.run_with_hooks(x, [("blocks.0.hook_out", lambda act, hook: torch.zeros_like(act))])
    assert not torch.allclose(ablated, plain)
    with torch.no_grad():
        assert torch.allclose(model(x), plain)  # hooks are removed afterwards
    with pytest.raises(KeyError, match="no hook point"):
        model.run_with_hooks(x, [("blocks.99.hook_out", lambda a, h: a)])


@pytest.mark.parametrize("arch", ARCHS)
def test_save_load_round_trip_identical_outputs(arch, tmp_path):
    torch.manual_seed(1)
    model = build_model(arch, **SMALL[arch]).eval()
    bundle = ModelBundle(model, FrontendConfig(), provenance={"data": ["x"], "metrics": {"test_acc": 0.5}})
    path = save_model(bundle, tmp_path / "m.safetensors")
    loaded, _ = load_model(path)
    x = torch.randn(4, FrontendConfig.n_mels, 101)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))
    assert loaded.arch == arch
    assert loaded.frontend == bundle.frontend
    assert loaded.provenance["metrics"]["test_acc"] == 0.5 and "code_version" in loaded.provenance


def test_bad_model_files_are_refused(tmp_path):
    model = build_model("cnn").eval()
    good = save_model(ModelBundle(model, FrontendConfig()), tmp_path / "good.safetensors")
    data = good.read_bytes()

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(AudreyError, match="truncated.safetensors"):
        load_model(truncated)

    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(AudreyError, match="garbage.safetensors"):
        load_model(garbage)

    with pytest.raises(AudreyError, match="no such model file"):
        load_model(tmp_path / "missing.safetensors")

    with pytest.raises(AudreyError, match="holds a cnn model, not a conformer"):
        load_model(good, expect_arch="conformer")

    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(AudreyError, match="not an Audrey model file"):
        load_model(foreign)

    # a file whose metadata names one architecture and whose tensors belong to another
    conformer = build_model("conformer", **SMALL["conformer"])
    mixed = tmp_path / "mixed.safetensors"
    from safetensors.torch import load_file
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])["__metadata__"]
    save_file({k: v.contiguous() for k, v in conformer.state_dict().items()}, str(mixed), metadata=header)
    assert load_file(str(mixed))  # the file itself is valid safetensors
    with pytest.raises(AudreyError, match="do not fit the cnn architecture"):
        load_model(mixed)


def test_model_file_is_small_and_loads_without_pickle(tmp_path):
    path = save_model(ModelBundle(build_model("cnn"), FrontendConfig()), tmp_path / "m.safetensors")
    assert path.stat().st_size < 1_000_000
    assert not path.read_bytes().startswith(b"\x80")  # not a pickle stream


def test_recognizer_fast_path_matches_eager(espeak_digit):
    torch.manual_seed(2)
    bundle = ModelBundle(build_model("cnn").eval(), FrontendConfig())
    from audrey.audio.waveform import load_audio

    waves = [load_audio(espeak_digit(d)) for d in (3, 7)]
    fast = Recognizer(bundle, fast=True).probabilities(waves)
    eager = Recognizer(bundle, fast=False).probabilities(waves)
    assert torch.allclose(fast, eager, atol=1e-5)
    assert torch.allclose(fast.sum(-1), torch.ones(2))


def tiny_config(**kw) -> TrainConfig:
    return replace(TrainConfig(arch="cnn", epochs=3, batch_size=16, lr=3e-3, patience=100, augment=NO_AUGMENT), **kw)


def test_training_reduces_loss_on_real_clips(fsdd_small):
    result = train(fsdd_small, [], tiny_config(epochs=4))
    losses = [r["train_loss"] for r in result.history]
    assert losses[-1] < losses[0] - 0.3, losses


def test_training_is_deterministic_and_resume_continues_exactly(fsdd_small, tmp_path):
    val = [c for c in fsdd_small if c.take == 3]
    trn = [c for c in fsdd_small if c.take != 3]
    reference = train(trn, val, tiny_config())

    ckpt = tmp_path / "run.ckpt.safetensors"

    class Killed(Exception):
        pass

    def kill_after_first(record):
        if record["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        train(trn, val, tiny_config(), checkpoint=ckpt, on_epoch=kill_after_first)
    assert ckpt.exists()
    resumed = train(trn, val, tiny_config(), checkpoint=ckpt, resume=True)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(reference.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_acc"] == b["val_acc"]
    ref_state, res_state = reference.bundle.model.state_dict(), resumed.bundle.model.state_dict()
    for key in ref_state:
        assert torch.allclose(ref_state[key].float(), res_state[key].float(), atol=1e-6), key


def test_resume_with_other_options_is_a_clear_error(fsdd_small, tmp_path):
    ckpt = tmp_path / "run.ckpt.safetensors"
    train(fsdd_small, [], tiny_config(epochs=1), checkpoint=ckpt)
    with pytest.raises(AudreyError, match="does not match this training set-up"):
        train(fsdd_small, [], tiny_config(epochs=1, model={"channels": [8, 16]}), checkpoint=ckpt, resume=True)


def test_early_stopping_keeps_the_best_epoch(fsdd_small):
    val = [c for c in fsdd_small if c.take == 3]
    trn = [c for c in fsdd_small if c.take != 3]
    result = train(trn, val, tiny_config(epochs=6, patience=2))
    best = max(result.history, key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert result.best_epoch == best["epoch"]
    assert len(result.history) <= result.best_epoch + 2


def through_narrowband(wave: np.ndarray, rate: int) -> np.ndarray:
    """The clip as an 8 kHz source gives it: down to 8 kHz and back up to `rate`."""
    return waveform.resample(waveform.resample(wave, rate, NARROW_RATE), NARROW_RATE, rate)


def heard(recognizer: Recognizer, waves: list[np.ndarray]) -> list[int]:
    return [p.digit for p in recognizer.predict(waves)]


def test_starter_hears_the_same_digit_at_8_and_16_khz(espeak_digit):
    recognizer = Recognizer.from_file(STARTER)
    rate = recognizer.sample_rate
    wide = [waveform.load_audio(espeak_digit(d, voice=v), rate) for v in ("us", "gb") for d in range(10)]
    assert heard(recognizer, wide) == heard(recognizer, [through_narrowband(w, rate) for w in wide]) == list(range(10)) * 2


def test_starter_hears_real_digits_alike_at_8_and_16_khz():
    """Every Speech Commands digit (16 kHz) and the same clip through an 8 kHz channel."""
    clips = read_corpus(require_speech_commands())
    recognizer = Recognizer.from_file(STARTER)
    rate = recognizer.sample_rate
    wide = [waveform.load_audio(c.path, rate) for c in clips]
    a, b = heard(recognizer, wide), heard(recognizer, [through_narrowband(w, rate) for w in wide])
    agree = np.mean([x == y for x, y in zip(a, b)])
    assert agree >= 0.97, f"the same clip at 8 and 16 kHz gave the same digit {agree:.1%} of the time"
