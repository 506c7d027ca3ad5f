"""The session's two faces: `AutoUI` (--auto: one line per event on stdout, for scripts and tests)
and `LiveUI` (a terminal: a big digit, a countdown, a live level meter, keys). The session calls
the same hooks on either; a hook returns the key's action ("skip", "quit", "redo") or None."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from audrey import DIGIT_WORDS
from audrey.console import err
from audrey.recording.capture import Take
from audrey.recording.keys import KeyReader
from audrey.recording.summary import SessionResult

if TYPE_CHECKING:
    from audrey.recording.check import Mismatch

COUNTDOWN_SECONDS = 1.0  # "3 2 1" before listening (interactive)
AFTER_SAVE_SECONDS = 0.8  # time to press replay / redo before the next prompt (interactive)
AFTER_REJECT_SECONDS = 1.5  # time to read the reason (interactive)


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

    def flagged(self, session, path: Path, take: Take, mismatch: Mismatch):
        self.saved(session, path, take)
        self.line(f"FLAGGED {path} heard={mismatch.heard} expected={mismatch.expected} confidence={mismatch.confidence:.3f}")
        return None  # kept: the summary lists it

    def skipped(self, session, index: int, digit: int) -> None:
        self.line(f"SKIPPED {index} {digit}")

    def done(self, result: SessionResult) -> None:
        self.line(f"{'FAILED' if result.failed else 'DONE'} saved={len(result.saved)} rejected={len(result.rejected)} skipped={len(result.skipped)}")


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
        "flagged": "[k] keep  [r] redo  [p] replay  [q] quit",
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
        status_style = {"listen": "bold green", "saved": "green", "rejected": "bold red", "flagged": "bold yellow"}.get(self.state, "yellow")
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

    def flagged(self, session, path, take, mismatch):
        """Saved, but the model heard another digit: wait for keep (k, space, Enter) or redo (r)."""
        h, e = mismatch.heard, mismatch.expected
        self.state = "flagged"
        self.status = f"heard {h} ({DIGIT_WORDS[h]}), expected {e} ({DIGIT_WORDS[e]}): [k] keep  [r] redo"
        while True:
            key = self._pump(session, None if self.keys.enabled else AFTER_REJECT_SECONDS, "k \rprq")
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
