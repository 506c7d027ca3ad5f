"""Synthetic recordings for the rejection ("not a digit"): which espeak-ng voices each role may use,
espeak-ng clips rendered once into the cache, and clips put in silence or noise as the live
segmenter meets them (`Scene`, `scenes_for`, `in_silence`, `compose`)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audrey import DIGIT_WORDS
from audrey.console import progress
from audrey.data.noise import NOISE_KINDS, add_noise, noise_burst

# Synthetic voices, as indices into synth.voices(VOICE_POOL): digit models train on the first N
# (`--synth N`) and the detector on voices below 200; calibration uses 200-211, tests and benchmarks
# 240-279, so none of them is ever scored on a voice it learnt from.
VOICE_POOL = 280
DETECTOR_VOICES = range(0, 200)
CALIBRATION_VOICES = range(200, 212)
HELD_OUT_VOICES = range(240, 280)
CALIBRATION_SPEEDS = (130, 180)


def voice_list(ids) -> list:
    from audrey.data import synth

    pool = synth.voices(VOICE_POOL, 0)
    return [pool[i] for i in ids]


def material_root() -> Path:
    from audrey.data.features import cache_root

    return cache_root() / "reject-material"


def trim(audio: np.ndarray, rate: int) -> np.ndarray:
    """A clip without the silence espeak-ng leaves around a word (no margin)."""
    from audrey.audio.waveform import TRIM_MARGIN, speech_bounds

    s, e = speech_bounds(audio, top_db=40, sr=rate)
    m = int(TRIM_MARGIN * rate)
    return audio[min(s + m, e) : max(s, e - m)] if e - s > 2 * m else audio[s:e]


def compose(pieces: list[np.ndarray], pauses: list[float], rate: int, lead: float = 0.5, tail: float = 1.0
            ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Clips joined by pauses (seconds, one fewer than clips), in silence; and (start, end) of each."""
    parts, spans, pos = [np.zeros(int(lead * rate), np.float32)], [], int(lead * rate)
    for i, clip in enumerate(pieces):
        parts.append(clip.astype(np.float32))
        spans.append((pos, pos + len(clip)))
        pos += len(clip)
        gap = pauses[i] if i < len(pauses) else tail
        parts.append(np.zeros(int(gap * rate), np.float32))
        pos += int(gap * rate)
    return np.concatenate(parts), spans


def in_silence(clip: np.ndarray, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A clip as the live segmenter meets one: 0.3-0.6 s of silence before, 0.5 s after."""
    return compose([clip], [], rate, lead=rng.uniform(0.3, 0.6), tail=0.5)[0]


def render_clips(jobs: list[tuple[str, object, int]], root: Path, rate: int, desc: str = "espeak-ng") -> list[np.ndarray]:
    """[(text, synth.Voice, speed)] -> trimmed clips at `rate`, rendered once under `root`."""
    from audrey.audio.waveform import load_audio
    from audrey.data.synth import say

    paths = [root / voice.name / f"{text.replace(' ', '-')}_{speed}.wav" for text, voice, speed in jobs]
    todo = list({path: (text, voice, speed, path) for (text, voice, speed), path in zip(jobs, paths) if not path.exists()}.values())
    if todo:
        with progress() as bar, ThreadPoolExecutor(max_workers=2) as pool:
            task = bar.add_task(desc, total=len(todo), status="")
            for _ in pool.map(lambda job: say(*job), todo):
                bar.advance(task)
    return [trim(load_audio(p, rate), rate) for p in paths]


@dataclass
class Scene:
    """One calibration recording: a clip in silence or noise, and what it is."""

    audio: np.ndarray
    kind: str  # "digit" | "word" | "noise"
    label: int = -1  # the digit, for "digit"
    snr: float | None = None
    text: str = ""  # what was said, or the kind of noise


def scenes_for(rate: int, voice_ids, words, speeds=CALIBRATION_SPEEDS, bursts: int = 200, seed: int = 0,
               noisy: bool = True) -> list[Scene]:
    """Digits in `voice_ids` (clean, and with noise at 5-30 dB SNR), `words` in the same voices, and
    noise bursts; each clip in 0.3-0.6 s of silence before and 0.5 s after."""
    rng = np.random.default_rng(seed)
    voices = voice_list(voice_ids)
    digit_jobs = [(w, v, s) for v in voices for w in DIGIT_WORDS for s in speeds]
    word_jobs = [(w, v, speeds[k % len(speeds)]) for k, v in enumerate(voices) for w in words]
    clips = render_clips(digit_jobs + word_jobs, material_root(), rate, "espeak-ng calibration clips")
    pad = lambda x: in_silence(x, rate, rng)  # noqa: E731
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    scenes = []
    for (w, _, _), clip in zip(digit_jobs, clips[: len(digit_jobs)]):
        d = DIGIT_WORDS.index(w)
        scenes.append(Scene(pad(clip), "digit", d, text=w))
        if noisy:
            snr = float(rng.uniform(5, 30))
            kind = rng.choice(["white", "pink", "brown"])
            scenes.append(Scene(add_noise(pad(clip), snr, rng, kind, rms(clip), rate), "digit", d, snr, w))
    for (w, _, _), clip in zip(word_jobs, clips[len(digit_jobs) :]):
        audio, snr = pad(clip), None
        if noisy and rng.random() < 0.5:
            snr = float(rng.uniform(10, 30))
            audio = add_noise(audio, snr, rng, "pink", rms(clip), rate)
        scenes.append(Scene(audio, "word", snr=snr, text=w))
    for _ in range(bursts):
        kind = NOISE_KINDS[rng.integers(len(NOISE_KINDS))]
        scenes.append(Scene(pad(noise_burst(rng, rate, kind)), "noise", text=kind))
    return scenes
