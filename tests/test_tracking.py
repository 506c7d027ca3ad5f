"""Run tracking: offline W&B runs and local run records hold the same figures; disabled writes
nothing; `runs list|compare|sync`; personal weights name their base; the sweep runs `audrey train`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from audrey.audio.frontend import FrontendConfig
from audrey.cli import app
from audrey.models.modelfile import load_model, model_digest
from helpers import one_line_error, wandb_offline_run

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDREY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    for var in ("WANDB_MODE", "WANDB_PROJECT", "WANDB_RUN_GROUP", "WANDB_TAGS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def voices(tmp_path, espeak_digit) -> Path:
    """Three espeak-ng voices as speakers (FSDD naming): 30 clips."""
    root = tmp_path / "voices"
    root.mkdir()
    for d in range(10):
        for voice in ("us", "gb", "sc"):
            (root / f"{d}_{voice}_0.wav").write_bytes(espeak_digit(d, voice).read_bytes())
    return root


def train(voices: Path, out: str, *extra: str):
    res = runner.invoke(app, ["train", "--data", str(voices), "--split", "loso:sc", "--val-speakers", "1", "--epochs", "2",
                              "--batch-size", "8", "--out", out, *extra])
    assert res.exit_code == 0, res.output
    return res


def only(paths) -> Path:
    paths = list(paths)
    assert len(paths) == 1, paths
    return paths[0]


def test_offline_train_run_records_config_metrics_tables_and_model_artifact(tmp_path, voices, monkeypatch):
    monkeypatch.setenv("WANDB_TAGS", "smoke,cnn")
    train(voices, "m.safetensors", "--group", "g1")
    rec = json.loads(only((tmp_path / "runs").glob("*-train-m.json")).read_text())
    bundle, _ = load_model(tmp_path / "m.safetensors")
    digest = model_digest(bundle.model)

    # the local record: config, history, summary, tables, artifact
    cfg = rec["config"]
    assert cfg["train"]["arch"] == "cnn" and cfg["train"]["epochs"] == 2 and cfg["split"] == "loso:sc"
    assert cfg["speakers"]["test"] == ["sc"] and sorted(cfg["speakers"]["train"] + cfg["speakers"]["val"]) == ["gb", "us"]
    assert cfg["frontend"]["n_mels"] == FrontendConfig().n_mels
    assert rec["system"]["code_version"] and rec["system"]["cpus"] >= 1
    assert [h["epoch"] for h in rec["history"]] == [1, 2] and all("val_acc" in h and "train_loss" in h for h in rec["history"])
    s = rec["summary"]
    assert s["test_clips"] == 10 and 0 <= s["test_acc"] <= 1 and s["best_epoch"] in (1, 2)
    assert rec["tables"]["test/per_speaker"]["rows"] == [["sc", pytest.approx(s["test_acc"])]]
    assert [r[0] for r in rec["tables"]["test/per_digit"]["rows"]] == list(range(10))
    confusion = rec["tables"]["test/confusion"]["rows"]
    assert len(confusion) == 10 and sum(sum(r[1:]) for r in confusion) == 10
    wrong = round(10 * (1 - s["test_acc"]))
    assert len(rec["tables"]["test/worst"]["rows"]) == min(wrong, 10)
    assert rec["artifacts"] == [{"path": "m.safetensors", "name": "m", "type": "model", "alias": f"w-{digest}",
                                 "metadata": {"arch": "cnn", "data": [str(voices)], "split": "loso:sc", "best_epoch": s["best_epoch"]}}]
    assert rec["wandb"]["mode"] == "offline" and rec["wandb"]["group"] == "g1" and rec["wandb"]["tags"] == ["smoke", "cnn"]

    # the W&B run holds the same figures
    run_dir = Path(rec["wandb"]["dir"])
    assert run_dir.parent == tmp_path / "wandb" and run_dir.name.startswith("offline-run-")
    wb = wandb_offline_run(run_dir)
    assert wb["config"]["train"]["arch"] == "cnn" and wb["config"]["system"]["code_version"] == rec["system"]["code_version"]
    epochs = [h for h in wb["history"] if "train_loss" in h]
    assert [h["val_acc"] for h in epochs] == pytest.approx([h["val_acc"] for h in rec["history"]])
    assert wb["summary"]["test_acc"] == pytest.approx(s["test_acc"])
    model = only(a for a in wb["artifacts"] if a["type"] == "model")
    assert model["name"] == "m" and f"w-{digest}" in model["aliases"] and model["files"] == ["m.safetensors"]
    assert wb["tables"]["test/per_speaker"]["data"] == [["sc", pytest.approx(s["test_acc"])]]
    assert len(wb["tables"]["test/confusion_table"]["data"]) == 100  # wandb.plot.confusion_matrix: 10 x 10 cells
    if wrong:
        worst = wb["tables"]["test/worst"]
        assert worst["columns"][-2:] == ["audio", "spectrogram"] and len(worst["data"]) == min(wrong, 10)
        assert {c for row in worst["data"] for c in row[-2:]} == {"Audio", "Image"}
        # the clips and their spectrograms travel in the table's artifact
        files = only(a for a in wb["artifacts"] if a["type"] == "run_table" and "-testworst" in a["name"])["files"]
        assert sum(f.startswith("media/audio/") and f.endswith(".wav") for f in files) == len(worst["data"])
        assert sum(f.startswith("media/images/") and f.endswith(".png") for f in files) == len(worst["data"])


def test_disabled_writes_nothing(tmp_path, voices, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    train(voices, "m.safetensors")
    assert (tmp_path / "m.safetensors").exists()
    assert not (tmp_path / "runs").exists() and not (tmp_path / "wandb").exists()
    res = runner.invoke(app, ["train", "--data", str(voices), "--wandb", "sometimes"])
    assert res.exit_code == 2 and "W&B mode 'sometimes' is not one of online, offline, disabled" in one_line_error(res.output)


def test_personal_weights_artifact_names_its_base(tmp_path, tiny_model, deep_voice):
    res = runner.invoke(app, ["personalize", "--speaker", "deep", "--recordings", str(deep_voice), "--base", str(tiny_model),
                              "--out", "deep.personal.safetensors", "--no-curve", "--steps", "10", "--tag", "personal"])
    assert res.exit_code == 0, res.output
    rec = json.loads(only((tmp_path / "runs").glob("*-personalize-deep.json")).read_text())
    base_digest = model_digest(load_model(tiny_model)[0].model)
    assert rec["config"]["base_digest"] == base_digest and rec["config"]["speaker"] == "deep"
    assert rec["uses"] == [{"path": str(tiny_model), "name": "tiny", "type": "model", "digest": base_digest,
                            "alias": f"w-{base_digest}", "declared": False}]  # declared by `runs sync` (offline)
    assert 0 <= rec["summary"]["before"] <= 1 and rec["tables"]["personal/takes"]["rows"] == [[d, 6] for d in range(10)]
    wb = wandb_offline_run(Path(rec["wandb"]["dir"]))
    art = only(a for a in wb["artifacts"] if a["type"] == "personal-weights")
    assert art["name"] == "deep-personal" and art["metadata"]["inputs"] == [f"tiny:w-{base_digest}"]
    assert art["metadata"]["base_digest"] == base_digest and wb["summary"]["after"] == pytest.approx(rec["summary"]["after"])


def test_eval_run_logs_tables(tmp_path, tiny_model, voices):
    res = runner.invoke(app, ["eval", "--data", str(voices), "--model", str(tiny_model), "--json", "--confusion", "cm.png"])
    assert res.exit_code == 0, res.output
    rec = json.loads(only((tmp_path / "runs").glob("*-eval-*.json")).read_text())
    out = json.loads(res.stdout)
    assert rec["summary"]["eval_acc"] == pytest.approx(out["accuracy"]) and rec["summary"]["eval_clips"] == 30
    assert {r[0] for r in rec["tables"]["eval/per_speaker"]["rows"]} == {"us", "gb", "sc"}
    assert rec["summary"]["eval/confusion_plot"] == "cm.png"


def test_runs_list_compare_and_sync_dry_run(tmp_path, voices):
    train(voices, "cnn.safetensors", "--model", "cnn")
    train(voices, "conformer.safetensors", "--model", "conformer")
    res = runner.invoke(app, ["runs", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["arch"] for r in rows] == ["cnn", "conformer"] and all(r["epochs"] == 2 for r in rows)
    res = runner.invoke(app, ["runs", "compare", "train-cnn", "train-conformer", "--json", "--plot", "cmp.png"])
    assert res.exit_code == 0, res.output
    cmp = json.loads(res.stdout)
    assert [r["arch"] for r in cmp["runs"]] == ["cnn", "conformer"]
    assert cmp["config_differences"]["train.arch"] == ["cnn", "conformer"] and "train.lr" not in cmp["config_differences"]
    assert (tmp_path / "cmp.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    res = runner.invoke(app, ["runs", "compare", "conformer"])  # any unique part of an id
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["runs", "compare", "train"])
    assert res.exit_code == 2 and "matches 2 runs" in one_line_error(res.output)
    res = runner.invoke(app, ["runs", "sync", "--dry-run"])
    assert res.exit_code == 0 and res.stdout.count("would sync") == 2, res.output


def test_sweep_runs_audrey_train_as_an_agent_would(tmp_path, voices):
    """Every sweep parameter is an option of `audrey train`, and the command an agent builds from
    the sweep file (with this test's data in place of AudioMNIST) trains and logs `val_acc`."""
    sweep = yaml.safe_load((REPO / "sweeps" / "train.yaml").read_text())
    assert sweep["metric"]["name"] == "val_acc"
    command = sweep["command"]
    assert command[:3] == ["${env}", "audrey", "train"] and command[-1] == "${args}"
    values = {"model": "conformer", "lr": 0.002, "batch-size": 8, "epochs": 1, "synth": 0}
    assert set(values) == set(sweep["parameters"])
    args = [f"--{k}={v}" for k, v in values.items()]  # how `wandb agent` expands ${args}
    cli = [a for a in command[3:-1]]
    cli[cli.index("--data") + 1] = str(voices)
    cli[cli.index("--split") + 1] = "loso:sc"
    cli[cli.index("--wandb") + 1] = "offline"  # no server here
    res = runner.invoke(app, ["train", *cli, *args])
    assert res.exit_code == 0, f"audrey train {shlex.join(cli + args)}: {res.output}"
    rec = json.loads(only((tmp_path / "runs").glob("*-train-sweep.json")).read_text())
    assert rec["config"]["train"]["arch"] == "conformer" and rec["config"]["train"]["lr"] == 0.002
    assert "val_acc" in rec["history"][0]


def test_two_runs_of_one_name_in_one_second_keep_both_records(tmp_path):
    from audrey.tracking.records import read_records
    from audrey.tracking.wandb_run import Tracker, TrackingOptions

    paths = []
    for acc in (0.5, 0.6):
        t = Tracker("eval", {"data": ["x"]}, TrackingOptions("offline"), name="same", runs_dir=tmp_path / "runs")
        t.id = t.record["id"] = "20260101-000000-eval-same"  # as if both started in the same second
        t.summary({"eval_acc": acc})
        paths.append(t.finish())
    assert paths[0] != paths[1] and paths[1].name == "20260101-000000-eval-same~2.json"
    assert sorted(r["summary"]["eval_acc"] for r in read_records(tmp_path / "runs")) == [0.5, 0.6]


def test_sync_without_a_login_is_one_clear_line(tmp_path, monkeypatch):
    """`runs sync` really calls `wandb sync`; with no API key it fails at once with one line, and
    the record stays unsynced for the next try."""
    from audrey.tracking.wandb_run import Tracker, TrackingOptions

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: no login
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    t = Tracker("eval", {"data": ["x"]}, TrackingOptions("offline"), name="s", runs_dir=tmp_path / "runs")
    t.summary({"eval_acc": 0.5})
    path = t.finish()
    res = runner.invoke(app, ["runs", "sync"])
    msg = one_line_error(res.output)
    assert res.exit_code == 2 and "wandb sync" in msg and "wandb login" in msg, msg
    assert "synced" not in json.loads(path.read_text())["wandb"]


def test_unknown_run_is_one_line(tmp_path):
    (tmp_path / "runs").mkdir()
    res = runner.invoke(app, ["runs", "compare", "nothing-like-this"])
    assert res.exit_code == 2 and "run 'nothing-like-this': no such run record" in one_line_error(res.output)
