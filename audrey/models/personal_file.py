"""The personal weights file (`audrey personalize` writes it, `--weights` reads it): the tensors that
differ from the base model, as safetensors, plus JSON metadata naming the base by the digest of its
weights, the speaker, the takes, the before/after figures and, when the base has a rejection
calibration, its thresholds fitted to the takes. It applies to that base and no other:
`apply_personal` checks the digest. Adaptation itself is audrey.training.personal.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from audrey.atomic import atomic_write_bytes
from audrey.errors import AudreyError
from audrey.models.modelfile import ModelBundle, code_version, load_model, model_digest, read_safetensors

FORMAT = "audrey-personal/1"
SUFFIX = ".personal.safetensors"


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


def read_personal(path: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    meta, tensors = read_safetensors(path, FORMAT, "personal weights file",
                                     "make one with `audrey personalize --speaker NAME`")
    try:
        meta["info"] = json.loads(meta.get("info", "{}"))
    except ValueError:
        raise AudreyError(f"{path}: damaged metadata; make the personal weights again with `audrey personalize`") from None
    return meta, tensors


def apply_personal(base: ModelBundle, weights: Path, base_path: Path | str = "the base model") -> ModelBundle:
    """`base` with the personal weights in `weights` put in place (a new bundle; `base` is untouched)."""
    meta, tensors = read_personal(weights)
    want, have = meta.get("base_digest", ""), model_digest(base.model)
    if want != have:
        named = f" ({meta['base_name']})" if meta.get("base_name") else ""
        raise AudreyError(f"{weights}: personal weights made for another base model{named}, weights {want}; "
                          f"{base_path} has weights {have}. Pass the base they were made from with --model, "
                          f"or personalize again with --base {base_path}")
    model = copy.deepcopy(base.model)
    state = model.state_dict()
    for name, value in tensors.items():
        if name not in state or state[name].shape != value.shape:
            raise AudreyError(f"{weights}: tensor {name} does not fit the {base.arch} architecture; the file is damaged")
        state[name] = value
    model.load_state_dict(state)
    model.eval()
    provenance = {**base.provenance, "personal": {"weights": str(weights), **meta["info"]}}
    return ModelBundle(model, base.frontend, list(base.labels), provenance)


def load_bundle(model: Path, weights: Path | None = None) -> ModelBundle:
    """The model file, with personal weights applied when `weights` is given."""
    bundle, _ = load_model(model)
    return apply_personal(bundle, weights, model) if weights is not None else bundle
