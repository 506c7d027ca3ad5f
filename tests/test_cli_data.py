"""`audrey data stats`: tables, --json, problems, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from audrey.cli import app
from helpers import one_line_error, require_fsdd, write_tone


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
