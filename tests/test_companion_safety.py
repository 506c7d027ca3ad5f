"""Every companion file Audrey reads beside a model (rejection calibration `*.reject.safetensors`,
OOD statistics `*.ood.safetensors`, digit probes `*.probes.safetensors`, personal weights) is
checked when it is loaded: the bounded header first, metadata typed and bounded (one error naming
the file and the field), every tensor's dtype and shape against the model it accompanies, no NaN,
and -inf or +inf only where the format means them (an open threshold, a probe's class never seen).
And no command writes into the shipped models/ folder: the companions of the starter go to the
user's folder ($AUDREY_DATA/models), where the commands that read them look first.

Crafted files are copies of the shipped models/starter.* companions (never written: they are read
and mutated in memory), loaded in a memory-limited child (tests/crafted.py: run_limited).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from audrey.audio.frontend import FrontendConfig
from audrey.cli import DEFAULT_MODEL, app
from audrey.errors import AudreyError
from audrey.models.modelfile import SHIPPED_MODELS, default_output, derived_path, user_models_dir
from crafted import (SHIPPED_COMPANIONS, STARTER, join_file, load_companion, personal_file, run_limited, set_field,
                     split_file, with_metadata, with_tensor, with_tensors)
from helpers import one_line_error, write_tone

runner = CliRunner()
REJECT, OOD, PROBES = (SHIPPED_COMPANIONS[k].read_bytes() for k in ("reject", "ood", "probes"))
PROBE_INPUTS = FrontendConfig().n_mels * 4  # the starter's hook_input probe: every mel band in 4 time bins


@pytest.fixture(scope="module")
def personal(tmp_path_factory) -> bytes:
    return personal_file(tmp_path_factory.mktemp("personal") / "p.personal.safetensors").read_bytes()


def retype(name: str, dtype):
    return lambda t: {**t, name: t[name].to(dtype)}


def reshape(**shapes):
    """A with_tensors change: each named tensor replaced by zeros (ones for a std) of another shape."""
    def change(t):
        for name, shape in shapes.items():
            t[name.replace("__", ".")] = (torch.ones if name.endswith("std") else torch.zeros)(shape)
        return t
    return change


def set_meta(key: str, text: str):
    return lambda _: text


def truncated_header(data: bytes) -> bytes:
    n = int.from_bytes(data[:8], "little")
    return data[: 8 + n // 2]


def huge_prefix(data: bytes) -> bytes:
    return (2**62).to_bytes(8, "little") + data[8:]


def huge_shape(name: str):
    def craft(data: bytes) -> bytes:
        header, body = split_file(data)
        header[name]["shape"] = [4_000_000, 4_000_000]
        return join_file(header, body)
    return craft


# (kind, case id, how the good file becomes the bad one, what the one-line error says after "<file>: ")
CASES = [
    ("reject", "means wrong shape", lambda d: with_tensors(d, reshape(means=(10, 64), precision=(64, 64))),
     "tensor means has 64 features per digit; the embedding of"),
    ("reject", "precision not square", lambda d: with_tensors(d, reshape(precision=(128, 64))),
     "tensors do not fit the networks and class statistics its metadata describes (tensor precision is F32 [128, 64]"),
    ("reject", "detector weight F64", lambda d: with_tensors(d, retype("detector.head.fc.weight", torch.float64)),
     "(tensor detector.head.fc.weight is F64 [11, 64], expected F32 [11, 64])"),
    ("reject", "detector counter F32", lambda d: with_tensors(d, retype("detector.blocks.0.bn.num_batches_tracked", torch.float32)),
     "tensor detector.blocks.0.bn.num_batches_tracked is F32 [], expected I64 []"),
    ("reject", "NaN precision", lambda d: with_tensor(d, "precision", [float("nan")]), "tensor precision holds NaN"),
    ("reject", "inf means", lambda d: with_tensor(d, "means", [0.0, float("inf")]), "tensor means holds NaN or infinite"),
    ("reject", "NaN threshold", lambda d: with_metadata(d, "thresholds", set_field("thresholds", "max_distance", float("nan"))),
     "thresholds field max_distance is NaN; expected a number from 0 to any size"),
    ("reject", "temperature 0", lambda d: with_metadata(d, "thresholds", set_field("thresholds", "temperature", 0)),
     "thresholds field temperature is 0; expected a number from 0.01 to 100"),
    ("reject", "threshold a string", lambda d: with_metadata(d, "thresholds", set_field("thresholds", "min_p_digit", "high")),
     'thresholds field min_p_digit is "high"; expected a number from 0 to 1'),
    ("reject", "+inf where only -inf is open", lambda d: with_metadata(d, "thresholds", set_field("thresholds", "min_phone_match", float("inf"))),
     "thresholds field min_phone_match is Infinity; expected a number from -inf to"),
    ("reject", "lengths crossed", lambda d: with_metadata(d, "thresholds", set_field("thresholds", "min_seconds", 2.0)),
     "thresholds: min_seconds 2 is more than max_seconds 1.5"),
    ("reject", "thresholds partial JSON", lambda d: with_metadata(d, "thresholds", set_meta("thresholds", '{"temperature": 0.6')),
     "thresholds is not valid JSON"),
    ("reject", "huge detector", lambda d: with_metadata(d, "detector_config", set_field("detector_config", "channels", [4_000_000])),
     "detector_config field channels[0] is 4000000; expected an integer from 1 to 512"),
    ("reject", "detector classes", lambda d: with_metadata(d, "detector_config", set_field("detector_config", "n_classes", 10)),
     "detector_config field n_classes is 10; the detector has 11"),
    ("reject", "phone net hidden", lambda d: with_metadata(d, "phone_config", set_field("phone_config", "hidden", 2**40)),
     "phone_config field hidden is 1099511627776; expected an integer from 1 to 1024"),
    ("reject", "pronunciations", lambda d: with_metadata(d, "phone_config", set_field("phone_config", "pronunciations", [["x"]] * 10)),
     "phone_config field pronunciations[0] is"),
    ("reject", "unspellable digit", lambda d: with_metadata(d, "phone_config", set_field("phone_config", "pronunciations", [[["Q"]]] * 10)),
     "phone_config field pronunciations[0] cannot be spelt with the phone inventory"),
    ("reject", "report a list", lambda d: with_metadata(d, "report", set_meta("report", "[1, 2]")), "report is [1, 2], not a JSON object"),
    ("reject", "truncated header", truncated_header, "not a readable rejection calibration (no safetensors header"),
    ("reject", "huge header length", huge_prefix, "not a readable rejection calibration (no safetensors header of that size"),
    ("reject", "huge tensor shape", huge_shape("means"), "bytes do not hold a F32 tensor of shape [4000000, 4000000]"),
    ("ood", "means wrong width", lambda d: with_tensors(d, reshape(means=(10, 64), precision=(64, 64))),
     "tensor means has 64 features per class; the model's head.hook_embed has 128"),
    ("ood", "precision not square", lambda d: with_tensors(d, reshape(precision=(128, 127))), "tensor precision is F32 [128, 127], expected F32 [128, 128]"),
    ("ood", "I64 means", lambda d: with_tensors(d, retype("means", torch.int64)), "tensor means is I64 [10, 128], expected F32 [10, 128]"),
    ("ood", "NaN means", lambda d: with_tensor(d, "means", [float("nan")]), "tensor means holds NaN"),
    ("ood", "threshold NaN", lambda d: with_metadata(d, "threshold", set_meta("threshold", "NaN")), "OOD metadata field threshold is NaN"),
    ("ood", "threshold a word", lambda d: with_metadata(d, "threshold", set_meta("threshold", "high")), "threshold is not valid JSON"),
    ("ood", "threshold overflows", lambda d: with_metadata(d, "threshold", set_meta("threshold", "1e400")), "OOD metadata field threshold is Infinity"),
    ("ood", "unknown layer", lambda d: with_metadata(d, "layer", set_meta("layer", "blocks.9.hook_out")), 'layer "blocks.9.hook_out" is not a hook point'),
    ("ood", "info a list", lambda d: with_metadata(d, "info", set_meta("info", "[1]")), "info is [1], not a JSON object"),
    ("ood", "truncated header", truncated_header, "not a readable OOD statistics file (no safetensors header"),
    ("ood", "huge tensor shape", huge_shape("precision"), "bytes do not hold a F32 tensor of shape [4000000, 4000000]"),
    ("probes", "classes and weight disagree", lambda d: with_tensors(d, reshape(**{"0__weight": (PROBE_INPUTS, 9)})),
     f"tensor 0.weight is F32 [{PROBE_INPUTS}, 9], expected F32 [{PROBE_INPUTS}, 10]"),
    ("probes", "wider than the layer", lambda d: with_tensors(d, reshape(**{"3__mean": (1000,), "3__std": (1000,), "3__weight": (1000, 10)})),
     "tensor 3.mean (layer blocks.2.hook_out) has 1000 features;"),
    ("probes", "F64 bias", lambda d: with_tensors(d, retype("0.bias", torch.float64)), "tensor 0.bias is F64 [10], expected F32 [10]"),
    ("probes", "NaN weight", lambda d: with_tensor(d, "2.weight", [float("nan")]), "tensor 2.weight holds NaN"),
    ("probes", "+inf bias", lambda d: with_tensor(d, "0.bias", [float("inf")]), "tensor 0.bias holds NaN or infinite"),
    ("probes", "zero std", lambda d: with_tensor(d, "1.std", [0.0]), "tensor 1.std (layer blocks.0.hook_out) is not positive"),
    ("probes", "time bins 0", lambda d: with_metadata(d, "time_bins", set_meta("time_bins", "0")), "probe metadata field time_bins is 0; expected an integer from 1 to 64"),
    ("probes", "time bins huge", lambda d: with_metadata(d, "time_bins", set_meta("time_bins", "1000000000")), "field time_bins is 1000000000"),
    ("probes", "layers not a list", lambda d: with_metadata(d, "layers", set_meta("layers", '"hook_input"')), 'probe metadata field layers is "hook_input"; expected a list'),
    ("probes", "unknown layer", lambda d: with_metadata(d, "layers", lambda v: ["nope"] + v[1:]), 'layer "nope" is not a hook point'),
    ("probes", "accuracy a word", lambda d: with_metadata(d, "accuracy", set_meta("accuracy", '{"hook_input": "good"}')), "accuracy is"),
    ("probes", "truncated header", truncated_header, "not a readable probe file (no safetensors header"),
    ("probes", "huge header length", huge_prefix, "not a readable probe file (no safetensors header of that size"),
    ("personal", "I64 weight", lambda d: with_tensors(d, retype("head.fc.bias", torch.int64)),
     "tensors do not fit the cnn base model (tensor head.fc.bias is I64 [10], expected F32 [10])"),
    ("personal", "wrong shape", lambda d: with_tensors(d, reshape(head__fc__weight=(10, 64))), "tensor head.fc.weight is F32 [10, 64], expected F32 [10, 128]"),
    ("personal", "unknown tensor", lambda d: with_tensors(d, lambda t: {**t, "head.extra": torch.zeros(3)}), "has an unexpected tensor head.extra"),
    ("personal", "NaN weight", lambda d: with_tensor(d, "head.fc.weight", [float("nan")]), "tensor head.fc.weight holds NaN"),
    ("personal", "info a list", lambda d: with_metadata(d, "info", set_meta("info", "[]")), "info is [], not a JSON object"),
    ("personal", "speaker a number", lambda d: with_metadata(d, "info", set_field("info", "speaker", 5)), "field info.speaker is 5; expected a string"),
    ("personal", "NaN threshold", lambda d: with_metadata(d, "info", set_field("info", "rejection", {"thresholds": {"max_distance": float("nan")}})),
     "info.rejection.thresholds field max_distance is NaN"),
    ("personal", "another base", lambda d: with_metadata(d, "base_digest", set_meta("base_digest", "0" * 16)), "personal weights made for another base model"),
    ("personal", "truncated header", truncated_header, "not a readable personal weights file (no safetensors header"),
]


def test_crafted_companions_are_one_error_naming_file_and_field(tmp_path, personal):
    """Every case in CASES, loaded as its command loads it (crafted.load_companion) in a child that
    may not allocate 2 GB: one line that starts with the file and says what is wrong."""
    good = {"reject": REJECT, "ood": OOD, "probes": PROBES, "personal": personal}
    paths = []
    for i, (kind, _, craft, _) in enumerate(CASES):
        path = tmp_path / f"case{i}.{kind}.safetensors"
        path.write_bytes(craft(good[kind]))
        paths.append((kind, str(path)))
    result = run_limited(f"""
