"""Shared fixtures: espeak-ng digit clips, and the PulseAudio virtual microphone."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from audrey import DIGIT_WORDS

REPO = Path(__file__).resolve().parents[1]
VMIC_UP = REPO.parent / "shared/tools/vmic-up"
VMIC_DOWN = REPO.parent / "shared/tools/vmic-down"

# Real espeak-ng voices for tests. Chosen because they do not clip: some espeak voices (e.g.
# en-gb-x-gbcwmd+ed at low pitch) render flat-topped peaks that the quality gate rightly rejects.
VOICES = {
    "us": ("en-us", "m3", 50),
    "gb": ("en-gb", "f2", 60),
    "sc": ("en-gb-scotland", "m1", 40),
}


@pytest.fixture(scope="session")
def _espeak_cache(tmp_path_factory):
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return tmp_path_factory.mktemp("espeak")


@pytest.fixture
def espeak_digit(_espeak_cache):
    """espeak_digit(7, voice="gb", speed=150) -> Path of a WAV (22.05 kHz) saying "seven".
    Rendered once per session and voice; `voice` is a key of VOICES."""
    from audrey.data.synth import Voice, say

    def render(digit: int, voice: str = "us", speed: int = 150) -> Path:
        accent, variant, pitch = VOICES[voice]
        out = _espeak_cache / f"{digit}_{voice}_{speed}.wav"
        if not out.exists():
            say(DIGIT_WORDS[digit], Voice(accent, variant, pitch), speed, out)
        return out

    return render


@pytest.fixture(scope="session")
def vmic():
    """The virtual microphone: `paplay --device=vmic clip.wav` is heard on the default input.
    Skips (with the reason) where PulseAudio cannot start. Stopped at the end if this session started it."""
    if not VMIC_UP.exists():
        pytest.skip(f"virtual microphone script not found at {VMIC_UP}")
    for tool in ("pulseaudio", "paplay", "pactl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins libportaudio2)")
    try:
        up = subprocess.run([str(VMIC_UP)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"virtual microphone did not start: {exc}")
    if up.returncode != 0:
        pytest.skip(f"virtual microphone did not start (PulseAudio): {(up.stderr or up.stdout).strip()[-300:]}")
    started = "already up" not in up.stdout
    problem = _vmic_passes_audio()
    if problem:
        pytest.fail(f"the virtual microphone is up but {problem} (see /tmp/vmic-pulse/pulse.log)")
    yield "vmic"
    if started and VMIC_DOWN.exists():
        subprocess.run([str(VMIC_DOWN)], capture_output=True)


def _vmic_passes_audio(tries: int = 5) -> str | None:
    """Play a short tone into the sink and hear it on the default input, as the tests will: this
    proves the path works and warms up the audio server (its first connection can be slow).
    Returns what went wrong, or None."""
    import tempfile
    import time

    import numpy as np
    import soundfile as sf

    try:
        import sounddevice as sd
    except OSError as exc:  # no libportaudio2
        pytest.skip(f"sounddevice cannot load PortAudio ({exc}); apt-get install libportaudio2")
    rate = 16000
    t = np.arange(int(0.3 * rate)) / rate
    with tempfile.NamedTemporaryFile(suffix=".wav") as tone:
        sf.write(tone.name, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate)
        with sd.InputStream(samplerate=rate, channels=1, dtype="float32") as stream:
            for _ in range(tries):
                player = subprocess.Popen(["paplay", "--device=vmic", tone.name])
                end = time.monotonic() + 2.0
                while time.monotonic() < end:
                    block, _ = stream.read(rate // 20)
                    if np.sqrt(np.mean(block**2)) > 0.05:
                        player.wait(10)
                        return None
                player.wait(10)
    return f"a tone played into it was not heard on the default input in {tries} tries"
