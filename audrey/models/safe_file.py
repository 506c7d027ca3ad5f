"""Reading an untrusted safetensors file safely: bounds first, then layout, then data.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor names, dtypes,
shapes, byte ranges, plus string metadata), then the raw tensor bytes. `open_safe` reads only the
header, with a bound on the file and header size, and checks that every byte range agrees with
its dtype and shape and that the ranges tile the data exactly. A loader then compares the shapes
the file declares with the ones it expects (`check_layout`, for a model built on the meta device:
no memory) before it allocates anything, and reads the tensors last (`SafeFile.tensors`), refusing
NaN and infinity. Every failure is one AudreyError naming the file, what is wrong, and the remedy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audrey.errors import AudreyError

MAX_FILE_BYTES = 256 * 2**20  # the starter model is 0.8 MB, a conformer checkpoint a few MB
MAX_HEADER_BYTES = 4 * 2**20  # tensor table + metadata; a checkpoint's epoch history is the largest, ~100 kB
MAX_TENSORS = 4096
MAX_NDIM = 8
FAILED_READ = "not a readable"

# safetensors dtype code -> (torch dtype, bytes per element): the ones Audrey writes and reads
DTYPES = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2), "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
CODES = {dtype: code for code, (dtype, _) in DTYPES.items()}


@dataclass(frozen=True)
class Entry:
    """One tensor as the header declares it."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int


Layout = dict[str, tuple[str, tuple[int, ...]]]  # tensor name -> (dtype code, shape)


@dataclass(frozen=True)
class SafeFile:
    """A safetensors file whose header has been read and checked; no tensor data read yet."""

    path: Path
    what: str  # "model file", "training checkpoint": how errors name the kind of file
    remedy: str  # what to do about a bad one, ends every error
    metadata: dict[str, str]
    entries: dict[str, Entry]

    def error(self, problem: str) -> AudreyError:
        tail = f"; {self.remedy}" if self.remedy else ""
        return AudreyError(f"{self.path}: {problem}{tail}")

    def layout(self) -> Layout:
        return {name: (e.dtype, e.shape) for name, e in self.entries.items()}

    def check_layout(self, expected: Layout, lead: str, optional_prefix: str | None = None,
                     subset: bool = False) -> None:
        """The file holds exactly the tensors of `expected`, with those dtypes and shapes (plus any
        whose name starts with `optional_prefix`): checked before anything of that size is built.
        With `subset`, some of `expected` may be absent (personal weights hold only what changed).
        `lead` opens the error ("weights do not fit the cnn architecture it names")."""
        found = {k: v for k, v in self.layout().items() if not (optional_prefix and k.startswith(optional_prefix))}
        missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        if subset:
            missing = []
        if missing or unexpected:
            which = f"lacks {missing[0]}" if missing else f"has an unexpected tensor {unexpected[0][:60]}"
            raise self.error(f"{lead} (the file {which}; {len(missing)} missing, {len(unexpected)} unexpected)")
        for name, want in expected.items():
            if name in found and found[name] != want:
                raise self.error(f"{lead} (tensor {name} is {describe_entry(*found[name])}, expected {describe_entry(*want)})")

    def tensors(self, names=None, finite: bool = True, minus_inf_ok=()) -> dict[str, torch.Tensor]:
        """The tensors (all, or `names`), read only now; with `finite`, NaN or infinity in a float
        tensor is refused (no Audrey file holds one: it means damage or a diverged training), except
        -inf in the tensors named in `minus_inf_ok` (a probe's bias for a class it never saw)."""
        from safetensors import safe_open

        names = list(self.entries) if names is None else list(names)
        try:
            with safe_open(str(self.path), framework="pt") as fh:
                out = {name: fh.get_tensor(name) for name in names}
        except Exception as exc:  # the file changed since its header was read, or the library disagrees
            raise self.error(f"{FAILED_READ} {self.what} ({first_line(exc)}; it may be truncated)") from None
        if finite:
            for name, value in out.items():
                if name in minus_inf_ok and value.is_floating_point():
                    value = value.masked_fill(value == -math.inf, 0.0)
                if value.is_floating_point() and not all_finite(value):
                    raise self.error(f"tensor {name} holds NaN or infinite values (damaged, or saved from a diverged training)")
        return out