import crafted
from pathlib import Path
torch.set_num_threads(1)
bundle, _ = audrey.models.modelfile.load_model(crafted.STARTER)
result = []
for kind, path in {paths!r}:
    try:
        crafted.load_companion(kind, Path(path), bundle)
        result.append("loaded")
    except audrey.errors.AudreyError as exc:
        result.append(str(exc))
""")
    for (kind, case, _, message), (_, path), said in zip(CASES, paths, result):
        assert said.startswith(f"{path}: ") and "\n" not in said and message in said, f"{kind} {case}: {said}"


def test_open_thresholds_and_unseen_classes_load(tmp_path, personal):
    """-inf and +inf where the formats mean them: an open calibration (no phone or distance test),
    a probe's bias for a class it never saw; the shipped companions themselves load."""
    open_cal = with_metadata(REJECT, "thresholds", lambda t: {**t, "min_phone_match": -math.inf, "sure_phone_match": -math.inf,
                                                              "max_distance": math.inf, "min_p_digit": 0.0})
    unseen = with_tensor(PROBES, "7.bias", [-math.inf])
    for kind, data in (("reject", open_cal), ("probes", unseen), ("reject", REJECT), ("ood", OOD), ("probes", PROBES),
                       ("personal", personal)):
        path = tmp_path / f"ok.{kind}.safetensors"
        path.write_bytes(data)
        load_companion(kind, path, run=True)
    from audrey.live.calibration import Calibration
    from audrey.observe.probe_file import ProbeSet

    from safetensors import safe_open

    shipped = json.loads(safe_open(str(SHIPPED_COMPANIONS["reject"]), "pt").metadata()["thresholds"])["max_distance"]
    assert Calibration.load(tmp_path / "ok.reject.safetensors").max_distance == shipped  # the last one written: the shipped file
    cal_path = tmp_path / "open.reject.safetensors"
    cal_path.write_bytes(open_cal)
    assert Calibration.load(cal_path).thresholds()["min_phone_match"] == -math.inf
    probes_path = tmp_path / "unseen.probes.safetensors"
    probes_path.write_bytes(unseen)
    assert ProbeSet.load(probes_path).probes["head.hook_logits"].bias[0] == -math.inf


