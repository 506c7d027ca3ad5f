"""The tracked run: every command that produces results (train, personalize, eval, probe) logs through
a `Tracker`, which writes the same figures twice:

- a local run record, `runs/<time>-<kind>-<name>.json` (config, per-epoch history, summary, tables,
  artifacts), read by `audrey runs list|compare` with no account and no network
  (audrey.tracking.records);
- a Weights & Biases run: offline by default (./wandb/, uploaded later by `audrey runs sync`),
  `online`, or `disabled` (nothing written, no wandb import).

Mode: `--wandb` wins, then WANDB_MODE, then offline. Project, group and tags: the options, then
WANDB_PROJECT, WANDB_RUN_GROUP and WANDB_TAGS (comma-separated), as W&B users expect.

Lineage: a model file is logged as an artifact whose alias is the digest of its weights (`w-<digest>`),
so the same weights are the same artifact version wherever they were logged. A run that starts from a
model (personal weights from a base) declares it as an input: at once when online; when offline W&B
cannot (it needs the server), so the run record keeps the use and `audrey runs sync` declares it after
uploading.
"""

from __future__ import annotations

import json
import os
import platform
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from audrey import DIGIT_WORDS
from audrey.atomic import atomic_write_bytes
from audrey.audio.frontend import features, load_clip
from audrey.console import warn
from audrey.errors import AudreyError
from audrey.models.modelfile import code_version
from audrey.plots import pyplot
from audrey.tracking.records import RUNS_DIR

MODES = ("online", "offline", "disabled")


def resolve_mode(mode: str | None) -> str:
    mode = (mode or os.environ.get("WANDB_MODE") or "offline").lower()
    if mode == "dryrun":  # W&B's old name for offline
        mode = "offline"
    if mode not in MODES:
        raise AudreyError(f"W&B mode {mode!r} is not one of {', '.join(MODES)} (--wandb or WANDB_MODE)")
    return mode


@dataclass(frozen=True)
class TrackingOptions:
    """What the CLI's --wandb / --project / --group / --tag options say (None: the environment's)."""

    mode: str | None = None
    project: str | None = None
    group: str | None = None
    tags: tuple[str, ...] = ()

    def resolved(self) -> dict:
        env_tags = [t.strip() for t in os.environ.get("WANDB_TAGS", "").split(",") if t.strip()]
        return {"mode": resolve_mode(self.mode),
                "project": self.project or os.environ.get("WANDB_PROJECT") or "audrey",
                "group": self.group or os.environ.get("WANDB_RUN_GROUP"),
                "tags": list(self.tags) or env_tags}


