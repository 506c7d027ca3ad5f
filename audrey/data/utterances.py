"""Connected speech with transcripts but no word times, as one `Utterance` record.

Layouts (detected per folder by `utterance_layout`):
- AN4 (CMU): `<root>/<split>.csv` with columns id,speaker,seconds,text and the audio in
  `<root>/<split>/<speaker>/<id>.flac`; text is upper-case words ("X I SIXTY ONE", "ENTER").
- alphanumeric: `<root>/speakers.csv` (id, speaker metadata, and the `number` each person was asked
  to read), `<root>/numbers/<id>.flac` (that phone number) and `<root>/names/<id>.flac` (a name
  spelled letter by letter: speech with no digit in it).

Speakers are named `an4-<id>` and `alnum-<id>` so they never collide with another corpus's (see
audrey.data.corpora). These are not single-digit clips: `read_corpus` refuses them until an aligner
can cut the digits out.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from audrey import DIGIT_WORDS
from audrey.audio.waveform import audio_files
from audrey.errors import AudreyError

AN4, ALPHANUMERIC = "an4", "alphanumeric"
UTTERANCE_LAYOUTS = (AN4, ALPHANUMERIC)
AN4_PREFIX, ALPHANUMERIC_PREFIX = "an4-", "alnum-"
AN4_COLUMNS = {"id", "speaker", "text"}
ALPHANUMERIC_COLUMNS = {"id", "number"}
ALPHANUMERIC_SPEAKERS = "speakers.csv"
ALPHANUMERIC_FOLDERS = ("numbers", "names")
# AN4 names its speakers by gender: the first letter of `fash` and `mblw` is f(emale) or m(ale).
AN4_GENDER = {"f": "female", "m": "male"}
UNSTATED_GENDER = {"", "prefer not to say"}


@dataclass(frozen=True)
class Utterance:
    path: Path
    speaker: str
    words: tuple[str, ...]  # the transcript, lower case, in order; () where the corpus gives none (spelled names)
    digits: str  # the digits among the words, in order ("oh" and "zero" are 0); "" when none is said
    source: str  # "an4", "alphanumeric"
    meta: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def only_digits(self) -> bool:
        """Every word is a digit (a phone number, "ONE FIVE TWO"): no letters, commands or tens."""
        return bool(self.words) and len(self.digits) == len(self.words)


def digit_of(word: str) -> int | None:
    """"TWO" -> 2, "OH" and "ZERO" -> 0; anything else ("SIXTY", the letter "O", "ENTER") -> None."""
    word = word.strip().lower()
    if word == "oh":
        return 0
    return DIGIT_WORDS.index(word) if word in DIGIT_WORDS else None


def digit_string(words: Iterable[str]) -> str:
    """The digits said, in order: ["r", "e", "eight", "oh", "six"] -> "806"."""
    return "".join(str(d) for d in map(digit_of, words) if d is not None)


def utterance_layout(root: Path) -> str | None:
    """'an4', 'alphanumeric', or None when `root` holds neither."""
    if _an4_splits(root):
        return AN4
    if (root / ALPHANUMERIC_SPEAKERS).is_file() and "number" in _csv_header(root / ALPHANUMERIC_SPEAKERS) \
            and any((root / f).is_dir() for f in ALPHANUMERIC_FOLDERS):
        return ALPHANUMERIC
    return None


def read_utterances(root: str | Path) -> list[Utterance]:
    """Every utterance under `root` (an AN4 or alphanumeric folder). Raises naming the file on bad data."""
    root = Path(root)
    if root.is_file():
        raise AudreyError(f"{root}: is a file, not a corpus folder; pass the folder that holds the utterances and their transcripts")
    if not root.is_dir():
        raise AudreyError(f"{root}: no such folder")
    layout = utterance_layout(root)
    if layout is None:
        raise AudreyError(
            f"{root}: no utterances with transcripts here (looked for AN4's <split>.csv beside <split>/<speaker>/ "
            "and alphanumeric's speakers.csv with a number column beside numbers/ or names/)"
        )
    utterances = read_an4(root) if layout == AN4 else read_alphanumeric(root)
    if not utterances:
        raise AudreyError(f"{root}: no audio files for its transcripts")
    return utterances


def read_an4(root: Path) -> list[Utterance]:
    utterances = []
    for table, split in _an4_splits(root):
        found: dict[str, dict[str, Path]] = {}  # speaker -> audio file stem -> path
        for row in _csv_rows(table, AN4_COLUMNS):
            speaker = row["speaker"].strip()
            if speaker not in found:
                folder = split / speaker
                found[speaker] = {p.stem: p for p in audio_files(folder)} if folder.is_dir() else {}
            path = found[speaker].get(row["id"].strip())
            if path is None:
                raise AudreyError(f"{table}: row {row['id']!r}: no audio file {split.name}/{speaker}/{row['id']}.flac "
                                  "(or another audio suffix); restore it or drop the row")
            words = tuple(row["text"].lower().split())
            meta = {"gender": AN4_GENDER[speaker[0]]} if speaker[:1] in AN4_GENDER else {}
            utterances.append(Utterance(path, AN4_PREFIX + speaker, words, digit_string(words), AN4, meta))
    return utterances


def read_alphanumeric(root: Path) -> list[Utterance]:
    """Phone numbers (digits from speakers.csv's `number`) and spelled names (no digit, no transcript)."""
    table = root / ALPHANUMERIC_SPEAKERS
    rows = {row["id"].strip(): row for row in _csv_rows(table, ALPHANUMERIC_COLUMNS)}
    utterances = []
    for path in audio_files(root / "numbers") if (root / "numbers").is_dir() else []:
        row = rows.get(path.stem)
        if row is None:
            raise AudreyError(f"{path}: no row {path.stem!r} in {table}, so its digits are unknown; add the row or remove the file")
        number = row["number"].strip()
        if not number.isdigit():
            raise AudreyError(f"{table}: speaker {path.stem!r}: number {number!r} is not a string of digits")
        # The words are what was asked; a speaker may say "oh" for 0, which is the same digit.
        words = tuple(DIGIT_WORDS[int(c)] for c in number)
        utterances.append(Utterance(path, ALPHANUMERIC_PREFIX + path.stem, words, number, ALPHANUMERIC, _alphanumeric_meta(row)))
    for path in audio_files(root / "names") if (root / "names").is_dir() else []:
        row = rows.get(path.stem, {})
        utterances.append(Utterance(path, ALPHANUMERIC_PREFIX + path.stem, (), "", ALPHANUMERIC, _alphanumeric_meta(row)))
    return utterances


def _alphanumeric_meta(row: Mapping[str, str]) -> dict[str, str]:
    """Speaker fields as given, except gender: lower case like the other corpora, absent when unstated."""
    meta = {k: (v or "").strip() for k, v in row.items() if k not in ("id", "number")}
    if meta.get("gender", "").lower() in UNSTATED_GENDER:
        meta.pop("gender", None)
    elif "gender" in meta:
        meta["gender"] = meta["gender"].lower()
    return meta


def _an4_splits(root: Path) -> list[tuple[Path, Path]]:
    """(transcript table, audio folder) pairs: `train.csv` with `train/`, `test.csv` with `test/`."""
    return [(table, table.with_suffix("")) for table in sorted(root.glob("*.csv"))
            if table.with_suffix("").is_dir() and AN4_COLUMNS <= set(_csv_header(table))]


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [name.strip() for name in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError) as exc:
        raise AudreyError(f"{path}: not a readable CSV file ({exc})") from None


def _csv_rows(path: Path, required: set[str]) -> list[dict[str, str]]:
    """The rows of a CSV file that has the `required` columns, each row complete in them."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AudreyError(f"{path}: not a readable CSV file ({exc})") from None
    missing = sorted(required - set(reader.fieldnames))
    if missing:
        raise AudreyError(f"{path}: no column {', '.join(missing)} (it has: {', '.join(reader.fieldnames) or 'none'})")
    for line, row in enumerate(rows, start=2):
        if any(row.get(name) is None for name in required):
            raise AudreyError(f"{path}: line {line} has fewer fields than the header; fix or remove that row")
    return rows
