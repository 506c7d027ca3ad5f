"""`audrey transcribe --engine ctc`: the chunks it decodes (audrey.live.chunks, checked exactly on
tones), and the shipped digit-string model reading espeak-ng strings through the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from audrey.cli import app
from audrey.data.scenes import compose
from audrey.live.chunks import Chunker
from audrey.models.ctc_file import SHIPPED_CTC
from helpers import RATE, VOICE, one_line_error, two_strings_recording



def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    ramp = np.minimum(1, np.minimum(t, t[::-1]) / 0.01)
    return (0.3 * ramp * np.sin(2 * np.pi * 500 * t)).astype(np.float32)


def chunks_of(audio: np.ndarray, block: int, string_gap: float = 0.9, **kw) -> list:
    chunker = Chunker(RATE, string_gap, **kw)
    out = []
    for i in range(0, len(audio), block):
        out += chunker.feed(audio[i : i + block])
    return out + chunker.flush()


# --- chunks ----------------------------------------------------------------------------------------


def test_chunks_end_at_long_pauses_and_hold_the_audio_around_them():
    """Tones with 0.2-0.5 s pauses inside a group and 1.5 s between groups: one chunk per group, the
    file's own samples, never overlapping, each holding its tones with context; any block size."""
    pauses = [0.3, 0.2, 1.5, 0.5, 1.5, 0.25]
    audio, spans = compose([tone(0.3) for _ in range(7)], pauses, RATE, lead=0.1, tail=1.0)
    groups = [(spans[0][0], spans[2][1]), (spans[3][0], spans[4][1]), (spans[5][0], spans[6][1])]
    chunks = chunks_of(audio, 320)
    assert len(chunks) == 3
    for chunk, (a, b) in zip(chunks, groups):
        assert chunk.start <= a - 0.05 * RATE and chunk.end >= b + 0.05 * RATE  # the tones and some context
        assert np.array_equal(chunk.audio, audio[chunk.start : chunk.end])
    assert all(p.end <= n.start for p, n in zip(chunks, chunks[1:]))
    assert chunks[0].start == 0  # the file's first 0.1 s is all the context there is
    for block in (1000, 16000, len(audio)):
        assert [(c.start, c.end) for c in chunks_of(audio, block)] == [(c.start, c.end) for c in chunks]
    assert len(chunks_of(audio, 320, string_gap=2.0)) == 1


def test_long_speech_is_cut_at_its_quietest_point():
    """50 s of tones with 0.3 s pauses (never a pause that ends a chunk): chunks of at most 20 s, back
    to back, each cut inside a pause; memory stays bounded (the buffer never holds a whole minute)."""
    pieces = [tone(0.4) for _ in range(72)]
    audio, spans = compose(pieces, [0.3] * 71, RATE, lead=0.5, tail=1.0)
    chunker = Chunker(RATE, 0.9)
    chunks, held = [], 0
    for i in range(0, len(audio), 1600):
        chunks += chunker.feed(audio[i : i + 1600])
        held = max(held, len(chunker._buf))
    chunks += chunker.flush()
    assert len(chunks) >= 3 and all(len(c.audio) <= 20 * RATE for c in chunks)
    assert all(p.end == n.start for p, n in zip(chunks, chunks[1:]))
    in_tone = np.zeros(len(audio), bool)
    for a, b in spans:
        in_tone[a:b] = True
    assert not any(in_tone[c.start] for c in chunks[1:])  # every cut falls in a pause
    assert held <= 21 * RATE


# --- the shipped model, through the command -------------------------------------------------------


@pytest.fixture(scope="module")
def two_strings(tmp_path_factory):
    """helpers.two_strings_recording, and the (start, end) seconds of each string's speech."""
    if not SHIPPED_CTC.exists():
        pytest.skip(f"needs the shipped {SHIPPED_CTC.name}")
    path = tmp_path_factory.mktemp("ctc") / "two.wav"
    seconds, speech = two_strings_recording(path)
    return path, seconds, speech


