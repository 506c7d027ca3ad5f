"""Where takes live and how they are numbered: `<root>/<speaker>/<digit>_<speaker>_<take>.wav`.

Numbering continues from the takes already there and never overwrites one; a take is written
atomically (write_audio: temp file, fsync, rename), and what a killed session leaves behind is only
hidden temp files, removed by the next session. One session per speaker at a time (speaker_lock).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path

from audrey import DIGIT_WORDS
from audrey.audio.waveform import is_audio_file, write_audio
from audrey.console import warn
from audrey.data.corpora import CLIP_NAME, parse_clip_name
from audrey.errors import AudreyError
from audrey.recording.capture import Take

SPEAKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")


def check_speaker(name: str) -> str:
    if not SPEAKER_NAME.match(name or ""):
        raise AudreyError(
            f"--speaker {name!r}: use 1-40 letters, digits and '-' (it goes into file names like 7_<speaker>_3.wav)"
        )
    if (len(name) == 1 and name.isdigit()) or name.lower() in DIGIT_WORDS:
        raise AudreyError(f"--speaker {name!r} would read as a digit folder; pick a name such as 'spk-{name}'")
    return name


def existing_takes(folder: Path, speaker: str, warn_bad: bool = False) -> dict[int, list[int]]:
    """Take numbers already saved per digit (files that do not follow the naming are warned about)."""
    takes: dict[int, list[int]] = {d: [] for d in range(10)}
    if not folder.is_dir():
        return takes
    for path in sorted(folder.iterdir()):
        if not is_audio_file(path):
            continue
        m = CLIP_NAME.match(path.stem)
        if not m or m["speaker"] != speaker:
            if warn_bad:
                warn(f"{path}: not named <digit>_{speaker}_<take>.wav; the corpus reader will reject it")
            continue
        try:
            digit, _, take = parse_clip_name(path)
        except AudreyError as exc:
            if warn_bad:
                warn(str(exc))
            continue
        takes[digit].append(take)
    return takes


def next_take_numbers(folder: Path, speaker: str) -> dict[int, int]:
    return {d: max(t) + 1 if t else 0 for d, t in existing_takes(folder, speaker).items()}


def take_path(folder: Path, speaker: str, digit: int, take: int) -> Path:
    return folder / f"{digit}_{speaker}_{take}.wav"


@contextmanager
def speaker_lock(root: Path, speaker: str):
    """One session per speaker at a time. A second one would hand out the same take numbers and
    remove the first one's temp files (cleanup_temp_files) while it writes. The lock is a flock on
    `<root>/.<speaker>.lock`: the kernel drops it when its holder dies, even by SIGKILL, so a
    crashed session never leaves the speaker locked. The file stays (unlinking it would race)."""
    import fcntl

    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / f".{speaker}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise AudreyError(f"{root}: cannot record there ({exc.strerror or exc}); pass --root with a folder you can write to") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="ignore").strip() or "unknown"
            raise AudreyError(f"{root / speaker}: another `audrey record` session (pid {holder}) is recording "
                              "this speaker; let it finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def cleanup_temp_files(folder: Path) -> list[Path]:
    """Remove what a killed session can leave behind: the hidden `.<name>.<random>.tmp` files that
    write_audio and write_info rename into place. They never look like takes to the corpus reader."""
    removed = []
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


def save_take(folder: Path, speaker: str, digit: int, take_no: int, take: Take) -> Path:
    path = take_path(folder, speaker, digit, take_no)
    while path.exists():  # never overwrite a take, whatever the numbering says
        take_no += 1
        path = take_path(folder, speaker, digit, take_no)
    return write_audio(path, take.audio, take.rate)