def test_bad_calibration_is_refused_by_transcribe(tmp_path):
    """The command line: exit status 2 and the one line."""
    bad = tmp_path / "bad.reject.safetensors"
    bad.write_bytes(with_tensors(REJECT, retype("detector.head.fc.weight", torch.int64)))
    wav = write_tone(tmp_path / "clip.wav", seconds=0.4)
    res = runner.invoke(app, ["transcribe", str(wav), "--calibration", str(bad)])
    line = one_line_error(res.output)
    assert res.exit_code == 2 and line.startswith(f"error: {bad}: ") and "detector.head.fc.weight is I64" in line, line


def test_listen_observe_with_bad_probes_fails_before_the_session(tmp_path):
    """A probe file whose widths do not fit the model (once: a RuntimeError on the first utterance,
    mid-session) is refused when the session is set up: nothing was listened to or printed."""
    from audrey.audio.mic import FileStream
    from audrey.live.listen import listen

    model = tmp_path / "m.safetensors"
    shutil.copy(STARTER, model)
    bad = model.with_name("m.probes.safetensors")
    bad.write_bytes(with_tensors(PROBES, reshape(**{"3__mean": (1000,), "3__std": (1000,), "3__weight": (1000, 10)})))
    stream = FileStream(16000, endless=False)
    stream.play(np.zeros(16000, np.float32))
    out = io.StringIO()
    with pytest.raises(AudreyError, match=rf"^{bad}: tensor 3.mean \(layer blocks.2.hook_out\) has 1000 features"):
        listen(model, as_json=True, observe=True, stream=stream, out=out)
    assert out.getvalue() == "" and stream.read(0.1) is not None  # the stream was never read


