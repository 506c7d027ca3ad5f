"""`audrey train / eval / predict` end to end on small real data, and their errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from audrey.cli import DEFAULT_MODEL, app
from audrey.training.runs import make_split
from audrey.data.corpora import read_corpus
from audrey.errors import AudreyError
from helpers import require_fsdd

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDREY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.chdir(tmp_path)


def test_train_eval_predict_round_trip(tmp_path, digit_folders):
    fsdd = require_fsdd()
    out = tmp_path / "m.safetensors"
    result = runner.invoke(app, ["train", "--data", str(fsdd), "--data", str(digit_folders), "--split", "loso:theo",
                                 "--epochs", "2", "--batch-size", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.exists() and out.with_suffix(".confusion.png").exists()
    assert not out.with_suffix(".ckpt.safetensors").exists()  # checkpoints removed once the model is written
    assert not (tmp_path / "runs").exists()  # WANDB_MODE=disabled: no run record (test_tracking.py checks them)
    from audrey.models.modelfile import load_model

    metrics = load_model(out)[0].provenance["metrics"]
    assert set(metrics["test_per_speaker"]) == {"theo"} and 0 <= metrics["test_acc"] <= 1

    result = runner.invoke(app, ["eval", "--data", str(digit_folders), "--model", str(out), "--json",
                                 "--confusion", str(tmp_path / "cm.png")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["clips"] == 30 and 0 <= summary["accuracy"] <= 1
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    clip = digit_folders / "seven" / "us.wav"
    result = runner.invoke(app, ["predict", str(clip), "--model", str(out), "--json"])
    assert result.exit_code == 0, result.output
    pred = json.loads(result.stdout.splitlines()[0])
    assert pred["file"] == str(clip) and len(pred["top3"]) == 3 and 0 < pred["confidence"] <= 1


@pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason=f"bundled starter model {DEFAULT_MODEL} not present")
def test_starter_model_recognizes_the_readme_examples():
    examples = DEFAULT_MODEL.parent / "examples"
    result = runner.invoke(app, ["predict", str(examples / "seven.wav"), str(examples / "four.wav"), "--json"])
    assert result.exit_code == 0, result.output
    digits = [json.loads(line)["digit"] for line in result.stdout.splitlines()]
    assert digits == [7, 4]


def test_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, needle in [
        (["predict", str(bad), "--model", str(tmp_path / "none.safetensors")], "no such model file"),
        (["train", "--data", str(tmp_path / "nowhere")], "no such folder"),
        (["train", "--data", str(empty)], "no audio clips"),
        (["train", "--data", str(tmp_path)], "name is not <digit>_<speaker>_<take>"),
        (["train", "--data", str(empty), "--model", "rnn"], "unknown architecture 'rnn'"),
        (["calibrate", "--target", "1.5"], "--target 1.5: expected a fraction between 0.5 and 1"),
        (["calibrate", "--model", str(tmp_path / "none.safetensors")], "no such model file"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert needle in result.output and "Traceback" not in result.output


def test_make_split_specs():
    fsdd = require_fsdd()
    clips = read_corpus(fsdd)
    loso = make_split(clips, "loso:nicolas", seed=0, val_speakers=1)
    assert {c.speaker for c in loso.test} == {"nicolas"}
    assert len({c.speaker for c in loso.val}) == 1 and len({c.speaker for c in loso.train}) == 4
    none = make_split(clips, "none", val_speakers=0)
    assert len(none.train) == 3000 and not none.val and not none.test
    with pytest.raises(AudreyError, match="unknown split"):
        make_split(clips, "kfold:3")