def system_info() -> dict:
    return {"code_version": code_version(), "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}


def slug(text: str) -> str:
    """A W&B artifact name / file-name-safe version of `text`."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.")[:100] or "run"


@dataclass
class Tracker:
    """One run. Use as a context manager (or call finish()); every method is cheap when disabled."""

    kind: str  # train | personalize | eval | probe
    config: dict
    options: TrackingOptions = field(default_factory=TrackingOptions)
    name: str | None = None
    runs_dir: Path = RUNS_DIR

    def __post_init__(self):
        opts = self.options.resolved()
        self.mode = opts["mode"]
        self.started = time.time()
        self.seconds = 0.0  # spent inside this tracker's calls: the logging overhead
        self.timing: dict[str, float] = {}  # ...by kind of call (per-epoch `log` vs one-off tables, artifacts)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.started))
        self.id = f"{stamp}-{self.kind}-{slug(self.name or 'run')}"
        self.record = {"id": self.id, "kind": self.kind, "name": self.name,
                       "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started)),
                       "config": self.config, "system": system_info(), "history": [], "summary": {}, "tables": {},
                       "artifacts": [], "uses": [], "wandb": {"mode": self.mode, "project": opts["project"],
                                                              "group": opts["group"], "tags": opts["tags"]}}
        self.run = None
        if self.mode == "disabled":
            return
        t = time.perf_counter()
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            self.run = wandb.init(project=opts["project"], group=opts["group"], tags=opts["tags"] or None,
                                  name=self.name, job_type=self.kind, mode=self.mode, reinit="create_new",
                                  config={**self.config, "system": self.record["system"]},
                                  dir=os.environ.get("WANDB_DIR"))
        except Exception as exc:  # no network, no login, bad project name...
            raise AudreyError(f"W&B could not start a {self.mode} run ({str(exc).splitlines()[0]}); "
                              "use --wandb offline (or disabled)") from None
        self.record["wandb"].update({"id": self.run.id, "dir": str(Path(self.run.dir).parent),
                                     "entity": getattr(self.run, "entity", None) if self.mode == "online" else None})
        self._spent("init", t)

    def _spent(self, what: str, since: float) -> None:
        """Account the time since `since` to `what`: the logging overhead, by kind of call."""
        dt = time.perf_counter() - since
        self.seconds += dt
        self.timing[what] = self.timing.get(what, 0.0) + dt

    # --- what runs log ---

    def log(self, metrics: dict, step: int | None = None) -> None:
        """Scalars for one step (an epoch): kept in the record's history and sent to W&B."""
        t = time.perf_counter()
        self.record["history"].append({**({"step": step} if step is not None else {}), **metrics})
        if self.run is not None:
            self.run.log(metrics, step=step)
        self._spent("log", t)

    def summary(self, values: dict) -> None:
        t = time.perf_counter()
        self.record["summary"].update(values)
        if self.run is not None:
            for key, value in values.items():
                self.run.summary[key] = value
        self._spent("summary", t)

    def table(self, key: str, columns: list[str], rows: list[list], media: dict[str, list] | None = None) -> None:
        """A table: plain values in the record; in W&B, plus `media` columns (name -> a wandb.Audio or
        wandb.Image per row)."""
        t = time.perf_counter()
        self.record["tables"][key] = {"columns": columns, "rows": rows}
        if self.run is not None:
            import wandb

            media = media or {}
            data = [list(r) + [m[i] for m in media.values()] for i, r in enumerate(rows)]
            self.run.log({key: wandb.Table(columns=list(columns) + list(media), data=data)})
        self._spent("table", t)

    def confusion(self, key: str, truth: list[int], predicted: list[int], labels: list[str]) -> None:
        t = time.perf_counter()
        n = len(labels)
        matrix = [[0] * n for _ in range(n)]
        for a, b in zip(truth, predicted):
            matrix[a][b] += 1
        self.record["tables"][key] = {"columns": ["true \\ predicted", *labels],
                                      "rows": [[labels[i], *matrix[i]] for i in range(n)]}
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.plot.confusion_matrix(y_true=list(truth), preds=list(predicted), class_names=labels)})
        self._spent("confusion", t)

    def image(self, key: str, png: Path) -> None:
        t = time.perf_counter()
        self.record["summary"][key] = str(png)
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Image(str(png))})
        self._spent("image", t)

    def clips(self, key: str, worst: list[dict], frontend) -> None:
        """The misclassified clips as a table: in W&B each row has its wandb.Audio and log-mel image."""
        columns = ["path", "speaker", "digit", "predicted", "confidence", "p_true"]
        rows = [[w[c] for c in columns] for w in worst]
        media = None
        if self.run is not None and worst:
            import wandb

            t = time.perf_counter()
            media = {"audio": [wandb.Audio(w["path"]) for w in worst],
                     "spectrogram": [wandb.Image(spectrogram(Path(w["path"]), frontend)) for w in worst]}
            self._spent("clips", t)
        self.table(key, columns, rows, media)

    def artifact(self, path: Path, name: str, type: str, digest: str, metadata: dict | None = None,
                 uses: list[dict] | None = None) -> dict:
        """Log a file as an artifact version aliased `w-<digest>`; `uses` are the artifacts it came
        from ({"path", "name", "type", "digest"}), declared as this run's inputs (see the docstring)."""
        t = time.perf_counter()
        entry = {"path": str(path), "name": slug(name), "type": type, "alias": f"w-{digest}", "metadata": metadata or {}}
        self.record["artifacts"].append(entry)
        for u in uses or []:
            self.record["uses"].append({**u, "name": slug(u["name"]), "alias": f"w-{u['digest']}",
                                        "declared": self.mode == "online"})
        if self.run is not None:
            import wandb

            for u in uses or []:
                if self.mode == "online":
                    base = wandb.Artifact(slug(u["name"]), type=u["type"], metadata={"digest": u["digest"]})
                    base.add_file(str(u["path"]))
                    self.run.use_artifact(base, aliases=[f"w-{u['digest']}"])
            art = wandb.Artifact(slug(name), type=type, metadata={**(metadata or {}), "digest": digest,
                                                                   "inputs": [f"{slug(u['name'])}:w-{u['digest']}" for u in uses or []]})
            art.add_file(str(path))
            self.run.log_artifact(art, aliases=["latest", f"w-{digest}"])
        self._spent("artifact", t)
        return entry

    # --- the end ---

    def finish(self) -> Path | None:
        """Write the run record and close the W&B run. Returns the record's path (None when disabled)."""
        t = time.perf_counter()
        if self.run is not None:
            self.run.finish()
            self.run = None
        self._spent("finish", t)
        self.record["summary"]["tracking_seconds"] = round(self.seconds, 3)
        self.record["tracking_timing"] = {k: round(v, 4) for k, v in self.timing.items()}
        self.record["seconds"] = round(time.time() - self.started, 2)
        if self.mode == "disabled":
            return None
        path = Path(self.runs_dir) / f"{self.id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while path.exists():  # two runs of one name in the same second: keep both
            n += 1
            self.id = self.record["id"] = f"{self.id.rsplit('~', 1)[0]}~{n}"
            path = Path(self.runs_dir) / f"{self.id}.json"
        atomic_write_bytes(path, json.dumps(self.record, indent=2, default=str).encode(), durable=False)
        return path

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.path = self.finish()
            return
        self.record["summary"]["failed"] = f"{exc[0].__name__}: {exc[1]}"
        try:
            self.path = self.finish()
        except AudreyError as problem:  # e.g. the disk that failed the run cannot take its record either:
            self.path = None            # the run's own error is the one to report, this one is a note
            warn(f"the run record was not kept: {problem}")


