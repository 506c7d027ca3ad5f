"""Crafted (hostile) files for the file-safety tests: safetensors files rebuilt byte by byte from
a good one, and a runner for code that must not exhaust memory.

Plain functions, imported by tests/test_file_safety.py and by the memory-limited subprocesses
it starts (so the fuzz loop and the crafted files are the same code in both).
"""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STARTER = REPO / "models" / "starter.safetensors"
# the starter's companion files as Audrey ships them, by kind (personal weights: made by personal_file())
SHIPPED_COMPANIONS = {"reject": REPO / "models" / "starter.reject.safetensors",
                      "ood": REPO / "models" / "starter.ood.safetensors",
                      "probes": REPO / "models" / "starter.probes.safetensors"}
HEADROOM = 2 * 2**30  # address space a child may add after its imports; a crafted file asked for 23.9 GB


def split_file(data: bytes) -> tuple[dict, bytes]:
    """(header JSON, tensor bytes) of a safetensors file."""
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8 : 8 + n]), data[8 + n :]


def join_file(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads its header to 8 bytes
    return len(raw).to_bytes(8, "little") + raw + body


def with_metadata(data: bytes, key: str, change) -> bytes:
    """`data` with metadata[key] replaced: `change` gets the parsed JSON value (or the plain string)
    and returns the new one (a str is used as the raw metadata string)."""
    header, body = split_file(data)
    meta = header["__metadata__"]
    try:
        current = json.loads(meta[key]) if key in meta else None
    except ValueError:  # a plain-string value ("arch": "cnn")
        current = meta[key]
    new = change(current)
    meta[key] = new if isinstance(new, str) else json.dumps(new)
    return join_file(header, body)


def set_field(key: str, field: str, value):
    """A `change` for with_metadata: one field of a JSON-object metadata value."""
    def change(obj):
        obj[field] = value
        return obj
    return change


def with_tensor(data: bytes, name: str, values) -> bytes:
    """`data` with the first float32 elements of tensor `name` overwritten (the layout untouched)."""
    header, body = split_file(data)
    start = header[name]["data_offsets"][0]
    packed = struct.pack(f"<{len(values)}f", *values)
    return join_file(header, body[:start] + packed + body[start + len(packed) :])


def with_tensors(data: bytes, change) -> bytes:
    """`data` re-saved with its tensors replaced by `change(tensors)` (a dict of name -> tensor),
    metadata kept: a tensor of another shape or dtype, one added or removed."""
    from safetensors.torch import load, save

    header, _ = split_file(data)
    return save(change(dict(load(data))), metadata=header["__metadata__"])


def personal_file(path: Path) -> Path:
    """Personal weights for the starter, as `audrey personalize` writes them (the head changed in
    full, the last convolution by low-rank factors, fitted rejection thresholds in the info, one of
    them an open -inf)."""
    import copy

    import torch

    from audrey.models.modelfile import load_model
    from audrey.models.personal_file import save_personal

    base, _ = load_model(STARTER)
    personal = copy.deepcopy(base)
    with torch.no_grad():
        personal.model.head.fc.bias += 0.01
        personal.model.head.fc.weight *= 1.01
        w = personal.model.blocks[4].conv.weight  # a rank-1 change: stored as low-rank factors
        w += 1e-3 * torch.outer(torch.linspace(-1, 1, w.shape[0]), torch.linspace(1, 2, w[0].numel())).reshape(w.shape)
    info = {"base": str(STARTER), "speaker": "crafted", "source": "nowhere", "takes": {"0": 3}, "held_out_takes": 0,
            "before": None, "after": None, "curve": [], "adapt": {}, "adapt_seconds": 0.5,
            "rejection": {"thresholds": {"min_p_digit": 0.2, "min_phone_match": -float("inf"), "max_distance": 30.0}}}
    return save_personal(path, base, personal, info, rank=4)


def load_companion(kind: str, path: Path, bundle=None, model: Path = STARTER, run: bool = False) -> None:
    """Read the companion file of `kind` at `path` with the checks of the command that uses it,
    against `bundle` (default: the model file `model`); with `run`, also put what loaded to work on
    a silent clip. Raises AudreyError."""
    import torch

    from audrey.models.modelfile import load_model

    bundle = bundle or load_model(model)[0]
    feats = torch.zeros(1, bundle.frontend.n_mels, bundle.frontend.n_frames)
    with torch.no_grad():
        if kind == "reject":  # as Judge.from_file
            from audrey.live.calibration import Calibration

            cal = Calibration.load(path)
            cal.check_model(bundle, model)
            if run:  # (the phone recogniser's GRU is left out: slow, and its layout was checked)
                cal.distances(bundle.model.embed(feats))
                if cal.detector is not None:
                    cal.detector(feats)
        elif kind == "ood":  # as predict --ood and listen --observe
            from audrey.observe.ood import load_for

            stats = load_for(model, bundle, path, required=True)
            if run:
                stats.score_features(bundle.model, feats)
        elif kind == "probes":  # as listen --observe (Observer.from_file)
            from audrey.observe.observer import Observer
            from audrey.observe.probe_file import ProbeSet

            probes = ProbeSet.load(path)
            probes.check_model(bundle, model)
            if run:
                Observer(bundle, probes).observe_features(feats)
        elif kind == "personal":  # as --weights
            from audrey.models.personal_file import apply_personal

            personal = apply_personal(bundle, path, model)
            if run:
                personal.model(feats)
        else:
            raise ValueError(kind)


# --- the fuzz loop ---------------------------------------------------------------------------------

NASTY = [0, -1, -4, 1, 0.5, 1e7, 1e308, 2**63, -(2**63), "x", "", None, True, [], {}, [1] * 50, "9" * 200,
         float("nan"), float("inf"), -float("inf"), [[[[[]]]]], {"a": {"b": {}}}]
NAN_BITS = [b"\x00\x00\xc0\x7f", b"\x00\x00\x80\x7f", b"\x00\x00\x80\xff", b"\xff\xff\x7f\x7f"]


def mutant(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One (description, bytes) mutant of a safetensors file: raw header bytes, a metadata value,
    a tensor's header entry, tensor bytes, or a truncation."""
    header, body = split_file(data)
    n = int.from_bytes(data[:8], "little")
    kind = rng.choice(["header bytes", "metadata", "metadata", "tensor entry", "tensor bytes", "tensor bytes", "truncate"])
    if kind == "header bytes":
        out = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(0, 8 + n)] = rng.randrange(256)
        return kind, bytes(out)
    if kind == "metadata":
        meta = header["__metadata__"]
        key = rng.choice(sorted(meta))
        try:
            value = json.loads(meta[key])
        except ValueError:
            value = meta[key]
        how = rng.random()
        if isinstance(value, dict) and value and how < 0.7:
            field = rng.choice(sorted(value))
            value[field] = rng.choice(NASTY)
            meta[key] = json.dumps(value)
        elif isinstance(value, list) and value and how < 0.7:
            value[rng.randrange(len(value))] = rng.choice(NASTY)
            meta[key] = json.dumps(value)
        elif how < 0.85:
            meta[key] = meta[key][: rng.randrange(len(meta[key]) + 1)]  # partial JSON
        else:
            meta[key] = json.dumps(rng.choice(NASTY))
        return f"{kind} {key}", join_file(header, body)
    if kind == "tensor entry":
        name = rng.choice(sorted(k for k in header if k != "__metadata__"))
        entry = header[name]
        part = rng.choice(["dtype", "shape", "data_offsets"])
        if part == "shape" and entry["shape"] and rng.random() < 0.6:
            entry["shape"][rng.randrange(len(entry["shape"]))] = rng.choice([0, 1, 4_000_000, 2**40, -1])
        else:
            entry[part] = rng.choice(NASTY + ["F64", "I8", "U8", "F8_E4M3", [0, 2**62]])
        return f"{kind} {name}.{part}", join_file(header, body)
    if kind == "tensor bytes":
        out = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            pos = rng.randrange(0, len(out) - 4) & ~3
            out[pos : pos + 4] = rng.choice(NAN_BITS) if rng.random() < 0.5 else rng.randbytes(4)
        return kind, join_file(header, bytes(out))
    return kind, data[: rng.randrange(len(data))]


def fuzz(path: Path, count: int, seed: int) -> dict:
    """Load `count` seeded mutants of the starter model; what happened, for the parent to judge."""
    import time

    import torch

    from audrey.errors import AudreyError
    from audrey.models.modelfile import load_model

    rng = random.Random(seed)
    good = STARTER.read_bytes()
    start = time.perf_counter()
    loaded, refused, failures, messages = 0, 0, [], set()
    for i in range(count):
        what, data = mutant(good, rng)
        path.write_bytes(data)
        try:
            bundle, _ = load_model(path)
            with torch.no_grad():  # what loads must also run
                bundle.model(torch.zeros(1, bundle.frontend.n_mels, bundle.frontend.n_frames))
            loaded += 1
        except AudreyError as exc:
            refused += 1
            text = str(exc)
            if "\n" in text or not text.startswith(str(path)):
                failures.append(f"#{i} {what}: not one line naming the file: {text!r}")
            messages.add(text[len(str(path)) + 2 :].split(" ")[0])
        except BaseException as exc:  # noqa: BLE001 - anything but AudreyError is the failure we hunt
            failures.append(f"#{i} {what}: {type(exc).__name__}: {str(exc)[:200]}")
    return {"loaded": loaded, "refused": refused, "failures": failures, "seconds": time.perf_counter() - start,
            "first_words": sorted(messages)}


def fuzz_companions(folder: Path, good: dict[str, Path], count: int, seed: int) -> dict:
    """`count` seeded mutants spread over the companion files `good` (kind -> a valid file), each
    loaded with load_companion (and run when it loads); what happened, for the parent to judge."""
    import time

    from audrey.errors import AudreyError
    from audrey.models.modelfile import load_model

    bundle, _ = load_model(STARTER)
    rng = random.Random(seed)
    originals = {kind: Path(p).read_bytes() for kind, p in good.items()}
    start = time.perf_counter()
    loaded, refused, failures, kinds = 0, 0, [], {}
    for i in range(count):
        kind = sorted(originals)[i % len(originals)]
        what, data = mutant(originals[kind], rng)
        path = folder / f"mutant.{kind}.safetensors"
        path.write_bytes(data)
        try:
            load_companion(kind, path, bundle, run=True)
            loaded += 1
        except AudreyError as exc:
            refused += 1
            kinds[kind] = kinds.get(kind, 0) + 1
            text = str(exc)
            if "\n" in text or not text.startswith(str(path)):
                failures.append(f"#{i} {kind} {what}: not one line naming the file: {text!r}")
        except BaseException as exc:  # noqa: BLE001 - anything but AudreyError is the failure we hunt
            failures.append(f"#{i} {kind} {what}: {type(exc).__name__}: {str(exc)[:200]}")
    return {"loaded": loaded, "refused": refused, "refused_by_kind": kinds, "failures": failures,
            "seconds": time.perf_counter() - start}


# --- memory-limited children -----------------------------------------------------------------------

PRELUDE = f"""
import json, resource, sys
sys.path[:0] = [{str(REPO)!r}, {str(REPO / 'tests')!r}]
import torch
import audrey.cli, audrey.live.recognizer, audrey.training.personal, audrey.models.modelfile
from typer.testing import CliRunner
def _vm():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
_limit = _vm() + {HEADROOM}
resource.setrlimit(resource.RLIMIT_AS, (_limit, _limit))
def cli(*args):
    res = CliRunner().invoke(audrey.cli.app, [str(a) for a in args])
    return {{"exit_code": res.exit_code, "output": res.output}}
"""


def run_limited(code: str, timeout: float = 120) -> dict:
    """Run `code` in a fresh Python whose address space may grow only HEADROOM past its imports;
    `code` assigns its answer (JSON-able) to `result`. A child that runs out of memory, or raises,
    fails the calling test with its stderr, instead of taking the machine down."""
    script = PRELUDE + code + "\nprint('RESULT ' + json.dumps(result))\n"
    env = {**os.environ, "PYTHONPATH": str(REPO), "AUDREY_PROGRESS": "0"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env=env)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, f"child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT ") :])
