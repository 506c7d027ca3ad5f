"""`audrey record` sessions fed from a file-backed stream (no sound system needed), the helpers
behind them, the take check, `audrey recordings` and `audrey devices`, and atomic saving under SIGKILL."""

from __future__ import annotations

import io
import json
import os
import queue
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audrey.audio import gate, mic
from audrey.audio.waveform import load_audio, trim_silence, write_audio
from audrey.cli import app
from audrey.errors import AudreyError
from audrey.audio.mic import FileStream, MicStream
from audrey.audio.vad import FRAME_SECONDS, RECORDER
from audrey.recording import session as session_module
from audrey.recording.capture import Listener
from audrey.recording.check import FLAG_CONFIDENCE, TakeCheck
from audrey.recording.prompts import parse_digits, plan_prompts
from audrey.recording.session import record
from audrey.recording.takes import check_speaker, cleanup_temp_files, next_take_numbers, speaker_lock
from audrey.recording.check import Mismatch
from audrey.recording.ui import AutoUI, LiveUI
from helpers import STARTER, one_line_error

RATE = 16000


@pytest.fixture
def clips(espeak_digit):
    """digit -> trimmed espeak-ng clip at RATE."""
    return {d: trim_silence(load_audio(espeak_digit(d, "us"), RATE), sr=RATE) for d in range(10)}


class Speaker(io.StringIO):
    """Stands in for the person at the microphone: reads the --auto lines the recorder writes and
    answers each PROMPT by "saying" something into the file-backed stream."""

    def __init__(self, stream: FileStream, answer):
        super().__init__()
        self.stream, self.answer = stream, answer
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        for line in text.splitlines():
            self.lines.append(line)
            if line.startswith("PROMPT"):
                _, index, digit, _ = line.split()
                attempt = sum(1 for x in self.lines if x.startswith(f"PROMPT {index} "))
                audio = self.answer(int(index), int(digit), attempt)
                if audio is not None:
                    self.stream.play(np.zeros(int(0.2 * RATE), np.float32))  # reaction time
                    self.stream.play(audio)
        return len(text)

    def events(self, kind: str) -> list[str]:
        return [x.split(" ", 1)[1] for x in self.lines if x.startswith(kind + " ")]


def session(root: Path, answer, speaker="tester", **kw):
    stream = FileStream(RATE, noise_db=kw.pop("noise_db", -70))
    talk = Speaker(stream, answer)
    kw = {"takes_per_digit": 1, "auto": True, "seed": 3, **kw}
    result = record(speaker, root, stream=stream, out=talk, **kw)
    return result, talk


# --- helpers -------------------------------------------------------------------------------------


def test_parse_digits():
    assert parse_digits("0-9") == list(range(10))
    assert parse_digits("1,3,5-7") == [1, 3, 5, 6, 7]
    assert parse_digits(" 7 ") == [7]
    for bad in ("", "10", "a", "5-2", "1,,2", "0-10"):
        with pytest.raises(AudreyError, match="--digits"):
            parse_digits(bad)


def test_plan_is_balanced_shuffled_and_reproducible():
    plan = plan_prompts(list(range(10)), 5, seed=1)
    assert len(plan) == 50
    for r in range(5):
        assert sorted(plan[r * 10 : (r + 1) * 10]) == list(range(10))  # every round has every digit
    assert all(a != b for a, b in zip(plan, plan[1:]))  # never the same digit twice in a row
    assert plan != sorted(plan) and plan == plan_prompts(list(range(10)), 5, seed=1)
    assert plan_prompts([4], 3) == [4, 4, 4]


def test_speaker_names():
    assert check_speaker("anna-2") == "anna-2"
    for bad in ("", "a b", "../x", "x/y", ".hidden", "a_b", "7", "seven", "x" * 41):
        with pytest.raises(AudreyError, match="--speaker"):
            check_speaker(bad)


def test_the_recorder_hears_takes_with_its_preset():
    lis = Listener(FileStream(RATE))
    assert lis.seg.settings is RECORDER
    assert lis.seg.hangover_frames == round(RECORDER.hangover / FRAME_SECONDS)