def spectrogram(path: Path, frontend) -> np.ndarray:
    """An RGB array of a clip's log-mel spectrogram (what the model sees), for wandb.Image."""
    plt = pyplot()
    feats = features([load_clip(path, frontend)], frontend)[0].numpy()
    fig, ax = plt.subplots(figsize=(3, 1.6), dpi=80)
    ax.imshow(feats, origin="lower", aspect="auto", cmap="magma")
    ax.set_axis_off()
    fig.tight_layout(pad=0)
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image


def log_evaluation(tracker: Tracker, ev, bundle, prefix: str = "test", worst: int = 10) -> None:
    """What every evaluation logs: accuracy, per-speaker and per-digit tables, the confusion matrix,
    the worst clips with audio and spectrogram."""
    tracker.summary({f"{prefix}_acc": ev.accuracy, f"{prefix}_clips": len(ev.clips)})
    tracker.table(f"{prefix}/per_speaker", ["speaker", "accuracy"], [[s, a] for s, a in ev.per_speaker().items()])
    tracker.table(f"{prefix}/per_digit", ["digit", "word", "accuracy"], [[d, DIGIT_WORDS[d], a] for d, a in ev.per_digit().items()])
    tracker.confusion(f"{prefix}/confusion", ev.labels.tolist(), ev.predictions.tolist(), list(bundle.labels))
    tracker.clips(f"{prefix}/worst", ev.worst(worst), bundle.frontend)
