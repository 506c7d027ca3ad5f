"""audrey.data.features (the content-keyed feature cache) and audrey.audio.frontend (log-mel, SpecAugment)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from audrey.data import features
from audrey.data.corpora import Clip
from audrey.errors import AudreyError
from audrey.data.features import FeatureCache, clip_features, file_digest
from audrey.audio.frontend import FrontendConfig, LogMel, load_clip, spec_augment
from audrey.audio.frontend import features as frontend_features
from helpers import burst, write_tone

CFG = FrontendConfig()


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own feature cache; ~/.cache is never touched."""
    root = tmp_path / "cache"
    monkeypatch.setenv("AUDREY_CACHE", str(root))
    return root


def tone_clips(folder: Path, n: int = 3) -> list[Clip]:
    clips = []
    for i in range(n):
        path = write_tone(folder / f"{i}_tone_0.wav", freq=300 + 200 * i, seconds=0.4)
        clips.append(Clip(path, i, "tone", "test"))
    return clips


def cached_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.npy"))


def test_cache_hit_skips_decoding(tmp_path, cache_dir, monkeypatch):
    clips = tone_clips(tmp_path / "clips")
    first, kept = clip_features(clips, CFG)
    assert kept == clips and first.shape == (3, CFG.n_mels, CFG.n_frames)
    assert len(cached_files(cache_dir / "features" / CFG.key())) == 3

    def no_decoding(*_):
        raise AssertionError("decoded a clip whose features are cached")

    monkeypatch.setattr(features, "load_clip", no_decoding)
    second, kept2 = clip_features(clips, CFG)
    assert kept2 == clips
    assert torch.equal(first, second)


def test_cache_survives_rename(tmp_path, monkeypatch):
    clips = tone_clips(tmp_path / "a", 1)
    first, _ = clip_features(clips, CFG)
    moved = tmp_path / "b" / "0_moved_0.wav"
    moved.parent.mkdir()
    clips[0].path.rename(moved)
    monkeypatch.setattr(features, "load_clip", lambda *_: pytest.fail("cache missed a renamed file"))
    second, _ = clip_features([Clip(moved, 0, "moved", "test")], CFG)
    assert torch.equal(first, second)


def test_changed_file_is_recomputed(tmp_path):
    clip = tone_clips(tmp_path / "clips", 1)[0]
    before, _ = clip_features([clip], CFG)
    digest = file_digest(clip.path)
    write_tone(clip.path, freq=2500, seconds=0.4)  # re-recorded take: same name, other bytes
    assert file_digest(clip.path) != digest
    after, _ = clip_features([clip], CFG)
    assert not torch.equal(before, after)
    fresh = frontend_features([load_clip(clip.path, CFG)], CFG)
    torch.testing.assert_close(after, fresh)


