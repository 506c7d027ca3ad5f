"""What the commands say in the odd cases: a bad file in a `predict` batch, clips with no speech, a
truncated WAV, a folder where a file belongs (and the reverse), no input device, which files are
audio, `listen` losing its device, strict JSON from `listen`, and no "run record None"."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audrey import DIGIT_WORDS
from audrey.audio.waveform import SAMPLE_RATE
from audrey.cli import DEFAULT_MODEL, app
from helpers import STARTER, one_line_error

runner = CliRunner()
EXAMPLES = STARTER.parent / "examples"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDREY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)


def lines_starting(text: str, prefix: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(prefix)]


# --- predict ---------------------------------------------------------------------------------------


def test_one_bad_file_does_not_cost_the_batch_its_good_results(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio at all" * 10)
    res = runner.invoke(app, ["predict", str(EXAMPLES / "seven.wav"), str(bad), str(EXAMPLES / "four.wav"), "--json"])
    assert res.exit_code == 2, res.output
    assert [json.loads(line)["digit"] for line in res.stdout.splitlines()] == [7, 4]
    assert one_line_error(res.stderr).startswith(f"error: {bad}: not a readable audio file (")


def write(path, audio, rate=SAMPLE_RATE):
    sf.write(str(path), np.asarray(audio, np.float32), rate, subtype="PCM_16")
    return path


T = np.arange(8000) / 8000
NO_DIGIT = {
    "silence": (np.zeros(8000), "no speech: silence (the loudest 10 ms reach -90 dBFS): no digit to recognise"),
    "square": (0.99997 * np.sign(np.sin(2 * np.pi * 440 * T) + 1e-9),
               "no speech: one steady sound at 0 dBFS (a tone, hum or test signal, its level never changes)"),
    "one sample": (np.array([0.5]), f"too little audio (1 sample(s), 0.000 s at {SAMPLE_RATE} Hz; a spoken digit lasts at least 0.1 s)"),
}


@pytest.mark.parametrize("case", NO_DIGIT)
def test_a_clip_without_speech_gets_no_digit(tmp_path, case):
    """Digital silence, a full-scale square wave, a 1-sample file: said so, exit 2, no digit."""
    audio, message = NO_DIGIT[case]
    path = write(tmp_path / "clip.wav", audio)
    res = runner.invoke(app, ["predict", str(path)])
    assert res.exit_code == 2 and res.stdout == ""
    assert one_line_error(res.stderr).startswith(f"error: {path}: {message}"), res.stderr


def test_every_real_example_clip_passes_the_speech_test():
    from audrey.audio.gate import speech_problem
    from audrey.audio.waveform import load_audio

    for path in EXAMPLES.glob("*.wav"):
        assert speech_problem(load_audio(path), SAMPLE_RATE) is None


def test_a_truncated_wav_is_read_with_one_warning(tmp_path):
    data = (EXAMPLES / "seven.wav").read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: int(len(data) * 0.8)])  # the header still declares every frame
    res = runner.invoke(app, ["predict", str(cut)])
    assert res.exit_code == 0, res.output
    (warning,) = lines_starting(res.stderr, "warning:")
    assert warning.startswith(f"warning: {cut}: truncated: its header declares 30632 bytes of audio, the file holds ")
    assert "(80%, 0.19 s missing); reading what is there" in warning
    whole = runner.invoke(app, ["predict", str(EXAMPLES / "seven.wav")])
    assert whole.exit_code == 0 and "warning" not in whole.stderr


def test_a_folder_given_to_predict_is_called_a_folder(tmp_path):
    res = runner.invoke(app, ["predict", str(tmp_path)])
    assert res.exit_code == 2
    assert one_line_error(res.stderr) == f"error: {tmp_path}: is a folder, not an audio file; pass the files in it (e.g. {tmp_path}/*.wav)"


def test_a_file_given_to_eval_data_is_called_a_file(tmp_path):
    clip = EXAMPLES / "seven.wav"
    res = runner.invoke(app, ["eval", "--data", str(clip)])
    assert res.exit_code == 2
    assert one_line_error(res.stderr).startswith(f"error: {clip}: is a file, not a corpus folder; pass the folder")


def test_devices_without_any_input_device_does_not_send_you_to_itself(monkeypatch):
    import audrey.audio.mic as mic

    monkeypatch.setattr(mic, "input_devices", lambda: [])
    res = runner.invoke(app, ["devices"])
    assert res.exit_code == 2
    line = one_line_error(res.stderr)
    assert "see `audrey devices`" not in line and line.startswith("error: no audio input device found; connect a microphone")


# --- one rule for audio files ----------------------------------------------------------------------


@pytest.fixture
def mp3_digits(tmp_path, espeak_digit):
    """zero/..nine/ with one espeak-ng clip each as MP3, and a notes.txt beside them."""
    root = tmp_path / "mp3"
    for d, word in enumerate(DIGIT_WORDS):
        (root / word).mkdir(parents=True)
        audio, rate = sf.read(str(espeak_digit(d)), dtype="float32")
        sf.write(str(root / word / f"us_{d}.mp3"), audio, rate)
    (root / "notes.txt").write_text("where these came from")
    return root


def test_eval_and_data_stats_read_mp3_and_count_what_they_skip(mp3_digits):
    res = runner.invoke(app, ["eval", "--data", str(mp3_digits), "--json", "--confusion", "cm.png"])
    assert res.exit_code == 0, res.output
    ev = json.loads(res.stdout)
    assert ev["clips"] == 10 and ev["skipped_files"] == {"files": 1, "per_suffix": {".txt": 1}}
    table = runner.invoke(app, ["eval", "--data", str(mp3_digits), "--confusion", "cm.png"])
    assert "skipped 1 non-audio file(s) in --data: .txt 1" in table.stderr
    res = runner.invoke(app, ["data", "stats", str(mp3_digits), "--json"])
    assert res.exit_code == 0, res.output
    stats = json.loads(res.stdout)
    assert stats["clips"] == 10 and stats["skipped_files"]["per_suffix"] == {".txt": 1}
    prediction = runner.invoke(app, ["predict", str(mp3_digits / "seven" / "us_7.mp3")])
    assert prediction.exit_code == 0, prediction.output


# --- listen ------------------------------------------------------------------------------------------


class LostDevice:
    """A stream whose device goes away: a few blocks of quiet, then nothing (what MicStream.read
    returns when no block arrives within its timeout)."""

    live, name, rate, block, latency = True, "USB mic", 16000, 320, 0.0

    def __init__(self, blocks: int = 25):
        self.left = blocks

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def read(self, timeout):
        from audrey.audio.mic import Block

        if self.left == 0:
            return None
        self.left -= 1
        return Block(np.zeros(self.block, np.float32), 0, 0.0, 0)


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="needs the bundled starter model")
def test_listen_losing_its_device_still_ends_with_the_stopped_event(monkeypatch):
    import audrey.live.listen as listen

    monkeypatch.setattr(listen, "resolve_device", lambda device: {"default_rate": 16000})
    monkeypatch.setattr(listen, "MicStream", lambda device, rate: LostDevice())
    res = runner.invoke(app, ["listen", "--json"])
    assert res.exit_code == 2, res.output
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert [e["event"] for e in events] == ["listening", "stopped"]
    message = "input device 'USB mic' stopped delivering audio for 2 s; check the connection or pick another with --device"
    assert events[-1]["error"] == message and events[-1]["seconds"] == 0.5
    assert "Traceback" not in res.output and lines_starting(res.stderr, "error:") == [f"error: {message}"]


def test_portaudio_assertion_lines_are_dropped_and_the_rest_kept(capfd):
    from audrey.audio.mic import portaudio_quiet

    with portaudio_quiet():
        os.write(2, b"Expression 'ret' failed in 'src/hostapi/alsa/pa_linux_alsa.c', line: 1736\n")
        os.write(2, b"something else went wrong\n")
    assert capfd.readouterr().err == "something else went wrong\n"


def test_listen_json_is_strict_json():
    import io

    from audrey.live.listen import ListenResult, Printer

    out = io.StringIO()
    Printer(out, as_json=True, show_rejected=True).stop(ListenResult(seconds=float("nan")))
    event = json.loads(out.getvalue(), parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert event["event"] == "stopped" and event["seconds"] is None


# --- train -------------------------------------------------------------------------------------------


def test_train_without_a_run_record_does_not_print_none(tmp_path, digit_folders):
    res = runner.invoke(app, ["train", "--data", str(digit_folders), "--split", "none", "--epochs", "1", "--batch-size", "16",
                              "--out", "m.safetensors", "--wandb", "disabled"])
    assert res.exit_code == 0, res.output
    assert res.stderr.splitlines()[-1] == "model written to m.safetensors"
