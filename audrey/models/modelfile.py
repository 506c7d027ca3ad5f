"""One model file: safetensors weights plus JSON metadata (architecture, frontend, labels, provenance).

Loading reads tensors and JSON only; nothing in the file is ever executed (no pickle), and every
part of it is checked before use (safe_file for the bytes, audrey.schema for the metadata).
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from audrey import DIGIT_WORDS, __version__
from audrey.atomic import atomic_write_bytes
from audrey.errors import AudreyError
from audrey.audio.frontend import FrontendConfig
from audrey.models.hooks import HookedModule
from audrey.models import ARCHITECTURES, arch_of, build, config_dict, config_from_dict, weight_layout
from audrey.models.safe_file import SafeFile, open_safe
from audrey.schema import parse_json, shown

FORMAT = "audrey-model/1"
LABELS = [str(d) for d in range(10)]
REMEDY = "re-export the model, or train a new one with `audrey train`"


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


SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "models"  # the starter and its companions, as Audrey ships them


def user_models_dir() -> Path:
    """Where commands write the companions of a shipped model: $AUDREY_DATA/models, by default
    ~/.local/share/audrey/models (or under $XDG_DATA_HOME)."""
    import os

    root = os.environ.get("AUDREY_DATA") or Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "audrey"
    return Path(root) / "models"


def is_shipped(path: str | Path) -> bool:
    """Whether `path` is in the folder of the files Audrey ships (models/ beside the package)."""
    return Path(path).resolve().parent == SHIPPED_MODELS.resolve()


def default_output(name: str) -> Path:
    """Where a command writes a new model file NAME by default: models/NAME in the working folder,
    or in user_models_dir() when that is the shipped models folder (working in a checkout of Audrey),
    which no command changes."""
    path = Path("models") / name
    return user_models_dir() / name if is_shipped(path) else path


def derived_path(model_path: str | Path, suffix: str) -> Path:
    """Where a command writes a companion of `model_path` by default: beside it (companion_path),
    except for a shipped model, whose folder no command changes: then in user_models_dir()."""
    path = companion_path(model_path, suffix)
    return user_models_dir() / path.name if is_shipped(path) else path


def found_companion(model_path: str | Path, suffix: str) -> Path:
    """Where a companion of `model_path` is read from by default: the one a command wrote
    (derived_path) when there is one, else the one beside the model (for the starter: the shipped one)."""
    derived = derived_path(model_path, suffix)
    return derived if derived.exists() else companion_path(model_path, suffix)


def writable_output(path: str | Path, option: str) -> Path:
    """`path` (given with `option`), refused when it is in the shipped models folder."""
    path = Path(path)
    if is_shipped(path):
        raise AudreyError(f"{option} {path}: that folder holds the files Audrey ships, which no command changes; "
                          f"write it elsewhere (leave {option} out to write it to {user_models_dir()})")
    return path


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


def open_format(path: str | Path, fmt: str, what: str, remedy: str = "") -> SafeFile:
    """The checked header (see safe_file.open_safe) of one of Audrey's safetensors files whose
    metadata says `format: fmt`. Nothing is read beyond the header yet."""
    file = open_safe(path, what, remedy)
    found = file.metadata.get("format")
    if found != fmt:
        hint = " (it is a model file: pass it with --model)" if found == FORMAT else ""
        raise file.error(f"not an Audrey {what} (format {shown(found)}, expected {shown(fmt)}){hint}")
    return file


def load_model(path: str | Path, expect_arch: str | None = None) -> tuple[ModelBundle, dict[str, torch.Tensor]]:
    """(bundle, extra tensors) from a model file. Refuses other formats, architectures and damage.

    Order matters: metadata fields are type- and range-checked, then the tensor shapes the header
    declares are compared with those of the architecture the metadata describes (built on the meta
    device, which allocates nothing), and only then is the model built and its weights read. A
    crafted file can therefore not make this allocate more than the (bounded) file holds."""
    path = Path(path)
    file = open_format(path, FORMAT, "model file")
    meta = file.metadata
    arch = meta.get("arch", "")
    if arch not in ARCHITECTURES:
        raise AudreyError(f"{path}: architecture {shown(arch)} is not one this audrey knows ({', '.join(ARCHITECTURES)})")
    if expect_arch and arch != expect_arch:
        raise AudreyError(f"{path}: holds a {arch} model, not a {expect_arch}; pick a {expect_arch} file or --model {arch}")
    file = replace(file, remedy=REMEDY)

    def metadata_json(key: str, default: str | None = None):
        return parse_json(meta.get(key, default), f"{path}: {key}", REMEDY)

    cfg = config_from_dict(arch, metadata_json("model_config"), f"{path}: model_config", REMEDY)
    frontend = FrontendConfig.from_dict(metadata_json("frontend"), f"{path}: frontend", REMEDY)
    labels, provenance = metadata_json("labels"), metadata_json("provenance", "{}")
    if labels != LABELS:
        raise file.error(f"labels are {shown(labels)}; an Audrey model's are the ten digits \"0\" to \"9\"")
    if cfg.n_classes != len(LABELS):
        raise file.error(f"model_config field n_classes is {cfg.n_classes}; an Audrey model has one class per digit ({len(LABELS)})")
    if cfg.n_mels != frontend.n_mels:
        raise file.error(f"model_config field n_mels is {cfg.n_mels} but its frontend makes {frontend.n_mels} mel bands")
    if not isinstance(provenance, dict):
        raise file.error(f"provenance is {shown(provenance)}, not a JSON object")
    file.check_layout(weight_layout(arch, cfg), f"weights do not fit the {arch} architecture it names", optional_prefix="extra.")
    tensors = file.tensors()
    extra = {k[len("extra.") :]: v for k, v in tensors.items() if k.startswith("extra.")}
    state = {k: v for k, v in tensors.items() if not k.startswith("extra.")}
    model = build(arch, cfg)
    model.load_state_dict(state, strict=True)  # cannot fail: the layout was checked
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
