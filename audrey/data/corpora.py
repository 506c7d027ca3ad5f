"""Labelled single-digit clips from every source Audrey reads, as one `Clip` record.

Layouts (detected per folder; a folder that mixes them is an error):
- speaker folders: `<root>/<speaker>/<digit>_<speaker>_<take>.wav`. AudioMNIST (`data/NN/D_NN_I.wav`
  with `audioMNIST_meta.txt`) and Audrey's own `recordings/<speaker>/` (with `speaker.json`) are both
  this layout, which is why personal recordings sit alongside AudioMNIST.
- flat FSDD naming: `<root>/<digit>_<speaker>_<take>.wav` (or `<root>/recordings/...`), with an
  optional `speakers.csv`.
- digit folders: `<root>/0/ .. <root>/9/` or `<root>/zero/ .. <root>/nine/`, any file names.
- Speech Commands: `<root>/<word>/<speaker>_nohash_<n>.flac`: its ten digit-word folders are digit
  clips; its other words and `_background_` noise are not digits and come from `read_non_digits`.
Connected speech with transcripts (AN4, alphanumeric) is no clip: see audrey.data.utterances.

Speaker names never collide across corpora. A corpus whose speaker ids are opaque codes gets a
prefix (`sc-<hash>` here, `an4-`, `alnum-` for utterances). FSDD (lower-case first names) and
AudioMNIST (two-digit numbers) keep their names: neither has a "-" in it, so no prefixed name can
equal one, and the splits, `loso:NAME` and run records that already name them stay valid.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from audrey import DIGIT_WORDS
from audrey.audio.waveform import audio_files, is_audio_file
from audrey.data.utterances import UTTERANCE_LAYOUTS, utterance_layout
from audrey.errors import AudreyError

CLIP_NAME = re.compile(r"^(?P<digit>[^_]+)_(?P<speaker>.+)_(?P<take>\d+)$")
SPEECH_COMMANDS_NAME = re.compile(r"^(?P<speaker>[^_]+)_nohash_(?P<take>\d+)$")
SPEECH_COMMANDS = "speech-commands"
SPEECH_COMMANDS_PREFIX = "sc-"
BACKGROUND_FOLDER = "_background"  # `_background_` here, `_background_noise_` in the full download
AUDIOMNIST_META = "audioMNIST_meta.txt"
SPEAKER_META = "speaker.json"
# The speaker fields AudioMNIST keeps; personal recordings ask for the same ones.
SPEAKER_FIELDS = ("age", "gender", "accent", "native speaker", "origin", "recordingroom", "device")


@dataclass(frozen=True)
class Clip:
    path: Path
    digit: int
    speaker: str
    source: str  # "audiomnist", "fsdd", "speech-commands", "personal", "folder", "synthetic", ...
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


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_digit_folder(name: str) -> bool:
    name = name.lower()
    return (len(name) == 1 and name.isdigit()) or name in DIGIT_WORDS


def _names_speech_commands(digit_dirs: list[Path]) -> bool:
    return any(SPEECH_COMMANDS_NAME.match(p.stem) for d in digit_dirs for p in audio_files(d))


def detect_layout(root: Path) -> tuple[str, Path]:
    """Return (layout, folder that holds it). Clip layouts: 'speakers', 'flat', 'digits',
    'speech-commands'; utterance layouts (UTTERANCE_LAYOUTS): 'an4', 'alphanumeric'."""
    root = Path(root)
    if root.is_file():
        raise AudreyError(f"{root}: is a file, not a corpus folder; pass the folder that holds the clips "
                          f"(for single files, `audrey predict {root}`)")
    if not root.is_dir():
        raise AudreyError(f"{root}: no such folder")
    utterances = utterance_layout(root)
    if utterances:
        return utterances, root
    # AudioMNIST's repository keeps its speakers under data/, FSDD's under recordings/.
    for inner in ("data", "recordings"):
        if (root / inner).is_dir() and not audio_files(root):
            root = root / inner
            break
    subdirs = _subdirs(root)
    digit_dirs = [d for d in subdirs if _is_digit_folder(d.name)]
    if digit_dirs and _names_speech_commands(digit_dirs):
        return SPEECH_COMMANDS, root  # its other word folders are expected beside the digits
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
    raise AudreyError(f"{root}: no audio clips found (looked for .wav, .flac, .ogg, .mp3 and the other formats soundfile reads)")


def read_corpus(root: str | Path, source: str | None = None) -> list[Clip]:
    """Every labelled clip under `root`, whatever its layout. Raises on a bad name or layout."""
    layout, folder = detect_layout(Path(root))
    if layout in UTTERANCE_LAYOUTS:
        raise AudreyError(
            f"{root}: holds {layout} utterances (connected speech with transcripts, no digit times), not single-digit "
            f"clips; they need an aligner to cut the digits out first (`audrey data stats {root}` shows them)"
        )
    reader = {"speakers": read_speaker_folders, "flat": read_flat, "digits": read_digit_folders,
              SPEECH_COMMANDS: read_speech_commands}[layout]
    clips = reader(folder, source)
    if not clips:
        raise AudreyError(f"{root}: no audio clips found")
    return clips


def non_audio_files(roots: Iterable[str | Path]) -> Counter:
    """Files under the corpus folders that the readers skip because they are not audio
    (waveform.is_audio_file, the one rule), by suffix; hidden folders such as .git are not entered."""
    skipped: Counter = Counter()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = Path(folder) / name
                if not is_audio_file(path):
                    skipped["(hidden)" if name.startswith(".") else path.suffix.lower() or "(no suffix)"] += 1
    return skipped


def read_corpora(roots: Iterable[str | Path]) -> list[Clip]:
    clips: list[Clip] = []
    for root in roots:
        clips.extend(read_corpus(root))
    return clips


def read_speaker_folders(root: Path, source: str | None = None) -> list[Clip]:
    """AudioMNIST (`data/NN/D_NN_I.wav`), personal recordings (`recordings/<speaker>/...`) and the
    digits `audrey data align` cut out of a corpus (their speaker.json names it: the clips' source)."""
    meta_file = root / AUDIOMNIST_META
    is_audiomnist = meta_file.exists()
    default_source = "audiomnist" if is_audiomnist else "personal"
    all_meta = read_audiomnist_meta(meta_file) if is_audiomnist else {}
    clips = []
    for folder in _subdirs(root):
        files = audio_files(folder)
        if not files:
            continue
        meta = all_meta.get(folder.name) or read_speaker_meta(folder)
        folder_source = source or meta.get("corpus") or default_source
        for path in files:
            digit, speaker, take = parse_clip_name(path)
            if speaker != folder.name:
                raise AudreyError(f"{path}: speaker {speaker!r} in the name but the file is in folder {folder.name!r}")
            clips.append(Clip(path, digit, speaker, folder_source, take, meta))
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


def read_speech_commands(root: Path, source: str | None = None) -> list[Clip]:
    """The digit folders of Speech Commands: `zero/0fa1e7a9_nohash_2.flac` is digit 0 by speaker
    `sc-0fa1e7a9`, take 2 (the same hash in two folders is the same person)."""
    source = source or SPEECH_COMMANDS
    clips = []
    for folder in _subdirs(root):
        if not _is_digit_folder(folder.name):
            continue
        digit = parse_digit(folder.name, folder)
        for path in audio_files(folder):
            speaker, take = _speech_commands_speaker(path)
            clips.append(Clip(path, digit, speaker, source, take, {}))
    return clips


@dataclass(frozen=True)
class WordClip:
    """A Speech Commands clip that is not a digit: a word ("tree", "yes") or background noise."""

    path: Path
    word: str | None  # lower case; None for background noise, which holds no speech
    speaker: str | None  # "sc-<hash>", as for its digit clips; None for background noise
    source: str
    take: int = 0

    @property
    def is_noise(self) -> bool:
        return self.word is None


def read_non_digits(root: str | Path) -> list[WordClip]:
    """Every Speech Commands clip that is not a digit (for rejection: real words and noise)."""
    layout, folder = detect_layout(Path(root))
    if layout != SPEECH_COMMANDS:
        raise AudreyError(f"{root}: not a Speech Commands folder (<word>/<speaker>_nohash_<n>.flac); "
                          "only that layout holds non-digit words")
    clips = []
    for sub in _subdirs(folder):
        if _is_digit_folder(sub.name):
            continue
        for i, path in enumerate(audio_files(sub)):
            if sub.name.startswith(BACKGROUND_FOLDER):
                clips.append(WordClip(path, None, None, SPEECH_COMMANDS, i))
            else:
                speaker, take = _speech_commands_speaker(path)
                clips.append(WordClip(path, sub.name.lower(), speaker, SPEECH_COMMANDS, take))
    return clips


def _speech_commands_speaker(path: Path) -> tuple[str, int]:
    m = SPEECH_COMMANDS_NAME.match(path.stem)
    if not m:
        raise AudreyError(f"{path}: name is not <speaker>_nohash_<n>{path.suffix} like the rest of this "
                          "Speech Commands folder (e.g. 0fa1e7a9_nohash_2.flac)")
    return SPEECH_COMMANDS_PREFIX + m["speaker"], int(m["take"])


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
