"""`audrey record`: a guided session that records your own digits, and `audrey recordings`.

A session shows each digit in a shuffled, balanced order, listens (voice activity finds the start
and end of the take), runs the quality gate, and saves an accepted take at once, atomically, as
`<root>/<speaker>/<digit>_<speaker>_<take>.wav` at the input device's rate. Numbering continues
from the takes already there. Ctrl-C (or SIGTERM) keeps every saved take, drops the one in
progress and prints what is still missing for a balanced set. One session per speaker at a time:
a second one for the same speaker is refused (speaker_lock).

`--auto` is for scripts and tests: no keys and no live display; stdout gets one line per event,
flushed at once:
    PROMPT <index> <digit> <word>     say this digit now (the input stream is already open)
    SAVED <path>                      the take is on disk under its final name
    REJECTED <reason>                 the take failed the gate; the same PROMPT follows
    SKIPPED <index> <digit>           gave up on this prompt after --max-attempts tries
    DONE saved=<n> rejected=<n> skipped=<n>
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import sys
import threading
import time
from collections import Counter, deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from audrey import DIGIT_WORDS
from audrey.audio import gate
from audrey.atomic import atomic_write_bytes, fsync_dir
from audrey.audio.waveform import AUDIO_SUFFIXES, write_audio
from audrey.console import err, warn
from audrey.data.corpora import CLIP_NAME, SPEAKER_FIELDS, SPEAKER_META, parse_clip_name, read_speaker_meta
from audrey.errors import AudreyError
from audrey.audio.mic import STALL_SECONDS, MicStream, StopOnSignal, StreamEnded
from audrey.audio.vad import Segmenter

TAKE_END_SECONDS = 0.4  # quiet this long ends a take: longer than gate.WORD_GAP_SECONDS, so a second
#                         word after a short pause lands in the same take and the gate rejects it
MAX_TAKE_SECONDS = 4.0  # "speech" longer than this is cut and rejected as too long
TAKE_TIMEOUT = 8.0  # seconds of listening before a prompt counts as "no speech"
MAX_ATTEMPTS = 3  # rejected takes before a prompt is skipped (the summary lists it as missing)
SETTLE_SECONDS = 0.3  # a live stream must have delivered this much audio before the first prompt:
#                       some audio servers connect a new input stream only after it "started"
MAX_FAILED_PROMPTS = 3  # prompts in a row given up after MAX_ATTEMPTS: something is wrong, stop asking
COUNTDOWN_SECONDS = 1.0  # "3 2 1" before listening (interactive)
AFTER_SAVE_SECONDS = 0.8  # time to press replay / redo before the next prompt (interactive)
AFTER_REJECT_SECONDS = 1.5  # time to read the reason (interactive)
SPEAKER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,39}$")
OPTION_FIELDS = {  # speaker.json field -> the `audrey record` option that sets it
    "age": "--age",
    "gender": "--gender",
    "accent": "--accent",
    "native speaker": "--native-speaker",
    "origin": "--origin",
    "recordingroom": "--recording-room",
    "device": "--recording-device",
}


# --- plans, names, numbering ---------------------------------------------------------------------


def parse_digits(spec: str) -> list[int]:
    """'0-9', '1,3,5', '2-4,7' -> sorted digits; anything else is an AudreyError naming it."""
    digits: set[int] = set()
    for part in str(spec).replace(" ", "").split(","):
        m = re.fullmatch(r"(\d)(?:-(\d))?", part)
        if not m or (m[2] is not None and int(m[2]) < int(m[1])):
            raise AudreyError(f"--digits {spec!r}: expected digits and ranges such as 0-9 or 1,3,5-7")
        digits.update(range(int(m[1]), int(m[2] or m[1]) + 1))
    return sorted(digits)


def plan_prompts(digits: list[int], takes_per_digit: int, seed: int | None = None) -> list[int]:
    """Balanced and shuffled: every round says each digit once, in a new order, and no digit
    comes twice in a row across rounds (people anticipate a repeated digit)."""
    rng = random.Random(seed)
    plan: list[int] = []
    for _ in range(takes_per_digit):
        order = list(digits)
        rng.shuffle(order)
        if plan and len(order) > 1 and order[0] == plan[-1]:
            order[0], order[-1] = order[-1], order[0]
        plan.extend(order)
    return plan


def check_speaker(name: str) -> str:
    if not SPEAKER_NAME.match(name or ""):
        raise AudreyError(
            f"--speaker {name!r}: use 1-40 letters, digits and '-' (it goes into file names like 7_<speaker>_3.wav)"
        )
    if (len(name) == 1 and name.isdigit()) or name.lower() in DIGIT_WORDS:
        raise AudreyError(f"--speaker {name!r} would read as a digit folder; pick a name such as 'spk-{name}'")
    return name


def existing_takes(folder: Path, speaker: str, warn_bad: bool = False) -> dict[int, list[int]]:
    """Take numbers already saved per digit (files that do not follow the naming are warned about)."""
    takes: dict[int, list[int]] = {d: [] for d in range(10)}
    if not folder.is_dir():
        return takes
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        m = CLIP_NAME.match(path.stem)
        if not m or m["speaker"] != speaker:
            if warn_bad:
                warn(f"{path}: not named <digit>_{speaker}_<take>.wav; the corpus reader will reject it")
            continue
        try:
            digit, _, take = parse_clip_name(path)
        except AudreyError as exc:
            if warn_bad:
                warn(str(exc))
            continue
        takes[digit].append(take)
    return takes


def next_take_numbers(folder: Path, speaker: str) -> dict[int, int]:
    return {d: max(t) + 1 if t else 0 for d, t in existing_takes(folder, speaker).items()}


def take_path(folder: Path, speaker: str, digit: int, take: int) -> Path:
    return folder / f"{digit}_{speaker}_{take}.wav"


@contextmanager
def speaker_lock(root: Path, speaker: str):
    """One session per speaker at a time. A second one would hand out the same take numbers and
    remove the first one's temp files (cleanup_temp_files) while it writes. The lock is a flock on
    `<root>/.<speaker>.lock`: the kernel drops it when its holder dies, even by SIGKILL, so a
    crashed session never leaves the speaker locked. The file stays (unlinking it would race)."""
    import fcntl

    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / f".{speaker}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise AudreyError(f"{root}: cannot record there ({exc.strerror or exc}); pass --root with a folder you can write to") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="ignore").strip() or "unknown"
            raise AudreyError(f"{root / speaker}: another `audrey record` session (pid {holder}) is recording "
                              "this speaker; let it finish or stop it first") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def cleanup_temp_files(folder: Path) -> list[Path]:
    """Remove what a killed session can leave behind: the hidden `.<name>.<random>.tmp` files that
    write_audio and write_info rename into place. They never look like takes to the corpus reader."""
    removed = []
    if folder.is_dir():
        for path in folder.iterdir():
            if path.is_file() and path.name.startswith(".") and path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


# --- speaker metadata ----------------------------------------------------------------------------


def write_info(folder: Path, info: dict[str, str]) -> Path:
    """speaker.json, atomically (temp file, fsync, rename), like the takes."""
    text = json.dumps(info, indent=2, ensure_ascii=False) + "\n"
    return atomic_write_bytes(folder / SPEAKER_META, text.encode("utf-8"))


def normalize_info(info: dict[str, str]) -> dict[str, str]:
    out = {f: str(info.get(f, "") or "").strip() for f in SPEAKER_FIELDS}
    native = out["native speaker"].lower()
    if native in ("y", "yes", "true", "1"):
        out["native speaker"] = "yes"
    elif native in ("n", "no", "false", "0"):
        out["native speaker"] = "no"
    # fields we do not ask for (e.g. added by hand) are kept
    out.update({k: str(v) for k, v in info.items() if k not in out})
    return out


def ask_info(current: dict[str, str], device_name: str = "") -> dict[str, str]:
    """Ask each field once on the terminal; Enter keeps the shown value (or leaves it empty)."""
    from rich.prompt import Prompt

    err.print("[bold]About you[/] (stored in speaker.json beside your takes, the fields AudioMNIST keeps; Enter skips)")
    hints = {"native speaker": "yes/no", "device": "microphone", "recordingroom": "room"}
    out = dict(current)
    for f in SPEAKER_FIELDS:
        default = current.get(f) or (device_name if f == "device" else "")
        label = f"  {f}" + (f" ({hints[f]})" if f in hints else "")
        out[f] = Prompt.ask(label, default=default, show_default=bool(default), console=err)
    return normalize_info(out)


def prepare_info(folder: Path, given: dict[str, str | None], ask: bool, device_name: str = "") -> dict[str, str]:
    """Read speaker.json, apply fields given as options, ask when `ask`, write it back if it changed."""
    path = folder / SPEAKER_META
    current = read_speaker_meta(folder)
    merged = normalize_info({**current, **{k: v for k, v in given.items() if v is not None}})
    if ask:
        merged = ask_info(merged, device_name)
    if not path.exists() or merged != current:
        write_info(folder, merged)
    return merged


# --- capture -------------------------------------------------------------------------------------


@dataclass
class Take:
    audio: np.ndarray  # the segment with its margins, as saved
    rate: int
    start: int  # stream sample index of audio[0]
    speech_end: int  # stream sample index where speech ended
    speech_end_time: float  # time.monotonic() when the block holding speech_end arrived
    dropped: bool  # the input lost blocks inside this take

    @property
    def seconds(self) -> float:
        return len(self.audio) / self.rate


@dataclass
class Saved:
    path: Path
    digit: int
    seconds: float
    latency: float  # end of speech (block arrival) -> file renamed into place, seconds


@dataclass
class SessionResult:
    speaker: str
    folder: Path
    rate: int = 0
    device: str = ""
    planned: int = 0
    saved: list[Saved] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    interrupted: bool = False
    quit: bool = False
    counts: dict[int, int] = field(default_factory=dict)  # takes on disk per digit at the end
    missing: dict[int, int] = field(default_factory=dict)  # still to record for a balanced set


class Listener:
    """The stream and one segmenter fed with every block, for the whole session, so the noise
    floor is learnt continuously and no audio between prompts goes unseen."""

    def __init__(self, stream, stop: threading.Event | None = None):
        self.stream = stream
        self.stop = stop  # set by Ctrl-C or SIGTERM (mic.StopOnSignal)
        self.rate = stream.rate
        self.seg = Segmenter(self.rate, hangover=TAKE_END_SECONDS, max_seconds=MAX_TAKE_SECONDS)
        self.fed = 0  # samples fed to the segmenter
        # (block end, arrival time) for as far back as a take can reach, to time the end of speech
        n_blocks = int((MAX_TAKE_SECONDS + 2 * TAKE_END_SECONDS + 1) * self.rate / stream.block) + 8
        self._times: deque[tuple[int, float]] = deque(maxlen=n_blocks)
        self._drops: deque[int] = deque(maxlen=64)  # stream positions where blocks were lost

    def next(self):
        """Read and feed one block; returns (block, segments that ended in it)."""
        block = self.stream.read(STALL_SECONDS)
        if self.stop is not None and self.stop.is_set():
            # raised here, between blocks, never from a signal handler inside a queue's lock
            raise KeyboardInterrupt
        if block is None:
            raise AudreyError(
                f"input device {self.stream.name!r} stopped delivering audio for {STALL_SECONDS:g} s; "
                "check the connection or pick another with --device"
            )
        if block.dropped:
            self._drops.append(self.fed)
        segments = self.seg.feed(block.samples)
        self.fed += len(block.samples)
        self._times.append((self.fed, block.time))
        return block, segments

    def settle(self, seconds: float = SETTLE_SECONDS) -> None:
        """Read a live stream until it has delivered `seconds` of audio, so that the first prompt is
        only shown once the microphone is really heard (and the noise floor has a start)."""
        if getattr(self.stream, "live", False):
            while self.fed < seconds * self.rate:
                self.next()

    def catch_up(self) -> int:
        """Feed whatever a live stream has queued up to now; returns the position of 'now'."""
        for _ in range(self.stream.pending()):
            self.next()
        return self.fed

    def take_from(self, s) -> Take:
        t_end = next((t for end, t in self._times if end >= s.speech_end), time.monotonic())
        dropped = any(s.start <= pos <= s.end for pos in self._drops)
        return Take(s.audio, self.rate, s.start, s.speech_end, t_end, dropped)


def save_take(folder: Path, speaker: str, digit: int, take_no: int, take: Take) -> Path:
    path = take_path(folder, speaker, digit, take_no)
    while path.exists():  # never overwrite a take, whatever the numbering says
        take_no += 1
        path = take_path(folder, speaker, digit, take_no)
    return write_audio(path, take.audio, take.rate)


def balance(counts: dict[int, int], digits: list[int], target: int = 0) -> dict[int, int]:
    """Takes still missing per digit for every digit in `digits` to reach the same count."""
    target = max([target] + [counts.get(d, 0) for d in digits])
    return {d: target - counts.get(d, 0) for d in digits if counts.get(d, 0) < target}


# --- user interfaces -----------------------------------------------------------------------------


class AutoUI:
    """--auto: one line per event on `out`, flushed at once; never reads keys."""

    def __init__(self, out: TextIO):
        self.out = out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def prompt(self, session, index: int, digit: int, attempt: int) -> None:
        self.line(f"PROMPT {index} {digit} {DIGIT_WORDS[digit]}")

    def countdown(self, session):
        return None

    def on_block(self, session, block):
        return None

    def rejected(self, session, reason: str):
        self.line(f"REJECTED {reason}")
        return None

    def saved(self, session, path: Path, take: Take):
        self.line(f"SAVED {path}")
        return None

    def skipped(self, session, index: int, digit: int) -> None:
        self.line(f"SKIPPED {index} {digit}")

    def done(self, result: SessionResult) -> None:
        self.line(f"DONE saved={len(result.saved)} rejected={len(result.rejected)} skipped={len(result.skipped)}")


class KeyReader:
    """Single key presses from a terminal (cbreak mode: no Enter needed, Ctrl-C still interrupts).
    Disabled, returning None, when stdin is not a terminal."""

    def __init__(self):
        self.enabled = sys.stdin.isatty()
        self._old = None

    def __enter__(self):
        if self.enabled:
            import termios
            import tty

            self._fd = sys.stdin.fileno()
            self._old = termios.tcgetattr(self._fd)
            tty.setcbreak(self._fd)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            import termios

            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._old)
            self._old = None

    def get(self) -> str | None:
        if not self.enabled or not select.select([sys.stdin], [], [], 0)[0]:
            return None
        return os.read(self._fd, 1).decode(errors="ignore").lower() or None


GLYPHS = {  # 5x5 digits for the prompt; each "#" is drawn two cells wide
    0: [" ### ", "#   #", "#   #", "#   #", " ### "],
    1: ["  #  ", " ##  ", "  #  ", "  #  ", " ### "],
    2: [" ### ", "#   #", "  ## ", " #   ", "#####"],
    3: ["#### ", "    #", " ### ", "    #", "#### "],
    4: ["#   #", "#   #", "#####", "    #", "    #"],
    5: ["#####", "#    ", "#### ", "    #", "#### "],
    6: [" ### ", "#    ", "#### ", "#   #", " ### "],
    7: ["#####", "    #", "   # ", "  #  ", "  #  "],
    8: [" ### ", "#   #", " ### ", "#   #", " ### "],
    9: [" ### ", "#   #", " ####", "    #", " ### "],
}
METER_DB = (-60.0, 0.0)  # the level meter's range, dBFS
METER_WIDTH = 40


class LiveUI:
    """The interactive session: a big digit, countdown, live level meter, keys."""

    HELP = {
        "countdown": "[s] skip  [q] quit",
        "ptt": "[space] talk  [s] skip  [q] quit",
        "listen": "[s] skip  [q] quit",
        "saved": "[p] replay  [r] redo  [space] next  [q] quit",
        "rejected": "[space] try again  [s] skip  [q] quit",
    }

    def __init__(self, countdown: float = COUNTDOWN_SECONDS, push_to_talk: bool = False):
        self.countdown_s = countdown
        self.push_to_talk = push_to_talk
        self.keys = KeyReader()
        self.live = None
        self.index = self.total = self.digit = self.attempt = 0
        self.state = "countdown"
        self.status = ""
        self.level = self.floor = -90.0

    def __enter__(self):
        from rich.live import Live

        self.keys.__enter__()
        self.live = Live(console=err, refresh_per_second=15, transient=True, get_renderable=self.render)
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        self.keys.__exit__(*exc)

    # rendering
    def render(self):
        from rich.align import Align
        from rich.console import Group
        from rich.panel import Panel
        from rich.text import Text

        art = Text("\n".join(row.replace("#", "██").replace(" ", "  ") for row in GLYPHS[self.digit]), style="bold cyan")
        word = Text(DIGIT_WORDS[self.digit].upper(), style="bold")
        status_style = {"listen": "bold green", "saved": "green", "rejected": "bold red"}.get(self.state, "yellow")
        parts = [Align.center(art), Align.center(word), Text(""), Align.center(Text(self.status, style=status_style))]
        parts += [Align.center(self.meter()), Align.center(Text(self.HELP[self.state], style="dim"))]
        title = f"take {self.index}/{self.total}" + (f" · try {self.attempt + 1}" if self.attempt else "")
        return Panel(Group(*parts), title=title, width=64)

    def meter(self):
        from rich.text import Text

        lo, hi = METER_DB
        pos = lambda db: int(round((min(max(db, lo), hi) - lo) / (hi - lo) * METER_WIDTH))  # noqa: E731
        n, f = pos(self.level), pos(self.floor)
        bar = Text()
        for i in range(METER_WIDTH):
            db = lo + (i + 0.5) * (hi - lo) / METER_WIDTH
            if i < n:
                bar.append("█", style="red" if db > -3 else "yellow" if db > -12 else "green")
            else:
                bar.append("│" if i == f else "·", style="dim")
        bar.append(f" {self.level:4.0f} dBFS", style="dim")
        return bar

    # session hooks
    def _pump(self, session, seconds: float | None, keys: str):
        """Keep reading the stream (level meter, noise floor) for `seconds` or until one of `keys`."""
        end = session.listener.fed + (seconds or 1e9) * session.listener.rate
        while session.listener.fed < end:
            block, _ = session.listener.next()
            self._level(session)
            key = self.keys.get()
            if key and key in keys:
                return key
        return None

    def _level(self, session):
        self.level = session.listener.seg.level_db
        self.floor = session.listener.seg.floor_db or -90.0

    def prompt(self, session, index, digit, attempt):
        self.index, self.total, self.digit, self.attempt = index, session.total, digit, attempt

    def countdown(self, session):
        if self.push_to_talk and self.keys.enabled:
            self.state, self.status = "ptt", "press space, then say it"
            key = self._pump(session, None, " \rsq")
            return {"s": "skip", "q": "quit"}.get(key)
        self.state = "countdown"
        steps = 3
        for n in range(steps, 0, -1):
            self.status = f"get ready… {n}"
            key = self._pump(session, self.countdown_s / steps, "sq")
            if key:
                return {"s": "skip", "q": "quit"}[key]
        return None

    def listening(self):
        self.state, self.status = "listen", "● speak now"

    def on_block(self, session, block):
        if self.state != "listen":
            self.listening()
        self._level(session)
        key = self.keys.get()
        return {"s": "skip", "q": "quit"}.get(key or "")

    def rejected(self, session, reason):
        self.state, self.status = "rejected", reason
        key = self._pump(session, AFTER_REJECT_SECONDS if not self.keys.enabled else AFTER_REJECT_SECONDS * 2, " \rsq")
        return {"s": "skip", "q": "quit"}.get(key or "")

    def saved(self, session, path, take):
        self.state, self.status = "saved", f"✓ saved {path.name} ({take.seconds:.2f} s)"
        while True:
            key = self._pump(session, AFTER_SAVE_SECONDS, " \rprq")
            if key == "p":
                self.replay(take)
                continue
            return {"r": "redo", "q": "quit"}.get(key or "")

    def replay(self, take):
        from audrey.audio.mic import _sounddevice

        try:
            _sounddevice().play(take.audio, take.rate)
        except Exception as exc:  # no output device, busy device
            self.status = f"cannot replay: {exc}"

    def skipped(self, session, index, digit):
        self.status = "skipped"

    def done(self, result):
        return None


# --- the session ---------------------------------------------------------------------------------


class Session:
    def __init__(self, stream, ui, folder: Path, speaker: str, plan: list[int], take_timeout: float, max_attempts: int):
        self.stream, self.ui, self.folder, self.speaker, self.plan = stream, ui, folder, speaker, plan
        self.total = len(plan)
        self.take_timeout = take_timeout
        self.max_attempts = max_attempts
        self.result = SessionResult(speaker, folder, planned=len(plan))
        self.listener: Listener | None = None

    def run(self) -> SessionResult:
        res = self.result
        self.next_no = next_take_numbers(self.folder, self.speaker)
        try:
            with StopOnSignal() as stop, self.stream:
                self.listener = Listener(self.stream, stop.stopped)
                self.listener.settle()
                res.rate, res.device = self.listener.rate, self.stream.name
                with self.ui:
                    failed = 0  # prompts in a row that used up every attempt
                    for index, digit in enumerate(self.plan, 1):
                        outcome = self.one_prompt(index, digit)
                        if outcome == "quit":
                            res.quit = True
                            break
                        failed = failed + 1 if outcome == "failed" else 0
                        if failed >= MAX_FAILED_PROMPTS:
                            res.quit = True
                            raise AudreyError(
                                f"{failed} prompts in a row failed (last: {res.rejected[-1][1].split(';')[0]}); "
                                f"stopping: check the microphone and its level (`audrey devices`, --device)"
                            )
        except KeyboardInterrupt:
            res.interrupted = True  # the take in progress was never written; saved ones are complete
            raise
        except StreamEnded:
            pass  # a file-backed stream ran out: end the session like a quit
        finally:
            self.ui.done(res)
        return res

    def one_prompt(self, index: int, digit: int) -> str | None:
        attempt = 0
        while True:
            take = None
            self.ui.prompt(self, index, digit, attempt)
            action = self.ui.countdown(self)
            if action is None:
                take, action = self.capture()
            if action == "quit":
                return "quit"
            if action == "skip":
                self.result.skipped.append(digit)
                self.ui.skipped(self, index, digit)
                return None
            if take is None:
                reason = f"no speech heard within {self.take_timeout:g} s; say the digit when prompted"
            elif take.dropped:
                reason = "audio was lost during the take (the computer was too busy); say it again"
            else:
                reason = gate.check_take(take.audio, take.rate)
            if reason:
                self.result.rejected.append((digit, reason))
                attempt += 1
                action = self.ui.rejected(self, reason)
                if action == "quit":
                    return "quit"
                if action == "skip" or attempt >= self.max_attempts:
                    self.result.skipped.append(digit)
                    self.ui.skipped(self, index, digit)
                    return None if action == "skip" else "failed"
                continue
            path = save_take(self.folder, self.speaker, digit, self.next_no[digit], take)
            latency = time.monotonic() - take.speech_end_time
            self.next_no[digit] = int(path.stem.rsplit("_", 1)[1]) + 1
            saved = Saved(path, digit, take.seconds, latency)
            self.result.saved.append(saved)
            action = self.ui.saved(self, path, take)
            if action == "redo":  # the speaker asked to discard it
                path.unlink(missing_ok=True)
                fsync_dir(self.folder)
                self.result.saved.remove(saved)
                self.next_no[digit] -= 1
                attempt = 0
                continue
            return action

    def capture(self) -> tuple[Take | None, str | None]:
        """Listen from now until a segment ends (a take), the timeout, or a key."""
        lis = self.listener
        start = lis.catch_up()
        deadline = start + self.take_timeout * lis.rate
        while True:
            block, segments = lis.next()
            for s in segments:
                if s.speech_end > start:  # a word that ended before the prompt is not this take
                    return lis.take_from(s), None
            action = self.ui.on_block(self, block)
            if action:
                return None, action
            if lis.fed >= deadline and not lis.seg.in_speech:
                return None, None


def record(
    speaker: str,
    root: Path = Path("recordings"),
    takes_per_digit: int = 5,
    digits: str | list[int] = "0-9",
    device: str | None = None,
    rate: int | None = None,
    auto: bool = False,
    take_timeout: float = TAKE_TIMEOUT,
    max_attempts: int = MAX_ATTEMPTS,
    countdown: float = COUNTDOWN_SECONDS,
    push_to_talk: bool = False,
    seed: int | None = None,
    info: dict[str, str | None] | None = None,
    edit_info: bool = False,
    stream=None,
    out: TextIO | None = None,
) -> SessionResult:
    """Run one recording session (see the module docstring). `stream` overrides the microphone."""
    check_speaker(speaker)
    digit_list = parse_digits(digits) if isinstance(digits, str) else sorted(set(digits))
    if takes_per_digit < 1:
        raise AudreyError(f"--takes-per-digit {takes_per_digit}: must be at least 1")
    if take_timeout <= 0:
        raise AudreyError(f"--take-timeout {take_timeout}: must be more than 0 seconds")
    if max_attempts < 1:
        raise AudreyError(f"--max-attempts {max_attempts}: must be at least 1")
    if rate is not None and not 8000 <= rate <= 192000:
        raise AudreyError(f"--rate {rate}: expected a sample rate between 8000 and 192000 Hz")
    with speaker_lock(Path(root), speaker):  # before cleanup_temp_files: those could be another session's
        out = out or sys.stdout
        folder = Path(root) / speaker
        interactive = not auto and sys.stdin.isatty() and err.is_terminal

        for path in cleanup_temp_files(folder):
            warn(f"removed {path.name}, left by an interrupted session (it was never a complete take)")
        if edit_info:
            if not sys.stdin.isatty() and not any(v is not None for v in (info or {}).values()):
                raise AudreyError("--edit-info asks on the terminal; in scripts pass the fields as options (e.g. --age 30 --gender female)")
            prepare_info(folder, info or {}, ask=sys.stdin.isatty(), device_name="")
            err.print(f"speaker info saved in {folder / SPEAKER_META}")
            return SessionResult(speaker, folder)

        stream = stream if stream is not None else MicStream(device, rate)  # finds the device before any question
        ask = interactive and not (folder / SPEAKER_META).exists()
        prepare_info(folder, info or {}, ask=ask, device_name=getattr(stream, "name", ""))
        plan = plan_prompts(digit_list, takes_per_digit, seed)
        before = {d: len(t) for d, t in existing_takes(folder, speaker, warn_bad=True).items()}
        ui = LiveUI(countdown, push_to_talk) if interactive else AutoUI(out)
        if not auto and not interactive:
            warn("no terminal: running like --auto (prompt lines on stdout, no keys)")
        session = Session(stream, ui, folder, speaker, plan, take_timeout, max_attempts)

        try:
            result = session.run()  # Ctrl-C and SIGTERM end it alike: saved takes stay, the summary is printed
        finally:
            res = session.result
            res.counts = {d: len(t) for d, t in existing_takes(folder, speaker).items()}
            target = max(before.get(d, 0) + takes_per_digit for d in digit_list)
            res.missing = balance(res.counts, digit_list, target)
            print_summary(res, digit_list)
        return result


def print_summary(res: SessionResult, digits: list[int]) -> None:
    how = "interrupted; " if res.interrupted else "stopped; " if res.quit else ""
    mean_latency = np.mean([s.latency for s in res.saved]) * 1000 if res.saved else 0.0
    err.print(
        f"{how}saved {len(res.saved)} take(s) for {res.speaker} in {res.folder}"
        + (f" ({res.rate} Hz, {res.device}; end of speech to saved: {mean_latency:.0f} ms on average)" if res.saved else "")
        + (f"; {len(res.rejected)} rejected" if res.rejected else "")
        + (f"; {len(res.skipped)} prompt(s) skipped" if res.skipped else "")
    )
    err.print("takes per digit: " + "  ".join(f"{d}:{res.counts.get(d, 0)}" for d in digits))
    if res.missing:
        todo = ", ".join(f"{n}× {DIGIT_WORDS[d]}" for d, n in sorted(res.missing.items()))
        err.print(f"still missing for a balanced set: {todo} (run `audrey record --speaker {res.speaker} --digits "
                  f"{','.join(str(d) for d in sorted(res.missing))}` to continue)")
    else:
        err.print("balanced: every digit has the same number of takes")


# --- audrey recordings ---------------------------------------------------------------------------


def recordings_report(root: Path = Path("recordings"), speaker: str | None = None) -> list[dict]:
    """Per speaker: takes per digit, speaker.json, and the takes that fail today's gate."""
    import soundfile as sf

    root = Path(root)
    if not root.is_dir():
        raise AudreyError(f"{root}: no recordings folder; record some with `audrey record --speaker NAME`")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if speaker is not None:
        folders = [p for p in folders if p.name == speaker]
        if not folders:
            raise AudreyError(f"--speaker {speaker!r}: no recordings under {root}; record some with `audrey record --speaker {speaker}`")
    report = []
    for folder in folders:
        counts: Counter = Counter()
        flagged = []
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
        for path in files:
            try:
                digit, _, _ = parse_clip_name(path)
            except AudreyError as exc:
                flagged.append({"path": str(path), "reason": str(exc).split(": ", 1)[-1]})
                continue
            counts[digit] += 1
            try:
                audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
                reason = gate.check_take(audio.mean(axis=1), rate) if len(audio) else "the file holds no audio"
            except Exception as exc:  # soundfile raises several types; all mean "not readable audio"
                reason = f"not a readable audio file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
            if reason:
                flagged.append({"path": str(path), "reason": reason})
        if not files and not (folder / SPEAKER_META).exists():
            continue
        report.append(
            {
                "speaker": folder.name,
                "folder": str(folder),
                "takes": sum(counts.values()),
                "counts": {d: counts.get(d, 0) for d in range(10)},
                "info": read_speaker_meta(folder),
                "flagged": flagged,
            }
        )
    return report


def print_recordings(report: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    out = Console(highlight=False)
    if not report:
        out.print("no recordings yet; record some with `audrey record --speaker NAME`")
        return
    table = Table(title="takes per digit")
    table.add_column("speaker")
    for d in range(10):
        table.add_column(str(d), justify="right")
    table.add_column("total", justify="right")
    table.add_column("failing the gate", justify="right")
    for r in report:
        counts = [r["counts"][d] for d in range(10)]
        low = min(counts)
        cells = [f"[yellow]{c}[/]" if c > low else str(c) for c in counts] if max(counts) != low else [str(c) for c in counts]
        table.add_row(r["speaker"], *cells, str(r["takes"]), f"[red]{len(r['flagged'])}[/]" if r["flagged"] else "0")
    out.print(table)
    for r in report:
        for f in r["flagged"]:
            out.print(f"[red]✗[/] {f['path']}: {f['reason']}", soft_wrap=True)
