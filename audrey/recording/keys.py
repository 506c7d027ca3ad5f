"""Single key presses from the terminal, for the interactive session."""

from __future__ import annotations

import os
import select
import sys


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

