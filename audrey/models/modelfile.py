"""One model file: safetensors weights plus JSON metadata (architecture, frontend, labels, provenance).

Loading reads tensors and JSON only; nothing in the file is ever executed (no pickle).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from audrey import DIGIT_WORDS, __version__
from audrey.atomic import atomic_write_bytes
from audrey.errors import AudreyError
from audrey.audio.frontend import FrontendConfig
from audrey.models.hooks import HookedModule
from audrey.models import ARCHITECTURES, arch_of, build_model, config_dict

FORMAT = "audrey-model/1"
LABELS = [str(d) for d in range(10)]


@dataclass
class ModelBundle:
    """A model with everything needed to feed it and to say where it came from."""

    model: HookedModule
    frontend: FrontendConfig
    labels: list[str] = field(default_factory=lambda: list(LABELS))
    provenance: dict = field(default_factory=dict)

    @property
    def arch(self) -> str:
        return arch_of(self.model)


def code_version() -> str:
    """audrey's version plus the git commit when running from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+{commit}" if commit else __version__


def companion_path(model_path: str | Path, suffix: str) -> Path:
    """The file that belongs to one model: models/starter.safetensors + ".ood.safetensors" ->
    models/starter.ood.safetensors. Rejection, OOD and probe files are found this way."""
    model_path = Path(model_path)
    name = model_path.name
    stem = name[: -len(".safetensors")] if name.endswith(".safetensors") else model_path.stem
    return model_path.with_name(stem + suffix)


def model_digest(model: torch.nn.Module) -> str:
    """A digest of the weights (not of the file: provenance may change, the weights may not).
    Sidecars (rejection calibration, OOD statistics, probes, personal weights) name their model by it."""
    import hashlib

    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def save_model(bundle: ModelBundle, path: str | Path, extra_tensors: dict[str, torch.Tensor] | None = None) -> Path:
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in bundle.model.state_dict().items()}
    for name, value in (extra_tensors or {}).items():
        tensors[f"extra.{name}"] = value.detach().contiguous().cpu()
    metadata = {
        "format": FORMAT,
        "arch": bundle.arch,
        "model_config": json.dumps(config_dict(bundle.model)),
        "frontend": json.dumps(bundle.frontend.to_dict()),
        "labels": json.dumps(bundle.labels),
        "provenance": json.dumps({"code_version": code_version(), **bundle.provenance}),
    }
    return atomic_write_bytes(Path(path), save(tensors, metadata=metadata))


def read_safetensors(path: str | Path, fmt: str, what: str, remedy: str = "",
                     tensors: bool = True) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata, tensors) of one of Audrey's safetensors files (model files, personal weights,
    calibration, OOD statistics, probes, checkpoints) whose metadata says `format: fmt`; with
    `tensors=False` only the metadata is read. Every failure is one line that names the file, says
    what is wrong with it, and ends with `remedy` (what to do)."""
    from safetensors import safe_open

    path = Path(path)
    tail = f"; {remedy}" if remedy else ""
    if not path.is_file():
        raise AudreyError(f"{path}: no such {what}{tail}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            found = {k: fh.get_tensor(k) for k in fh.keys()} if tensors else {}
    except Exception as exc:  # SafetensorError and friends: truncated, or not safetensors at all
        raise AudreyError(f"{path}: not a readable {what} ({str(exc).splitlines()[0]}; it may be truncated){tail}") from None
    if meta.get("format") != fmt:
        hint = " (it is a model file: pass it with --model)" if meta.get("format") == FORMAT else ""
        raise AudreyError(f"{path}: not an Audrey {what} (format {meta.get('format')!r}, expected {fmt!r}){hint}{tail}")
    return meta, found


def read_header(path: Path) -> dict:
    """The metadata of a model file, without reading its tensors."""
    return read_safetensors(path, FORMAT, "model file", tensors=False)[0]


def load_model(path: str | Path, expect_arch: str | None = None) -> tuple[ModelBundle, dict[str, torch.Tensor]]:
    """(bundle, extra tensors) from a model file. Refuses other formats, architectures and damage."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_header(path)
    arch = meta.get("arch", "")
    if arch not in ARCHITECTURES:
        raise AudreyError(f"{path}: architecture {arch!r} is not one this audrey knows ({', '.join(ARCHITECTURES)})")
    if expect_arch and arch != expect_arch:
        raise AudreyError(f"{path}: holds a {arch} model, not a {expect_arch}; pick a {expect_arch} file or --model {arch}")
    try:
        model = build_model(arch, **json.loads(meta["model_config"]))
        frontend = FrontendConfig.from_dict(json.loads(meta["frontend"]))
        labels = json.loads(meta["labels"])
        provenance = json.loads(meta.get("provenance", "{}"))
    except (KeyError, ValueError, TypeError) as exc:
        raise AudreyError(f"{path}: damaged metadata ({exc}); re-export the model") from None
    try:
        tensors = load_file(str(path))
    except Exception as exc:
        raise AudreyError(f"{path}: weights unreadable ({str(exc).splitlines()[0]}); the file may be truncated") from None
    extra = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
    state = {k: v for k, v in tensors.items() if not k.startswith("extra.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)
        raise AudreyError(f"{path}: weights do not fit the {arch} architecture it names ({first})") from None
    model.eval()
    return ModelBundle(model, frontend, labels, provenance), extra


def describe(bundle: ModelBundle) -> dict:
    params = sum(p.numel() for p in bundle.model.parameters())
    return {
        "arch": bundle.arch,
        "params": params,
        "config": config_dict(bundle.model),
        "frontend": asdict(bundle.frontend),
        "labels": [DIGIT_WORDS[int(label)] if label.isdigit() else label for label in bundle.labels],
        "provenance": bundle.provenance,
    }
