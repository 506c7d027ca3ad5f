"""Material for the digit-string model: recordings with their CTC token sequences.

- Connected speech (AN4, the phone numbers) as it was said: each digit word is its digit's token,
  each run of other words ("X I", "SIXTY", "ENTER") one non-digit token; a spelled name (no
  transcript) is one non-digit token.
- Strings assembled on the fly from real isolated digits (FSDD, Speech Commands, the digits cut out
  of AN4 and the phone numbers by `audrey data align`), one speaker per string where the corpus has
  enough takes, with gaps from slight overlap to long pauses, sometimes a non-digit word between.
- Real background noise (Speech Commands' `_background_`), mixed at a chosen SNR relative to the
  speech (`mix_background`).

Speakers are held out by a hash of their name (`held_out`), so the same speakers are held out of
the utterances and of the aligned digits cut from them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from audrey.audio import waveform
from audrey.data.noise import active_rms
from audrey.data.utterances import Utterance, digit_of
from audrey.models.ctc import OTHER, digit_token

RATE = waveform.SAMPLE_RATE  # the shared frontend's rate
MIN_NOISE_DBFS = -60.0  # background clips quieter than this are digital silence, not noise
MIN_SPEED, MAX_SPEED = 0.5, 2.0  # speed perturbation beyond these is no longer speech people make
GAPS = ((-0.06, 0.0), (0.0, 0.12), (0.12, 0.6), (0.6, 1.2))  # seconds between pieces: overlap .. long pause


@dataclass(frozen=True)
class Example:
    wave: np.ndarray  # float32 at RATE
    tokens: tuple[int, ...]
    speaker: str
    kind: str  # "an4", "alphanumeric", "assembled"


@dataclass(frozen=True)
class Piece:
    """One isolated word, trimmed: a digit (token 1-10) or a non-digit word (OTHER)."""

    wave: np.ndarray
    token: int
    speaker: str


def word_tokens(words: tuple[str, ...]) -> tuple[int, ...]:
    """CTC targets of a transcript: digits as themselves, each run of other words as one OTHER;
    no transcript at all (a spelled name) is one OTHER."""
    if not words:
        return (OTHER,)
    out: list[int] = []
    for word in words:
        d = digit_of(word)
        tok = OTHER if d is None else digit_token(d)
        if tok == OTHER and out and out[-1] == OTHER:
            continue
        out.append(tok)
    return tuple(out)


def held_out(speaker: str, share: float, salt: str = "strings") -> bool:
    """Whether `speaker` is in the held-out share (stable across runs and machines)."""
    h = int.from_bytes(hashlib.blake2b(f"{salt}:{speaker}".encode(), digest_size=8).digest(), "big")
    return h / 2**64 < share


def utterance_example(utt: Utterance) -> Example:
    wave = waveform.load_audio(utt.path, RATE)
    return Example(wave, word_tokens(utt.words), utt.speaker, utt.source)


def speed_perturbed(ex: Example, factor: float) -> Example:
    """The example said `factor` times as fast, its pitch moved with it (a tape played faster: the
    samples read as if recorded at RATE * factor), as Kaldi's speed perturbation does."""
    if not MIN_SPEED <= factor <= MAX_SPEED:
        raise ValueError(f"speed factor {factor}: expected {MIN_SPEED} to {MAX_SPEED} (0.9 and 1.1 are usual)")
    return Example(waveform.resample(ex.wave, round(RATE * factor), RATE), ex.tokens, ex.speaker, ex.kind)


def load_piece(path: Path, token: int, speaker: str) -> Piece:
    wave = waveform.trim_silence(waveform.load_audio(path, RATE), waveform.TRIM_TOP_DB, RATE)
    peak = np.abs(wave).max() if len(wave) else 0.0
    return Piece((wave / peak * 0.5).astype(np.float32) if peak > 0 else wave, token, speaker)


