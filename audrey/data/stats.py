"""`audrey data stats`: what a corpus holds, and what is wrong with it."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from audrey.audio.waveform import MAX_CLIP_FILE_SECONDS
from audrey.console import progress
from audrey.data.corpora import Clip, read_corpus


@dataclass
class CorpusStats:
    roots: list[str]
    clips: int = 0
    speakers: Counter = field(default_factory=Counter)
    digits: Counter = field(default_factory=Counter)
    by_speaker_digit: dict = field(default_factory=lambda: defaultdict(Counter))
    sources: Counter = field(default_factory=Counter)
    rates: Counter = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = sorted(self.durations)
        pct = lambda q: d[min(len(d) - 1, int(q * len(d)))] if d else None  # noqa: E731
        return {
            "roots": self.roots,
            "clips": self.clips,
            "speakers": len(self.speakers),
            "digits": len(self.digits),
            "clips_per_speaker": dict(sorted(self.speakers.items())),
            "clips_per_digit": {str(k): v for k, v in sorted(self.digits.items())},
            "sources": dict(self.sources),
            "sample_rates": {str(k): v for k, v in sorted(self.rates.items())},
            "duration_seconds": {"min": pct(0), "median": pct(0.5), "p95": pct(0.95), "max": d[-1] if d else None,
                                 "total": sum(d)},
            "problems": self.problems,
        }


def probe_clip(clip: Clip) -> tuple[int, float, str | None]:
    """(sample rate, seconds, problem or None) from the file header and samples."""
    import numpy as np
    import soundfile as sf

    try:
        info = sf.info(str(clip.path))
    except Exception as exc:
        return 0, 0.0, f"{clip.path}: unreadable ({str(exc).splitlines()[0]})"
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if info.frames == 0:
        return info.samplerate, 0.0, f"{clip.path}: no audio samples"
    if seconds > MAX_CLIP_FILE_SECONDS:
        return info.samplerate, seconds, f"{clip.path}: {seconds:.1f} s, too long for one digit"
    data, _ = sf.read(str(clip.path), dtype="float32", always_2d=True)
    if not np.isfinite(data).all():
        return info.samplerate, seconds, f"{clip.path}: NaN or infinite samples"
    peak = float(np.abs(data).max())
    if peak == 0:
        return info.samplerate, seconds, f"{clip.path}: digital silence"
    if (np.abs(data) >= 0.999).mean() > 0.001:
        return info.samplerate, seconds, f"{clip.path}: clipped"
    return info.samplerate, seconds, None


def corpus_stats(roots: list[str | Path]) -> CorpusStats:
    stats = CorpusStats([str(r) for r in roots])
    clips = [clip for root in roots for clip in read_corpus(root)]
    with progress() as bar:
        task = bar.add_task("scan", total=len(clips), status="")
        for clip in clips:
            rate, seconds, problem = probe_clip(clip)
            bar.advance(task)
            stats.clips += 1
            stats.speakers[clip.speaker] += 1
            stats.digits[clip.digit] += 1
            stats.by_speaker_digit[clip.speaker][clip.digit] += 1
            stats.sources[clip.source] += 1
            if problem:
                stats.problems.append(problem)
                continue
            stats.rates[rate] += 1
            stats.durations.append(seconds)
    for speaker, digits in sorted(stats.by_speaker_digit.items()):
        missing = [d for d in range(10) if not digits[d]]
        if missing:
            stats.problems.append(f"speaker {speaker}: no clips of digit(s) {', '.join(map(str, missing))}")
    return stats
