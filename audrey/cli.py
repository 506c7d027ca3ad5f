"""`audrey`: a thin typer layer over the library. Commands parse options and print; the work is in
the modules they call. Every AudreyError becomes one line on stderr and exit status 2.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from audrey.console import err
from audrey.errors import AudreyError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Audrey: a spoken-digit recognizer for your own voice.")
data_app = typer.Typer(no_args_is_help=True, help="Corpora: fetch AudioMNIST, inspect any folder of clips.")
app.add_typer(data_app, name="data")

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "starter.safetensors"


def user_errors(fn):
    """Turn AudreyError (and a few OS errors users cause) into a one-line message, exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AudreyError as exc:
            # escape: paths and messages may hold "[...]", which rich would take for markup and drop
            err.print(f"[red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2)
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130)

    return wrapper


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@data_app.command("fetch")
@user_errors
def data_fetch(
    corpus: str = typer.Argument(..., help="Corpus to fetch: audiomnist"),
    dest: Path = typer.Option(Path("data/audiomnist"), help="Where the corpus goes"),
    source: Optional[str] = typer.Option(None, help="Archive already on disk (path or file:// URL), or another URL"),
    sha256: Optional[str] = typer.Option(None, help="Expected SHA-256 of the archive"),
    expected_clips: int = typer.Option(30_000, help="Clips the archive must hold"),
    force: bool = typer.Option(False, help="Fetch and unpack again even if already verified"),
):
    """Download, verify and unpack a corpus (resumable; progress shown)."""
    from audrey.fetch import fetch_audiomnist

    if corpus.lower() != "audiomnist":
        raise AudreyError(f"unknown corpus {corpus!r}; `audrey data fetch` knows: audiomnist")
    out = fetch_audiomnist(dest, source, sha256, expected_clips, force)
    err.print(f"AudioMNIST ready in {out} ({expected_clips} clips verified)")


@data_app.command("stats")
@user_errors
def data_stats(
    paths: List[Path] = typer.Argument(..., help="Corpus folders (any layout Audrey reads)"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
):
    """Clips per speaker and digit, durations, sample rates and problems."""
    from audrey.report import print_stats
    from audrey.stats import corpus_stats

    stats = corpus_stats(paths)
    if as_json:
        print_json(stats.to_dict())
    else:
        print_stats(stats)


# --- recording (issue 4) ---


@app.command("record")
@user_errors
def record_cmd(
    speaker: str = typer.Option(..., "--speaker", help="Your name in file names: letters, digits, '-'"),
    takes_per_digit: int = typer.Option(5, "--takes-per-digit", help="Takes of each digit to record this session"),
    digits: str = typer.Option("0-9", help="Digits to record, e.g. 0-9 or 1,3,5-7"),
    device: Optional[str] = typer.Option(None, help="Input device: index or part of its name (see `audrey devices`)"),
    rate: Optional[int] = typer.Option(None, help="Sample rate in Hz (default: 16000 if the device offers it)"),
    root: Path = typer.Option(Path("recordings"), help="Folder that holds one folder per speaker"),
    auto: bool = typer.Option(False, "--auto", help="For scripts: PROMPT/SAVED/REJECTED lines on stdout, no keys"),
    take_timeout: float = typer.Option(8.0, help="Seconds to wait for speech after each prompt"),
    max_attempts: int = typer.Option(3, help="Rejected tries before a prompt is skipped"),
    countdown: float = typer.Option(1.0, help="Seconds of 3-2-1 countdown before listening"),
    push_to_talk: bool = typer.Option(False, "--push-to-talk", help="Press space before each take instead of a countdown"),
    seed: Optional[int] = typer.Option(None, help="Seed for the prompt order (default: random)"),
    edit_info: bool = typer.Option(False, "--edit-info", help="Edit speaker.json (age, gender, ...) and exit"),
    age: Optional[str] = typer.Option(None, help="speaker.json: age"),
    gender: Optional[str] = typer.Option(None, help="speaker.json: gender"),
    accent: Optional[str] = typer.Option(None, help="speaker.json: accent"),
    native_speaker: Optional[str] = typer.Option(None, help="speaker.json: native speaker (yes/no)"),
    origin: Optional[str] = typer.Option(None, help="speaker.json: origin"),
    recording_room: Optional[str] = typer.Option(None, help="speaker.json: recording room"),
    recording_device: Optional[str] = typer.Option(None, help="speaker.json: recording device (microphone)"),
):
    """Record your own digits: guided prompts, automatic start/end, a quality gate, atomic saves."""
    from audrey.record import record

    info = {
        "age": age, "gender": gender, "accent": accent, "native speaker": native_speaker,
        "origin": origin, "recordingroom": recording_room, "device": recording_device,
    }
    record(
        speaker, root, takes_per_digit, digits, device, rate, auto, take_timeout, max_attempts,
        countdown, push_to_talk, seed, info, edit_info,
    )


@app.command("devices")
@user_errors
def devices_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table")):
    """List audio input devices (use the index or part of the name with `audrey record --device`)."""
    from audrey.mic import NO_DEVICE, input_devices

    devices = input_devices()
    if not devices:
        raise AudreyError(NO_DEVICE)
    if as_json:
        print_json(devices)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="audio input devices")
    for col in ("", "index", "name", "host API", "channels", "default rate"):
        table.add_column(col)
    for d in devices:
        table.add_row("*" if d["default"] else "", str(d["index"]), d["name"], d["hostapi"], str(d["channels"]), str(d["default_rate"]))
    Console(highlight=False).print(table)


@app.command("recordings")
@user_errors
def recordings_cmd(
    speaker: Optional[str] = typer.Option(None, help="Only this speaker"),
    root: Path = typer.Option(Path("recordings"), help="Folder that holds one folder per speaker"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
):
    """Takes per digit for each speaker, and the takes that fail today's quality gate."""
    from audrey.record import print_recordings, recordings_report

    report = recordings_report(root, speaker)
    if as_json:
        print_json(report)
    else:
        print_recordings(report)


def main() -> None:  # pragma: no cover - console script entry
    app()
