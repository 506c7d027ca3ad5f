"""`audrey data stats`: what a corpus holds, and what is wrong with it.

Single-digit clips are counted per speaker and digit; Speech Commands' other words and noise beside
its digits; utterances with transcripts (AN4, alphanumeric) per speaker, word and digit said. Every
file the readers skip (metadata, notes, hidden files) is counted, and audio that no reader took is a
problem: it is data that silently goes unused.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from audrey.audio.waveform import MAX_CLIP_FILE_SECONDS, is_audio_file
from audrey.console import progress
from audrey.data.corpora import SPEECH_COMMANDS, Clip, WordClip, detect_layout, read_corpus, read_non_digits
from audrey.data.utterances import UTTERANCE_LAYOUTS, Utterance, read_utterances


@dataclass
class AudioScan:
    """Sample rates and durations of the files that read cleanly."""

    rates: Counter = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)

    def add(self, rate: int, seconds: float) -> None:
        self.rates[rate] += 1
        self.durations.append(seconds)

    def to_dict(self) -> dict:
        d = sorted(self.durations)
        pct = lambda q: d[min(len(d) - 1, int(q * len(d)))] if d else None  # noqa: E731
        return {
            "sample_rates": {str(k): v for k, v in sorted(self.rates.items())},
            "duration_seconds": {"min": pct(0), "median": pct(0.5), "p95": pct(0.95), "max": d[-1] if d else None,
                                 "total": sum(d)},
        }


@dataclass
class CorpusStats:
    roots: list[str]
    clips: int = 0
    speakers: Counter = field(default_factory=Counter)
    digits: Counter = field(default_factory=Counter)
    by_speaker_digit: dict = field(default_factory=lambda: defaultdict(Counter))
    sources: Counter = field(default_factory=Counter)
    clip_audio: AudioScan = field(default_factory=AudioScan)
    non_digit_words: Counter = field(default_factory=Counter)  # Speech Commands word -> clips
    non_digit_speakers: set = field(default_factory=set)
    noise_clips: int = 0
    utterances: int = 0
    utterance_speakers: Counter = field(default_factory=Counter)
    utterance_sources: Counter = field(default_factory=Counter)
    words: Counter = field(default_factory=Counter)
    words_per_speaker: Counter = field(default_factory=Counter)
    digits_said: Counter = field(default_factory=Counter)  # digit -> times said inside utterances
    digits_per_speaker: Counter = field(default_factory=Counter)
    only_digits: int = 0
    without_digits: int = 0
    utterance_audio: AudioScan = field(default_factory=AudioScan)
    skipped: Counter = field(default_factory=Counter)  # suffix -> non-audio files skipped
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "roots": self.roots,
            "clips": self.clips,
            "speakers": len(self.speakers),
            "digits": len(self.digits),
            "clips_per_speaker": dict(sorted(self.speakers.items())),
            "clips_per_digit": {str(k): v for k, v in sorted(self.digits.items())},
            "sources": dict(self.sources),
            **self.clip_audio.to_dict(),
            "non_digit_clips": {
                "clips": sum(self.non_digit_words.values()),
                "speakers": len(self.non_digit_speakers),
                "per_word": dict(sorted(self.non_digit_words.items())),
                "noise": self.noise_clips,
            },
            "utterances": {
                "utterances": self.utterances,
                "speakers": len(self.utterance_speakers),
                "sources": dict(self.utterance_sources),
                "utterances_per_speaker": dict(sorted(self.utterance_speakers.items())),
                "words": sum(self.words.values()),
                "vocabulary": len(self.words),
                "per_word": dict(self.words.most_common()),
                "digits_said": sum(self.digits_said.values()),
                "per_digit": {str(k): v for k, v in sorted(self.digits_said.items())},
                "only_digits": self.only_digits,
                "without_digits": self.without_digits,
                **self.utterance_audio.to_dict(),
            },
            "skipped_files": {"files": sum(self.skipped.values()), "per_suffix": dict(sorted(self.skipped.items()))},
            "problems": self.problems,
        }


def probe_audio(path: Path, max_seconds: float | None) -> tuple[int, float, str | None]:
    """(sample rate, seconds, problem or None) from the file header and samples."""
    import numpy as np
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except Exception as exc:
        return 0, 0.0, f"{path}: unreadable ({str(exc).splitlines()[0]})"
    seconds = info.frames / info.samplerate if info.samplerate else 0.0
    if info.frames == 0:
        return info.samplerate, 0.0, f"{path}: no audio samples"
    if max_seconds is not None and seconds > max_seconds:
        return info.samplerate, seconds, f"{path}: {seconds:.1f} s, too long for one digit"
    data, _ = sf.read(str(path), dtype="float32", always_2d=True)
    if not np.isfinite(data).all():
        return info.samplerate, seconds, f"{path}: NaN or infinite samples"
    peak = float(np.abs(data).max())
    if peak == 0:
        return info.samplerate, seconds, f"{path}: digital silence"
    if (np.abs(data) >= 0.999).mean() > 0.001:
        return info.samplerate, seconds, f"{path}: clipped"
    return info.samplerate, seconds, None


def corpus_stats(roots: list[str | Path]) -> CorpusStats:
    stats = CorpusStats([str(r) for r in roots])
    clips: list[Clip] = []
    non_digits: list[WordClip] = []
    utterances: list[Utterance] = []
    for root in roots:
        layout, _ = detect_layout(Path(root))
        if layout in UTTERANCE_LAYOUTS:
            read = read_utterances(root)
            utterances += read
            used = {u.path for u in read}
        else:
            read_clips = read_corpus(root)
            read_words = read_non_digits(root) if layout == SPEECH_COMMANDS else []
            clips += read_clips
            non_digits += read_words
            used = {c.path for c in read_clips} | {w.path for w in read_words}
        _count_files(Path(root), used, stats)
    with progress() as bar:
        task = bar.add_task("scan", total=len(clips) + len(utterances), status="")
        for clip in clips:
            _add_clip(stats, clip)
            bar.advance(task)
        for utterance in utterances:
            _add_utterance(stats, utterance)
            bar.advance(task)
    for word in non_digits:
        if word.is_noise:
            stats.noise_clips += 1
        else:
            stats.non_digit_words[word.word] += 1
            stats.non_digit_speakers.add(word.speaker)
    stats.problems += _missing_digits(clips, stats)
    return stats


def _add_clip(stats: CorpusStats, clip: Clip) -> None:
    stats.clips += 1
    stats.speakers[clip.speaker] += 1
    stats.digits[clip.digit] += 1
    stats.by_speaker_digit[clip.speaker][clip.digit] += 1
    stats.sources[clip.source] += 1
    rate, seconds, problem = probe_audio(clip.path, MAX_CLIP_FILE_SECONDS)
    if problem:
        stats.problems.append(problem)
    else:
        stats.clip_audio.add(rate, seconds)


def _add_utterance(stats: CorpusStats, u: Utterance) -> None:
    stats.utterances += 1
    stats.utterance_speakers[u.speaker] += 1
    stats.utterance_sources[u.source] += 1
    stats.words.update(u.words)
    stats.words_per_speaker[u.speaker] += len(u.words)
    stats.digits_said.update(int(d) for d in u.digits)
    stats.digits_per_speaker[u.speaker] += len(u.digits)
    stats.only_digits += u.only_digits
    stats.without_digits += not u.digits
    rate, seconds, problem = probe_audio(u.path, None)  # an utterance is many words: no one-digit length limit
    if problem:
        stats.problems.append(problem)
    else:
        stats.utterance_audio.add(rate, seconds)


def _missing_digits(clips: list[Clip], stats: CorpusStats) -> list[str]:
    """Speakers without every digit, one line each; one line for a source where no speaker has them
    all (Speech Commands: one or two digits per person, by design)."""
    lines = []
    by_source: dict[str, list[str]] = defaultdict(list)
    for clip in clips:
        if clip.speaker not in by_source[clip.source]:
            by_source[clip.source].append(clip.speaker)
    for source, speakers in sorted(by_source.items()):
        missing = {s: [d for d in range(10) if not stats.by_speaker_digit[s][d]] for s in sorted(speakers)}
        if len(speakers) > 1 and all(missing.values()):
            most = max(10 - len(m) for m in missing.values())
            lines.append(f"{source}: no speaker has all 10 digits ({len(speakers)} speakers, at most {most} digits each): "
                         "many voices, too few per speaker to enrol or score one speaker")
            continue
        lines += [f"speaker {s}: no clips of digit(s) {', '.join(map(str, m))}" for s, m in missing.items() if m]
    return lines


def _count_files(root: Path, used: set[Path], stats: CorpusStats) -> None:
    """Count the non-audio files under `root` (hidden folders such as .git not entered) and name the
    audio files that no reader took."""
    unused = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if not is_audio_file(path):
                stats.skipped["(hidden)" if name.startswith(".") else path.suffix.lower() or "(no suffix)"] += 1
            elif path not in used:
                unused.append(path)
    if unused:
        stats.problems.append(f"{len(unused)} audio file(s) under {root} belong to no clip or utterance, e.g. {unused[0]}")
