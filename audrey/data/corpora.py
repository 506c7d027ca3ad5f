"""Labelled clips from every source Audrey reads, as one `Clip` record.

Layouts (detected per folder; a folder that mixes them is an error):
- speaker folders: `<root>/<speaker>/<digit>_<speaker>_<take>.wav`. AudioMNIST (`data/NN/D_NN_I.wav`
  with `audioMNIST_meta.txt`) and Audrey's own `recordings/<speaker>/` (with `speaker.json`) are both
  this layout, which is why personal recordings sit alongside AudioMNIST.
- flat FSDD naming: `<root>/<digit>_<speaker>_<take>.wav` (or `<root>/recordings/...`), with an
  optional `speakers.csv`.
- digit folders: `<root>/0/ .. <root>/9/` or `<root>/zero/ .. <root>/nine/`, any file names.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from audrey import DIGIT_WORDS
from audrey.audio.waveform import AUDIO_SUFFIXES
from audrey.errors import AudreyError

CLIP_NAME = re.compile(r"^(?P<digit>[^_]+)_(?P<speaker>.+)_(?P<take>\d+)$")
AUDIOMNIST_META = "audioMNIST_meta.txt"
SPEAKER_META = "speaker.json"
# The speaker fields AudioMNIST keeps; personal recordings ask for the same ones.
SPEAKER_FIELDS = ("age", "gender", "accent", "native speaker", "origin", "recordingroom", "device")


@dataclass(frozen=True)
class Clip:
    path: Path
    digit: int
    speaker: str
    source: str  # "audiomnist", "fsdd", "personal", "folder", "synthetic", ...
    take: int = 0
    meta: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        return self.path.name


def parse_clip_name(path: Path) -> tuple[int, str, int]:
    """`7_jackson_32.wav` -> (7, "jackson", 32); anything else is an AudreyError naming the file."""
    m = CLIP_NAME.match(path.stem)
    if not m:
        raise AudreyError(f"{path}: name is not <digit>_<speaker>_<take>{path.suffix} (e.g. 7_jackson_32.wav)")
    return parse_digit(m["digit"], path), m["speaker"], int(m["take"])


def parse_digit(label: str, where: Path | str) -> int:
    label = label.strip().lower()
    if label.isdigit() and len(label) == 1:
        return int(label)
    if label in DIGIT_WORDS:
        return DIGIT_WORDS.index(label)
    raise AudreyError(f"{where}: unknown label {label!r}; expected a digit 0-9 or its English word")


def audio_files(folder: Path) -> list[Path]:
    """Audio files in `folder`, hidden ones excluded: macOS leaves `._7_bob_0.wav` resource forks
    beside every file it copies, and those are neither audio nor clips."""
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
    )


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_digit_folder(name: str) -> bool:
    name = name.lower()
    return (len(name) == 1 and name.isdigit()) or name in DIGIT_WORDS


def detect_layout(root: Path) -> tuple[str, Path]:
    """Return (layout, folder that holds it). Layouts: 'speakers', 'flat', 'digits'."""
    root = Path(root)
    if not root.is_dir():
        raise AudreyError(f"{root}: no such folder")
    # AudioMNIST's repository keeps its speakers under data/, FSDD's under recordings/.
    for inner in ("data", "recordings"):
        if (root / inner).is_dir() and not audio_files(root):
            root = root / inner
            break
    subdirs = _subdirs(root)
    digit_dirs = [d for d in subdirs if _is_digit_folder(d.name)]
    speaker_dirs = [d for d in subdirs if not _is_digit_folder(d.name) and audio_files(d)]
    flat = audio_files(root)
    found = [name for name, present in (("digit folders", digit_dirs), ("speaker folders", speaker_dirs), ("loose clips", flat)) if present]
    if len(found) > 1:
        raise AudreyError(f"{root}: folder mixes layouts ({', '.join(found)}); keep one layout per folder")
    if digit_dirs:
        return "digits", root
    if speaker_dirs:
        return "speakers", root
    if flat:
        return "flat", root
    raise AudreyError(f"{root}: no audio clips found (looked for {', '.join(AUDIO_SUFFIXES)} files)")


def read_corpus(root: str | Path, source: str | None = None) -> list[Clip]:
    """Every labelled clip under `root`, whatever its layout. Raises on a bad name or layout."""
    layout, folder = detect_layout(Path(root))
    reader = {"speakers": read_speaker_folders, "flat": read_flat, "digits": read_digit_folders}[layout]
    clips = reader(folder, source)
    if not clips:
        raise AudreyError(f"{root}: no audio clips found")
    return clips


def read_corpora(roots: Iterable[str | Path]) -> list[Clip]:
    clips: list[Clip] = []
    for root in roots:
        clips.extend(read_corpus(root))
    return clips


def read_speaker_folders(root: Path, source: str | None = None) -> list[Clip]:
    """AudioMNIST (`data/NN/D_NN_I.wav`) and personal recordings (`recordings/<speaker>/...`)."""
    meta_file = root / AUDIOMNIST_META
    is_audiomnist = meta_file.exists()
    source = source or ("audiomnist" if is_audiomnist else "personal")
    all_meta = read_audiomnist_meta(meta_file) if is_audiomnist else {}
    clips = []
    for folder in _subdirs(root):
        files = audio_files(folder)
        if not files:
            continue
        meta = all_meta.get(folder.name) or read_speaker_meta(folder)
        for path in files:
            digit, speaker, take = parse_clip_name(path)
            if speaker != folder.name:
                raise AudreyError(f"{path}: speaker {speaker!r} in the name but the file is in folder {folder.name!r}")
            clips.append(Clip(path, digit, speaker, source, take, meta))
    return clips


def read_flat(root: Path, source: str | None = None) -> list[Clip]:
    """FSDD naming in one folder, speaker metadata from speakers.csv beside or above it."""
    meta = {}
    for candidate in (root / "speakers.csv", root.parent / "speakers.csv"):
        if candidate.exists():
            meta = read_speakers_csv(candidate)
            break
    source = source or ("fsdd" if meta or root.name == "recordings" else root.name)
    clips = []
    for path in audio_files(root):
        digit, speaker, take = parse_clip_name(path)
        clips.append(Clip(path, digit, speaker, source, take, meta.get(speaker, {})))
    return clips


def read_digit_folders(root: Path, source: str | None = None) -> list[Clip]:
    """`0/`..`9/` or `zero/`..`nine/`. Speaker and take come from FSDD-style names when present,
    otherwise every clip is credited to one speaker named after the folder (no speaker split possible)."""
    source = source or root.name
    clips = []
    for folder in _subdirs(root):
        if not _is_digit_folder(folder.name):
            continue
        digit = parse_digit(folder.name, folder)
        for i, path in enumerate(audio_files(folder)):
            m = CLIP_NAME.match(path.stem)
            if m:
                named_digit, speaker, take = parse_clip_name(path)
                if named_digit != digit:
                    raise AudreyError(f"{path}: named digit {named_digit} but stored in folder {folder.name!r}")
            else:
                speaker, take = root.name, i
            clips.append(Clip(path, digit, speaker, source, take, {}))
    return clips


def read_audiomnist_meta(path: Path) -> dict[str, dict]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AudreyError(f"{path}: not readable AudioMNIST metadata ({exc}); re-fetch the corpus") from None
    return {speaker: {k: str(v) for k, v in fields.items()} for speaker, fields in raw.items()}


def read_speaker_meta(folder: Path) -> dict[str, str]:
    path = folder / SPEAKER_META
    if not path.exists():
        return {}
    try:
        return {k: str(v) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
    except (OSError, ValueError) as exc:
        raise AudreyError(f"{path}: not valid JSON ({exc}); fix or delete it") from None


def read_speakers_csv(path: Path) -> dict[str, dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return {row["speaker"]: {k: v for k, v in row.items() if k != "speaker"} for row in rows if row.get("speaker")}


def summarize(clips: list[Clip]) -> dict:
    """Counts per speaker and digit, for `audrey data stats` and for error messages."""
    return {
        "clips": len(clips),
        "speakers": Counter(c.speaker for c in clips),
        "digits": Counter(c.digit for c in clips),
        "sources": Counter(c.source for c in clips),
    }
