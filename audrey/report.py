"""Tables for people: rich renderings of stats and evaluations (the CLI's --json prints raw dicts)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console(highlight=False)
TOP_WORDS = 20  # words `data stats` lists; --json has them all


def print_stats(stats) -> None:
    d = stats.to_dict()
    if d["clips"] or not d["utterances"]["utterances"]:
        _print_clip_stats(stats, d)
    if d["utterances"]["utterances"]:
        _print_utterance_stats(stats, d)
    skipped = d["skipped_files"]
    if skipped["files"]:
        kinds = ", ".join(f"{suffix} {n}" for suffix, n in skipped["per_suffix"].items())
        out.print(f"skipped {skipped['files']} non-audio file(s): {escape(kinds)}")
    if d["problems"]:
        out.print(f"[yellow]{len(d['problems'])} problem(s):[/]")
        for line in d["problems"][:20]:
            out.print(f"  {escape(line)}")  # problems name files; a path's "[...]" is not markup
        if len(d["problems"]) > 20:
            out.print(f"  ... and {len(d['problems']) - 20} more (see --json)")
    else:
        out.print("[green]no problems found[/]")


def _print_audio(audio: dict) -> None:
    dur = audio["duration_seconds"]
    if dur["min"] is not None:
        out.print(f"duration: min {dur['min']:.2f} s, median {dur['median']:.2f} s, p95 {dur['p95']:.2f} s, "
                  f"max {dur['max']:.2f} s, total {dur['total'] / 60:.1f} min")


def _print_clip_stats(stats, d: dict) -> None:
    out.print(f"[bold]{d['clips']}[/] clips, [bold]{d['speakers']}[/] speakers, [bold]{d['digits']}[/] digits "
              f"from {escape(', '.join(d['roots']))}")
    out.print(f"sources: {d['sources']}   sample rates: {d['sample_rates']}")
    _print_audio(d)
    table = Table(title="clips per speaker and digit")
    table.add_column("speaker")
    for digit in range(10):
        table.add_column(str(digit), justify="right")
    table.add_column("total", justify="right")
    for speaker, digits in sorted(stats.by_speaker_digit.items()):
        table.add_row(escape(speaker), *[str(digits[i]) for i in range(10)], str(sum(digits.values())))
    out.print(table)
    words = d["non_digit_clips"]
    if words["clips"] or words["noise"]:
        out.print(f"not digits (not counted above): [bold]{words['clips']}[/] clips of {len(words['per_word'])} other words "
                  f"from {words['speakers']} speakers, [bold]{words['noise']}[/] background-noise clips")


def _print_utterance_stats(stats, d: dict) -> None:
    u = d["utterances"]
    out.print(f"[bold]{u['utterances']}[/] utterances, [bold]{u['speakers']}[/] speakers, [bold]{u['words']}[/] words "
              f"({u['vocabulary']} distinct), [bold]{u['digits_said']}[/] digits said from {escape(', '.join(d['roots']))}")
    out.print(f"sources: {u['sources']}   sample rates: {u['sample_rates']}")
    out.print(f"{u['only_digits']} utterances are digits only, {u['without_digits']} have no digit; "
              f"digits said: {u['per_digit']}")
    _print_audio(u)
    top = ", ".join(f"{w} {n}" for w, n in list(u["per_word"].items())[:TOP_WORDS])
    if top:
        out.print(f"most said words: {escape(top)}")
    table = Table(title="utterances per speaker")
    for col in ("speaker", "utterances", "words", "digits"):
        table.add_column(col, justify="left" if col == "speaker" else "right")
    for speaker, n in sorted(stats.utterance_speakers.items()):
        table.add_row(escape(speaker), str(n), str(stats.words_per_speaker[speaker]), str(stats.digits_per_speaker[speaker]))
    out.print(table)


def print_evaluation(summary: dict, worst: list[dict]) -> None:
    out.print(f"accuracy [bold]{summary['accuracy']:.2%}[/] on {summary['clips']} clips")
    table = Table(title="per speaker")
    table.add_column("speaker")
    table.add_column("accuracy", justify="right")
    for speaker, acc in summary["per_speaker"].items():
        table.add_row(speaker, f"{acc:.1%}")
    out.print(table)
    table = Table(title="per digit")
    for digit in summary["per_digit"]:
        table.add_column(str(digit), justify="right")
    table.add_row(*[f"{acc:.0%}" for acc in summary["per_digit"].values()])
    out.print(table)
    if worst:
        table = Table(title="most confidently wrong clips")
        for col in ("clip", "digit", "predicted", "confidence"):
            table.add_column(col)
        for w in worst:
            table.add_row(w["path"], str(w["digit"]), str(w["predicted"]), f"{w['confidence']:.2f}")
        out.print(table)


def print_personal(r) -> None:
    takes = sum(r.takes.values())
    out.print(f"personal weights for [bold]{escape(r.speaker)}[/]: {escape(str(r.path))} "
              f"({r.file_bytes / 1e3:.0f} kB: {r.changed} tensors differ from the base"
              + (f", the large ones kept as rank-{r.rank} changes)" if r.rank else ")"))
    out.print(f"adapted on {takes} takes ({min(r.takes.values())}-{max(r.takes.values())} per digit) in {r.adapt_seconds:.1f} s")
    if r.before is None:
        out.print("[yellow]no held-out takes[/]: record 2 or more per digit to measure before/after")
    else:
        out.print(f"on {r.held_out} held-out takes of your voice: base [bold]{r.before:.1%}[/] -> "
                  f"personal [bold]{r.after:.1%}[/] (held-out takes not used; the file uses every take)")
        if len(r.curve) > 1:
            out.print("learning curve: " + ", ".join(f"{p['takes_per_digit']}/digit {p['accuracy']:.1%}" for p in r.curve))
        if r.after < r.before:
            # a base that already hears the voice well can lose a little to its adaptation (AN4 in
            # benchmarks/personal.py); the user should know which one to use
            out.print(f"[yellow]the personal weights hear your held-out takes worse than the base[/] "
                      f"({r.after:.1%} against {r.before:.1%}): keep using the base (listen without --weights), "
                      "or record more takes and personalize again")
    out.print(r.advice)
    if r.rejection is not None:
        j = r.rejection
        out.print(f"rejection fitted to your voice: of your {j['takes']} takes, {j['accepted_before']:.1%} are accepted as the right digit "
                  f"with the base's thresholds, {j['accepted_after']:.1%} with yours")
    out.print(f"use it: audrey listen --weights {escape(str(r.path))}")


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.2%}" if 0 <= v <= 1 else f"{v:.1f}"
    return escape(str(v)) if v not in (None, "") else "-"


def print_runs(rows: list[dict], title: str) -> None:
    table = Table(title=title)
    for col in ("run", "kind", "arch", "data", "split", "epochs", "best val", "test", "after", "seconds", "wandb"):
        table.add_column(col, justify="right" if col in ("epochs", "best val", "test", "after", "seconds") else "left")
    for r in rows:
        table.add_row(*[_cell(r[c]) for c in ("run", "kind", "arch", "data", "split", "epochs", "best val", "test", "after", "seconds", "wandb")])
    out.print(table)


def print_comparison(rows: list[dict], diffs: dict) -> None:
    table = Table(title="runs side by side")
    table.add_column("")
    for r in rows:
        table.add_column(escape(r["run"]), justify="right")
    for key in ("kind", "arch", "data", "split", "epochs", "best val", "test", "after", "seconds"):
        table.add_row(key, *[_cell(r[key]) for r in rows])
    for key, values in diffs.items():
        table.add_row(f"[dim]{escape(key)}[/]", *[_cell(v) for v in values])
    out.print(table)
