"""Every model file and checkpoint Audrey reads is checked before use: crafted files cannot exhaust
memory, bad metadata is one clear error naming the file and the field, non-finite weights are
refused, `--json` output is strict JSON, damaged checkpoints are refused before any work.
(The feature cache's entries: tests/test_features.py.)

Tests that feed crafted files run them in a memory-limited child (tests/crafted.py: run_limited),
so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from audrey.audio.frontend import FrontendConfig
from audrey.cli import app
from audrey.errors import AudreyError
from audrey.models import build_model
from audrey.models.modelfile import load_model
from audrey.models.safe_file import MAX_FILE_BYTES, MAX_HEADER_BYTES
from audrey.strict_json import json_text
from audrey.training.checkpoint import (best_weights_path, load_checkpoint, resume_point, save_checkpoint,
                                        save_weights)
from audrey.training.train import TrainConfig, train, warmup_cosine
from crafted import STARTER, join_file, run_limited, set_field, split_file, with_metadata, with_tensor
from helpers import one_line_error, write_tone

runner = CliRunner()
GOOD = STARTER.read_bytes()


def load_limited(path) -> str:
    """load_model(path) in a memory-limited child: "loaded", or the AudreyError's message."""
    return run_limited(f"""
try:
    audrey.models.modelfile.load_model({str(path)!r})
    result = "loaded"
except audrey.errors.AudreyError as exc:
    result = str(exc)
""")


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDREY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")


@pytest.fixture
def wav(tmp_path) -> Path:
    return write_tone(tmp_path / "clip.wav", seconds=0.4)


def crafted(tmp_path, data: bytes, name: str = "crafted.safetensors") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def strict_json(text: str):
    """Parse as JSON that has no NaN or Infinity (what jq, JavaScript and other strict parsers accept)."""
    def refuse(constant):
        raise AssertionError(f"not strict JSON: {constant} in {text[:200]!r}")
    return json.loads(text, parse_constant=refuse)


# --- 1. a crafted model file cannot exhaust memory -------------------------------------------------


def test_huge_declared_architecture_is_refused_before_anything_is_built(tmp_path, wav):
    """The issue's file: metadata asks for 4,000,000 channels (23.9 GB when built) over the
    starter's tensors. Refused from the metadata's bounds, in a child that may not allocate 2 GB."""
    huge = crafted(tmp_path, with_metadata(GOOD, "model_config", set_field("model_config", "channels", [16, 32, 64, 96, 4_000_000])))
    result = run_limited(f"result = cli('predict', {str(wav)!r}, '--model', {str(huge)!r}, '--json')")
    line = one_line_error(result["output"])
    assert result["exit_code"] == 2
    assert "crafted.safetensors: model_config field channels[4] is 4000000; expected an integer from 1 to 512" in line


@pytest.mark.parametrize("arch, config", [
    ("cnn", {"channels": [512] * 8}),  # every size in range: 19M weights the file does not hold
    ("conformer", {"d_model": 1024, "n_heads": 64, "ffn_dim": 4096, "n_layers": 32, "kernel_size": 63}),
])
def test_architecture_in_range_but_not_in_the_file_is_refused_before_building(tmp_path, arch, config):
    """Sizes in range that the file's tensors do not have: the header's shapes are compared with
    those of the architecture built on the meta device, before the real one is built."""
    data = with_metadata(GOOD, "model_config", lambda cfg: {**cfg, **config} if arch == "cnn" else {"n_mels": FrontendConfig().n_mels, **config})
    path = crafted(tmp_path, with_metadata(data, "arch", lambda _: arch))
    result = load_limited(path)
    assert result.startswith(f"{path}: weights do not fit the {arch} architecture it names (")


