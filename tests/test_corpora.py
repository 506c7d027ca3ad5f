"""audrey.data.corpora: every layout Audrey reads, their metadata, and the mistakes it must name."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

from audrey import DIGIT_WORDS
from audrey.audio.waveform import load_audio
from audrey.data.corpora import AudreyError, detect_layout, parse_clip_name, read_corpora, read_corpus, summarize
from helpers import require_fsdd, write_tone
from real_layouts import make_audiomnist, make_fsdd

# --- AudioMNIST ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["repo root", "data folder"])
def test_audiomnist_layout_with_meta(tmp_path, where):
    root = make_audiomnist(tmp_path / "AudioMNIST")
    clips = read_corpus(root if where == "repo root" else root / "data")
    assert len(clips) == 40
    assert {c.source for c in clips} == {"audiomnist"}
    assert {c.speaker for c in clips} == {"01", "02"}
    assert Counter(c.digit for c in clips) == {d: 4 for d in range(10)}
    c = next(c for c in clips if c.speaker == "01" and c.digit == 7 and c.take == 1)
    assert c.path.name == "7_01_1.wav" and c.name == "7_01_1.wav"
    assert c.meta["accent"] == "german" and c.meta["age"] == "30" and c.meta["recordingroom"] == "Kino"
    assert next(c for c in clips if c.speaker == "02").meta["gender"] == "female"


def test_audiomnist_speaker_without_meta_entry(tmp_path):
    root = make_audiomnist(tmp_path / "am", speakers=("01", "03"))
    clips = read_corpus(root)
    assert {c.speaker: dict(c.meta) for c in clips}["03"] == {}


def test_audiomnist_bad_meta_is_named(tmp_path):
    root = make_audiomnist(tmp_path / "am")
    (root / "data" / "audioMNIST_meta.txt").write_text("{not json")
    with pytest.raises(AudreyError, match="audioMNIST_meta.txt"):
        read_corpus(root)


# --- FSDD naming ---------------------------------------------------------------------------------


def test_fsdd_flat(tmp_path):
    make_fsdd(tmp_path / "fsdd")
    clips = read_corpus(tmp_path / "fsdd")
    assert detect_layout(tmp_path / "fsdd") == ("flat", tmp_path / "fsdd")
    assert len(clips) == 40 and {c.source for c in clips} == {"fsdd"}
    assert {c.speaker for c in clips} == {"jackson", "theo"}
    assert clips[0].meta == {"gender": "male", "accent": "USA/neutral", "language": "english"}


def test_fsdd_under_recordings(tmp_path):
    make_fsdd(tmp_path / "fsdd" / "recordings")
    assert detect_layout(tmp_path / "fsdd") == ("flat", tmp_path / "fsdd" / "recordings")
    clips = read_corpus(tmp_path / "fsdd")
    assert len(clips) == 40 and {c.source for c in clips} == {"fsdd"}
    assert all(c.meta["language"] == "english" for c in clips)
    assert read_corpus(tmp_path / "fsdd" / "recordings") == clips


def test_flat_without_csv_is_named_after_folder(tmp_path):
    make_fsdd(tmp_path / "mine", csv=False)
    clips = read_corpus(tmp_path / "mine")
    assert {c.source for c in clips} == {"mine"} and clips[0].meta == {}
    assert {c.source for c in read_corpus(tmp_path / "mine", source="x")} == {"x"}


def test_parse_clip_name():
    from pathlib import Path

    assert parse_clip_name(Path("7_jackson_32.wav")) == (7, "jackson", 32)
    assert parse_clip_name(Path("seven_bob_smith_3.flac")) == (7, "bob_smith", 3)
    assert parse_clip_name(Path("Nine_x_0.wav")) == (9, "x", 0)


# --- digit folders -------------------------------------------------------------------------------


@pytest.mark.parametrize("names", [[str(d) for d in range(10)], list(DIGIT_WORDS)])
def test_digit_folders(tmp_path, names):
    root = tmp_path / "digits"
    for digit, name in enumerate(names):
        write_tone(root / name / "a.wav", seconds=0.05)
        write_tone(root / name / f"{digit}_ann_4.wav", seconds=0.05)
    assert detect_layout(root)[0] == "digits"
    clips = read_corpus(root)
    assert len(clips) == 20
    assert Counter(c.digit for c in clips) == {d: 2 for d in range(10)}
    named = [c for c in clips if c.path.name != "a.wav"]
    assert {(c.speaker, c.take) for c in named} == {("ann", 4)}
    assert {c.speaker for c in clips if c.path.name == "a.wav"} == {"digits"}  # credited to the folder


def test_digit_folder_name_disagrees_with_file_name(tmp_path):
    write_tone(tmp_path / "d" / "3" / "4_ann_0.wav", seconds=0.05)
    with pytest.raises(AudreyError, match="4_ann_0.wav"):
        read_corpus(tmp_path / "d")


# --- personal recordings ---------------------------------------------------------------------------


def test_personal_recordings_with_speaker_json(tmp_path):
    root = tmp_path / "me"
    for spk in ("alice", "bob"):
        for digit in range(10):
            write_tone(root / "recordings" / spk / f"{digit}_{spk}_0.wav", seconds=0.05)
    (root / "recordings" / "alice" / "speaker.json").write_text(json.dumps({"age": 41, "gender": "female", "device": "USB mic"}))
    clips = read_corpus(root)
    assert len(clips) == 20 and {c.source for c in clips} == {"personal"}
    meta = {c.speaker: dict(c.meta) for c in clips}
    assert meta["alice"] == {"age": "41", "gender": "female", "device": "USB mic"}
    assert meta["bob"] == {}


def test_personal_recordings_real_speech(tmp_path):
    """espeak-ng speech in the speaker-folders layout reads back and decodes."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    from audrey.data.synth import Voice, say

    voice = Voice("en-us", "m3", 50)
    for digit in (1, 7):
        say(DIGIT_WORDS[digit], voice, 175, tmp_path / voice.name / f"{digit}_{voice.name}_0.wav")
    clips = read_corpus(tmp_path)
    assert sorted(c.digit for c in clips) == [1, 7] and {c.speaker for c in clips} == {voice.name}
    wave = load_audio(clips[0].path)
    assert 0.1 < len(wave) / 8000 < 2.0 and abs(wave).max() > 0.05


