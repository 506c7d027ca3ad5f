"""`audrey data stats`: tables, --json, problems, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audrey.cli import app
from helpers import (one_line_error, require_alphanumeric, require_an4, require_fsdd, require_speech_commands,
                     write_tone)
from real_layouts import make_alphanumeric, make_an4, make_speech_commands


def squash(text: str) -> str:
    """Text without whitespace: rich wraps table output, even inside long paths, at 80 columns."""
    return "".join(text.split())


def stats(*args: str):
    return CliRunner().invoke(app, ["data", "stats", *args])


def small_corpus(root, bad: dict[str, bytes | np.ndarray] | None = None):
    for digit in range(10):
        write_tone(root / f"{digit}_ann_0.wav", freq=300 + 40 * digit, seconds=0.3)
    for name, content in (bad or {}).items():
        if isinstance(content, bytes):
            (root / name).write_bytes(content)
        else:
            sf.write(str(root / name), content, 8000, subtype="FLOAT")
    return root


def test_stats_fsdd_table():
    root = require_fsdd()
    result = stats(str(root))
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "3000 clips, 6 speakers, 10 digits" in out
    assert "no problems found" in out
    for speaker in ("george", "jackson", "lucas", "nicolas", "theo", "yweweler"):
        assert speaker in out


def test_stats_fsdd_json():
    root = require_fsdd()
    result = stats(str(root), "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert (d["clips"], d["speakers"], d["digits"]) == (3000, 6, 10)
    assert d["clips_per_digit"] == {str(k): 300 for k in range(10)}
    assert d["sources"] == {"fsdd": 3000}
    assert d["sample_rates"] == {"8000": 3000}
    assert d["problems"] == []
    assert d["skipped_files"] == {"files": 2, "per_suffix": {".csv": 1, ".md": 1}}  # speakers.csv, SOURCE.md
    assert d["utterances"]["utterances"] == 0 and d["non_digit_clips"]["clips"] == 0
    assert 0 < d["duration_seconds"]["min"] <= d["duration_seconds"]["median"] <= d["duration_seconds"]["max"]


def test_stats_small_corpus(tmp_path):
    result = stats(str(small_corpus(tmp_path / "c")), "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    assert (d["clips"], d["speakers"], d["digits"], d["problems"]) == (10, 1, 10, [])
    assert d["duration_seconds"]["median"] == 0.3


def test_stats_lists_problems(tmp_path):
    loud = np.ones(800, np.float32)  # flat-topped: clipped
    nan = np.zeros(800, np.float32)
    nan[3] = np.nan
    root = small_corpus(tmp_path / "c", {"3_bob_0.wav": b"garbage" * 20, "4_bob_0.wav": loud,
                                         "5_bob_0.wav": np.zeros(800, np.float32), "6_bob_0.wav": nan})
    d = json.loads(stats(str(root), "--json").stdout)
    problems = "\n".join(d["problems"])
    assert "3_bob_0.wav: unreadable" in problems
    assert "4_bob_0.wav: clipped" in problems
    assert "5_bob_0.wav: digital silence" in problems
    assert "6_bob_0.wav: NaN" in problems
    assert "speaker bob: no clips of digit(s) 0, 1, 2, 7, 8, 9" in problems

    table = stats(str(root))
    assert table.exit_code == 0
    out = squash(table.stdout)
    assert "5problem(s)" in out and "3_bob_0.wav:unreadable" in out


def test_stats_path_with_brackets_is_printed_verbatim(tmp_path):
    """Paths are not rich markup: "[bold]" in a folder name must be shown, not swallowed."""
    root = small_corpus(tmp_path / "[bold]corpus", {"3_bob_0.wav": b""})
    out = squash(stats(str(root)).stdout)
    assert "[bold]corpus/3_bob_0.wav" in out
    result = stats(str(tmp_path / "[red]missing"))
    assert result.exit_code == 2
    assert "[red]missing" in one_line_error(result.stderr)


def test_stats_missing_folder():
    result = stats("/nonexistent")
    assert result.exit_code == 2
    line = one_line_error(result.stderr)
    assert line == "error: /nonexistent: no such folder"
    assert result.stdout == ""


def test_stats_bad_layout_is_one_line(tmp_path):
    write_tone(tmp_path / "m" / "x_ann_0.wav")
    result = stats(str(tmp_path / "m"))
    assert result.exit_code == 2
    assert "x_ann_0.wav" in one_line_error(result.stderr)


def test_stats_counts_skipped_files(tmp_path):
    root = small_corpus(tmp_path / "c")
    (root / "._3_ann_0.wav").write_bytes(b"macOS resource fork")
    (root / "notes.txt").write_text("takes from Tuesday")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main")  # hidden folders are not entered
    result = stats(str(root), "--json")
    d = json.loads(result.stdout)
    assert d["clips"] == 10 and d["problems"] == []
    assert d["skipped_files"] == {"files": 2, "per_suffix": {"(hidden)": 1, ".txt": 1}}
    assert "skipped 2 non-audio file(s): (hidden) 1, .txt 1" in " ".join(stats(str(root)).stdout.split())


def test_stats_speech_commands(tmp_path):
    root = make_speech_commands(tmp_path / "speech-commands")
    d = json.loads(stats(str(root), "--json").stdout)
    assert (d["clips"], d["speakers"], d["digits"]) == (4, 3, 3)
    assert d["clips_per_digit"] == {"0": 1, "7": 2, "9": 1} and d["sources"] == {"speech-commands": 4}
    assert d["sample_rates"] == {"16000": 4}
    assert d["non_digit_clips"] == {"clips": 3, "speakers": 2, "per_word": {"tree": 2, "yes": 1}, "noise": 2}
    assert d["skipped_files"] == {"files": 1, "per_suffix": {".md": 1}}
    assert d["problems"] == ["speech-commands: no speaker has all 10 digits (3 speakers, at most 2 digits each): "
                             "many voices, too few per speaker to enrol or score one speaker"]
    out = " ".join(stats(str(root)).stdout.split())
    assert "4 clips, 3 speakers, 3 digits" in out and "sc-0fa1e7a9" in out
    assert "not digits (not counted above): 3 clips of 2 other words from 2 speakers, 2 background-noise clips" in out


def test_stats_an4(tmp_path):
    root = make_an4(tmp_path / "an4")
    d = json.loads(stats(str(root), "--json").stdout)
    u = d["utterances"]
    assert d["clips"] == 0 and d["problems"] == []
    assert (u["utterances"], u["speakers"], u["words"], u["digits_said"]) == (5, 2, 18, 11)
    assert u["utterances_per_speaker"] == {"an4-fash": 3, "an4-mblw": 2} and u["sources"] == {"an4": 5}
    assert u["per_digit"] == {"0": 2, "1": 2, "2": 2, "4": 1, "5": 1, "7": 1, "8": 1, "9": 1}
    assert (u["only_digits"], u["without_digits"]) == (2, 2)
    assert u["per_word"]["two"] == 2 and u["per_word"]["sixty"] == 1 and u["vocabulary"] == 16
    assert u["sample_rates"] == {"16000": 5}
    assert d["skipped_files"] == {"files": 2, "per_suffix": {"(no suffix)": 1, ".csv": 1}}  # LICENSE, train.csv
    out = " ".join(stats(str(root)).stdout.split())
    assert "5 utterances, 2 speakers, 18 words (16 distinct), 11 digits said" in out
    assert "2 utterances are digits only, 2 have no digit" in out and "an4-fash" in out
    assert "clips per speaker" not in out and "no problems found" in out


def test_stats_alphanumeric(tmp_path):
    root = make_alphanumeric(tmp_path / "alphanumeric")
    u = json.loads(stats(str(root), "--json").stdout)["utterances"]
    assert (u["utterances"], u["speakers"], u["words"], u["digits_said"]) == (7, 4, 29, 29)
    assert (u["only_digits"], u["without_digits"]) == (3, 4)


def test_stats_names_audio_no_reader_took(tmp_path):
    root = make_an4(tmp_path / "an4")
    write_tone(root / "train" / "mblw" / "an9-mblw-b.flac", seconds=0.05)  # no row in train.csv
    d = json.loads(stats(str(root), "--json").stdout)
    assert d["problems"] == [f"1 audio file(s) under {root} belong to no clip or utterance, "
                             f"e.g. {root / 'train' / 'mblw' / 'an9-mblw-b.flac'}"]


@pytest.mark.parametrize("corpus", ["speech-commands", "an4", "alphanumeric"])
def test_stats_real_corpora(corpus):
    root = {"speech-commands": require_speech_commands, "an4": require_an4, "alphanumeric": require_alphanumeric}[corpus]()
    result = stats(str(root), "--json")
    assert result.exit_code == 0, result.output
    d = json.loads(result.stdout)
    u = d["utterances"]
    if corpus == "speech-commands":
        assert (d["clips"], d["speakers"], d["digits"]) == (231, 115, 10)
        assert (d["non_digit_clips"]["clips"], d["non_digit_clips"]["noise"]) == (4011, 408)
    elif corpus == "an4":
        assert (u["utterances"], u["speakers"], u["digits_said"], u["only_digits"]) == (948, 74, 1719, 181)
    else:
        assert (u["utterances"], u["speakers"], u["digits_said"], u["only_digits"]) == (69, 35, 337, 34)
    assert not any("belong to no clip or utterance" in p for p in d["problems"])
