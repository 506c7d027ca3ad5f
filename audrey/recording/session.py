"""`audrey record`: a guided session that records your own digits.

A session shows each digit in a shuffled, balanced order, listens (voice activity finds the start
and end of the take), runs the quality gate, and saves an accepted take at once, atomically, as
`<root>/<speaker>/<digit>_<speaker>_<take>.wav` at the input device's rate. Numbering continues
from the takes already there. Ctrl-C (or SIGTERM) keeps every saved take, drops the one in
progress and prints what is still missing for a balanced set. One session per speaker at a time:
a second one for the same speaker is refused (speaker_lock).

This module is the session loop and `record()`; the parts live beside it: prompts (what to ask),
capture (the segmenter that hears a take), takes (naming, numbering, saving, the speaker lock),
speaker (speaker.json), ui and keys (--auto lines or the interactive screen), summary (the result
and the end-of-session summary), check (does the model hear the prompted digit?), report
(`audrey recordings`).

Each saved take is then checked against the model (`check`, unless None): one the model is sure is
another digit is flagged, so that a mislabelled take does not teach the personal weights the wrong
digit. The interactive screen asks "keep or redo?"; --auto keeps it and says so (FLAGGED).

`--auto` is for scripts and tests: no keys and no live display; stdout gets one line per event,
flushed at once:
    PROMPT <index> <digit> <word>     say this digit now (the input stream is already open)
    SAVED <path>                      the take is on disk under its final name
    FLAGGED <path> heard=<d> expected=<d> confidence=<p>
                                      after its SAVED line: the model heard that take as digit <d>
                                      with probability <p> (the take check, see check.py); --auto
                                      keeps it, and the summary lists it
    REJECTED <reason>                 the take failed the gate; the same PROMPT follows
    SKIPPED <index> <digit>           gave up on this prompt after --max-attempts tries
    DONE saved=<n> rejected=<n> skipped=<n>
    FAILED saved=<n> rejected=<n> skipped=<n>   instead of DONE when an error ended the session (a full
                                      disk, a lost device): the <n> saved takes are complete; the error
                                      follows on stderr and the exit status is not 0
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from audrey.atomic import WriteFailed, fsync_dir
from audrey.audio import gate
from audrey.audio.mic import MicStream, StopOnSignal, StreamEnded
from audrey.console import err, warn
from audrey.data.corpora import SPEAKER_META
from audrey.errors import AudreyError
from audrey.recording.capture import Listener, Take
from audrey.recording.prompts import parse_digits, plan_prompts
from audrey.recording.speaker import prepare_info
from audrey.recording.summary import Saved, SessionResult, balance, print_summary
from audrey.recording.takes import check_speaker, cleanup_temp_files, existing_takes, next_take_numbers, save_take, speaker_lock
from audrey.recording.ui import COUNTDOWN_SECONDS, AutoUI, LiveUI

if TYPE_CHECKING:  # the check brings torch; a session without one does not import it
    from audrey.recording.check import TakeCheck

TAKE_TIMEOUT = 8.0  # seconds of listening before a prompt counts as "no speech"
MAX_ATTEMPTS = 3  # rejected takes before a prompt is skipped (the summary lists it as missing)
MAX_FAILED_PROMPTS = 3  # prompts in a row given up after MAX_ATTEMPTS: something is wrong, stop asking


class Session:
    def __init__(self, stream, ui, folder: Path, speaker: str, plan: list[int], take_timeout: float, max_attempts: int,
                 check: TakeCheck | None = None):
        self.stream, self.ui, self.folder, self.speaker, self.plan = stream, ui, folder, speaker, plan
        self.check = check
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
        except BaseException:
            res.failed = True  # saved takes stay complete; the ui says the session did not finish
            raise
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
            try:
                path = save_take(self.folder, self.speaker, digit, self.next_no[digit], take)
            except WriteFailed as exc:
                n = len(self.result.saved)
                raise AudreyError(f"{exc.path}: could not be written ({exc.cause}); the {n} take(s) saved before it "
                                  f"in this session are complete and kept; {exc.remedy} to record the rest") from None
            latency = time.monotonic() - take.speech_end_time
            self.next_no[digit] = int(path.stem.rsplit("_", 1)[1]) + 1
            saved = Saved(path, digit, take.seconds, latency)
            self.result.saved.append(saved)
            mismatch = self.check.check(take.audio, take.rate, digit) if self.check else None  # after the save: never lose a take
            if mismatch:
                flag = (saved, mismatch)
                self.result.flagged.append(flag)  # listed as kept unless the speaker redoes it
                action = self.ui.flagged(self, path, take, mismatch)
            else:
                action = self.ui.saved(self, path, take)
            if action == "redo":  # the speaker asked to discard it
                path.unlink(missing_ok=True)
                fsync_dir(self.folder)
                self.result.saved.remove(saved)
                if mismatch:
                    self.result.flagged.remove(flag)
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
    check: TakeCheck | None = None,
) -> SessionResult:
    """Run one recording session (see the module docstring). `stream` overrides the microphone;
    `check` (loaded before, so a bad model file fails before any prompt) checks each saved take."""
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
        session = Session(stream, ui, folder, speaker, plan, take_timeout, max_attempts, check)

        try:
            result = session.run()  # Ctrl-C and SIGTERM end it alike: saved takes stay, the summary is printed
        finally:
            res = session.result
            res.counts = {d: len(t) for d, t in existing_takes(folder, speaker).items()}
            target = max(before.get(d, 0) + takes_per_digit for d in digit_list)
            res.missing = balance(res.counts, digit_list, target)
            print_summary(res, digit_list)
        return result

