"""Tiny copies of the real corpora's layouts in /work/shared/data (a few FLAC tones each, their CSV
files in the same format, CRLF and quoted commas included), for the reader and `data stats` tests."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import write_tone

RATE = 16000  # all three corpora are 16 kHz FLAC

# Speech Commands: speaker hash -> the digit words and other words they say.
SC_DIGITS = {"0fa1e7a9": ("zero", "seven"), "1b4c9b89": ("seven",), "3b4f8f24": ("nine",)}
SC_WORDS = {"0fa1e7a9": ("tree",), "c1d39ce8": ("yes", "tree")}  # c1d39ce8 says no digit at all
SC_NOISE = 2

# AN4 train.csv rows (id, speaker, seconds, text), as the real one writes them.
AN4_ROWS = [
    ("an1-mblw-b", "mblw", "1.500", "X I SIXTY ONE"),
    ("an2-mblw-b", "mblw", "2.100", "ONE FIVE TWO TWO SEVEN"),
    ("cen1-fash-b", "fash", "2.600", "EIGHT OH FOUR ZERO NINE"),
    ("cen2-fash-b", "fash", "0.900", "ENTER"),
    ("an3-fash-b", "fash", "1.800", "R O B"),
]

# alphanumeric speakers.csv: the real header, a quoted field with a comma, an unstated gender, a 9-digit number.
ALNUM_HEADER = "id,gender,age,nationality,native_language,english,accent_strength,device,number"
ALNUM_ROWS = [
    'R_14L9qNxUlipFmsF,Male,23,Indian,Tamil,"Educated in English, but not my native language",7,Laptop,3041254855',
    "R_1QrO96YnPAaHofK,Prefer not to say,26,Indian,Kannada,Basic knowledge; not fluent,5,Phone Recorder,1928374655",
    'R_4JsyJD7ticKbRiZ,Female,29,Indian,Hindi,Basic knowledge; not fluent,8,Phone Recorder,123456789',
]
ALNUM_NAME_ONLY = "R_1bhWwiBjHlA1GcF"  # a spelled name with no row in speakers.csv, as in the real corpus


def make_speech_commands(root: Path) -> Path:
    for speaker, words in SC_DIGITS.items():
        for take, word in enumerate(words):
            write_tone(root / word / f"{speaker}_nohash_{take}.flac", seconds=0.05, sr=RATE)
    for speaker, words in SC_WORDS.items():
        for take, word in enumerate(words):
            write_tone(root / word / f"{speaker}_nohash_{take}.flac", seconds=0.05, sr=RATE)
    for n in range(SC_NOISE):
        write_tone(root / "_background_" / f"silence_{n}.flac", seconds=0.05, sr=RATE)
    (root / "SOURCE.md").write_text("# Speech Commands (fixture)\n")
    return root


def make_an4(root: Path, rows=AN4_ROWS) -> Path:
    for id_, speaker, _, _ in rows:
        write_tone(root / "train" / speaker / f"{id_}.flac", seconds=0.05, sr=RATE)
    lines = ["id,speaker,seconds,text"] + [",".join(row) for row in rows]
    (root / "train.csv").write_bytes(("\r\n".join(lines) + "\r\n").encode())
    (root / "LICENSE").write_text("AN4 License Terms (fixture)\n")
    return root


def make_alphanumeric(root: Path) -> Path:
    ids = [row.split(",", 1)[0] for row in ALNUM_ROWS]
    for id_ in ids:
        write_tone(root / "numbers" / f"{id_}.flac", seconds=0.05, sr=RATE)
    for id_ in ids + [ALNUM_NAME_ONLY]:
        write_tone(root / "names" / f"{id_}.flac", seconds=0.05, sr=RATE)
    (root / "speakers.csv").write_text("\n".join([ALNUM_HEADER, *ALNUM_ROWS]) + "\n")
    (root / "SOURCE.md").write_text("# Alphanumeric Audio Dataset (fixture)\n")
    return root


# --- AudioMNIST and FSDD (the layouts audrey.data.corpora read first) -------------------------------

AUDIOMNIST_META = {
    "01": {"accent": "german", "age": 30, "gender": "male", "native speaker": "no", "origin": "Europe, Germany, Wuerzburg",
           "recordingdate": "17-06-22-11-04-28", "recordingroom": "Kino"},
    "02": {"accent": "English", "age": 25, "gender": "female", "native speaker": "yes", "origin": "Europe, UK, London",
           "recordingdate": "17-06-26-17-23-07", "recordingroom": "Kino"},
}


def make_audiomnist(root, speakers=("01", "02"), takes=2):
    data = root / "data"
    for spk in speakers:
        for digit in range(10):
            for take in range(takes):
                write_tone(data / spk / f"{digit}_{spk}_{take}.wav", seconds=0.05)
    (data / "audioMNIST_meta.txt").write_text(json.dumps(AUDIOMNIST_META, indent=1))
    return root


def make_fsdd(folder, speakers=("jackson", "theo"), takes=2, csv=True):
    for spk in speakers:
        for digit in range(10):
            for take in range(takes):
                write_tone(folder / f"{digit}_{spk}_{take}.wav", seconds=0.05)
    if csv:
        rows = ["speaker,gender,accent,language"] + [f"{s},male,USA/neutral,english" for s in speakers]
        (folder.parent if folder.name == "recordings" else folder).joinpath("speakers.csv").write_text("\n".join(rows) + "\n")