def test_other_config_other_folder(tmp_path, cache_dir):
    clips = tone_clips(tmp_path / "clips", 2)
    other = FrontendConfig(n_mels=32)
    assert other.key() != CFG.key()
    a, _ = clip_features(clips, CFG)
    b, _ = clip_features(clips, other)
    assert a.shape[1] == CFG.n_mels and b.shape[1] == 32
    folders = sorted(p.name for p in (cache_dir / "features").iterdir())
    assert folders == sorted([CFG.key(), other.key()])
    assert CFG.key() == FrontendConfig().key()  # stable for equal configs
    assert FrontendConfig.from_dict(other.to_dict()) == other


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated"])
def test_corrupt_cache_file_is_recomputed(tmp_path, cache_dir, damage):
    clip = tone_clips(tmp_path / "clips", 1)[0]
    good, _ = clip_features([clip], CFG)
    (npy,) = cached_files(cache_dir)
    blob = npy.read_bytes()
    npy.write_bytes({"garbage": b"\x00not an npy file" * 10, "empty": b"", "truncated": blob[: len(blob) // 2]}[damage])
    again, _ = clip_features([clip], CFG)
    torch.testing.assert_close(again, good)
    assert np.array_equal(np.load(npy), good[0].numpy())  # and the cache file is repaired


def test_cache_put_leaves_no_temp_files(tmp_path):
    cache = FeatureCache(CFG, tmp_path / "c")
    entry = np.ones((CFG.n_mels, CFG.n_frames), np.float32)
    cache.put("ab" * 16, entry)
    assert [p.name for p in (tmp_path / "c").rglob("*") if p.is_file()] == ["ab" * 16 + ".npy"]
    np.testing.assert_array_equal(cache.get("ab" * 16), entry)
    assert cache.get("cd" * 16) is None


WRONG_ENTRIES = {
    "other shape": np.zeros((CFG.n_mels, CFG.n_frames + 1), np.float32),
    "transposed": np.zeros((CFG.n_frames, CFG.n_mels), np.float32),
    "float64": np.zeros((CFG.n_mels, CFG.n_frames), np.float64),
    "scalar": np.float32(1.0),
    "nan": np.full((CFG.n_mels, CFG.n_frames), np.nan, np.float32),
    "one inf": np.where(np.arange(CFG.n_mels * CFG.n_frames).reshape(CFG.n_mels, CFG.n_frames) == 7, np.inf, 0).astype(np.float32),
    "fortran order": np.asfortranarray(np.zeros((CFG.n_mels, CFG.n_frames), np.float32)),
    "object (pickle)": np.array([{"x": 1}], dtype=object),
}


@pytest.mark.parametrize("kind", list(WRONG_ENTRIES))
def test_wrong_cache_entry_is_recomputed(tmp_path, cache_dir, kind):
    """A valid .npy that is not what the frontend makes (shape, dtype, NaN, a pickle) is never
    used: it is recomputed, and the entry repaired."""
    clip = tone_clips(tmp_path / "clips", 1)[0]
    good, _ = clip_features([clip], CFG)
    (npy,) = cached_files(cache_dir)
    np.save(npy, WRONG_ENTRIES[kind], allow_pickle=True)
    again, _ = clip_features([clip], CFG)
    torch.testing.assert_close(again, good)
    assert np.array_equal(np.load(npy), good[0].numpy())


def test_cache_entry_declaring_a_huge_array_costs_nothing(tmp_path, cache_dir):
    """A .npy header may declare any shape; the data is never read unless it is the right one."""
    clip = tone_clips(tmp_path / "clips", 1)[0]
    good, _ = clip_features([clip], CFG)
    (npy,) = cached_files(cache_dir)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (2**20, 2**20)})
    npy.write_bytes(header.getvalue() + b"\x00" * 64)  # a 4 TiB array, if anything believed the header
    assert FeatureCache(CFG).get(npy.stem) is None
    again, _ = clip_features([clip], CFG)
    torch.testing.assert_close(again, good)


def test_stale_temp_files_are_removed_fresh_ones_kept(tmp_path):
    """A writer killed between writing and renaming leaves a hidden .tmp; the next cache removes
    it once it is old enough that no live writer can own it."""
    import os
    import time

    root = tmp_path / "c"
    folder = root / "features" / CFG.key() / "ab"
    folder.mkdir(parents=True)
    stale, fresh = folder / f".{'ab' * 16}.npy.x1.tmp", folder / f".{'ab' * 16}.npy.x2.tmp"
    stale.write_bytes(b"partial"), fresh.write_bytes(b"partial")
    old = time.time() - features.STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    FeatureCache(CFG, root)
    assert not stale.exists() and fresh.exists()


def test_bad_clips_skipped_with_one_warning(tmp_path, capsys):
    clips = tone_clips(tmp_path / "clips", 3)
    empty = tmp_path / "clips" / "5_tone_0.wav"
    empty.touch()
    garbage = tmp_path / "clips" / "6_tone_0.wav"
    garbage.write_bytes(b"garbage" * 100)
    missing = tmp_path / "clips" / "7_tone_0.wav"
    batch = [clips[0], Clip(empty, 5, "tone", "t"), clips[1], Clip(garbage, 6, "tone", "t"),
             Clip(missing, 7, "tone", "t"), clips[2]]
    feats, kept = clip_features(batch, CFG)
    assert kept == clips and feats.shape[0] == 3
    err = " ".join(capsys.readouterr().err.split())  # rich may wrap long lines
    assert err.count("warning:") == 1
    assert "skipped 3 unreadable clip(s) of 6" in err
    assert "5_tone_0.wav" in err  # names the first one


def test_all_bad_raises(tmp_path):
    bad = tmp_path / "1_x_0.wav"
    bad.write_bytes(b"nope")
    with pytest.raises(AudreyError, match="none of the 2 clips"):
        clip_features([Clip(bad, 1, "x", "t"), Clip(tmp_path / "gone.wav", 2, "x", "t")], CFG)


def test_too_long_clip_is_skipped(tmp_path, capsys):
    good = tone_clips(tmp_path, 1)
    long_clip = write_tone(tmp_path / "2_tone_1.wav", seconds=11)
    feats, kept = clip_features(good + [Clip(long_clip, 2, "tone", "t")], CFG)
    assert kept == good
    assert "over 10 s" in " ".join(capsys.readouterr().err.split())


# --- frontend --------------------------------------------------------------------------------------


def test_logmel_shape_and_finite():
    x, _, _ = burst()
    n = CFG.clip_samples
    wave = torch.from_numpy(np.stack([np.resize(x, n), np.zeros(n, np.float32)]))  # speech and digital silence
    out = LogMel(CFG)(wave)
    assert out.shape == (2, CFG.n_mels, CFG.n_frames) == (2, 64, 101)
    assert torch.isfinite(out).all()
    assert out[1].max() == pytest.approx(np.log(CFG.log_floor))  # silence sits on the floor, not -inf


def test_logmel_puts_tone_in_right_band():
    t = np.arange(8000) / 8000
    low = torch.tensor(np.sin(2 * np.pi * 300 * t), dtype=torch.float32)[None]
    high = torch.tensor(np.sin(2 * np.pi * 3000 * t), dtype=torch.float32)[None]
    m = LogMel(CFG)
    assert m(low)[0].mean(dim=1).argmax() < m(high)[0].mean(dim=1).argmax()


def test_logmel_narrowband_config():
    cfg = FrontendConfig(sample_rate=8000, f_max=3800, n_fft=256, win_length=200, hop_length=80, n_mels=40)
    out = LogMel(cfg)(torch.zeros(1, cfg.clip_samples))
    assert out.shape == (1, cfg.n_mels, cfg.n_frames) == (1, 40, 101)


def test_from_dict_rejects_unknown_fields():
    with pytest.raises(AudreyError, match="unknown fields"):
        FrontendConfig.from_dict({**CFG.to_dict(), "n_bands": 3})


def test_spec_augment_masks():
    feats = torch.randn(4, 40, 101)
    g = torch.Generator().manual_seed(0)
    out = spec_augment(feats, freq_masks=2, freq_width=6, time_masks=2, time_width=12, generator=g)
    assert out.shape == feats.shape
    changed = out != feats
    assert changed.any()
    assert changed.float().mean() < 0.5  # masks, not a rewrite
    # masked cells hold the clip's mean
    means = feats.mean(dim=(1, 2), keepdim=True).expand_as(feats)
    assert torch.equal(out[changed], means[changed])
    assert torch.equal(feats, feats.clone())  # input untouched
    again = spec_augment(feats, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # reproducible from the generator


def test_spec_augment_masks_whole_rows_and_columns():
    feats = torch.arange(40 * 101, dtype=torch.float32).reshape(1, 40, 101)
    out = spec_augment(feats, freq_masks=1, freq_width=40, time_masks=0, generator=torch.Generator().manual_seed(1))
    rows = (out != feats).all(dim=2)[0]  # a frequency mask covers every frame of its bands
    assert torch.equal(rows, (out != feats).any(dim=2)[0])


def test_narrowband_effect_matches_a_real_8khz_source():
    """The augmentation's 8 kHz source looks like one: above the cut, the bins of a clip resampled
    through 8 kHz, and below it the wideband clip's own."""
    from audrey.audio import waveform
    from audrey.data.augment import NARROWBAND_HZ, mel_centers, narrowband

    rng = np.random.default_rng(0)
    wave = (rng.standard_normal(CFG.clip_samples) * np.hanning(CFG.clip_samples)).astype(np.float32)
    wide = frontend_features([wave], CFG)
    through_8k = frontend_features([waveform.resample(wave, CFG.sample_rate, 8000)], CFG, rate=8000)
    g = torch.Generator().manual_seed(0)
    made = narrowband(wide, CFG, 1.0, g)
    above = torch.from_numpy(mel_centers(CFG) > NARROWBAND_HZ[1])
    below = torch.from_numpy(mel_centers(CFG) < NARROWBAND_HZ[0] - 300)
    empty = np.log(CFG.log_floor)
    assert (made[0, above] == float(empty)).all()
    near_empty = (through_8k[0, above] - empty).abs() < 0.1  # all but the resampler's edge transients
    assert near_empty.float().mean() > 0.9
    torch.testing.assert_close(made[0, below], wide[0, below])
    assert wide[0, above].mean() > empty + 5  # the wideband clip had energy there
    # an 8 kHz frontend has no band above 4 kHz: the effect leaves it alone
    narrow_cfg = FrontendConfig(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40, f_max=3800.0)
    feats = torch.randn(2, 40, 101)
    from audrey.data.augment import AugmentConfig, NO_AUGMENT, augment_batch
    from dataclasses import replace
    torch.testing.assert_close(augment_batch(feats, narrow_cfg, replace(NO_AUGMENT, narrowband_p=1.0)), feats)
