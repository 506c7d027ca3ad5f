"""The personal weights file (`audrey personalize` writes it, `--weights` reads it): what differs
from the base model, as safetensors, plus JSON metadata naming the base by the digest of its
weights, the speaker, the takes, the before/after figures and, when the base has a rejection
calibration, its thresholds fitted to the takes. It applies to that base and no other:
`apply_personal` checks the digest. Adaptation itself is audrey.training.personal.

A changed tensor is stored in one of two ways:
- in full, under its own name (small tensors: BatchNorm scales, the head, the first convolution);
- as a low-rank change, for a large weight W of shape (m, ...): `W.lowrank_u` (m, r) and
  `W.lowrank_v` (r, n), n the product of the other dimensions, so that W = W_base + (u @ v)
  reshaped. Adaptation keeps only the top r singular directions of each large weight's change
  (audrey.training.personal.low_rank_change), which is what makes a file of tens of kilobytes.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from pathlib import Path

import torch

from audrey.atomic import atomic_write_bytes
from audrey.errors import AudreyError
from audrey.models.modelfile import ModelBundle, code_version, default_output, load_model, model_digest, open_format
from audrey.models.safe_file import layout_of

FORMAT = "audrey-personal/1"
SUFFIX = ".personal.safetensors"
REMEDY = "make the personal weights again with `audrey personalize`"
LOW_RANK_U, LOW_RANK_V = ".lowrank_u", ".lowrank_v"
# Tensors with fewer elements are stored in full: factors would save little, and the head carries
# the prototypes (a change of rank up to the number of classes).
LOW_RANK_MIN_ELEMENTS = 4096
NEGLIGIBLE_SINGULAR_VALUE = 1e-6  # relative to the largest: float32 rounding, not a direction of change


def personal_path(speaker: str) -> Path:
    """Where `audrey personalize` writes a speaker's weights by default: models/NAME.personal.safetensors
    (modelfile.default_output: in the user's folder when models/ is the shipped one)."""
    return default_output(f"{speaker}{SUFFIX}")


def changed_tensors(base: torch.nn.Module, personal: torch.nn.Module) -> dict[str, torch.Tensor]:
    b = base.state_dict()
    return {k: v.detach().contiguous().cpu() for k, v in personal.state_dict().items() if not torch.equal(v, b[k])}


def as_matrix(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, columns) of a weight of `shape` seen as a matrix: output units by everything else."""
    return shape[0], math.prod(shape[1:])


def low_rank_eligible(value: torch.Tensor) -> bool:
    return value.is_floating_point() and value.ndim >= 2 and value.numel() >= LOW_RANK_MIN_ELEMENTS


def factor_change(change: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(u, v) with u @ v the best approximation of `change` as a matrix of rank at most `rank` (its
    top singular directions, Eckart-Young); directions float error put there are left out."""
    m, n = as_matrix(tuple(change.shape))
    u, s, vh = torch.linalg.svd(change.detach().reshape(m, n).double(), full_matrices=False)
    r = max(1, min(rank, int((s > s[0] * NEGLIGIBLE_SINGULAR_VALUE).sum())))
    return (u[:, :r] * s[:r]).to(change.dtype).contiguous(), vh[:r].to(change.dtype).contiguous()


def file_tensors(base: torch.nn.Module, personal: torch.nn.Module, rank: int) -> dict[str, torch.Tensor]:
    """What the file holds for `personal`: each changed tensor in full, or (with `rank` > 0, for a
    large weight whose change has at most that rank, as low_rank_change leaves it) its factors."""
    b = base.state_dict()
    out = {}
    for name, value in changed_tensors(base, personal).items():
        m, n = as_matrix(tuple(value.shape)) if value.ndim >= 2 else (0, 0)
        if rank > 0 and low_rank_eligible(value) and rank * (m + n) < m * n:
            out[name + LOW_RANK_U], out[name + LOW_RANK_V] = factor_change(value - b[name], rank)
        else:
            out[name] = value
    return out


def expected_layout(base_layout: dict, found: dict) -> dict:
    """The base's layout, plus the factor pair a low-rank change of each large base weight may be
    stored as, with the rank the file's `.lowrank_u` gives (1 up to the matrix's smaller side)."""
    want = dict(base_layout)
    for name, (_, shape) in found.items():
        target = name[: -len(LOW_RANK_U)]
        if not name.endswith(LOW_RANK_U) or target not in base_layout or len(shape) != 2:
            continue
        dtype, base_shape = base_layout[target]
        if len(base_shape) < 2:
            continue
        m, n = as_matrix(tuple(base_shape))
        r = shape[1]
        if 1 <= r <= min(m, n):
            want[name], want[target + LOW_RANK_V] = (dtype, (m, r)), (dtype, (r, n))
    return want


def check_factors(file, found: dict) -> None:
    """Each low-rank change is a whole pair, and no tensor is stored both ways."""
    for name in found:
        for mine, other in ((LOW_RANK_U, LOW_RANK_V), (LOW_RANK_V, LOW_RANK_U)):
            if name.endswith(mine):
                target = name[: -len(mine)]
                if target + other not in found:
                    raise file.error(f"the low-rank change of {target} lacks {target + other}")
                if target in found:
                    raise file.error(f"{target} is stored both in full and as a low-rank change")


def personal_state(base: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The base's state dict with the file's tensors put in place (factors multiplied out)."""
    state = base.state_dict()
    for name, value in tensors.items():
        if name.endswith(LOW_RANK_U):
            target = name[: -len(LOW_RANK_U)]
            change = value @ tensors[target + LOW_RANK_V]
            state[target] = state[target] + change.reshape(state[target].shape).to(state[target].dtype)
        elif not name.endswith(LOW_RANK_V):
            state[name] = value
    return state


def save_personal(path: Path, base: ModelBundle, personal: ModelBundle, info: dict, rank: int = 0) -> Path:
    """What `personal` changed (see file_tensors), with metadata naming the base by its weights' digest."""
    from safetensors.torch import save

    tensors = file_tensors(base.model, personal.model, rank)
    meta = {
        "format": FORMAT,
        "arch": base.arch,
        "base_digest": model_digest(base.model),
        "base_name": str(info.get("base", "")),
        "info": json.dumps({"code_version": code_version(), **info}),
    }
    return atomic_write_bytes(Path(path), save(tensors, metadata=meta))


# the info fields Audrey reads back, each as a known-good value of its kind (schema.unlike); the
# others (takes, take_files, curve, adapt) are the record of how the file was made, shown as they are
INFO_TEMPLATE = {"code_version": "", "base": "", "speaker": "", "source": "", "held_out_takes": 0,
                 "before": None, "after": None, "adapt_seconds": 0.0}


def read_personal(path: Path, base: ModelBundle | None = None, base_path: Path | str = "the base model"
                  ) -> tuple[dict, dict[str, torch.Tensor]]:
    """(metadata with `info` parsed, tensors) of a personal weights file, checked: metadata typed
    (info a JSON object, its rejection thresholds as thresholds.ThresholdSet bounds them); with
    `base`, also made for it (the digest of its weights), and each tensor one of its tensors with
    its dtype and shape, before any tensor is read. Tensors are finite."""
    from audrey.live.thresholds import ThresholdSet
    from audrey.schema import from_fields, parse_json, shown, unlike

    file = open_format(path, FORMAT, "personal weights file", "make one with `audrey personalize --speaker NAME`")
    file = replace(file, remedy=REMEDY)
    meta = dict(file.metadata)
    for key in ("base_digest", "arch"):
        if len(meta.get(key, "")) > 64:
            raise file.error(f"{key} is {shown(meta[key])}; expected at most 64 characters")
    info = parse_json(meta.get("info", "{}"), f"{file.path}: info", REMEDY)
    if not isinstance(info, dict):
        raise file.error(f"info is {shown(info)}, not a JSON object")
    problem = unlike({k: v for k, v in info.items() if k in INFO_TEMPLATE}, INFO_TEMPLATE, "info")
    if problem:
        raise file.error(problem)
    rejection = info.get("rejection")
    if rejection is not None:
        if not isinstance(rejection, dict) or not isinstance(rejection.get("thresholds"), dict):
            raise file.error(f"info field rejection is {shown(rejection)}; expected an object with thresholds")
        from_fields(ThresholdSet, rejection["thresholds"], f"{file.path}: info.rejection.thresholds", REMEDY)
    meta["info"] = info
    if base is not None:
        check_base(file, meta, base, base_path)
    return meta, file.tensors()


def check_base(file, meta: dict, base: ModelBundle, base_path: Path | str) -> None:
    """The personal weights in `file` were made for `base`, and each tensor is one of its own, of its
    dtype and shape (an int64 weight would otherwise be cast silently)."""
    want, have = meta.get("base_digest", ""), model_digest(base.model)
    if want != have:
        named = f" ({meta['base_name']})" if meta.get("base_name") else ""
        raise AudreyError(f"{file.path}: personal weights made for another base model{named}, weights {want}; "
                          f"{base_path} has weights {have}. Pass the base they were made from with --model, "
                          f"or personalize again with --base {base_path}")
    found = file.layout()
    check_factors(file, found)
    file.check_layout(expected_layout(layout_of(base.model), found), f"tensors do not fit the {base.arch} base model", subset=True)


def apply_personal(base: ModelBundle, weights: Path, base_path: Path | str = "the base model") -> ModelBundle:
    """`base` with the personal weights in `weights` put in place (a new bundle; `base` is untouched)."""
    meta, tensors = read_personal(weights, base, base_path)
    model = copy.deepcopy(base.model)
    model.load_state_dict(personal_state(base.model, tensors))  # every tensor checked against the base (read_personal)
    model.eval()
    provenance = {**base.provenance, "personal": {"weights": str(weights), **meta["info"]}}
    return ModelBundle(model, base.frontend, list(base.labels), provenance)


def load_bundle(model: Path, weights: Path | None = None) -> ModelBundle:
    """The model file, with personal weights applied when `weights` is given."""
    bundle, _ = load_model(model)
    return apply_personal(bundle, weights, model) if weights is not None else bundle