def test_fuzzed_companions_give_only_audrey_errors(tmp_path, personal):
    """300 seeded mutants over the four companion kinds (header bytes, metadata values, tensor
    entries, tensor bytes, truncations), loaded and run in a memory-limited child: each loads or is
    one AudreyError naming the file; never another exception, never 2 GB."""
    good = {kind: str(p) for kind, p in SHIPPED_COMPANIONS.items()}
    good["personal"] = str(tmp_path / "good.personal.safetensors")
    Path(good["personal"]).write_bytes(personal)
    result = run_limited(f"""
import crafted
from pathlib import Path
torch.set_num_threads(1)
result = crafted.fuzz_companions(Path({str(tmp_path)!r}), {{k: Path(v) for k, v in {good!r}.items()}}, 300, seed=0)
""", timeout=300)
    assert result["failures"] == [], "\n".join(result["failures"][:20])
    assert result["refused"] >= 150 and result["loaded"] >= 20, result
    assert set(result["refused_by_kind"]) == {"reject", "ood", "probes", "personal"}, result
    assert result["seconds"] < 60, result["seconds"]


# --- no command writes into the shipped models folder ---------------------------------------------


def shipped_state() -> dict[str, tuple[str, int]]:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(SHIPPED_MODELS.iterdir()) if p.is_file()}