# --- sessions ------------------------------------------------------------------------------------


def test_session_saves_every_prompt_and_numbering_continues(tmp_path, clips):
    result, talk = session(tmp_path, lambda i, d, a: clips[d], info={"age": "33", "gender": "f"})
    folder = tmp_path / "tester"
    prompts = [p.split() for p in talk.events("PROMPT")]
    assert len(prompts) == 10 and talk.lines[-1] == "DONE saved=10 rejected=0 skipped=0"
    for (index, digit, word), path in zip(prompts, talk.events("SAVED")):
        assert Path(path) == folder / f"{digit}_tester_0.wav"
        audio, rate = sf.read(path, dtype="float32")
        assert rate == RATE and sf.info(path).subtype == "PCM_16"
        clip = clips[int(digit)]
        # the saved take is the clip plus margins, quantised to 16 bits
        assert len(clip) < len(audio) < len(clip) + 0.5 * RATE
        xc = np.correlate(audio, clip, "valid")
        assert xc.max() / (np.linalg.norm(clip) ** 2) == pytest.approx(1, abs=0.01)
    info = json.loads((folder / "speaker.json").read_text())
    assert info["age"] == "33" and info["gender"] == "f" and set(info) >= {"accent", "native speaker", "recordingroom", "device"}
    assert result.counts == {d: 1 for d in range(10)} and result.missing == {}

    # a second session continues the numbering and keeps speaker.json
    result, talk = session(tmp_path, lambda i, d, a: clips[d], digits="2,5", takes_per_digit=2)
    assert sorted(Path(p).name for p in talk.events("SAVED")) == [
        "2_tester_1.wav", "2_tester_2.wav", "5_tester_1.wav", "5_tester_2.wav"]
    assert next_take_numbers(folder, "tester")[2] == 3
    assert json.loads((folder / "speaker.json").read_text())["age"] == "33"
    assert result.missing == {}  # 2 and 5 are balanced among themselves


def test_rejected_takes_are_reprompted_with_the_reason(tmp_path, clips):
    def answer(index, digit, attempt):
        if attempt == 1:
            return np.clip(clips[digit] * 8, -1, 1)  # shouted into the microphone
        if attempt == 2:
            return np.concatenate([clips[digit], np.zeros(int(0.25 * RATE), np.float32), clips[(digit + 1) % 10]])
        return clips[digit]

    result, talk = session(tmp_path, answer, digits="1,6", max_attempts=3)
    lines = talk.lines
    assert [x.split()[0] for x in lines] == ["PROMPT", "REJECTED", "PROMPT", "REJECTED", "PROMPT", "SAVED"] * 2 + ["DONE"]
    rejected = talk.events("REJECTED")
    assert rejected[0].startswith("clipping:") and rejected[1].startswith("more than one word")
    assert lines[0] == lines[2] == lines[4]  # the same prompt again
    assert len(result.saved) == 2 and len(result.rejected) == 4


def test_silence_times_out_and_the_prompt_is_skipped(tmp_path, clips, capsys):
    result, talk = session(tmp_path, lambda i, d, a: None if d == 4 else clips[d], digits="3,4", take_timeout=1.0, max_attempts=2)
    assert talk.events("REJECTED") == ["no speech heard within 1 s; say the digit when prompted"] * 2
    assert talk.events("SKIPPED") == [f"{i} 4" for i, d, _ in (p.split() for p in talk.events("PROMPT")) if d == "4"][:1]
    assert result.missing == {4: 1}
    assert "still missing for a balanced set: 1× four" in capsys.readouterr().err.replace("\n", " ")


def test_a_session_stops_when_prompt_after_prompt_fails(tmp_path, capsys):
    with pytest.raises(AudreyError, match="3 prompts in a row failed .last: no speech heard within 0.5 s.; stopping"):
        session(tmp_path, lambda i, d, a: None, digits="0-9", take_timeout=0.5, max_attempts=2)
    assert "still missing for a balanced set" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["KeyboardInterrupt", "SIGINT", "SIGTERM"])