def transcribe_json(*args) -> dict:
    res = CliRunner().invoke(app, ["transcribe", "--json", *map(str, args)])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_ctc_engine_reads_two_strings_with_times_in_the_file(two_strings):
    path, seconds, speech = two_strings
    out = transcribe_json("--engine", "ctc", path)
    assert set(out) == {"file", "seconds", "text", "strings", "rejected"}  # the segments engine's shape
    assert out["file"] == str(path) and out["seconds"] == pytest.approx(seconds, abs=0.01)
    assert out["text"] == "7215 893" and [s["string"] for s in out["strings"]] == ["7215", "893"]
    for string, (a, b) in zip(out["strings"], speech):
        assert set(string) == {"event", "start", "end", "string", "digits"}
        assert [set(d) for d in string["digits"]] == [{"digit", "confidence", "start", "end"}] * len(string["string"])
        times = [t for d in string["digits"] for t in (d["start"], d["end"])]
        assert times == sorted(times) and a - 0.1 <= times[0] and times[-1] <= b + 0.1  # inside that string's speech
        assert all(0 < d["confidence"] <= 1 for d in string["digits"])
        assert string["start"] == string["digits"][0]["start"] and string["end"] == string["digits"][-1]["end"]
    assert all(0 <= r["start"] <= r["end"] <= seconds and set(r) == {"event", "start", "end", "reason", "best_digit", "confidence"}
               for r in out["rejected"])
    text = CliRunner().invoke(app, ["transcribe", "--engine", "ctc", str(path)])
    assert text.exit_code == 0 and text.stdout.splitlines()[0] == f"{path}\t7215 893"


def test_digits_reads_each_number_as_exactly_n_digits(two_strings, tmp_path):
    """--digits N: chunks are gathered until N digits are heard, then read as exactly N; the rest of
    a recording goes on to the next number. A chunk where no digit is heard starts none."""
    path, seconds, speech = two_strings
    exact = transcribe_json("--engine", "ctc", "--digits", 7, path)
    assert exact["text"] == "7215893" and len(exact["strings"]) == 1  # one number across both chunks
    digits = exact["strings"][0]["digits"]
    assert all(speech[0][0] - 0.1 <= d["start"] <= speech[0][1] + 0.1 for d in digits[:4])
    assert all(speech[1][0] - 0.1 <= d["start"] <= speech[1][1] + 0.1 for d in digits[4:])
    out = transcribe_json("--engine", "ctc", "--digits", 9, path)  # never 9 heard: read at the end, over both
    assert len(out["text"]) == 9 and out["text"].isdigit() and len(out["strings"]) == 1
    starts = [d["start"] for d in out["strings"][0]["digits"]]
    assert starts == sorted(starts) and 0 <= starts[0] and out["strings"][0]["end"] <= seconds
    out = transcribe_json("--engine", "ctc", "--digits", 3, path)  # "7215" holds 3: one number each
    first, second = (s["string"] for s in out["strings"])
    assert len(first) == 3 and set(first) <= set("7215") and second == "893"
    assert all(speech[0][0] - 0.1 <= d["start"] <= speech[0][1] + 0.1 for d in out["strings"][0]["digits"])
    from audrey.data.features import cache_root
    from audrey.data.scenes import render_clips, voice_list

    audio, rate = sf.read(str(path), dtype="float32")
    room = audio[: int(0.5 * rate)]  # the recording's own noise before its first word
    hello = render_clips([("hello", voice_list([VOICE])[0], 150)], cache_root() / "strings", rate)[0]
    after = tmp_path / "hello_after.wav"  # a word after the number: the model hears "other", not a second number
    sf.write(str(after), np.concatenate([audio, room, room, hello, room, room, room]), rate)
    out = transcribe_json("--engine", "ctc", "--digits", 7, after)
    assert out["text"] == "7215893" and out["strings"] == exact["strings"]
    assert [r["start"] > seconds for r in out["rejected"]] == [True]


