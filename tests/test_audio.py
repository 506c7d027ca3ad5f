"""audrey.audio: reading every format, resampling, atomic writes, trimming, and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from audrey.audio import waveform
from audrey.audio.waveform import AudreyError, load_audio, pad_or_trim, prepare_clip, speech_bounds, trim_silence, write_audio
from helpers import burst as burst_at, peak_hz, tone as tone_at

RATE = waveform.SAMPLE_RATE  # the model's rate: what load_audio gives unless asked for another
OTHER_RATE = 8000  # a rate below it, as FSDD and telephone audio come


def tone(freq: float = 440.0, seconds: float = 0.3, sr: int = RATE, amp: float = 0.5) -> np.ndarray:
    return tone_at(freq, seconds, sr=sr, amp=amp)


def burst(sr: int = RATE, **kw):
    return burst_at(sr=sr, **kw)


@pytest.mark.parametrize(
    "suffix, fmt, subtype, tol",
    [(".wav", "WAV", "PCM_16", 1e-3), (".flac", "FLAC", "PCM_16", 1e-3), (".ogg", "OGG", "VORBIS", 0.1)],
)
def test_load_audio_formats(tmp_path, suffix, fmt, subtype, tol):
    x = tone(440, 0.5)
    path = tmp_path / f"clip{suffix}"
    sf.write(str(path), x, RATE, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - len(x)) <= 8  # lossy codecs may pad a few samples
    n = min(len(x), len(y))
    assert np.abs(y[:n] - x[:n]).max() < tol
    assert peak_hz(y, RATE) == pytest.approx(440, abs=10)


def test_stereo_becomes_mono_mean(tmp_path):
    left, right = tone(440, 0.2, amp=0.6), tone(440, 0.2, amp=0.2)
    path = tmp_path / "stereo.wav"
    sf.write(str(path), np.stack([left, right], axis=1), RATE, subtype="FLOAT")
    y = load_audio(path)
    assert y.ndim == 1
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-6)


@pytest.mark.parametrize("rate", [48000, OTHER_RATE, 22050])
def test_resampling_keeps_frequency(tmp_path, rate):
    path = tmp_path / f"tone_{rate}.wav"
    sf.write(str(path), tone(1000, 1.0, sr=rate), rate, subtype="PCM_16")
    y = load_audio(path)  # to the model's rate
    assert len(y) == pytest.approx(RATE, abs=2)
    assert peak_hz(y, RATE) == pytest.approx(1000, abs=5)
    # the level survives the resampler (no gain change in the pass band)
    assert np.abs(y[1000:-1000]).max() == pytest.approx(0.5, abs=0.02)


def test_resampling_removes_energy_above_new_nyquist(tmp_path):
    path = tmp_path / "high.wav"
    sf.write(str(path), tone(10000, 1.0, sr=48000), 48000, subtype="PCM_16")
    y = load_audio(path)  # 10 kHz cannot exist at 16 kHz: it must be filtered out, not aliased to 6 kHz
    assert np.abs(y[100:-100]).max() < 0.01  # (the abrupt start and end leave a brief click)


def test_load_at_other_rate(tmp_path):
    path = tmp_path / "t.wav"
    sf.write(str(path), tone(440, 0.5, sr=RATE), RATE, subtype="PCM_16")
    y = load_audio(path, sr=OTHER_RATE)
    assert len(y) == OTHER_RATE // 2
    assert peak_hz(y, OTHER_RATE) == pytest.approx(440, abs=5)


def test_write_audio_atomic_16bit_and_overwrites(tmp_path):
    path = tmp_path / "sub" / "out.wav"
    write_audio(path, tone(440, 0.3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.wav"]  # no temp file left
    info = sf.info(str(path))
    assert (info.samplerate, info.subtype, info.channels) == (RATE, "PCM_16", 1)
    np.testing.assert_allclose(load_audio(path), tone(440, 0.3), atol=1e-4)

    write_audio(path, tone(880, 0.1) * 4)  # overwrite; over-range samples are clipped, not wrapped
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.wav"]
    y = load_audio(path)
    assert len(y) == RATE // 10
    assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.99


def test_write_audio_failure_leaves_no_temp_file(tmp_path):
    path = tmp_path / "bad.wav"
    with pytest.raises(Exception):
        write_audio(path, np.zeros((2, 2, 2), np.float32))  # not 1-D or 2-D audio
    assert list(tmp_path.iterdir()) == []


def test_speech_bounds_on_tone_burst():
    x, start, end = burst()
    s, e = speech_bounds(x)
    margin = int(waveform.TRIM_MARGIN * RATE)
    frame = waveform.TRIM_FRAME
    # the burst plus the margin, give or take one analysis frame
    assert start - margin - frame <= s <= start - margin + frame
    assert end + margin - frame <= e <= end + margin + frame
    trimmed = trim_silence(x)
    assert len(trimmed) == e - s
    assert np.abs(trimmed).max() == np.abs(x).max()


def test_speech_bounds_at_another_rate_uses_durations():
    x, start, end = burst(sr=OTHER_RATE)
    s, e = speech_bounds(x, sr=OTHER_RATE)
    margin = int(waveform.TRIM_MARGIN * OTHER_RATE)
    frame = waveform.TRIM_FRAME * OTHER_RATE // RATE
    assert abs(s - (start - margin)) <= frame and abs(e - (end + margin)) <= frame


def test_speech_bounds_edge_cases():
    assert speech_bounds(np.zeros(0, np.float32)) == (0, 0)
    silent = np.zeros(4000, np.float32)
    assert speech_bounds(silent) == (0, 4000)  # nothing louder than anything: keep it all
    short = tone(440, 0.01)  # shorter than one trim frame
    assert speech_bounds(short) == (0, len(short))


def test_pad_or_trim_centres():
    x = np.arange(1, 11, dtype=np.float32)
    padded = pad_or_trim(x, 20)
    assert len(padded) == 20
    np.testing.assert_array_equal(padded[5:15], x)
    assert not padded[:5].any() and not padded[15:].any()
    cut = pad_or_trim(np.arange(30, dtype=np.float32), 10)
    np.testing.assert_array_equal(cut, np.arange(10, 20))
    np.testing.assert_array_equal(pad_or_trim(x, 10), x)


def test_prepare_clip_length_peak_and_centre():
    x, start, end = burst(before=0.2, length=0.3, after=0.9)
    y = prepare_clip(x * 0.1)  # quiet input: level must not matter
    assert y.dtype == np.float32 and len(y) == waveform.CLIP_SAMPLES
    assert np.abs(y).max() == pytest.approx(0.9, abs=1e-4)
    loud = np.flatnonzero(np.abs(y) > 0.01)
    centre = (loud[0] + loud[-1]) / 2
    assert abs(centre - waveform.CLIP_SAMPLES / 2) < waveform.TRIM_FRAME  # burst centred despite the offset


def test_prepare_clip_silence_and_long_input():
    assert not prepare_clip(np.zeros(3000, np.float32)).any()  # no division by a zero peak
    assert len(prepare_clip(tone(300, 2.5))) == waveform.CLIP_SAMPLES  # longer than a clip: centre cut
    assert len(prepare_clip(np.zeros(0, np.float32))) == waveform.CLIP_SAMPLES


def test_prepare_clip_respects_rate():
    x, _, _ = burst(sr=OTHER_RATE)
    y = prepare_clip(x, OTHER_RATE, sr=OTHER_RATE)
    # trimmed at 8 kHz with the same 50 ms margin: 300 ms burst + 2 x 50 ms, give or take a frame
    loud = np.flatnonzero(np.abs(y) > 0)
    assert abs((loud[-1] - loud[0]) - 0.3 * OTHER_RATE) < waveform.TRIM_FRAME


# --- bad input: always AudreyError, always naming the file ---------------------------------------


def _raises_naming(path, **kw):
    with pytest.raises(AudreyError) as info:
        load_audio(path, **kw)
    assert path.name in str(info.value)
    return str(info.value)


def test_missing_file(tmp_path):
    assert "no such" in _raises_naming(tmp_path / "nope.wav")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.touch()
    assert "empty" in _raises_naming(path)


def test_garbage_named_wav(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not a RIFF file at all" * 20)
    assert "not a readable audio file" in _raises_naming(path)


def test_wav_with_zero_frames(tmp_path):
    path = tmp_path / "zero_frames.wav"
    sf.write(str(path), np.zeros(0, np.float32), RATE, subtype="PCM_16")
    assert path.stat().st_size > 0
    assert "no audio samples" in _raises_naming(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, bad):
    x = tone(440, 0.2)
    x[100] = bad
    path = tmp_path / "nonfinite.wav"
    sf.write(str(path), x, RATE, subtype="FLOAT")
    assert "NaN or infinite" in _raises_naming(path)


def test_too_long(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(str(path), np.zeros(RATE * 11, np.float32), RATE, subtype="PCM_16")
    assert "over 10 s" in _raises_naming(path, max_seconds=10)
    assert len(load_audio(path)) == RATE * 11  # no limit unless asked


def test_too_short_to_resample(tmp_path):
    path = tmp_path / "one_sample.wav"
    sf.write(str(path), np.full(1, 0.5, np.float32), 48000, subtype="PCM_16")
    assert "too short" in _raises_naming(path)