def test_ctrl_c_keeps_completed_takes_and_drops_the_partial_one(tmp_path, clips, capsys, how):
    class Interrupting(FileStream):
        """Ctrl-C (or SIGTERM) arrives while the 4th take is being spoken."""

        def read(self, timeout=None):
            block = super().read()
            if talk_ref[0] is not None and len(talk_ref[0].events("PROMPT")) == 4 and self.said_enough(block):
                if how == "KeyboardInterrupt":
                    raise KeyboardInterrupt
                os.kill(os.getpid(), getattr(signal, how))  # the session's handler must turn this into a clean stop
            return block

        def said_enough(self, block):
            self.count = getattr(self, "count", 0) + 1
            return self.count > 25  # 0.2 s pause + 0.3 s into the word

    talk_ref = [None]
    stream = Interrupting(RATE, noise_db=-70)

    def answer(i, d, a):
        stream.count = 0
        return clips[d]

    talk = Speaker(stream, answer)
    talk_ref[0] = talk
    with pytest.raises(KeyboardInterrupt):
        record("tester", tmp_path, takes_per_digit=1, auto=True, seed=3, stream=stream, out=talk)
    folder = tmp_path / "tester"
    saved = talk.events("SAVED")
    assert len(saved) == 3
    assert sorted(p.name for p in folder.glob("*.wav")) == sorted(Path(p).name for p in saved)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    err = capsys.readouterr().err.replace("\n", " ")
    assert "interrupted; saved 3 take(s)" in err and "still missing for a balanced set" in err


def test_a_second_session_for_the_same_speaker_is_refused(tmp_path, clips):
    """While one session records a speaker, another one is refused before it touches the folder: it
    would reuse take numbers and delete the first one's temp file mid-write."""
    folder = tmp_path / "tester"
    folder.mkdir()
    in_flight = folder / ".0_tester_0.wav.abc123.tmp"  # the first session is writing this take
    in_flight.write_bytes(b"partial")
    with speaker_lock(tmp_path, "tester"):
        with pytest.raises(AudreyError, match=rf"tester: another `audrey record` session \(pid {os.getpid()}\) is recording"):
            session(tmp_path, lambda i, d, a: clips[d], digits="1")
        assert in_flight.exists()
        session(tmp_path, lambda i, d, a: clips[d], digits="1", speaker="someone-else")  # other speakers are free
    in_flight.unlink()
    _, talk = session(tmp_path, lambda i, d, a: clips[d], digits="1")  # released when the first session ends
    assert len(talk.events("SAVED")) == 1


def test_a_root_that_cannot_be_written_is_one_clear_error(tmp_path, clips):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(AudreyError, match=r"a-file/recordings: cannot record there .*; pass --root"):
        session(blocker / "recordings", lambda i, d, a: clips[d], digits="1")


def test_stale_temp_files_are_removed_when_a_session_starts(tmp_path, clips, capsys):
    folder = tmp_path / "tester"
    folder.mkdir()
    stale = [folder / ".3_tester_0.k2j4x.tmp", folder / ".speaker.json.a8d.tmp"]
    for p in stale:
        p.write_bytes(b"RIFF partial")
    session(tmp_path, lambda i, d, a: clips[d], digits="3")
    assert not any(p.exists() for p in stale)
    assert (folder / "3_tester_0.wav").exists()
    assert "left by an interrupted session" in capsys.readouterr().err


def test_edit_info_without_a_terminal_takes_options(tmp_path):
    record("tester", tmp_path, edit_info=True, info={"age": "40", "origin": "Lyon"})
    record("tester", tmp_path, edit_info=True, info={"age": "41", "origin": None})
    info = json.loads((tmp_path / "tester" / "speaker.json").read_text())
    assert info["age"] == "41" and info["origin"] == "Lyon"
    with pytest.raises(AudreyError, match="--edit-info asks on the terminal"):
        record("tester", tmp_path, edit_info=True, info={})


def test_option_errors_name_the_value(tmp_path):
    for kw, needle in (({"takes_per_digit": 0}, "--takes-per-digit 0"), ({"take_timeout": 0}, "--take-timeout"),
                       ({"rate": 100}, "--rate 100"), ({"digits": "x"}, "--digits 'x'")):
        with pytest.raises(AudreyError, match=needle):
            record("tester", tmp_path, stream=FileStream(RATE), **kw)


