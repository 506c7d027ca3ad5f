"""Small shared helpers for the foundation tests (audio, corpora, splits, features, fetch, CLI).

Plain functions, not fixtures, so that tests/conftest.py stays the one place for fixtures.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
TONE_RATE = 8000


def fsdd_root() -> Path:
    """FSDD beside the repo (shared/data/fsdd), or $AUDREY_FSDD."""
    return Path(os.environ.get("AUDREY_FSDD", REPO.parent / "shared" / "data" / "fsdd"))


def require_fsdd() -> Path:
    root = fsdd_root()
    if not (root / "recordings").is_dir():
        pytest.skip(f"FSDD not found at {root} (set AUDREY_FSDD to its folder to run this test)")
    return root


def tone(freq: float = 440.0, seconds: float = 0.3, sr: int = TONE_RATE, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def burst(before: float = 0.4, length: float = 0.3, after: float = 0.4, sr: int = TONE_RATE,
          freq: float = 440.0) -> tuple[np.ndarray, int, int]:
    """A tone burst in digital silence; returns (audio, burst start, burst end) in samples."""
    start, n = int(before * sr), int(length * sr)
    audio = np.zeros(start + n + int(after * sr), np.float32)
    audio[start : start + n] = tone(freq, length, sr)
    return audio, start, start + n


def write_tone(path: Path, freq: float = 440.0, seconds: float = 0.3, sr: int = TONE_RATE, **kw) -> Path:
    """A short WAV whose content does not matter (corpus layout tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), tone(freq, seconds, sr), sr, subtype="PCM_16", **kw)
    return path


def peak_hz(audio: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    return float(np.fft.rfftfreq(len(audio), 1 / sr)[spectrum.argmax()])


def one_line_error(text: str) -> str:
    """The CLI's error output: exactly one non-empty line starting with "error:", no traceback."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert "Traceback" not in text, text
    assert len(lines) == 1, text
    assert lines[0].startswith("error:"), text
    return lines[0]