def noise_of_length(noises: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of background noise: random clips end to end, each at unit RMS."""
    parts, have = [], 0
    while have < n:
        clip = noises[rng.integers(len(noises))]
        parts.append(clip / (np.sqrt(np.mean(clip.astype(np.float64) ** 2)) + 1e-12))
        have += len(clip)
    out = np.concatenate(parts)
    start = rng.integers(0, len(out) - n + 1)
    return out[start : start + n].astype(np.float32)


def mix_background(audio: np.ndarray, noises: list[np.ndarray], snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """`audio` plus real background noise `snr_db` below its speech level."""
    noise = noise_of_length(noises, len(audio), rng)
    return (audio + noise * active_rms(audio) / 10 ** (snr_db / 20)).astype(np.float32)


def read_noises(folder: Path) -> list[np.ndarray]:
    """The background clips of a `_background_` folder that hold noise (not digital silence)."""
    out = []
    for path in waveform.audio_files(folder):
        wave = waveform.load_audio(path, RATE)
        if len(wave) and 10 * np.log10(np.mean(wave.astype(np.float64) ** 2) + 1e-20) > MIN_NOISE_DBFS:
            out.append(wave)
    return out


def assemble(pieces: list[Piece], rng: np.random.Generator, gap: tuple[float, float] | None = None) -> tuple[np.ndarray, tuple[int, ...]]:
    """Pieces end to end with a random gap after each (one regime of GAPS per string unless `gap`),
    each at a random level within 6 dB, with 0.1-0.5 s of silence either side. A negative gap
    overlaps the next piece onto the tail of this one."""
    lo, hi = gap or GAPS[rng.integers(len(GAPS))]
    lead = int(rng.uniform(0.1, 0.5) * RATE)
    gaps = [int(rng.uniform(lo, hi) * RATE) for _ in pieces[:-1]] + [int(rng.uniform(0.1, 0.5) * RATE)]
    total = lead + sum(len(p.wave) for p in pieces) + sum(gaps)
    out = np.zeros(max(total, lead + max(len(p.wave) for p in pieces)) + RATE // 10, np.float32)
    pos = lead
    for piece, g in zip(pieces, gaps):
        level = 10 ** (rng.uniform(-6, 0) / 20)
        out[pos : pos + len(piece.wave)] += piece.wave * level
        pos = max(0, pos + len(piece.wave) + g)
    tokens = []
    for p in pieces:  # two non-digit words side by side are one OTHER, as in the transcripts
        if not (p.token == OTHER and tokens and tokens[-1] == OTHER):
            tokens.append(p.token)
    return out[: max(pos, lead + 1)], tuple(tokens)


def assembled_strings(digits: list[Piece], words: list[Piece], n: int, rng: np.random.Generator,
                      max_digits: int = 10, word_share: float = 0.1, min_takes: int = 8) -> list[Example]:
    """`n` strings of 1..max_digits digits; a speaker with at least `min_takes` digit takes says a
    whole string, the rest (Speech Commands' one-take speakers) are pooled as a crowd."""
    by_speaker: dict[str, list[Piece]] = defaultdict(list)
    for p in digits:
        by_speaker[p.speaker].append(p)
    crowd = [p for ps in by_speaker.values() if len(ps) < min_takes for p in ps]
    groups = [ps for ps in by_speaker.values() if len(ps) >= min_takes] + ([crowd] if crowd else [])
    out = []
    for _ in range(n):
        group = groups[rng.integers(len(groups))]
        chosen = [group[rng.integers(len(group))] for _ in range(rng.integers(1, max_digits + 1))]
        if words:
            i = 0
            while i <= len(chosen):
                if rng.random() < word_share:
                    chosen.insert(i, words[rng.integers(len(words))])
                    i += 1
                i += 1
        wave, tokens = assemble(chosen, rng)
        out.append(Example(wave, tokens, chosen[0].speaker, "assembled"))
    return out
