"""The local run records, `runs/<id>.json` (written by audrey.tracking.wandb_run.Tracker): read,
find, headline figures, config differences, learning curves overlaid, and the upload of offline W&B
runs (`audrey runs list|compare|sync`)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from audrey.atomic import atomic_write_bytes
from audrey.errors import AudreyError
from audrey.plots import pyplot, save_figure

RUNS_DIR = Path("runs")


def read_records(runs_dir: Path = RUNS_DIR) -> list[dict]:
    records = []
    for path in sorted(Path(runs_dir).glob("*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # not a run record (or a damaged one): `runs list` shows what it can
        if isinstance(rec, dict) and "kind" in rec:
            rec.setdefault("id", path.stem)
            rec["_path"] = str(path)
            records.append(rec)
    return records


def find_record(ref: str, records: list[dict]) -> dict:
    """A run by its id, any part of it that is unique (`train-cnn`, `0212`), or its record's path."""
    exact = [r for r in records if ref in (r["id"], r["_path"])]
    matches = exact or [r for r in records if ref in r["id"]]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AudreyError(f"run {ref!r}: no such run record in {RUNS_DIR}/; see `audrey runs list`")
    raise AudreyError(f"run {ref!r} matches {len(matches)} runs ({', '.join(m['id'] for m in matches[:4])}); give more of its id")


def headline(rec: dict) -> dict:
    """The figures a comparison table shows for one run."""
    s, cfg = rec.get("summary", {}), rec.get("config", {})
    train = cfg.get("train", {})
    hist = [h for h in rec.get("history", []) if "val_acc" in h]
    return {
        "run": rec["id"], "kind": rec["kind"],
        "arch": train.get("arch") or cfg.get("arch") or "",
        "data": ",".join(Path(d).name for d in cfg.get("data", [])) if isinstance(cfg.get("data"), list) else str(cfg.get("data", "")),
        "split": cfg.get("split", ""),
        "epochs": len(rec.get("history", [])) or "",
        "best val": max(h["val_acc"] for h in hist) if hist else s.get("best_val_acc", ""),
        "test": s.get("test_acc", ""),
        "after": s.get("after", ""),
        "seconds": rec.get("seconds", ""),
        "wandb": rec.get("wandb", {}).get("mode", ""),
    }


def plot_curves(records: list[dict], path: Path) -> Path:
    """Learning curves of several runs overlaid: training loss and validation accuracy per epoch."""
    plt = pyplot()

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for rec in records:
        hist = rec.get("history", [])
        label = f"{rec['id']} ({headline(rec)['arch']})"
        steps = [h.get("step", h.get("epoch", i + 1)) for i, h in enumerate(hist)]
        if any("train_loss" in h for h in hist):
            ax_loss.plot(steps, [h.get("train_loss") for h in hist], marker=".", label=label)
        if any("val_acc" in h for h in hist):
            ax_acc.plot(steps, [100 * h["val_acc"] if "val_acc" in h else None for h in hist], marker=".", label=label)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="validation accuracy (%)", title="validation accuracy (held-out speakers)")
    for ax in (ax_loss, ax_acc):
        ax.grid(lw=0.3)
    ax_acc.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path, dpi=110)


def config_differences(records: list[dict]) -> dict[str, list]:
    """Flattened config keys whose values differ between the runs."""
    def flat(d, prefix=""):
        out = {}
        for k, v in (d or {}).items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    flats = [flat(r.get("config", {})) for r in records]
    keys = sorted(set().union(*flats))
    return {k: [f.get(k) for f in flats] for k in keys if len({json.dumps(f.get(k), default=str) for f in flats}) > 1}


def sync(records: list[dict], runs_dir: Path = RUNS_DIR, dry_run: bool = False) -> list[dict]:
    """Upload the offline W&B runs of these records with `wandb sync`, then declare the inputs their
    artifacts came from (W&B cannot while offline). Marks each record synced. Returns what was done."""
    done = []
    for rec in records:
        wb = rec.get("wandb", {})
        if wb.get("mode") != "offline" or wb.get("synced") or not wb.get("dir"):
            continue
        run_dir = Path(wb["dir"])
        if not run_dir.exists():
            done.append({"run": rec["id"], "status": f"skipped: {run_dir} is gone"})
            continue
        if dry_run:
            done.append({"run": rec["id"], "status": f"would sync {run_dir}"})
            continue
        cmd = [sys.executable, "-m", "wandb", "sync", "--project", wb.get("project") or "audrey", str(run_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()
            raise AudreyError(f"wandb sync {run_dir} failed ({last[-1] if last else 'no output'}); "
                              "check `wandb login` and the network, then run `audrey runs sync` again")
        declared = declare_uses(rec)
        wb["synced"] = True
        path = Path(rec["_path"])
        clean = {k: v for k, v in rec.items() if k != "_path"}
        atomic_write_bytes(path, json.dumps(clean, indent=2, default=str).encode(), durable=False)
        done.append({"run": rec["id"], "status": "synced", "inputs_declared": declared})
    return done


def declare_uses(rec: dict) -> int:
    """After a sync: mark the artifacts a run started from as its inputs, through the W&B API."""
    pending = [u for u in rec.get("uses", []) if not u.get("declared")]
    if not pending:
        return 0
    import wandb

    wb = rec["wandb"]
    api = wandb.Api()
    entity = wb.get("entity") or api.default_entity
    run = api.run(f"{entity}/{wb['project']}/{wb['id']}")
    for u in pending:
        try:
            run.use_artifact(api.artifact(f"{entity}/{wb['project']}/{u['name']}:{u['alias']}"))
            u["declared"] = True
        except Exception as exc:  # the base was never uploaded: lineage stays in the record
            u["declare_error"] = str(exc).splitlines()[0]
    return sum(bool(u.get("declared")) for u in pending)
