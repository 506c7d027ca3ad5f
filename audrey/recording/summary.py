"""What a session did (`SessionResult`) and the summary printed at its end, whatever ended it:
takes saved, rejected and skipped, and what is still missing for a balanced set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from audrey import DIGIT_WORDS
from audrey.console import err

if TYPE_CHECKING:
    from audrey.recording.check import Mismatch


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
    flagged: list[tuple[Saved, Mismatch]] = field(default_factory=list)  # kept takes the model heard as another digit
    interrupted: bool = False
    quit: bool = False
    failed: bool = False  # an error ended the session (the takes saved before it are complete)
    counts: dict[int, int] = field(default_factory=dict)  # takes on disk per digit at the end
    missing: dict[int, int] = field(default_factory=dict)  # still to record for a balanced set


def balance(counts: dict[int, int], digits: list[int], target: int = 0) -> dict[int, int]:
    """Takes still missing per digit for every digit in `digits` to reach the same count."""
    target = max([target] + [counts.get(d, 0) for d in digits])
    return {d: target - counts.get(d, 0) for d in digits if counts.get(d, 0) < target}


def print_summary(res: SessionResult, digits: list[int]) -> None:
    how = "interrupted; " if res.interrupted else "ended by an error; " if res.failed else "stopped; " if res.quit else ""
    mean_latency = np.mean([s.latency for s in res.saved]) * 1000 if res.saved else 0.0
    err.print(
        f"{how}saved {len(res.saved)} take(s) for {res.speaker} in {res.folder}"
        + (f" ({res.rate} Hz, {res.device}; end of speech to saved: {mean_latency:.0f} ms on average)" if res.saved else "")
        + (f"; {len(res.rejected)} rejected" if res.rejected else "")
        + (f"; {len(res.skipped)} prompt(s) skipped" if res.skipped else "")
    )
    if res.flagged:
        takes = "; ".join(f"{s.path.name} heard {m.heard} ({DIGIT_WORDS[m.heard]}), expected {m.expected} "
                          f"({DIGIT_WORDS[m.expected]})" for s, m in res.flagged)
        redo = ",".join(str(d) for d in sorted({m.expected for _, m in res.flagged}))
        err.print(f"kept {len(res.flagged)} take(s) the model heard as another digit: {takes}; if one was said wrong, "
                  f"delete its file and record that digit again (`audrey record --speaker {res.speaker} --digits {redo}` "
                  f"for all of them)", soft_wrap=True)
    err.print("takes per digit: " + "  ".join(f"{d}:{res.counts.get(d, 0)}" for d in digits))
    if res.missing:
        todo = ", ".join(f"{n}× {DIGIT_WORDS[d]}" for d, n in sorted(res.missing.items()))
        err.print(f"still missing for a balanced set: {todo} (run `audrey record --speaker {res.speaker} --digits "
                  f"{','.join(str(d) for d in sorted(res.missing))}` to continue)")
    else:
        err.print("balanced: every digit has the same number of takes")
