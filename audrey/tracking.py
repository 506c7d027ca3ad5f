"""Weights & Biases tracking, offline by default (no account, no network needed).

`--wandb online|offline|disabled` wins; otherwise WANDB_MODE as W&B users expect; otherwise offline.
Offline runs land in ./wandb/ and can be uploaded later with `wandb sync`.
"""

from __future__ import annotations

import os
from pathlib import Path

MODES = ("online", "offline", "disabled")


def resolve_mode(mode: str | None) -> str:
    from audrey.errors import AudreyError

    mode = (mode or os.environ.get("WANDB_MODE") or "offline").lower()
    if mode == "dryrun":  # W&B's old name for offline
        mode = "offline"
    if mode not in MODES:
        raise AudreyError(f"W&B mode {mode!r} is not one of {', '.join(MODES)}")
    return mode


class Tracker:
    """A thin wrapper so commands never touch wandb directly and 'disabled' costs nothing."""

    def __init__(self, job_type: str, config: dict, mode: str | None = None, project: str | None = None,
                 group: str | None = None, tags: list[str] | None = None, name: str | None = None, dir: Path | None = None):
        self.mode = resolve_mode(mode)
        self.run = None
        if self.mode == "disabled":
            return
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        self.run = wandb.init(
            project=project or os.environ.get("WANDB_PROJECT", "audrey"),
            group=group or os.environ.get("WANDB_RUN_GROUP"),
            tags=tags or None,
            name=name,
            job_type=job_type,
            config=config,
            mode=self.mode,
            dir=str(dir) if dir else os.environ.get("WANDB_DIR"),
        )

    def log(self, metrics: dict, step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def summary(self, values: dict) -> None:
        if self.run is not None:
            for key, value in values.items():
                self.run.summary[key] = value

    @property
    def run_dir(self) -> str | None:
        return self.run.dir if self.run is not None else None

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None
