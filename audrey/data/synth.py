"""Synthetic speakers: espeak-ng says the digits in many accents, voice variants, pitches and speeds.

Used for test fixtures and to widen the range of voices the base model trains on. The clips are
written in the speaker-folders layout (`<root>/<voice>/<digit>_<voice>_<take>.wav`), so they are
read back by the same corpus reader as AudioMNIST and personal recordings.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from audrey import DIGIT_WORDS
from audrey.console import progress
from audrey.errors import AudreyError

ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5",
    "Alex", "Andy", "adam", "Annie", "aunty", "boris", "caleb", "david", "ed", "edward", "grandma",
    "grandpa", "iven", "john", "linda", "max", "michel", "norbert", "paul", "pedro", "robert", "steph",
)
SPEEDS = (120, 150, 180, 210)  # words per minute, one per take


@dataclass(frozen=True)
class Voice:
    accent: str
    variant: str
    pitch: int  # espeak-ng -p, 0..99

    @property
    def name(self) -> str:
        # no underscores: the name sits between underscores in <digit>_<speaker>_<take>.wav
        return f"espeak-{self.accent}-{self.variant}-p{self.pitch}".replace("_", "-")


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise AudreyError("espeak-ng is not installed; install it with `sudo apt-get install espeak-ng`")
    return exe


def voices(count: int, seed: int = 0) -> list[Voice]:
    """`count` distinct voices drawn reproducibly from accents x variants x pitches."""
    rng = random.Random(seed)
    pool = [(a, v) for a in ACCENTS for v in VARIANTS]
    rng.shuffle(pool)
    if count > len(pool):
        raise AudreyError(f"at most {len(pool)} synthetic voices are available, not {count}")
    return [Voice(a, v, rng.randrange(25, 80)) for a, v in pool[:count]]


def say(text: str, voice: Voice, speed: int, out: Path) -> Path:
    """Render `text` with espeak-ng into the WAV file `out` (espeak's native 22.05 kHz)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.wav")
    cmd = [espeak_binary(), "-v", f"{voice.accent}+{voice.variant}", "-p", str(voice.pitch), "-s", str(speed), "-w", str(tmp), text]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 or not tmp.exists():
        raise AudreyError(f"espeak-ng failed for {voice.name!r}: {result.stderr.strip() or 'no output'}")
    tmp.replace(out)
    return out


def synthesize_digits(root: Path, count: int, seed: int = 0, speeds: tuple[int, ...] = SPEEDS) -> Path:
    """Write every digit for `count` voices at each speed under `root`; existing files are kept."""
    jobs = []
    for voice in voices(count, seed):
        for digit, word in enumerate(DIGIT_WORDS):
            for take, speed in enumerate(speeds):
                out = root / voice.name / f"{digit}_{voice.name}_{take}.wav"
                if not out.exists():
                    jobs.append((word, voice, speed, out))
    if jobs:
        with progress() as bar, ThreadPoolExecutor(max_workers=4) as pool:
            task = bar.add_task("espeak-ng voices", total=len(jobs), status="")
            for _ in pool.map(lambda job: say(*job), jobs):
                bar.advance(task)
    return root