def test_hidden_files_are_ignored(tmp_path):
    make_fsdd(tmp_path / "f", speakers=("ann",), takes=1, csv=False)
    (tmp_path / "f" / "._3_ann_0.wav").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    assert len(read_corpus(tmp_path / "f")) == 10


def test_read_corpora_concatenates(tmp_path):
    make_fsdd(tmp_path / "a", speakers=("ann",), takes=1)
    make_audiomnist(tmp_path / "b", speakers=("01",), takes=1)
    clips = read_corpora([tmp_path / "a", tmp_path / "b"])
    s = summarize(clips)
    assert s["clips"] == 20 and s["sources"] == {"fsdd": 10, "audiomnist": 10}
    assert set(s["speakers"]) == {"ann", "01"} and s["digits"] == {d: 2 for d in range(10)}


# --- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x_bob_1.wav", "12_bob_1.wav", "ten_bob_1.wav"])
def test_unknown_label(tmp_path, name):
    write_tone(tmp_path / "c" / "1_bob_0.wav", seconds=0.05)
    write_tone(tmp_path / "c" / name, seconds=0.05)
    with pytest.raises(AudreyError) as info:
        read_corpus(tmp_path / "c")
    assert name in str(info.value) and "unknown label" in str(info.value)


def test_name_not_in_pattern(tmp_path):
    write_tone(tmp_path / "c" / "hello.wav", seconds=0.05)
    with pytest.raises(AudreyError, match="hello.wav"):
        read_corpus(tmp_path / "c")


def test_empty_folder(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no audio here")
    with pytest.raises(AudreyError, match="no audio clips"):
        read_corpus(tmp_path / "empty")


def test_missing_folder(tmp_path):
    with pytest.raises(AudreyError, match="no such folder"):
        read_corpus(tmp_path / "absent")


@pytest.mark.parametrize(
    "extra",
    ["3/a.wav", "bob/1_bob_0.wav"],  # digit folder beside loose clips; speaker folder beside loose clips
)
def test_mixed_layouts(tmp_path, extra):
    write_tone(tmp_path / "m" / "1_ann_0.wav", seconds=0.05)
    write_tone(tmp_path / "m" / extra, seconds=0.05)
    with pytest.raises(AudreyError, match="mixes layouts"):
        read_corpus(tmp_path / "m")


def test_mixed_digit_and_speaker_folders(tmp_path):
    write_tone(tmp_path / "m" / "3" / "a.wav", seconds=0.05)
    write_tone(tmp_path / "m" / "bob" / "1_bob_0.wav", seconds=0.05)
    with pytest.raises(AudreyError, match="digit folders, speaker folders"):
        read_corpus(tmp_path / "m")


def test_speaker_folder_mismatch(tmp_path):
    write_tone(tmp_path / "r" / "alice" / "1_alice_0.wav", seconds=0.05)
    write_tone(tmp_path / "r" / "alice" / "2_bob_0.wav", seconds=0.05)
    with pytest.raises(AudreyError) as info:
        read_corpus(tmp_path / "r")
    assert "2_bob_0.wav" in str(info.value) and "'alice'" in str(info.value)


def test_bad_speaker_json(tmp_path):
    write_tone(tmp_path / "r" / "alice" / "1_alice_0.wav", seconds=0.05)
    (tmp_path / "r" / "alice" / "speaker.json").write_text("{oops")
    with pytest.raises(AudreyError, match="speaker.json"):
        read_corpus(tmp_path / "r")


# --- the real FSDD ---------------------------------------------------------------------------------


def test_real_fsdd():
    root = require_fsdd()
    clips = read_corpus(root)
    assert len(clips) == 3000
    assert len({c.speaker for c in clips}) == 6
    assert Counter(c.digit for c in clips) == {d: 300 for d in range(10)}
    assert {c.source for c in clips} == {"fsdd"}
    assert all(c.meta for c in clips)  # every speaker is in speakers.csv
