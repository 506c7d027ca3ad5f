"""The streaming segmenter: same answer for any block size, segments out as soon as speech ends,
an adaptive floor, bounded memory, and the named presets each use of it keeps."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from audrey.audio.waveform import load_audio
from audrey.audio.vad import (
    FLOOR_WINDOW_SECONDS,
    FRAME_SECONDS,
    GATE,
    LIVE,
    RECORDER,
    START_FRAMES,
    Segmenter,
    SegmenterSettings,
    segment,
)

RATE = 16000


def tone(seconds: float, db: float = -20.0, f0: float = 180.0) -> np.ndarray:
    """A voiced-speech stand-in: a few harmonics of f0 at `db` dBFS RMS, 10 ms fades."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in (1, 2, 3, 4))
    x *= 10 ** (db / 20) / np.sqrt(np.mean(x**2))
    fade = np.minimum(1, np.minimum(np.arange(len(x)), np.arange(len(x))[::-1]) / (0.01 * RATE))
    return (x * fade).astype(np.float32)


def quiet(seconds: float, db: float | None = -70.0, seed: int = 0) -> np.ndarray:
    n = int(seconds * RATE)
    if db is None:
        return np.zeros(n, np.float32)
    return (10 ** (db / 20) * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def join(*parts):
    return np.concatenate(parts)


def stream(audio: np.ndarray, block: int, settings: SegmenterSettings) -> list:
    seg = Segmenter(RATE, settings)
    out = []
    for i in range(0, len(audio), block):
        out += seg.feed(audio[i : i + block])
    return out + seg.flush()


def test_one_word_bounds_and_margins():
    audio = join(quiet(0.5), tone(0.4), quiet(0.6, seed=1))
    (s,) = segment(audio, RATE, GATE)
    frame = int(FRAME_SECONDS * RATE)
    assert abs(s.speech_start - int(0.5 * RATE)) <= 2 * frame
    assert abs(s.speech_end - int(0.9 * RATE)) <= 2 * frame
    assert s.speech_start - s.start == pytest.approx(GATE.margin * RATE, abs=frame)
    assert s.end - s.speech_end == pytest.approx(GATE.margin * RATE, abs=frame)
    assert np.array_equal(s.audio, audio[s.start : s.end])
    assert s.floor_db == pytest.approx(-70, abs=3) and s.peak_db == pytest.approx(-20, abs=2)


@pytest.mark.parametrize("settings", [RECORDER, LIVE], ids=["recorder", "live"])
@pytest.mark.parametrize("block", [1, 37, 160, 320, 1000, 4096])
def test_any_block_size_gives_the_same_segments(block, settings):
    audio = join(quiet(0.3), tone(0.3), quiet(0.5, seed=2), tone(0.5, -25, 140), quiet(0.4, seed=3))
    whole = stream(audio, len(audio), settings)
    parts = stream(audio, block, settings)
    assert len(whole) == 2
    assert [(s.start, s.end, s.speech_start, s.speech_end) for s in parts] == [
        (s.start, s.end, s.speech_start, s.speech_end) for s in whole
    ]
    assert all(np.array_equal(a.audio, b.audio) for a, b in zip(parts, whole))


def test_segment_is_emitted_as_soon_as_the_hangover_passes():
    hangover = RECORDER.hangover
    audio = join(quiet(0.4), tone(0.3), quiet(2.0, seed=1))
    seg = Segmenter(RATE, RECORDER)
    block = 160
    for i in range(0, len(audio), block):
        out = seg.feed(audio[i : i + block])
        if out:
            emitted_at = i + block
            break
    else:
        pytest.fail("no segment")
    delay = (emitted_at - out[0].speech_end) / RATE
    assert hangover - 0.011 <= delay <= hangover + 0.021  # within a frame or two of the hangover


def test_pauses_shorter_than_the_hangover_stay_in_one_segment():
    two = join(quiet(0.3), tone(0.3), quiet(0.1, seed=1), tone(0.3), quiet(0.5, seed=2))
    assert len(segment(two, RATE, replace(GATE, hangover=0.2))) == 1
    assert len(segment(two, RATE, replace(GATE, hangover=0.05))) == 2
    apart = join(quiet(0.3), tone(0.3), quiet(0.5, seed=1), tone(0.3), quiet(0.5, seed=2))
    assert len(segment(apart, RATE, replace(GATE, hangover=0.2))) == 2


def test_clicks_silence_and_faint_noise_are_not_speech():
    click = np.zeros(int(0.02 * RATE), np.float32)
    click[::7] = 0.5
    assert segment(join(quiet(0.5), click, quiet(0.5)), RATE, GATE) == []
    assert segment(quiet(2.0, None), RATE, GATE) == []  # digital silence: no floor at all
    assert segment(quiet(2.0, -75), RATE, GATE) == []
    # bursts quieter than MIN_LEVEL_DB over digital silence are ignored, however far above the floor
    assert segment(join(quiet(0.5, None), tone(0.4, -66), quiet(0.5, None)), RATE, GATE) == []


def test_the_floor_adapts_to_the_background():
    # speech over a noisy background (-40 dBFS) is found, and the floor sits at the noise
    noisy = join(quiet(0.8, -40), tone(0.4, -15) + quiet(0.4, -40, seed=5), quiet(0.8, -40, seed=6))
    (s,) = segment(noisy, RATE, GATE)
    assert s.floor_db == pytest.approx(-40, abs=3)
    # a live stream: the room gets 30 dB louder (a fan); within FLOOR_WINDOW_SECONDS that is the new
    # floor, and a word above it is found again
    live = Segmenter(RATE, RECORDER)
    out = live.feed(quiet(1.0, -70)) + live.feed(quiet(FLOOR_WINDOW_SECONDS + 0.5, -40, seed=7))
    assert live.floor_db == pytest.approx(-40, abs=3)
    assert not live.in_speech and all(s.speech_seconds <= FLOOR_WINDOW_SECONDS + 0.05 for s in out)
    out = live.feed(join(tone(0.4, -15) + quiet(0.4, -40, seed=8), quiet(0.5, -40, seed=9)))
    assert len(out) == 1 and not out[0].forced


def test_buffers_stay_bounded():
    settings = replace(RECORDER, max_seconds=2.0)  # the babble's 0.1 s dips stay inside its hangover
    seg = Segmenter(RATE, settings)
    limit = seg.margin_frames + START_FRAMES
    for i in range(300):  # 60 s of room noise
        seg.feed(quiet(0.2, -60, seed=i))
        assert len(seg._frames) <= limit
    # endless babble (loud syllables, short dips that never reach the floor): cut at max_seconds,
    # the buffer never holds more than one segment
    out = []
    babble = join(tone(0.1, -10), tone(0.1, -30, 120))
    for _ in range(50):  # 10 s
        out += seg.feed(babble)
        assert len(seg._frames) <= seg.max_frames + limit
    assert len(out) >= 4 and all(s.forced and s.seconds <= 2.0 + 2 * settings.margin for s in out)


def test_offline_segmentation_finds_speech_at_the_first_sample(espeak_digit):
    clip = load_audio(espeak_digit(7), RATE)
    start = np.flatnonzero(np.abs(clip) > 0.01)[0]
    (s,) = segment(join(clip[start:], quiet(0.5, None)), RATE, GATE)
    assert s.speech_start <= 2 * int(FRAME_SECONDS * RATE)


def test_real_digits_are_one_segment_each(espeak_digit):
    for voice in ("us", "gb"):
        for d in range(10):
            clip = load_audio(espeak_digit(d, voice), RATE)
            segs = segment(join(quiet(0.3, None), clip, quiet(0.3, None)), RATE, GATE)
            assert len(segs) == 1, (d, voice, [(s.speech_start, s.speech_end) for s in segs])


def test_thresholds_are_per_segmenter():
    """A word 9 dB above a steady noise is below the recorder's 10 dB start threshold and above the
    7 dB one that `listen` uses (vad.LIVE, through audrey.audio.vad.live_segmenter); each keeps its own."""
    from audrey.audio.vad import live_segmenter

    rate = 16000
    rng = np.random.default_rng(0)
    noise = (0.01 * rng.standard_normal(3 * rate)).astype(np.float32)
    t = np.arange(int(0.4 * rate)) / rate
    word = 0.01 * np.sqrt(10 ** 0.9 - 1) * np.sqrt(2) * np.sin(2 * np.pi * 440 * t)  # tone + noise: +9 dB
    audio = noise.copy()
    audio[rate : rate + len(t)] += word.astype(np.float32)
    assert LIVE.start_db < 9 < RECORDER.start_db and LIVE.stop_db < RECORDER.stop_db
    quiet = Segmenter(rate, RECORDER)
    assert quiet.feed(audio) + quiet.flush() == []
    listen = live_segmenter(rate)
    segs = listen.feed(audio) + listen.flush()
    assert len(segs) == 1 and abs(segs[0].speech_start / rate - 1.0) < 0.05 and abs(segs[0].speech_end / rate - 1.4) < 0.05


def test_presets_are_the_settings_everything_was_measured_with():
    """The shipped rejection calibration and the listen benchmark were measured with LIVE, what
    `audrey recordings` flags with GATE, the recorder's latency with RECORDER. Changing a value
    here means recalibrating (audrey calibrate) and rerunning benchmarks/listen.py, not just this test."""
    from audrey.audio.vad import live_segmenter

    as_tuple = lambda s: (s.hangover, s.margin, s.min_speech, s.max_seconds, s.start_db, s.stop_db)  # noqa: E731
    assert as_tuple(RECORDER) == (0.4, 0.15, 0.08, 4.0, 10.0, 6.0)
    assert as_tuple(GATE) == (0.15, 0.15, 0.08, 10.0, 10.0, 6.0)
    assert as_tuple(LIVE) == (0.1, 0.1, 0.08, 2.0, 7.0, 4.0)
    assert live_segmenter(RATE).settings is LIVE
    # a word gap splits words in the gate but stays inside one take: the gate sees the second word
    assert GATE.hangover < RECORDER.hangover