# --- the take check ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def starter_check():
    if not STARTER.exists():
        pytest.skip(f"needs models/{STARTER.name}")
    return TakeCheck.from_file(STARTER)


def test_a_take_heard_as_another_digit_is_flagged_and_kept(tmp_path, clips, starter_check, capsys):
    """The speaker says "three" at both prompts, "3" and "7": the starter model hears three either
    time, so the 7 take (mislabelled) is flagged, and the 3 take is not."""
    heard = starter_check.recognizer.predict([clips[3]])[0]
    assert heard.digit == 3 and heard.confidence >= FLAG_CONFIDENCE  # the audio is what the test says it is
    result, talk = session(tmp_path, lambda i, d, a: clips[3], digits="3,7", check=starter_check)
    folder = tmp_path / "tester"
    kinds = [x.split()[0] for x in talk.lines]
    saved = dict((Path(p).name[0], p) for p in talk.events("SAVED"))
    flagged = talk.events("FLAGGED")
    assert len(flagged) == 1, talk.lines
    path, h, e, c = flagged[0].split()
    assert (path, h, e) == (saved["7"], "heard=3", "expected=7") and float(c.split("=")[1]) >= FLAG_CONFIDENCE
    assert kinds[kinds.index("FLAGGED") - 1] == "SAVED" and talk.lines[kinds.index("FLAGGED") - 1] == f"SAVED {path}"
    assert talk.lines[-1] == "DONE saved=2 rejected=0 skipped=0"
    assert Path(path).exists() and (folder / "3_tester_0.wav").exists()  # --auto keeps it
    assert [(s.path.name, m.heard, m.expected) for s, m in result.flagged] == [("7_tester_0.wav", 3, 7)]
    summary = capsys.readouterr().err.replace("\n", " ")
    assert "kept 1 take(s) the model heard as another digit: 7_tester_0.wav heard 3 (three), expected 7 (seven)" in summary
    assert "`audrey record --speaker tester --digits 7`" in summary

    # without a check (the CLI's --no-check) the same session flags nothing
    result, talk = session(tmp_path / "unchecked", lambda i, d, a: clips[3], digits="3,7")
    assert not talk.events("FLAGGED") and len(talk.events("SAVED")) == 2 and not result.flagged


def test_a_flagged_take_redone_is_removed_and_the_prompt_repeats(tmp_path, clips, starter_check):
    class Redo(AutoUI):
        """Answers "redo" the first time a take is flagged, as the interactive screen's [r] does."""

        def flagged(self, session, path, take, mismatch):
            super().flagged(session, path, take, mismatch)
            return "redo" if len(talk.events("FLAGGED")) == 1 else None

    stream = mic.FileStream(RATE, noise_db=-70)
    talk = Speaker(stream, lambda i, d, a: clips[4] if a == 1 else clips[d])  # "four" first, then the digit asked for
    folder = tmp_path / "tester"
    result = session_module.Session(stream, Redo(talk), folder, "tester", [7], 8.0, 3, starter_check).run()
    assert [x.split()[0] for x in talk.lines] == ["PROMPT", "SAVED", "FLAGGED", "PROMPT", "SAVED", "DONE"], talk.lines
    first, second = talk.events("SAVED")
    assert first == second  # the redone take's number is used again
    assert sorted(p.name for p in folder.glob("*.wav")) == ["7_tester_0.wav"]
    assert "heard=4 expected=7" in talk.events("FLAGGED")[0]
    assert len(result.saved) == 1 and result.flagged == []  # the redone take is neither saved nor flagged


