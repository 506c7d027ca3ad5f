"""Model architectures, by name. Each is a frozen config dataclass (typed, bounded fields: see
audrey.schema) plus a HookedModule."""

from __future__ import annotations

from dataclasses import asdict

import torch

from audrey.errors import AudreyError
from audrey.models.hooks import HookedModule
from audrey.models.cnn import CNN, CNNConfig
from audrey.models.conformer import Conformer, ConformerConfig
from audrey.models.safe_file import Layout, layout_of
from audrey.schema import from_fields

ARCHITECTURES = {"cnn": (CNNConfig, CNN), "conformer": (ConformerConfig, Conformer)}


def config_from_dict(arch: str, data: dict, where: str | None = None, remedy: str = ""):
    """The architecture's config from untrusted JSON (a model file's metadata, training options):
    every field type- and range-checked; `where` names the source in the one-line error."""
    if arch not in ARCHITECTURES:
        raise AudreyError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    return from_fields(ARCHITECTURES[arch][0], data, where or f"{arch} config", remedy)


def build(arch: str, cfg) -> HookedModule:
    return ARCHITECTURES[arch][1](cfg)


def build_model(arch: str, **overrides) -> HookedModule:
    return build(arch, config_from_dict(arch, overrides))


def weight_layout(arch: str, cfg) -> Layout:
    """The dtype and shape of every tensor the model would hold, found without allocating it
    (built on the meta device): what a file's header is checked against before the real build."""
    with torch.device("meta"):
        return layout_of(build(arch, cfg))


def arch_of(model: HookedModule) -> str:
    for name, (_, cls) in ARCHITECTURES.items():
        if type(model) is cls:
            return name
    raise AudreyError(f"{type(model).__name__} is not an Audrey architecture")


def config_dict(model: HookedModule) -> dict:
    return asdict(model.cfg)
