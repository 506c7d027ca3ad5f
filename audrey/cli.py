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
            err.print(f"[red]error:[/] {exc}", soft_wrap=True)
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


def main() -> None:  # pragma: no cover - console script entry
    app()