def test_the_interactive_screen_waits_for_keep_or_redo_on_a_flagged_take():
    """LiveUI without a terminal: keys come from a list, the stream is a counter. Nothing is decided
    until k/space (keep) or r (redo) is pressed, however long that takes; other keys are ignored."""
    class Keys:
        enabled = True

        def __init__(self, presses):
            self.presses = presses

        def get(self):
            return self.presses.pop(0) if self.presses else None

    class Listener:
        rate, fed = RATE, 0
        seg = type("Seg", (), {"level_db": -50.0, "floor_db": -70.0})()

        def next(self):
            self.fed += RATE // 100
            return None, []

    fake_session = type("S", (), {"listener": Listener(), "total": 1})()
    for presses, action in (([None] * 500 + ["x", "r"], "redo"), (["k"], None), ([None] * 300 + [" "], None), (["q"], "quit")):
        ui = LiveUI()
        ui.keys = Keys(list(presses))
        assert ui.flagged(fake_session, Path("7_ada_0.wav"), None, Mismatch(3, 7, 0.91)) == action
        assert ui.keys.presses == [] and ui.state == "flagged"
        assert ui.status == "heard 3 (three), expected 7 (seven): [k] keep  [r] redo"
    assert fake_session.listener.fed > 5 * RATE  # waited past AFTER_SAVE_SECONDS for the key
    ui.render()  # the screen has a help line for the state


