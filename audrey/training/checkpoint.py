"""Training checkpoints without pickle: every tensor in safetensors, everything else as JSON.

A checkpoint holds the model, the optimizer (AdamW moments), the LR schedule, the random
generator and the loop's own state, so `--resume` continues exactly where a killed run stopped.

Reading one is checked in two steps, each failure one line naming the file: `open_checkpoint`
needs no model (format, sizes, JSON, the loop state's schema, the RNG tensors), so `--resume`
refuses a damaged checkpoint before any corpus is read; `load_checkpoint` then compares every
tensor's shape with the model and optimizer being resumed before loading any of them.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from rich.markup import escape

from audrey.atomic import atomic_write_bytes
from audrey.console import err
from audrey.models.modelfile import open_format
from audrey.models.safe_file import SafeFile, first_line, layout_of, open_safe
from audrey.schema import bounded, from_fields, parse_json, shown, unlike

FORMAT = "audrey-checkpoint/1"
WHAT = "training checkpoint"
REMEDY = "delete it to start over"
MISMATCH = "checkpoint does not match this training set-up"
MISMATCH_REMEDY = "resume with the same options, or delete it to start over"
RNG_TENSORS = ("rng", "rng_global")  # the batch-order/augmentation generator, torch's global one (dropout)
OPT_SLOT = re.compile(r"opt\.(\d+)\.(step|exp_avg|exp_avg_sq|max_exp_avg_sq)")  # AdamW's per-parameter state
MAX_EPOCHS = 100_000


@dataclass(frozen=True)
class LoopState:
    """The training loop's own state, as the checkpoint's "state" JSON holds it (plus `history`,
    one record per epoch, checked in `loop_state`)."""

    epoch: int = bounded(0, 1, MAX_EPOCHS)  # a checkpoint is written after an epoch
    best_acc: float = bounded(-1.0, -1.0, 1.0)  # -1: no validation set
    best_loss: float = bounded(math.inf, 0.0, math.inf)  # inf: no validation set
    best_epoch: int = bounded(0, 1, MAX_EPOCHS)  # the first epoch always counts as the best so far
    seconds: float = bounded(0.0, 0.0, 1e9)

    def inconsistency(self) -> str | None:
        if self.best_epoch > self.epoch:
            return f"best_epoch {self.best_epoch} is after epoch {self.epoch}"
        return None


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


def open_checkpoint(path: Path) -> SafeFile:
    """The checkpoint's checked header: what can be checked without the model being resumed."""
    file = open_format(path, FORMAT, WHAT, REMEDY)
    for key in ("param_groups", "scheduler"):
        parse_json(file.metadata.get(key), f"{path}: {key}", REMEDY)
    loop_state(file)
    rng = {"U8": tuple(torch.get_rng_state().shape)}  # a CPU generator's state: the same size for both
    for name in RNG_TENSORS:
        if name not in file.entries:
            raise file.error(f"the random generator state {name} is missing, so the run cannot continue exactly")
        entry = file.entries[name]
        if {entry.dtype: entry.shape} != rng:
            raise file.error(f"the random generator state {name} is {entry.dtype} {list(entry.shape)}, "
                             f"expected U8 {list(rng['U8'])}")
    return file


def loop_state(file: SafeFile) -> dict:
    """The "state" JSON as `train` keeps it (a dict), after checking it against LoopState."""
    where = f"{file.path}: state"
    data = parse_json(file.metadata.get("state"), where, REMEDY)
    if not isinstance(data, dict):
        raise file.error(f"state is {shown(data)}, not a JSON object")
    history = data.get("history")
    fields = from_fields(LoopState, {k: v for k, v in data.items() if k != "history"}, where, REMEDY)
    records_ok = isinstance(history, list) and all(
        isinstance(r, dict) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r.values())
        for r in history)
    if not records_ok or len(history) != fields.epoch:
        raise file.error(f"state field history is {shown(history)}; expected one record of numbers per epoch ({fields.epoch})")
    return {**asdict(fields), "history": history}


def resume_point(path: Path | None) -> Path | None:
    """For `--resume`: the checkpoint to continue from, its header already checked, so that a
    damaged one is refused before any work; None, with a one-line note, when there is none."""
    if path is None:
        return None
    if not path.exists():
        err.print(f"note: --resume: no checkpoint at {escape(str(path))}; starting from scratch", soft_wrap=True)
        return None
    open_checkpoint(path)
    return path


def best_weights_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.stem + ".best.safetensors")


def save_weights(path: Path, weights: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.contiguous() for k, v in weights.items()}))


def load_weights(path: Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The best weights so far, saved beside the checkpoint: checked against `model` (names,
    shapes, finite values) before they are read."""
    file = open_safe(path, "best-weights file", "it belongs to the checkpoint beside it: delete both to start over")
    replace(file, remedy=MISMATCH_REMEDY).check_layout(layout_of(model), "best weights do not match this training set-up")
    return file.tensors()


def optimizer_layout(file: SafeFile, optimizer: torch.optim.Optimizer) -> dict:
    """What each optimizer tensor in the file must be: a step counter, or moments shaped like
    the parameter they belong to. A name that is not an AdamW slot of a parameter is unexpected."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    out = {}
    for name in file.entries:
        if not name.startswith("opt."):
            continue
        match = OPT_SLOT.fullmatch(name)
        if not match or int(match.group(1)) >= len(params):
            raise replace(file, remedy=MISMATCH_REMEDY).error(f"{MISMATCH} (unexpected optimizer tensor {name[:60]})")
        shape = () if match.group(2) == "step" else tuple(params[int(match.group(1))].shape)
        out[name] = ("F32", shape)
    return out


def load_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, generator: torch.Generator) -> dict:
    file = open_checkpoint(path)
    state = loop_state(file)
    mismatch = replace(file, remedy=MISMATCH_REMEDY)
    rng = {name: (file.entries[name].dtype, file.entries[name].shape) for name in RNG_TENSORS}
    expected = {**{f"model.{k}": v for k, v in layout_of(model).items()}, **optimizer_layout(file, optimizer), **rng}
    mismatch.check_layout(expected, MISMATCH)  # wrong sizes are refused here, before anything is loaded
    groups = parse_json(file.metadata["param_groups"], f"{path}: param_groups", REMEDY)
    sched = parse_json(file.metadata["scheduler"], f"{path}: scheduler", REMEDY)
    for key, value, template in (("param_groups", groups, optimizer.state_dict()["param_groups"]),
                                 ("scheduler", sched, scheduler.state_dict())):
        problem = unlike(value, template, key)
        if problem:
            raise mismatch.error(f"{MISMATCH} ({problem})")
    if [g["params"] for g in groups] != [g["params"] for g in optimizer.state_dict()["param_groups"]]:
        raise mismatch.error(f"{MISMATCH} (the optimizer's parameters differ)")
    tensors = file.tensors()
    try:
        model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        opt_state: dict = {}
        for key, value in tensors.items():
            if key.startswith("opt."):
                _, idx, slot = key.split(".", 2)
                opt_state.setdefault(int(idx), {})[slot] = value
        optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
        scheduler.load_state_dict(sched)
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise mismatch.error(f"{MISMATCH} ({first_line(exc)})") from None
    try:
        generator.set_state(tensors["rng"])
        torch.set_rng_state(tensors["rng_global"])
    except RuntimeError as exc:
        raise file.error(f"the random generator state is damaged ({first_line(exc)})") from None
    return state
