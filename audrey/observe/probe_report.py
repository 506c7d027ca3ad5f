"""A probe report for people and for the run record: rich tables, the accuracy-by-layer plot, and
the table, plot and summary logged to a Tracker (local run record and W&B)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from audrey.observe.activations import short_layer
from audrey.observe.probing import ProbeReport
from audrey.plots import pyplot, save_figure


def print_report(report: ProbeReport, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(highlight=False)
    by_type = report.config.get("control", "type") == "type"
    for target in report.targets:
        rows = report.for_target(target)
        ctrl = "a random label per (speaker, digit), take folds" if by_type else "a random label per clip"
        table = Table(title=f"{target}: {rows[0].classes} classes, {rows[0].clips} clips, {rows[0].split} folds, "
                            f"chance {rows[0].chance:.1%}; control task: {ctrl}")
        table.add_column("layer", no_wrap=True)
        cols = ["acc", "acc takes", "control", "select.", "rand-init"] if by_type else ["acc", "control", "select.", "rand-init"]
        for col in cols:
            table.add_column(col, justify="right", no_wrap=True)
        for r in rows:
            cells = [f"{r.acc:.1%}", f"{r.acc_control_split:.1%}"] if by_type else [f"{r.acc:.1%}"]
            cells += [f"{r.control:.1%}", f"{r.selectivity:+.1%}", "-" if r.random_init is None else f"{r.random_init:.1%}"]
            table.add_row(r.layer, *cells)
        console.print(table)
        console.print(f"  {target} linearly readable from: {report.readable_from(target) or 'no layer'}")
    console.print("  acc: held-out balanced accuracy" + ("; acc takes: the same on take folds (the control's split)" if by_type else "")
                  + "; select. = " + ("acc takes" if by_type else "acc") + " - control; rand-init: the same probe on a "
                  "randomly initialised model of the same architecture")
    for t, why in report.skipped.items():
        console.print(f"  skipped {t}: {why}")


def plot_report(report: ProbeReport, path: str | Path, title: str = "") -> Path:
    plt = pyplot()

    targets = report.targets
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.8), squeeze=False)
    xs = range(len(report.layers))
    for ax, target in zip(axes[0], targets):
        rows = {r.layer: r for r in report.for_target(target)}
        rs = [rows[n] for n in report.layers]
        ax.plot(xs, [r.acc for r in rs], "o-", color="C0", label=f"probe ({rs[0].split})")
        if any(abs(r.acc - r.acc_control_split) > 1e-9 for r in rs):
            ax.plot(xs, [r.acc_control_split for r in rs], "o-", color="C0", alpha=0.35, label="probe (take split)")
        ax.plot(xs, [r.control for r in rs], "s--", color="C3", label="control task")
        if rs[0].random_init is not None:
            ax.plot(xs, [r.random_init for r in rs], "^:", color="C2", label="random-init model")
        ax.axhline(rs[0].chance, color="grey", lw=1, ls="-.", label="chance")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([short_layer(n) for n in report.layers], rotation=45)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{target} ({rs[0].classes} classes)")
        ax.set_xlabel("hook point")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out balanced accuracy")
    axes[0][0].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=120)


def log_report(tracker, report: ProbeReport, png: Path | None = None) -> None:
    """The probe table, the plot and a summary per target, in the run record and W&B."""
    if tracker is None:
        return
    cols = list(asdict(report.rows[0]))
    tracker.table("probes/table", cols, [list(asdict(r).values()) for r in report.rows])
    if png is not None:
        tracker.image("probes/plot", png)
    summary = {}
    for t in report.targets:
        rows = report.for_target(t)
        summary[f"probes/{t}/last_layer_acc"] = rows[-1].acc
        summary[f"probes/{t}/best_acc"] = max(r.acc for r in rows)
        summary[f"probes/{t}/readable_from"] = report.readable_from(t) or "none"
    tracker.summary(summary)