def test_record_loads_the_check_model_before_any_prompt(tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(session_module, "record", lambda *a, **kw: calls.append(kw.get("check")))
    monkeypatch.setattr(session_module, "MicStream", None)  # no microphone is opened in any case here
    runner = CliRunner()
    base = ["record", "--speaker", "anna", "--root", str(tmp_path), "--auto"]

    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(STARTER.read_bytes()[:5000] if STARTER.exists() else b"\x08" + b"\0" * 100)
    for bad, needle in ((damaged, "damaged.safetensors"), (tmp_path / "none.safetensors", "no such model file")):
        res = runner.invoke(app, base + ["--model", str(bad)])
        assert res.exit_code == 2 and needle in one_line_error(res.output), res.output
    assert calls == [] and not (tmp_path / "anna").exists()  # refused before the session: no prompt, nothing written

    res = runner.invoke(app, base + ["--no-check", "--model", str(damaged)])
    assert res.exit_code == 0 and calls == [None], res.output
    if STARTER.exists():
        res = runner.invoke(app, base)
        assert res.exit_code == 0 and isinstance(calls[-1], TakeCheck), res.output
    monkeypatch.setattr("audrey.cli.DEFAULT_MODEL", tmp_path / "missing-starter.safetensors")
    res = runner.invoke(app, base)
    assert res.exit_code == 0 and calls[-1] is None
    assert "the bundled starter model is missing; recording without checking the takes" in res.output.replace("\n", "")


# --- the microphone layer ------------------------------------------------------------------------


FAKE_DEVICES = [
    {"index": 0, "name": "HDA Intel PCH: ALC257 Analog (hw:0,0)", "hostapi": "ALSA", "channels": 2, "default_rate": 48000, "default": False},
    {"index": 3, "name": "USB Audio Mic (hw:2,0)", "hostapi": "ALSA", "channels": 1, "default_rate": 48000, "default": False},
    {"index": 5, "name": "default", "hostapi": "ALSA", "channels": 32, "default_rate": 44100, "default": True},
]


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(mic, "input_devices", lambda: FAKE_DEVICES)
    assert mic.resolve_device(None)["index"] == 5
    assert mic.resolve_device("3")["index"] == 3
    assert mic.resolve_device("usb")["index"] == 3
    assert mic.resolve_device("DEFAULT")["index"] == 5
    with pytest.raises(AudreyError, match="--device 9: no input device has that index"):
        mic.resolve_device("9")
    with pytest.raises(AudreyError, match="matches several input devices"):
        mic.resolve_device("hw:")
    with pytest.raises(AudreyError, match="no input device name contains it"):
        mic.resolve_device("webcam")


def test_no_input_device_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(mic, "input_devices", lambda: [])
    monkeypatch.setattr(mic, "_sounddevice", lambda: None)
    runner = CliRunner()
    for args, message in ((["devices"], "no audio input device found; connect a microphone (or start the sound system"),
                          (["record", "--speaker", "anna", "--root", str(tmp_path), "--auto"], mic.NO_DEVICE)):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        assert message in res.output.replace("\n", "")
    assert not (tmp_path / "anna").exists()  # nothing written before the device was found


def test_sounddevice_is_imported_lazily():
    code = "import sys, audrey.cli, audrey.recording.session, audrey.recording.report, audrey.audio.mic, audrey.audio.vad, audrey.audio.gate; print('sounddevice' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_callback_only_queues_and_never_blocks():
    stream = MicStream.__new__(MicStream)  # no device: exercise the callback and reader alone
    stream._queue, stream._lost, stream._index = queue.Queue(maxsize=2), 0, 0

    class Status:
        input_overflow = False

    block = np.ones((160, 1), np.float32)
    for _ in range(3):
        stream._callback(block, 160, None, Status())
    block[:] = 0  # the queued blocks are copies
    assert stream._lost == 1 and stream.pending() == 2
    first = stream.read(0.1)
    assert first.samples.shape == (160,) and first.samples.max() == 1 and first.dropped == 1 and first.index == 0
    assert stream.read(0.1).index == 160 and stream.read(0.01) is None


def test_file_stream_from_file(tmp_path, espeak_digit):
    stream = FileStream.from_file(espeak_digit(2))
    total = 0
    with pytest.raises(mic.StreamEnded):
        while True:
            total += len(stream.read().samples)
    assert stream.rate == 22050 and total >= sf.info(str(espeak_digit(2))).frames


# --- audrey recordings ---------------------------------------------------------------------------


def test_recordings_counts_and_flags(tmp_path, clips, monkeypatch):
    session(tmp_path, lambda i, d, a: clips[d], digits="0-2", takes_per_digit=2)
    folder = tmp_path / "tester"
    write_audio(folder / "2_tester_7.wav", np.clip(np.pad(clips[2], 2400) * 8, -1, 1), RATE)  # clipped
    runner = CliRunner()
    res = runner.invoke(app, ["recordings", "--root", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    (report,) = json.loads(res.stdout)
    assert report["speaker"] == "tester" and report["takes"] == 7
    assert report["counts"] == {**{str(d): 0 for d in range(10)}, "0": 2, "1": 2, "2": 3}
    assert [(Path(f["path"]).name, f["reason"].split(":")[0]) for f in report["flagged"]] == [("2_tester_7.wav", "clipping")]
    # a stricter gate today flags the takes that passed yesterday
    monkeypatch.setattr(gate, "MIN_SNR_DB", 90.0)
    res = runner.invoke(app, ["recordings", "--root", str(tmp_path), "--speaker", "tester"])
    assert res.exit_code == 0 and res.stdout.count("too noisy") == 6
    res = runner.invoke(app, ["recordings", "--root", str(tmp_path), "--speaker", "nobody"])
    assert res.exit_code == 2 and "--speaker 'nobody': no recordings" in res.output


# --- atomic saving -------------------------------------------------------------------------------


def test_killed_writes_never_leave_a_partial_take(tmp_path):
    """A process saving takes in a loop is SIGKILLed 30 times at random moments (most land inside
    a write): every .wav is complete, the only leftovers are hidden .tmp files, which the next
    session removes."""
    folder = tmp_path / "spk"
    folder.mkdir()
    audio = np.sin(np.arange(3 * 48000) * 0.05).astype(np.float32) * 0.5  # 3 s at 48 kHz: ~290 kB per take
    rng = random.Random(0)
    leftovers = 0
    for run in range(30):
        pid = os.fork()
        if pid == 0:  # child: save takes until killed
            try:
                for i in range(10_000):
                    write_audio(folder / f"{i % 10}_spk_{run * 10_000 + i}.wav", audio, 48000)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.001, 0.05))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        for wav in folder.glob("*.wav"):
            data, rate = sf.read(str(wav), dtype="float32")
            assert rate == 48000 and len(data) == len(audio), f"{wav.name} is partial"
        temps = [p for p in folder.iterdir() if p.name.startswith(".")]
        assert all(p.suffix == ".tmp" for p in temps)
        leftovers += len(temps)
        cleanup_temp_files(folder)
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]
    print(f"\nwrite_audio SIGKILL x30: {len(list(folder.glob('*.wav')))} complete takes, "
          f"{leftovers} runs killed mid-write (temp file left, never a .wav; removed by cleanup)")