def test_engine_options_are_one_line_errors(two_strings, tmp_path):
    path = two_strings[0]
    runner = CliRunner()
    for args, message in (
        (["--digits", "10"], "--digits needs --engine ctc"),
        (["--no-confirm", "--ctc-model", str(SHIPPED_CTC)], "--ctc-model needs --engine ctc"),
        (["--engine", "ctc", "--weights", str(tmp_path / "w.safetensors")], "--weights is for --engine segments"),
        (["--engine", "ctc", "--digits", "0"], "--digits 0: expected a number of digits from 1 to 64"),
        (["--engine", "sphinx"], "--engine sphinx: expected segments or ctc"),
    ):
        res = runner.invoke(app, ["transcribe", *args, str(path)])
        assert res.exit_code == 2 and message in one_line_error(res.output), (args, res.output)


def test_damaged_ctc_model_is_a_one_line_error(two_strings, tmp_path):
    path = two_strings[0]
    data = SHIPPED_CTC.read_bytes()
    cut = tmp_path / "cut.ctc.safetensors"
    cut.write_bytes(data[: len(data) // 2])
    flipped = tmp_path / "flipped.ctc.safetensors"
    flipped.write_bytes(data[:8] + b"{" * 20 + data[28:])
    for bad in (cut, flipped, tmp_path / "none.safetensors"):
        res = CliRunner().invoke(app, ["transcribe", "--engine", "ctc", "--ctc-model", str(bad), str(path)])
        assert res.exit_code == 2 and str(bad) in one_line_error(res.output), res.output
    starter = SHIPPED_CTC.with_name("starter.safetensors")
    res = CliRunner().invoke(app, ["transcribe", "--engine", "ctc", "--ctc-model", str(starter), str(path)])
    assert res.exit_code == 2 and "not an Audrey digit-string model file" in one_line_error(res.output)


# --- listen --engine ctc: the same stream, block by block -----------------------------------------


class Lines:
    """listen's stdout: each line, and how many samples the input had delivered when it was written."""

    def __init__(self, stream):
        self.stream, self.lines, self.at = stream, [], []

    def write(self, text: str) -> None:
        for line in text.splitlines():
            self.lines.append(line)
            self.at.append(self.stream._index)

    def flush(self) -> None:
        pass


def listen_to(path, *, as_json: bool = True, **kw) -> Lines:
    """`audrey listen --engine ctc` with the file as its microphone, in 20 ms blocks as they are read."""
    from audrey.audio.mic import FileStream
    from audrey.live.listen import listen

    stream = FileStream.from_file(path)
    out = Lines(stream)
    listen(None, as_json=as_json, engine="ctc", stream=stream, out=out, **kw)
    return out


def without_latency(event: dict) -> dict:
    assert event.pop("latency_ms") > 0  # live: measured from the capture of the chunk's last speech
    return event


@pytest.mark.parametrize("digits", [None, 7, 3])
def test_listen_prints_what_transcribe_gives(two_strings, digits):
    """The property issue 21 asks: what `listen --engine ctc` prints for audio played into it is what
    `transcribe --engine ctc` gives for the file: the same strings, digits, times, confidences and
    rejections (JSON), and the same strings as text lines."""
    path = two_strings[0]
    extra = () if digits is None else ("--digits", digits)
    want = transcribe_json("--engine", "ctc", *extra, path)
    events = [json.loads(line) for line in listen_to(path, digits=digits).lines]
    assert events[0]["event"] == "listening" and events[0]["engine"] == "ctc" and events[-1]["event"] == "stopped"
    strings = [without_latency(e) for e in events if e["event"] == "string"]
    assert strings == want["strings"] and events[-1]["strings"] == want["text"].split()
    digit_events = [without_latency(e) for e in events if e["event"] == "digit"]
    assert [{k: e[k] for k in ("digit", "confidence", "start", "end")} for e in digit_events] == \
        [d for s in want["strings"] for d in s["digits"]]
    assert [without_latency(e) for e in events if e["event"] == "rejected"] == want["rejected"]
    text = listen_to(path, as_json=False, digits=digits).lines
    assert [line for line in text if not line.startswith("not a digit")] == [f"→ {s}" for s in want["text"].split()]


def test_listen_prints_a_string_once_its_pause_has_passed(two_strings):
    """Live, each string is printed as soon as --string-gap of pause has followed it ("7215" before
    "893" is heard); its digit events come just before it, with the string so far."""
    path, _, speech = two_strings
    out = listen_to(path)
    events = [json.loads(line) for line in out.lines]
    at = {e["string"]: t / RATE for e, t in zip(events, out.at) if e["event"] == "string"}
    for string, (_, end) in zip(("7215", "893"), speech):  # the pause as the segmenter heard it: within 0.15 s
        assert end + 0.9 - 0.15 <= at[string] <= end + 0.9 + 0.05, (string, at)
    assert at["7215"] < speech[1][0]
    kinds = [e["event"] for e in events if e["event"] in ("digit", "string")]
    assert kinds == ["digit"] * 4 + ["string"] + ["digit"] * 3 + ["string"]
    assert [e["string"] for e in events if e["event"] == "digit"] == ["7", "72", "721", "7215", "8", "89", "893"]


def test_listen_engine_options_are_one_line_errors(tmp_path):
    """Checked before the microphone opens: none of these needs an input device."""
    runner = CliRunner()
    for args, message in (
        (["--engine", "ctc", "--weights", str(tmp_path / "w.safetensors")], "--weights is for --engine segments"),
        (["--engine", "ctc", "--model", str(SHIPPED_CTC)], "--model is for --engine segments"),
        (["--engine", "ctc", "--calibration", str(tmp_path / "c.safetensors")], "--calibration is for --engine segments"),
        (["--engine", "ctc", "--observe"], "--observe is for --engine segments"),
        (["--engine", "ctc", "--digits", "0"], "--digits 0: expected a number of digits from 1 to 64"),
        (["--digits", "10"], "--digits needs --engine ctc"),
        (["--no-confirm", "--ctc-model", str(SHIPPED_CTC)], "--ctc-model needs --engine ctc"),
        (["--engine", "sphinx"], "--engine sphinx: expected segments or ctc"),
    ):
        res = runner.invoke(app, ["listen", *args])
        assert res.exit_code == 2 and message in one_line_error(res.output), (args, res.output)


def test_listen_status_line_reads_the_ctc_stream(two_strings):
    """The status line's level, floor, speech and open string come from CTCStream as from DigitStream:
    with --digits, the open string is the digits heard of a number not complete yet."""
    from audrey.live.ctc_transcribe import CTCStream
    from audrey.live.listen import Status
    from audrey.models.ctc_file import load_ctc

    path, _, speech = two_strings
    audio, rate = sf.read(str(path), dtype="float32")
    stream = CTCStream(load_ctc(SHIPPED_CTC), rate, digits=7)
    status = Status("file", rate, stream)
    mid_word = int((speech[0][0] + 0.1) * rate)
    for i in range(0, mid_word, 320):
        assert stream.feed(audio[i : i + 320]) == []
    assert stream.in_speech and stream.level_db > stream.floor_db + 10 and stream.partial == ""
    assert "hearing speech" in status.render().plain
    pause = int((speech[1][0] - 0.2) * rate)
    for i in range(mid_word, pause, 320):
        assert stream.feed(audio[i : i + 320]) == []  # "7215" closed: 4 of 7 digits heard
    assert stream.partial == "7215" and "7 2 1 5 …" in status.render().plain and not stream.in_speech
