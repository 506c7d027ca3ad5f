"""`audrey listen`: digits from the microphone, printed as each one ends (with --confirm, the default,
once its stretch of speech has ended; --engine ctc: each string).

The sounddevice callback only copies each 20 ms block into MicStream's bounded queue; this loop reads
the blocks and feeds them to the stream `audrey transcribe` runs over files with the same engine:
`DigitStream` (audrey.live.stream; --engine segments: one segmenter, one classifier call with its
rejection per word, and the digit-string model's second opinion, audrey.live.confirm) or
`CTCStream` (audrey.live.ctc_transcribe; --engine ctc: the digit-string model reads each stretch of
speech between --string-gap pauses whole, so its string comes once the pause has passed). The
device and its sample rate are the system's defaults unless --device / --rate say otherwise; audio
is resampled to the model's rate.

Output on stdout, one line per event, flushed at once:
  text:    "4  (0.98)" per digit (--engine segments only: with ctc a string's digits all come with it),
           "not a digit  (why)" per rejected sound (unless hidden), "→ 427" when a string closes;
  --json:  one JSON object per event: {"event": "listening", ...} once the input delivers audio, then
           digit / rejected / string events (audrey.live.stream.Event.to_dict), {"event": "stopped"} at the end,
           also when an error ends it (a lost device: "error" holds the message, the exit status is not 0).
  --observe: each digit and rejection also carries what the base model's digit probes read at every
           layer (a logit lens) and its OOD score (audrey.observe.observer.Observer): an indented "lens ..." line,
           or "observe" in JSON. --weights: digits from personal weights (audrey.training.personal).
On a terminal, stderr shows a status line: listening or hearing speech, the input level against the
noise floor, and the open string. Ctrl-C (or SIGTERM) stops cleanly: the open string is closed and
printed, exit status 0.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from audrey.console import err, warn
from audrey.errors import AudreyError
from audrey.audio.mic import STALL_SECONDS, MicStream, StopOnSignal, StreamEnded, resolve_device
from audrey.live.stream import STRING_GAP_SECONDS, DigitStream, Event
from audrey.strict_json import json_text

STATUS_PER_SECOND = 4
METER_DB = (-70.0, 0.0)
METER_WIDTH = 24


@dataclass
class ListenResult:
    device: str = ""
    rate: int = 0
    seconds: float = 0.0  # audio heard
    events: int = 0
    digits: int = 0
    strings: list[str] = field(default_factory=list)
    dropped: int = 0  # blocks lost because this loop fell behind
    interrupted: bool = False


class Printer:
    """Events to stdout (text or JSON lines), flushed per line."""

    def __init__(self, out: TextIO | None, as_json: bool, show_rejected: bool, digit_lines: bool = True):
        """`digit_lines`: a text line per digit (the segments engine, which hears them one by one)."""
        self._out, self.as_json, self.show_rejected, self.digit_lines = out, as_json, show_rejected, digit_lines

    @property
    def out(self) -> TextIO:
        return self._out or sys.stdout  # looked up per write: rich's live display swaps sys.stdout

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def start(self, info: dict) -> None:
        if self.as_json:
            self.line(json_text({"event": "listening", **info}))

    def event(self, e: Event) -> None:
        if e.kind == "rejected" and not self.show_rejected:
            return
        if self.as_json:
            self.line(json_text(e.to_dict()))
        elif e.kind == "digit":
            if self.digit_lines:
                self.line(f"{e.digit}  ({e.confidence:.2f})")
        elif e.kind == "rejected":
            self.line(f"not a digit  ({e.reason})")
        else:
            self.line(f"→ {e.string}")
        if e.observation is not None and not self.as_json:
            self.line(f"   {e.observation.line()}")

    def stop(self, result: ListenResult, error: AudreyError | None = None) -> None:
        if self.as_json:
            self.line(json_text({"event": "stopped", "seconds": round(result.seconds, 2), "digits": result.digits,
                                 "strings": result.strings, "dropped_blocks": result.dropped,
                                 **({"error": str(error)} if error else {})}))


class Status:
    """The live status line on stderr (only on a terminal): listening, level meter, open string."""

    def __init__(self, device: str, rate: int, pipeline):
        """`pipeline`: a DigitStream or CTCStream (level_db, floor_db, in_speech, partial)."""
        self.device, self.rate, self.pipeline = device, rate, pipeline
        self.dropped = 0
        self.live = None

    def __enter__(self):
        if err.is_terminal:
            from rich.live import Live

            self.live = Live(console=err, refresh_per_second=STATUS_PER_SECOND, transient=True,
                             redirect_stdout=True, get_renderable=self.render)
            self.live.__enter__()
        else:
            err.print(f"listening on {self.device} ({self.rate} Hz); Ctrl-C to stop")
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)

    def render(self):
        from rich.text import Text

        p = self.pipeline
        lo, hi = METER_DB
        pos = lambda db: int(round((min(max(db, lo), hi) - lo) / (hi - lo) * METER_WIDTH))  # noqa: E731
        n, f = pos(p.level_db), pos(p.floor_db)
        line = Text()
        line.append("● hearing speech " if p.in_speech else "● listening      ", style="bold green" if p.in_speech else "green")
        for i in range(METER_WIDTH):
            line.append("█" if i < n else ("│" if i == f else "·"), style="yellow" if i < n else "dim")
        line.append(f" {p.level_db:4.0f} dBFS  ", style="dim")
        line.append(f"{self.device} · {self.rate} Hz", style="dim")
        if p.partial:
            line.append("   " + " ".join(p.partial) + " …", style="bold cyan")
        if self.dropped:
            line.append(f"   {self.dropped} blocks lost", style="red")
        return line


def listen(
    model: Path | None = None,
    device: str | int | None = None,
    rate: int | None = None,
    as_json: bool = False,
    show_rejected: bool = True,
    string_gap: float = STRING_GAP_SECONDS,
    calibration: Path | None = None,
    weights: Path | None = None,
    observe: bool = False,
    engine: str = "segments",
    digits: int | None = None,
    ctc_model: Path | None = None,
    confirm: bool | None = None,
    stream=None,
    out: TextIO | None = None,
) -> ListenResult:
    """Listen until Ctrl-C / SIGTERM (or until a file-backed `stream` ends); see the module docstring.
    `model`, `calibration`, `weights`, `observe`: --engine segments;
    `digits`, `ctc_model` (default: the bundled digit-string model): --engine ctc; `confirm` (with
    `ctc_model`): --engine segments checked by the digit-string model (audrey.live.confirm; None: on
    unless `weights`)."""
    import torch

    from audrey.live.ctc_transcribe import check_engine

    confirm = check_engine(engine, {"--model": model, "--calibration": calibration, "--weights": weights,
                                    "--observe": observe, "--confirm": confirm}, {"--digits": digits, "--ctc-model": ctc_model})
    if rate is not None and not 8000 <= rate <= 192000:
        raise AudreyError(f"--rate {rate}: expected a sample rate between 8000 and 192000 Hz")
    if string_gap <= 0:
        raise AudreyError(f"--string-gap {string_gap}: must be more than 0 seconds")
    if engine == "segments" and model is None:
        raise AudreyError("--engine segments needs a model file (--model)")
    if stream is None:
        # the system's default input (or --device) at its own default rate, unless --rate
        rate = rate or resolve_device(device)["default_rate"]
        stream = MicStream(device, rate)  # checks the device and rate before the model is loaded
    torch.set_num_threads(1)  # one short segment at a time: a second thread only adds wake-ups
    if engine == "ctc":
        from audrey.live.ctc_transcribe import CTCStream
        from audrey.models.ctc_file import SHIPPED_CTC, load_ctc

        ctc_model = Path(ctc_model or SHIPPED_CTC)
        bundle = load_ctc(ctc_model)
        pipeline = CTCStream(bundle, stream.rate, string_gap, digits=digits)
        info = {"engine": engine, "model": str(ctc_model), "weights": None, "model_rate": bundle.frontend.sample_rate,
                "calibrated": False, "digits": digits}
    else:
        from audrey.live.judge import Judge

        judge = Judge.from_file(model, calibration, weights=weights)
        observer = None
        if observe:  # the base model's probes and OOD statistics, read on each utterance
            from audrey.observe.observer import Observer

            observer = Observer.from_file(model)
        from audrey.live.confirm import StringCheck

        check = StringCheck.from_file(ctc_model) if confirm else None
        pipeline = DigitStream(judge, stream.rate, string_gap, observer=observer, confirm=check)
        info = {"engine": engine, "model": str(model), "weights": str(weights) if weights else None,
                "model_rate": judge.sample_rate, "calibrated": judge.calibration is not None, "confirm": confirm}
    printer = Printer(out, as_json, show_rejected, digit_lines=engine == "segments")
    result = ListenResult(device=stream.name, rate=stream.rate)

    def emit(events: list[Event]) -> None:
        for e in events:
            result.events += 1
            if e.kind == "digit":
                result.digits += 1
            elif e.kind == "string":
                result.strings.append(e.string)
            printer.event(e)

    error = None  # what ended listening, if not Ctrl-C or the end of a file: said after the final event
    with StopOnSignal() as stop, stream, Status(stream.name, stream.rate, pipeline) as status:
        started = False
        try:
            while not stop.stopped.is_set():
                block = stream.read(STALL_SECONDS)
                if block is None:
                    raise AudreyError(f"input device {stream.name!r} stopped delivering audio for {STALL_SECONDS:g} s; "
                                      "check the connection or pick another with --device")
                if not started:  # "listening" once audio really flows: some servers connect late
                    started = True
                    printer.start({"device": stream.name, "rate": stream.rate, **info, "time": round(time.time(), 3)})
                if block.dropped:
                    result.dropped += block.dropped
                    status.dropped = result.dropped
                emit(pipeline.feed(block.samples, block.time))
        except KeyboardInterrupt:  # a stream or caller that raises it (signals set `stop` instead)
            result.interrupted = True
        except StreamEnded:
            pass
        except AudreyError as exc:  # the device was lost: close the open string and stop as usual, then say why
            error = exc
        result.interrupted = result.interrupted or stop.stopped.is_set()
        emit(pipeline.flush())
    result.seconds = pipeline.fed / pipeline.rate
    if result.dropped:
        warn(f"{result.dropped} audio blocks were lost (the computer was too busy); digits around them may be missed")
    printer.stop(result, error)
    if error is not None:
        raise error
    return result
