"""speaker.json beside a speaker's takes: the fields AudioMNIST keeps (age, gender, accent, ...),
read, merged with the `audrey record` options, asked on the terminal, and written atomically."""

from __future__ import annotations

import json
from pathlib import Path

from audrey.atomic import atomic_write_bytes
from audrey.console import err
from audrey.data.corpora import SPEAKER_FIELDS, SPEAKER_META, read_speaker_meta

OPTION_FIELDS = {  # speaker.json field -> the `audrey record` option that sets it
    "age": "--age",
    "gender": "--gender",
    "accent": "--accent",
    "native speaker": "--native-speaker",
    "origin": "--origin",
    "recordingroom": "--recording-room",
    "device": "--recording-device",
}


def write_info(folder: Path, info: dict[str, str]) -> Path:
    """speaker.json, atomically (temp file, fsync, rename), like the takes."""
    text = json.dumps(info, indent=2, ensure_ascii=False) + "\n"
    return atomic_write_bytes(folder / SPEAKER_META, text.encode("utf-8"))


def normalize_info(info: dict[str, str]) -> dict[str, str]:
    out = {f: str(info.get(f, "") or "").strip() for f in SPEAKER_FIELDS}
    native = out["native speaker"].lower()
    if native in ("y", "yes", "true", "1"):
        out["native speaker"] = "yes"
    elif native in ("n", "no", "false", "0"):
        out["native speaker"] = "no"
    # fields we do not ask for (e.g. added by hand) are kept
    out.update({k: str(v) for k, v in info.items() if k not in out})
    return out


def ask_info(current: dict[str, str], device_name: str = "") -> dict[str, str]:
    """Ask each field once on the terminal; Enter keeps the shown value (or leaves it empty)."""
    from rich.prompt import Prompt

    err.print("[bold]About you[/] (stored in speaker.json beside your takes, the fields AudioMNIST keeps; Enter skips)")
    hints = {"native speaker": "yes/no", "device": "microphone", "recordingroom": "room"}
    out = dict(current)
    for f in SPEAKER_FIELDS:
        default = current.get(f) or (device_name if f == "device" else "")
        label = f"  {f}" + (f" ({hints[f]})" if f in hints else "")
        out[f] = Prompt.ask(label, default=default, show_default=bool(default), console=err)
    return normalize_info(out)


def prepare_info(folder: Path, given: dict[str, str | None], ask: bool, device_name: str = "") -> dict[str, str]:
    """Read speaker.json, apply fields given as options, ask when `ask`, write it back if it changed."""
    path = folder / SPEAKER_META
    current = read_speaker_meta(folder)
    merged = normalize_info({**current, **{k: v for k, v in given.items() if v is not None}})
    if ask:
        merged = ask_info(merged, device_name)
    if not path.exists() or merged != current:
        write_info(folder, merged)
    return merged