@pytest.fixture
def tones(tmp_path) -> Path:
    """A labelled corpus of tones: two speakers, two takes of each digit (FSDD names)."""
    folder = tmp_path / "tones"
    for speaker, base in (("lo", 200.0), ("hi", 900.0)):
        for digit in range(10):
            for take in range(2):
                write_tone(folder / f"{digit}_{speaker}_{take}.wav", freq=base + 40 * digit + 7 * take, seconds=0.4)
    return folder


def test_companions_of_the_starter_go_to_the_user_folder(tmp_path, tones, monkeypatch):
    """`audrey probe` and `audrey ood-fit` on the starter leave models/ byte for byte (and mtime) as
    shipped; what they make goes to $AUDREY_DATA/models, where listen --observe and predict read it."""
    from audrey.observe.observer import Observer

    before = shipped_state()
    res = runner.invoke(app, ["probe", "--data", str(tones), "--target", "digit", "--layer", "head.hook_embed",
                              "--folds", "2", "--no-random-init", "--plot", str(tmp_path / "p.png"), "--json"])
    assert res.exit_code == 0, res.output
    written = Path(json.loads(res.stdout)["probes_file"])
    assert written == user_models_dir() / "starter.probes.safetensors" and written.exists()
    assert str(user_models_dir()).startswith(str(tmp_path))  # AUDREY_DATA: the test's own folder (conftest)
    observer = Observer.from_file(DEFAULT_MODEL)
    assert observer.probes.path == written and observer.probes.layers == ["head.hook_embed"]

    res = runner.invoke(app, ["ood-fit", "--data", str(tones), "--synth", "0"])
    assert res.exit_code == 0, res.output
    fitted = json.loads(res.stdout)
    assert Path(fitted["file"]) == user_models_dir() / "starter.ood.safetensors"
    spoken = Path(__file__).resolve().parents[1] / "models" / "examples" / "seven.wav"  # a tone is no speech
    res = runner.invoke(app, ["predict", str(spoken), "--json"])
    assert res.exit_code == 0 and json.loads(res.stdout)["ood"]["threshold"] == round(fitted["threshold"], 2), res.output
    assert shipped_state() == before

    # explicit paths into the shipped folder are refused before any work
    for args in (["ood-fit", "--data", str(tmp_path / "never-read"), "--out", str(SHIPPED_MODELS / "starter.ood.safetensors")],
                 ["probe", "--data", str(tmp_path / "never-read"), "--save", str(SHIPPED_MODELS / "starter.probes.safetensors")],
                 ["calibrate", "--data", str(tmp_path / "never-read"), "--out", str(SHIPPED_MODELS / "x.reject.safetensors")],
                 ["personalize", "--data", str(tmp_path / "never-read"), "--out", str(SHIPPED_MODELS / "x.personal.safetensors")],
                 ["train", "--data", str(tmp_path / "never-read"), "--out", str(SHIPPED_MODELS / "model.safetensors")]):
        res = runner.invoke(app, args)
        line = one_line_error(res.output)
        assert res.exit_code == 2 and "holds the files Audrey ships, which no command changes" in line, (args, line)
    assert shipped_state() == before


def test_default_companion_paths(tmp_path, monkeypatch):
    """Beside a model of the user's own; for a shipped one, in the user's folder (also calibrate's
    and, working in a checkout, personalize's and train's default)."""
    from audrey.live.calibration import find_calibration, sidecar_path
    from audrey.models.personal_file import personal_path
    from audrey.observe.probe_file import find_probes

    mine = tmp_path / "mine.safetensors"
    assert sidecar_path(mine) == tmp_path / "mine.reject.safetensors" == derived_path(mine, ".reject.safetensors")
    assert sidecar_path(DEFAULT_MODEL) == user_models_dir() / "starter.reject.safetensors"
    assert find_calibration(DEFAULT_MODEL) == SHIPPED_MODELS / "starter.reject.safetensors"  # none of the user's yet
    assert find_probes(DEFAULT_MODEL) == SHIPPED_MODELS / "starter.probes.safetensors"
    monkeypatch.chdir(SHIPPED_MODELS.parent)
    assert personal_path("ann") == user_models_dir() / "ann.personal.safetensors"
    assert default_output("model.safetensors") == user_models_dir() / "model.safetensors"  # train's default
    monkeypatch.chdir(tmp_path)
    assert personal_path("ann") == Path("models") / "ann.personal.safetensors"
    assert default_output("model.safetensors") == Path("models") / "model.safetensors"