def all_finite(value: torch.Tensor) -> bool:
    # numpy: on small tensors its check is ~100x faster than torch's here (no per-op dispatch)
    if value.dtype not in (torch.float16, torch.float32, torch.float64):
        value = value.float()  # bfloat16 has no numpy dtype; its NaN and infinities survive the cast
    return bool(np.isfinite(value.numpy()).all())


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_entry(dtype: str, shape: tuple[int, ...]) -> str:
    return f"{dtype} {list(shape)}"


def layout_of(module: torch.nn.Module) -> Layout:
    """The (dtype code, shape) of every tensor in a module's state dict. Build the module under
    `torch.device("meta")` first and this costs no memory whatever the shapes are."""
    return {name: (CODES.get(value.dtype, str(value.dtype)), tuple(value.shape)) for name, value in module.state_dict().items()}


def open_safe(path: str | Path, what: str, remedy: str = "", max_bytes: int = MAX_FILE_BYTES) -> SafeFile:
    """The checked header of the safetensors file at `path` (see the module docstring)."""
    path = Path(path)
    bad = SafeFile(path, what, remedy, {}, {})  # for the errors before the header is known
    if not path.is_file():
        raise bad.error(f"no such {what}")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise bad.error(f"{FAILED_READ} {what} ({size} bytes: more than the {max_bytes} any of Audrey's can need)")
        with path.open("rb") as fh:
            prefix = fh.read(8)
            n = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 2 <= n <= min(MAX_HEADER_BYTES, size - 8):
                raise bad.error(f"{FAILED_READ} {what} (no safetensors header{' of that size' if n > 0 else ''}: "
                                "it may be truncated, or another kind of file)")
            raw = fh.read(n)
    except OSError as exc:
        raise bad.error(f"{FAILED_READ} {what} ({exc.strerror or first_line(exc)})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad.error(f"{FAILED_READ} {what} (its header is not valid JSON: {first_line(exc)}; it may be damaged)") from None
    if not isinstance(header, dict):
        raise bad.error(f"{FAILED_READ} {what} (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise bad.error(f"{FAILED_READ} {what} (its metadata is not a table of strings)")
    if len(header) > MAX_TENSORS:
        raise bad.error(f"{FAILED_READ} {what} ({len(header)} tensors; at most {MAX_TENSORS})")
    entries = {name: parse_entry(bad, name, spec) for name, spec in header.items()}
    check_tiling(bad, entries, size - 8 - n)
    return SafeFile(path, what, remedy, metadata, entries)


def parse_entry(bad: SafeFile, name: str, spec) -> Entry:
    """One tensor's header entry, checked: known dtype, a small list of sizes, a byte range that
    holds exactly that many elements."""
    def fail(problem: str) -> AudreyError:
        return bad.error(f"{FAILED_READ} {bad.what} (tensor {name[:60]!r}: {problem})")

    if not isinstance(spec, dict) or set(spec) != {"dtype", "shape", "data_offsets"}:
        raise fail("not a dtype, shape and byte range")
    dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise fail(f"dtype {str(dtype)[:20]!r} is not one Audrey reads")
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(type(d) is int and 0 <= d <= MAX_FILE_BYTES for d in shape)):
        raise fail(f"shape is not a list of at most {MAX_NDIM} sizes")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int and o >= 0 for o in offsets):
        raise fail("byte range is not two offsets")
    start, end = offsets
    if end - start != math.prod(shape) * DTYPES[dtype][1]:
        raise fail(f"{end - start} bytes do not hold a {dtype} tensor of shape {shape}; the file is damaged")
    return Entry(dtype, tuple(shape), start, end)


def check_tiling(bad: SafeFile, entries: dict[str, Entry], data_bytes: int) -> None:
    """The byte ranges follow each other without gap or overlap and end where the file does."""
    pos = 0
    for name, e in sorted(entries.items(), key=lambda item: (item[1].start, item[1].end)):
        if e.start != pos:
            raise bad.error(f"{FAILED_READ} {bad.what} (tensor {name[:60]!r} starts at byte {e.start}, expected {pos}; "
                            "the file is damaged)")
        pos = e.end
    if pos != data_bytes:
        raise bad.error(f"{FAILED_READ} {bad.what} (the header declares {pos} bytes of tensors, the file holds {data_bytes}; "
                        "it may be truncated)")
