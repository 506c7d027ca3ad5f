"""The personal weights file (`audrey personalize` writes it, `--weights` reads it): the tensors that
differ from the base model, as safetensors, plus JSON metadata naming the base by the digest of its
weights, the speaker, the takes, the before/after figures and, when the base has a rejection
calibration, its thresholds fitted to the takes. It applies to that base and no other:
`apply_personal` checks the digest. Adaptation itself is audrey.training.personal.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import torch

from audrey.atomic import atomic_write_bytes
from audrey.errors import AudreyError
from audrey.models.modelfile import (ModelBundle, code_version, is_shipped, load_model, model_digest, open_format,
                                     user_models_dir)
from audrey.models.safe_file import layout_of

FORMAT = "audrey-personal/1"
SUFFIX = ".personal.safetensors"
REMEDY = "make the personal weights again with `audrey personalize`"


def personal_path(speaker: str) -> Path:
    """Where `audrey personalize` writes a speaker's weights by default: models/NAME.personal.safetensors
    in the working folder, or in the user's folder (modelfile.user_models_dir) when that is the
    shipped models folder (working in a checkout of Audrey), which no command changes."""
    path = Path("models") / f"{speaker}{SUFFIX}"
    return user_models_dir() / path.name if is_shipped(path) else path


def changed_tensors(base: torch.nn.Module, personal: torch.nn.Module) -> dict[str, torch.Tensor]:
    b = base.state_dict()
    return {k: v.detach().contiguous().cpu() for k, v in personal.state_dict().items() if not torch.equal(v, b[k])}


def save_personal(path: Path, base: ModelBundle, personal: ModelBundle, info: dict) -> Path:
    """The tensors `personal` changed, with metadata naming the base by its weights' digest."""
    from safetensors.torch import save

    tensors = changed_tensors(base.model, personal.model)
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
    file.check_layout(layout_of(base.model), f"tensors do not fit the {base.arch} base model", subset=True)


def apply_personal(base: ModelBundle, weights: Path, base_path: Path | str = "the base model") -> ModelBundle:
    """`base` with the personal weights in `weights` put in place (a new bundle; `base` is untouched)."""
    meta, tensors = read_personal(weights, base, base_path)
    model = copy.deepcopy(base.model)
    state = model.state_dict()
    state.update(tensors)  # every tensor checked against the base (read_personal)
    model.load_state_dict(state)
    model.eval()
    provenance = {**base.provenance, "personal": {"weights": str(weights), **meta["info"]}}
    return ModelBundle(model, base.frontend, list(base.labels), provenance)


def load_bundle(model: Path, weights: Path | None = None) -> ModelBundle:
    """The model file, with personal weights applied when `weights` is given."""
    bundle, _ = load_model(model)
    return apply_personal(bundle, weights, model) if weights is not None else bundle