@pytest.mark.parametrize("damage, message", [
    ("huge tensor shape", "bytes do not hold a F32 tensor of shape [4000000, 4000000]"),
    ("header length prefix", "no safetensors header of that size"),
    ("header too large", "no safetensors header of that size"),
    ("file too large", f"{MAX_FILE_BYTES + 1} bytes: more than the {MAX_FILE_BYTES} any of Audrey's can need"),
    ("not JSON", "its header is not valid JSON"),
    ("deeply nested", "its header is not valid JSON"),
    ("overlapping tensors", "starts at byte"),
])
def test_crafted_safetensors_layout_is_refused_from_the_header(tmp_path, damage, message):
    """Lies in the header itself (sizes, offsets, lengths) are caught before any tensor is read."""
    header, body = split_file(GOOD)
    path = tmp_path / "crafted.safetensors"
    if damage == "huge tensor shape":
        header["head.fc.weight"]["shape"] = [4_000_000, 4_000_000]
        path.write_bytes(join_file(header, body))
    elif damage == "header length prefix":
        path.write_bytes((2**62).to_bytes(8, "little") + GOOD[8:])
    elif damage == "header too large":
        with path.open("wb") as fh:  # sparse: no disk used
            fh.write((MAX_HEADER_BYTES + 8).to_bytes(8, "little") + b"{")
            fh.truncate(MAX_HEADER_BYTES + 1024)
    elif damage == "file too large":
        with path.open("wb") as fh:
            fh.write(GOOD)
            fh.truncate(MAX_FILE_BYTES + 1)
    elif damage == "not JSON":
        path.write_bytes(GOOD[:8] + b"\xff" * int.from_bytes(GOOD[:8], "little") + GOOD[8 + int.from_bytes(GOOD[:8], "little"):])
    elif damage == "deeply nested":
        raw = b"[" * 200_000 + b"]" * 200_000
        path.write_bytes(len(raw).to_bytes(8, "little") + raw)
    elif damage == "overlapping tensors":
        header["head.fc.bias"]["data_offsets"] = header["head.fc.weight"]["data_offsets"][:1] + [
            header["head.fc.weight"]["data_offsets"][0] + 40]
        path.write_bytes(join_file(header, body))
    result = load_limited(path)
    assert result.startswith(f"{path}: not a readable model file (") and message in result, result


# --- 2. frontend and architecture metadata are validated ------------------------------------------

FRONTEND_CASES = [
    ("sample_rate", 0, "frontend field sample_rate is 0; expected an integer from 1000 to 192000"),
    ("sample_rate", "8000", 'frontend field sample_rate is "8000"; expected an integer'),
    ("sample_rate", None, "frontend field sample_rate is null; expected an integer"),
    ("sample_rate", 8000.5, "frontend field sample_rate is 8000.5; expected an integer"),
    ("n_mels", -4, "frontend field n_mels is -4; expected an integer from 1 to 128"),
    ("hop_length", 0, "frontend field hop_length is 0; expected an integer from 1 to 8192"),
    ("clip_seconds", 1e7, "frontend field clip_seconds is 10000000.0; expected a number from 0.1 to 10"),
    ("clip_seconds", float("nan"), "frontend field clip_seconds is NaN; expected a number"),
    ("log_floor", 0, "frontend field log_floor is 0; expected a number from 1e-12 to 1"),
    ("n_fft", True, "frontend field n_fft is true; expected an integer"),
    ("win_length", 600, "frontend: win_length 600 is longer than n_fft 512"),
    ("f_max", 9000.0, "does not fit below the Nyquist frequency of sample_rate 16000"),
    ("hop_length", 2, "hop_length 2 makes 8001 frames"),
    ("n_bands", 3, "frontend has unknown fields ['n_bands']; upgrade audrey"),
]

