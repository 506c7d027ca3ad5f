"""Training checkpoints without pickle: every tensor in safetensors, everything else as JSON.

A checkpoint holds the model, the optimizer (AdamW moments), the LR schedule, the random
generator and the loop's own state, so `--resume` continues exactly where a killed run stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from audrey.errors import AudreyError
from audrey.atomic import atomic_write_bytes

FORMAT = "audrey-checkpoint/1"


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, generator: torch.Generator, state: dict) -> None:
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for idx, slots in opt["state"].items():
        for key, value in slots.items():
            tensors[f"opt.{idx}.{key}"] = torch.as_tensor(value).contiguous()
    tensors["rng"] = generator.get_state()  # batch order and augmentation
    tensors["rng_global"] = torch.get_rng_state()  # dropout
    metadata = {
        "format": FORMAT,
        "param_groups": json.dumps(opt["param_groups"]),
        "scheduler": json.dumps(scheduler.state_dict()),
        "state": json.dumps(state),
    }
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, generator: torch.Generator) -> dict:
    from audrey.models.modelfile import read_safetensors

    meta, tensors = read_safetensors(path, FORMAT, "training checkpoint", "delete it to start over")
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt_state: dict = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, idx, slot = key.split(".", 2)
                opt_state.setdefault(int(idx), {})[slot] = value
        optimizer.load_state_dict({"state": opt_state, "param_groups": json.loads(meta["param_groups"])})
        scheduler.load_state_dict(json.loads(meta["scheduler"]))
    except (RuntimeError, ValueError, KeyError) as exc:
        raise AudreyError(f"{path}: checkpoint does not match this training set-up ({str(exc).splitlines()[0]}); "
                          "resume with the same options, or delete it to start over") from None
    generator.set_state(tensors["rng"])
    torch.set_rng_state(tensors["rng_global"])
    return json.loads(meta["state"])
