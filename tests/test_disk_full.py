"""A write that fails (a full disk) is one line naming the file, keeps what was saved before and
exits non-zero: `record` (the takes saved so far stay, no DONE), `eval` (the feature cache says once
that it carries on without being written; the confusion PNG is the error) and `train` (its checkpoint).

The full disk is a file-size limit (RLIMIT_FSIZE, with SIGXFSZ ignored so that a write past it
fails with EFBIG) in a child process, so the test runner's own files are never limited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from helpers import REPO, one_line_error

LIMIT = 4096  # bytes: more than a speaker.json, less than any take, feature-cache entry, PNG or checkpoint

PRELUDE = f"""
import json, resource, signal, sys
sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
import audrey.cli
import audrey.plots
audrey.plots.pyplot().figure()  # matplotlib's font cache is built (written) before the disk fills
from typer.testing import CliRunner
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead of killing
def fill_disk():
    resource.setrlimit(resource.RLIMIT_FSIZE, ({LIMIT}, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
def cli(*args):
    res = CliRunner().invoke(audrey.cli.app, [str(a) for a in args])
    return {{"exit_code": res.exit_code, "output": res.output, "exception": repr(res.exception)}}
"""


def run_child(code: str, cwd: Path) -> dict:
    """`code` (which assigns `result`) in a fresh Python: the CLI's exit code and output."""
    script = PRELUDE + code + "\nprint('RESULT ' + json.dumps(result))\n"
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUDREY_PROGRESS": "0", "AUDREY_CACHE": str(cwd / "cache"),
           "WANDB_MODE": "disabled", "MPLCONFIGDIR": str(cwd / "mpl")}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180, env=env, cwd=cwd)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp")]


def test_record_on_a_full_disk_keeps_the_saved_takes_and_says_how_many(tmp_path, espeak_digit):
    """The disk fills after two takes: the third cannot be saved. One error line says so and how many
    takes are kept, --auto ends with FAILED (not DONE), exit 2, the two takes are whole, no temp file."""
    clips = {d: str(espeak_digit(d, "us")) for d in range(10)}
    result = run_child(f"""
import numpy as np
from audrey.audio.mic import FileStream
from audrey.audio.waveform import load_audio, trim_silence
from audrey.recording import session
clips = {{int(d): trim_silence(load_audio(p, 16000), sr=16000) for d, p in {clips!r}.items()}}
stream = FileStream(16000, noise_db=-70)
class Talker(session.AutoUI):  # the person at the microphone: says each prompted digit
    saves = 0
    def prompt(self, s, index, digit, attempt):
        super().prompt(s, index, digit, attempt)
        stream.play(np.zeros(3200, np.float32))
        stream.play(clips[digit])
    def saved(self, s, path, take):
        Talker.saves += 1
        if Talker.saves == 2:
            fill_disk()
        return super().saved(s, path, take)
session.AutoUI = Talker
session.MicStream = lambda device, rate: stream
result = cli("record", "--speaker", "tester", "--root", "rec", "--auto", "--takes-per-digit", "1", "--seed", "3")
""", tmp_path)
    out = result["output"]
    assert result["exit_code"] == 2, out
    assert "Traceback" not in out and "DONE" not in out, out
    assert "FAILED saved=2 rejected=0 skipped=0" in out
    errors = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, out
    assert "could not be written (File too large)" in errors[0]
    assert "the 2 take(s) saved before it in this session are complete and kept" in errors[0]
    takes = sorted((tmp_path / "rec" / "tester").glob("*.wav"))
    assert len(takes) == 2 and errors[0].startswith(f"error: rec/tester/")
    for take in takes:
        assert sf.info(str(take)).frames > 1000  # whole takes, readable
    assert not temp_files(tmp_path / "rec")


def test_eval_on_a_full_disk_warns_once_about_the_cache_and_names_the_png(tmp_path, digit_folders):
    """Every feature-cache entry fails: said once, evaluation carries on; then the confusion PNG
    cannot be written: one error naming it, exit 2, no half PNG and no temp file."""
    result = run_child(f"""
fill_disk()
result = cli("eval", "--data", {str(digit_folders)!r}, "--confusion", "cm.png")  # the bundled starter model
""", tmp_path)
    out = result["output"]
    assert result["exit_code"] == 2, out
    warnings = [line for line in out.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: feature cache: "), out
    assert "could not be written (File too large); carrying on without the cache" in warnings[0]
    rest = "\n".join(line for line in out.splitlines() if not line.startswith("warning:"))
    assert one_line_error(rest) == "error: cm.png: could not be written (File too large); free some disk space " \
                                   "(or write somewhere else) and run again"
    assert not (tmp_path / "cm.png").exists() and not temp_files(tmp_path)


def test_train_on_a_full_disk_names_the_checkpoint_file(tmp_path, digit_folders):
    """The first epoch's best weights (written beside the checkpoint) cannot be written: one error
    naming the file, exit 2; a model file already at --out stays as it was."""
    out_file = tmp_path / "m.safetensors"
    out_file.write_bytes(b"the model from before")
    result = run_child(f"""
fill_disk()
result = cli("train", "--data", {str(digit_folders)!r}, "--split", "none", "--epochs", "2", "--batch-size", "16",
             "--out", "m.safetensors")
""", tmp_path)
    out = result["output"]
    assert result["exit_code"] == 2, out
    lines = [line for line in out.splitlines() if line.startswith(("warning:", "error:"))]
    assert "Traceback" not in out, out
    assert [line.split(":")[0] for line in lines] == ["warning", "error"], out
    assert lines[1].startswith("error: m.ckpt.best.safetensors: could not be written (File too large)")
    assert out_file.read_bytes() == b"the model from before" and not temp_files(tmp_path)
