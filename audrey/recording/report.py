"""`audrey recordings`: takes per digit for each speaker, speaker.json, and the takes that fail
today's quality gate (the same gate.check_take a take passed when it was recorded)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from audrey.audio import gate
from audrey.audio.waveform import audio_files
from audrey.data.corpora import SPEAKER_META, parse_clip_name, read_speaker_meta
from audrey.errors import AudreyError


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
        files = audio_files(folder)
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