MODEL_CASES = [
    ("model_config", set_field("model_config", "channels", [-16, 32]), "model_config field channels[0] is -16; expected an integer from 1 to 512"),
    ("model_config", set_field("model_config", "channels", []), "model_config field channels is []; expected a list of 1 to 8 items"),
    ("model_config", set_field("model_config", "channels", "16,32"), 'model_config field channels is "16,32"; expected a list'),
    ("model_config", set_field("model_config", "dropout", 1.5), "model_config field dropout is 1.5; expected a number from 0 to 0.95"),
    ("model_config", set_field("model_config", "n_mels", 40), "model_config field n_mels is 40 but its frontend makes 64 mel bands"),
    ("model_config", set_field("model_config", "n_classes", 3), "model_config field n_classes is 3; an Audrey model has one class per digit"),
    ("model_config", lambda _: [1, 2], "model_config is [1, 2], not a JSON object"),
    ("model_config", lambda _: '{"n_mels": 4', "model_config is not valid JSON"),
    ("frontend", lambda _: "null", "frontend is null, not a JSON object"),
    ("labels", lambda _: ["a"] * 10, 'labels are ["a", "a", "a",'),
    ("provenance", lambda _: [1], "provenance is [1], not a JSON object"),
    ("arch", lambda _: "rnn", 'architecture "rnn" is not one this audrey knows'),
]


@pytest.mark.parametrize("field, value, message", FRONTEND_CASES, ids=[f"{c[0]}={c[1]!r}" for c in FRONTEND_CASES])
def test_bad_frontend_metadata_is_one_error_naming_file_and_field(tmp_path, wav, field, value, message):
    bad = crafted(tmp_path, with_metadata(GOOD, "frontend", set_field("frontend", field, value)))
    res = runner.invoke(app, ["predict", str(wav), "--model", str(bad)])
    line = one_line_error(res.output)
    assert res.exit_code == 2 and line.startswith(f"error: {bad}: ") and message in line, line


@pytest.mark.parametrize("key, change, message", MODEL_CASES, ids=[c[2][:40] for c in MODEL_CASES])
def test_bad_model_metadata_is_one_error_naming_file_and_field(tmp_path, wav, key, change, message):
    bad = crafted(tmp_path, with_metadata(GOOD, key, change))
    res = runner.invoke(app, ["predict", str(wav), "--model", str(bad)])
    line = one_line_error(res.output)
    assert res.exit_code == 2 and line.startswith(f"error: {bad}: ") and message in line, line


def test_conformer_config_rules_between_fields():
    with pytest.raises(AudreyError, match="conformer config: d_model 64 is not a multiple of n_heads 3"):
        build_model("conformer", n_heads=3)
    with pytest.raises(AudreyError, match="kernel_size 8 is even"):
        build_model("conformer", kernel_size=8)
    with pytest.raises(AudreyError, match=r"cnn config field channels\[1\] is 0"):
        build_model("cnn", channels=[8, 0])


# --- 3. non-finite weights, and strict JSON --------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, wav, value):
    bad = crafted(tmp_path, with_tensor(GOOD, "head.fc.weight", [0.1, value]))
    with pytest.raises(AudreyError, match=r"crafted.safetensors: tensor head.fc.weight holds NaN or infinite values"):
        load_model(bad)
    res = runner.invoke(app, ["predict", str(wav), "--model", str(bad), "--json"])
    assert res.exit_code == 2 and "tensor head.fc.weight holds NaN or infinite values" in one_line_error(res.output)
    assert "NaN" not in res.stdout


def test_json_output_is_strict_json(tmp_path):
    """JSON has no NaN/Infinity: a non-finite number is null (a diverged run's loss, say), by design,
    so the rest of the output stays usable; the stdlib's allow_nan=False guards the rule."""
    assert strict_json(json_text({"loss": float("nan"), "best": [1.0, float("inf")], "t": torch.tensor([0.5, -math.inf])})) == {
        "loss": None, "best": [1.0, None], "t": [0.5, None]}
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "train-diverged.json").write_text(json.dumps(
        {"kind": "train", "id": "train-diverged", "summary": {"test_acc": float("nan")}, "config": {},
         "history": [{"epoch": 1, "train_loss": float("nan"), "val_acc": float("nan")}]}))
    res = runner.invoke(app, ["runs", "list", "--runs", str(runs), "--json"])
    assert res.exit_code == 0, res.output
    (row,) = strict_json(res.stdout)
    assert row["test"] is None and row["best val"] is None
    res = runner.invoke(app, ["predict", str(STARTER.parent / "examples" / "seven.wav"), "--json"])  # a tone holds no digit
    assert res.exit_code == 0, res.output
    assert 0 <= strict_json(res.stdout)["confidence"] <= 1


