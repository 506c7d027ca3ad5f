"""Model architectures, by name. Each is a frozen config dataclass plus a HookedModule."""

from __future__ import annotations

from dataclasses import asdict, fields

from audrey.errors import AudreyError
from audrey.models.hooks import HookedModule
from audrey.models.cnn import CNN, CNNConfig
from audrey.models.conformer import Conformer, ConformerConfig

ARCHITECTURES = {"cnn": (CNNConfig, CNN), "conformer": (ConformerConfig, Conformer)}


def config_from_dict(arch: str, data: dict):
    if arch not in ARCHITECTURES:
        raise AudreyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    cls = ARCHITECTURES[arch][0]
    known = {f.name for f in fields(cls)}
    if set(data) - known:
        raise AudreyError(f"{arch} config has unknown fields {sorted(set(data) - known)}; upgrade audrey")
    # JSON turns tuples into lists; the frozen dataclasses want tuples back
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def build_model(arch: str, **overrides) -> HookedModule:
    cfg = config_from_dict(arch, overrides)
    return ARCHITECTURES[arch][1](cfg)


def arch_of(model: HookedModule) -> str:
    for name, (_, cls) in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise AudreyError(f"{type(model).__name__} is not an Audrey architecture")


def config_dict(model: HookedModule) -> dict:
    return asdict(model.cfg)