# --- 6. train --resume with a damaged checkpoint, or none ------------------------------------------


def make_checkpoint(path: Path, **config) -> None:
    """A checkpoint (and its best weights) as `train` writes them after one epoch of the default CNN."""
    torch.manual_seed(0)
    model = build_model("cnn", **config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    scheduler = warmup_cosine(optimizer, 10)
    model(torch.randn(4, 40, 101)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = {"epoch": 1, "best_acc": -1.0, "best_loss": float("inf"), "best_epoch": 1,
             "history": [{"epoch": 1, "train_loss": 2.3, "train_acc": 0.1, "lr": 0.001, "epoch_seconds": 1.0}], "seconds": 1.0}
    save_weights(best_weights_path(path), model.state_dict())
    save_checkpoint(path, model, optimizer, scheduler, torch.Generator().manual_seed(0), state)


def resume_set_up(**config):
    model = build_model("cnn", **config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    return model, optimizer, warmup_cosine(optimizer, 10), torch.Generator()


class Boom:
    """Unpickling this runs open(marker, "w"): a pickle that executes code when loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def damaged(path: Path, damage: str, marker: Path) -> None:
    data = path.read_bytes()
    header, body = split_file(data)
    meta = header["__metadata__"]
    if damage == "truncated":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif damage == "pickle":
        path.write_bytes(pickle.dumps({"model": Boom(marker)}))
    elif damage == "torch.save":
        torch.save({"state": {}, "boom": Boom(marker)}, path)
    elif damage == "missing RNG state":
        start, end = header.pop("rng")["data_offsets"]
        for entry in header.values():
            if isinstance(entry, dict) and "data_offsets" in entry and entry["data_offsets"][0] >= end:
                entry["data_offsets"] = [o - (end - start) for o in entry["data_offsets"]]
        path.write_bytes(join_file(header, body[:start] + body[end:]))
    elif damage == "partial JSON":
        meta["state"] = meta["state"][: len(meta["state"]) // 2]
        path.write_bytes(join_file(header, body))
    elif damage == "state out of range":
        meta["state"] = json.dumps({**json.loads(meta["state"]), "epoch": -3})
        path.write_bytes(join_file(header, body))
    elif damage == "history not per epoch":
        meta["state"] = json.dumps({**json.loads(meta["state"]), "history": "lots"})
        path.write_bytes(join_file(header, body))
    elif damage == "model file":
        path.write_bytes(GOOD)


CHECKPOINT_DAMAGE = {
    "truncated": "not a readable training checkpoint (",
    "pickle": "not a readable training checkpoint (no safetensors header",
    "torch.save": "not a readable training checkpoint (no safetensors header",
    "missing RNG state": "the random generator state rng is missing, so the run cannot continue exactly",
    "partial JSON": "state is not valid JSON",
    "state out of range": "state field epoch is -3; expected an integer from 1 to 100000",
    "history not per epoch": 'state field history is "lots"; expected one record of numbers per epoch (1)',
    "model file": "not an Audrey training checkpoint (format \"audrey-model/1\"",
}


@pytest.mark.parametrize("damage", list(CHECKPOINT_DAMAGE))
def test_damaged_checkpoint_is_one_error_before_any_work(tmp_path, damage):
    """`audrey train --resume` refuses a damaged checkpoint in one line naming it, before reading
    any corpus (--data names a folder that does not exist: it is never looked at), and never
    unpickles anything."""
    out = tmp_path / "m.safetensors"
    ckpt = out.with_suffix(".ckpt.safetensors")
    make_checkpoint(ckpt)
    marker = tmp_path / "pickle-ran"
    damaged(ckpt, damage, marker)
    res = runner.invoke(app, ["train", "--data", str(tmp_path / "never-read"), "--out", str(out), "--resume"])
    line = one_line_error(res.output)
    assert res.exit_code == 2 and line.startswith(f"error: {ckpt}: ") and CHECKPOINT_DAMAGE[damage] in line, line
    assert line.endswith("delete it to start over"), line
    assert not marker.exists()


def test_checkpoint_is_checked_against_the_model_before_loading(tmp_path):
    ckpt = tmp_path / "run.ckpt.safetensors"
    make_checkpoint(ckpt, channels=(8, 32, 64, 96, 128))
    with pytest.raises(AudreyError, match=r"run.ckpt.safetensors: checkpoint does not match this training set-up "
                                          r"\(tensor model.blocks.0.conv.weight is F32 \[8, 1, 3, 3\], expected F32 \[16, 1, 3, 3\]\); "
                                          "resume with the same options"):
        load_checkpoint(ckpt, *resume_set_up())
    make_checkpoint(ckpt)
    header, body = split_file(ckpt.read_bytes())
    header["__metadata__"]["param_groups"] = json.dumps([{**json.loads(header["__metadata__"]["param_groups"])[0], "lr": "fast"}])
    ckpt.write_bytes(join_file(header, body))
    with pytest.raises(AudreyError, match=r'does not match this training set-up \(field param_groups\[0\].lr is "fast"; expected a finite number\)'):
        load_checkpoint(ckpt, *resume_set_up())
    make_checkpoint(ckpt)
    ckpt.write_bytes(with_tensor(ckpt.read_bytes(), "opt.0.exp_avg", [float("nan")]))
    with pytest.raises(AudreyError, match="tensor opt.0.exp_avg holds NaN or infinite values"):
        load_checkpoint(ckpt, *resume_set_up())
    make_checkpoint(ckpt)
    state = load_checkpoint(ckpt, *resume_set_up())  # and the undamaged one loads
    assert state["epoch"] == 1 and state["best_loss"] == math.inf


def test_resume_without_checkpoint_is_a_one_line_note(tmp_path, capsys):
    assert resume_point(tmp_path / "none.ckpt.safetensors") is None
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert lines == [f"note: --resume: no checkpoint at {tmp_path / 'none.ckpt.safetensors'}; starting from scratch"]

    from audrey.data.corpora import Clip

    clip = Clip(write_tone(tmp_path / "clips" / "3_tone_0.wav", seconds=0.4), 3, "tone", "test")
    result = train([clip], [], TrainConfig(epochs=1, batch_size=1), checkpoint=tmp_path / "none.ckpt.safetensors", resume=True)
    assert [r["epoch"] for r in result.history] == [1]  # started from scratch
    assert "no checkpoint at" in capsys.readouterr().err


# --- the fuzz test ---------------------------------------------------------------------------------


def test_fuzzed_model_files_give_only_audrey_errors(tmp_path):
    """300 seeded mutants of the starter model (header bytes, metadata values, tensor entries,
    tensor bytes, truncations), loaded in a memory-limited child: each either loads and runs, or is
    one AudreyError naming the file; never another exception, never more than 2 GB."""
    result = run_limited(f"import crafted\nresult = crafted.fuzz(__import__('pathlib').Path({str(tmp_path / 'mutant.safetensors')!r}), 300, seed=0)",
                         timeout=300)
    assert result["failures"] == [], "\n".join(result["failures"][:20])
    assert result["refused"] >= 150 and result["loaded"] >= 10, result  # the mutants reach every layer
    assert {"not", "frontend", "model_config", "tensor"} <= set(result["first_words"]), result["first_words"]
    assert result["seconds"] < 45, result["seconds"]
