"""Probes, their controls, saved probe sets and the live logit lens (issue 7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from audrey.audio.frontend import FrontendConfig
from audrey.data.corpora import Clip
from audrey.errors import AudreyError
from audrey.models import build_model
from audrey.observe.activations import capture
from audrey.observe.observer import Observer
from audrey.observe.probe_file import ProbeSet, find_probes, fit_probe_set, probes_path
from audrey.observe.probe_report import log_report, plot_report
from audrey.observe.probe_targets import control_labels, speaker_folds, take_folds, target_problem
from audrey.observe.probes import fit_probe
from audrey.observe.probing import run_probes
from helpers import fsdd_subset, one_line_error, require_fsdd

N_MELS = FrontendConfig().n_mels

SMALL_CONFORMER = {"d_model": 32, "ffn_dim": 64, "n_layers": 2, "n_heads": 2}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDREY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_MODE", "disabled")


def fake_clips(speakers: int, digits: int = 10, takes: int = 4, gender=None) -> list[Clip]:
    return [Clip(Path(f"{d}_s{s}_{t}.wav"), d, f"s{s}", "test", t, {"gender": gender(s)} if gender else {})
            for s in range(speakers) for d in range(digits) for t in range(takes)]


@pytest.mark.parametrize("arch", ["cnn", "conformer"])
def test_capture_pools_every_hook_point_to_one_vector_per_clip(arch):
    torch.manual_seed(0)
    model = build_model(arch, **({} if arch == "cnn" else SMALL_CONFORMER)).eval()
    x = torch.randn(3, N_MELS, 101)
    acts = capture(model, x, time_bins=4)
    assert list(acts) == model.hook_names()
    for name, a in acts.items():
        assert a.shape[0] == 3 and a.dim() == 2, (name, a.shape)
    assert acts["hook_input"].shape[1] == N_MELS * 4
    assert acts["head.hook_logits"].shape[1] == 10
    # pooling is the mean over time bins: one bin is the plain time average of the cached activation
    _, cache = model.run_with_cache(x)
    one = capture(model, x, ["hook_input"], time_bins=1)["hook_input"]
    assert torch.allclose(one, cache["hook_input"].mean(-1), atol=1e-5)


def test_folds_keep_speakers_apart_and_every_value_on_the_training_side():
    clips = fake_clips(6, gender=lambda s: "female" if s < 2 else "male")
    strata = [c.meta["gender"] for c in clips]
    folds = speaker_folds(clips, strata, 3, seed=0)
    for k in range(3):
        test_spk = {c.speaker for c, f in zip(clips, folds) if f == k}
        train_spk = {c.speaker for c, f in zip(clips, folds) if f != k}
        assert test_spk and not test_spk & train_spk
        assert {c.meta["gender"] for c, f in zip(clips, folds) if f != k} == {"female", "male"}
    takes = take_folds(clips, 3)
    for k in range(3):  # every speaker and digit on both sides of every take fold
        assert {(c.speaker, c.digit) for c, f in zip(clips, takes) if f == k} == {(c.speaker, c.digit) for c in clips}


def test_control_labels_are_fixed_per_speaker_and_digit():
    clips = fake_clips(3)
    y = control_labels(clips, 10, "type", seed=1)
    by_type = {}
    for c, v in zip(clips, y.tolist()):
        by_type.setdefault((c.speaker, c.digit), set()).add(v)
    assert all(len(v) == 1 for v in by_type.values())
    assert len({tuple(sorted(v)) for v in by_type.values()}) > 1  # not all the same label
    assert torch.equal(y, control_labels(clips, 10, "type", seed=1))  # deterministic


def test_planted_signal_is_read_and_noise_and_controls_stay_near_chance():
    """The probe can succeed (a planted class direction is read almost perfectly), and fails where
    it should: pure-noise activations and per-clip random labels stay near chance."""
    g = torch.Generator().manual_seed(0)
    clips = fake_clips(6, takes=8)  # 480 clips
    y = torch.tensor([c.digit for c in clips])
    directions = torch.randn(10, 32, generator=g)
    planted = directions[y] + 1.0 * torch.randn(len(clips), 32, generator=g)
    noise = torch.randn(len(clips), 32, generator=g)
    model = build_model("cnn")
    acts = {"hook_input": noise, "head.hook_embed": planted}
    feats = torch.zeros(len(clips), 1, 1)  # unused: activations are given
    for control in ("type", "utterance"):
        report = run_probes(model, feats, clips, ["digit"], layers=list(acts), activations=acts, random_init=False,
                            control=control)
        rows = {r.layer: r for r in report.rows}
        assert rows["head.hook_embed"].acc > 0.9
        assert abs(rows["hook_input"].acc - 0.1) < 0.07
        # a control: noise carries no (speaker, digit) identity to memorise, per-clip labels nothing at all
        assert abs(rows["hook_input"].control - 0.1) < 0.07, control
        if control == "utterance":
            assert abs(rows["head.hook_embed"].control - 0.1) < 0.07
        assert rows["head.hook_embed"].selectivity > 0.5
    assert report.readable_from("digit") == "head.hook_embed"


def test_probes_on_a_trained_model_beat_its_random_twin_and_random_labels_stay_at_chance(tmp_path, tiny_bundle):
    bundle = tiny_bundle
    from audrey.data.features import clip_features

    feats, clips = clip_features(fsdd_subset(), bundle.frontend)
    layers = ["hook_input", "blocks.4.hook_out", "head.hook_embed"]
    report = run_probes(bundle.model, feats, clips, ["digit"], layers=layers, control="utterance")
    rows = {r.layer: r for r in report.rows}
    assert rows["head.hook_embed"].acc > 0.8  # held-out speakers
    assert rows["head.hook_embed"].acc > rows["head.hook_embed"].random_init + 0.2
    for r in report.rows:  # labels shuffled per clip: nothing to learn, whatever the layer
        assert abs(r.control - 0.1) < 0.08, r
    assert plot_report(report, tmp_path / "probes.png").read_bytes()[:8] == PNG


def test_target_problems_are_named():
    clips = fake_clips(3, gender=lambda s: "male")
    assert "same gender" in target_problem(clips, "gender")
    assert "same source" in target_problem(clips, "source")
    assert target_problem(clips, "digit") is None and target_problem(clips, "speaker") is None
    one_female = fake_clips(3, gender=lambda s: "female" if s == 0 else "male")
    assert "only one speaker" in target_problem(one_female, "gender")
    with pytest.raises(AudreyError, match="unknown probe target 'accent'"):
        run_probes(build_model("cnn"), torch.zeros(len(clips), N_MELS, 101), clips, ["accent"])
    with pytest.raises(AudreyError, match="cannot probe gender"):
        run_probes(build_model("cnn"), torch.zeros(len(clips), N_MELS, 101), clips, ["gender"])
    with pytest.raises(AudreyError, match="unknown hook point"):
        run_probes(build_model("cnn"), torch.zeros(len(clips), N_MELS, 101), clips, ["digit"], layers=["blocks.9.hook_out"])


def test_fit_probe_is_deterministic():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(100, 8, generator=g), torch.randint(0, 3, (100,), generator=g)
    a, b = fit_probe(x, y, 3), fit_probe(x, y, 3)
    assert torch.equal(a.weight, b.weight)


def test_fit_probe_never_predicts_a_class_missing_from_its_training_side():
    """A training fold can lack a class (random control labels, a small fold): the probe keeps one
    column per class and never predicts the missing ones; a single class is always predicted."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 4, generator=g)
    y = torch.tensor([0, 2] * 30)
    x[y == 2] += 3.0
    probe = fit_probe(x, y, 4)
    assert probe.weight.shape == (4, 4) and probe.bias.shape == (4,)
    assert set(probe.predict(torch.randn(200, 4, generator=g) * 3).tolist()) <= {0, 2}
    assert (probe.predict(x) == y).float().mean() > 0.9
    only = fit_probe(x, torch.full((60,), 3), 4)
    assert probe.weight.dtype == torch.float32 and set(only.predict(x).tolist()) == {3}


def test_shipped_starter_probes_read_the_starter_model():
    """models/starter.probes.safetensors (`audrey probe --data ../shared/data/fsdd --target digit`
    for these exact weights) loads and reads the starter model: the logits-layer probe says what
    the model says."""
    from audrey.cli import DEFAULT_MODEL
    from audrey.data.features import clip_features

    if not find_probes(DEFAULT_MODEL).exists():
        pytest.skip("needs models/starter.probes.safetensors")
    observer = Observer.from_file(DEFAULT_MODEL)
    assert observer.probes.layers == observer.model.hook_names()
    clips = fsdd_subset(takes=1)
    feats, clips = clip_features(clips, observer.bundle.frontend)
    obs = observer.observe_features(feats)
    assert sum(o.digit == c.digit for o, c in zip(obs, clips)) >= 0.9 * len(clips)
    assert all(o.layers[-1].agrees for o in obs)


def test_probe_run_is_a_library_call(tmp_path, fsdd_copy, tiny_bundle):
    """`audrey probe` without the CLI: report, plot, and no probe file when none is asked for."""
    from audrey.models.modelfile import save_model
    from audrey.observe.probe_run import probe_run

    model_file = save_model(tiny_bundle, tmp_path / "m.safetensors")
    run = probe_run(model_file, [fsdd_copy], ["digit"], ["head.hook_embed"], random_init=False,
                    plot=tmp_path / "p.png", write_probes=False)
    assert [r.layer for r in run.report.rows] == ["head.hook_embed"] and run.report.rows[0].acc > 0.8
    assert run.plot.read_bytes()[:8] == PNG and run.probes_file is None
    assert not probes_path(model_file).exists() and run.to_dict()["probes_file"] is None
    with pytest.raises(AudreyError, match="--control 'speaker'"):
        probe_run(model_file, [fsdd_copy], control="speaker")


def test_probe_set_round_trip_and_observer_reads_each_layer(tmp_path, espeak_digit, tiny_bundle):
    from audrey.audio.waveform import load_audio
    from audrey.data.features import clip_features
    from audrey.models.modelfile import save_model
    from audrey.observe.ood import OODStats, fit_from_clips, sidecar_path

    bundle = tiny_bundle
    clips = fsdd_subset()
    feats, clips = clip_features(clips, bundle.frontend)
    probe_set = fit_probe_set(bundle.model, feats, clips)
    model_file = save_model(bundle, tmp_path / "m.safetensors")
    probe_set.save(probes_path(model_file))
    loaded = ProbeSet.load(probes_path(model_file))
    assert loaded.layers == bundle.model.hook_names() and loaded.classes == [str(d) for d in range(10)]
    for name in loaded.layers:
        assert torch.equal(loaded.probes[name].weight, probe_set.probes[name].weight)

    with pytest.raises(AudreyError, match="nothing to observe"):
        Observer(bundle)
    fit_from_clips(bundle, clips).save(sidecar_path(model_file))
    observer = Observer.from_file(model_file)
    obs = observer.observe_features(feats[:5])
    assert len(obs) == 5
    for o, f in zip(obs, feats[:5]):
        assert [r.layer for r in o.layers] == bundle.model.hook_names()
        assert o.digit == int(bundle.model(f[None]).argmax())
        assert o.layers[-1].agrees  # the probe on the logits reads what the model says
        assert o.reads_from is not None and set(o.ood) == {"score", "threshold", "flagged"}
        json.dumps(o.to_dict())
        assert "reads from" in o.line()
    wave = load_audio(espeak_digit(4), 22050)
    live = observer.observe_wave(wave, 22050)
    assert len(live.layers) == len(bundle.model.hook_names()) and live.ood["score"] >= 0

    # probes made for another model are refused
    other = save_model(type(bundle)(build_model("cnn").eval(), bundle.frontend), tmp_path / "other.safetensors")
    shutil.copy(probes_path(model_file), probes_path(other))
    with pytest.raises(AudreyError, match="another model"):
        Observer.from_file(other)
    assert isinstance(OODStats.load(sidecar_path(model_file)), OODStats)


@pytest.fixture
def fsdd_copy(tmp_path):
    """A small FSDD-layout corpus: 3 speakers x 10 digits x 3 takes, with speakers.csv."""
    root = require_fsdd()
    dest = tmp_path / "fsdd" / "recordings"
    dest.mkdir(parents=True)
    for c in fsdd_subset(takes=3):
        shutil.copy(c.path, dest / c.path.name)
    shutil.copy(root / "speakers.csv", tmp_path / "fsdd" / "speakers.csv")
    return tmp_path / "fsdd"


def test_probe_cli_table_plot_probes_and_errors(tmp_path, fsdd_copy, tiny_bundle, monkeypatch):
    from audrey.cli import app
    from audrey.models.modelfile import save_model

    runner = CliRunner()
    model_file = save_model(tiny_bundle, tmp_path / "m.safetensors")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["probe", "--model", str(model_file), "--data", str(fsdd_copy), "--target", "digit",
                                 "--layer", "hook_input", "--layer", "head.hook_embed", "--control", "utterance",
                                 "--no-random-init", "--plot", "p.png", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["layer"] for r in out["rows"]] == ["hook_input", "head.hook_embed"]
    assert out["rows"][1]["acc"] > 0.8 and abs(out["rows"][1]["control"] - 0.1) < 0.1
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG
    assert Path(out["probes_file"]) == probes_path(model_file) and probes_path(model_file).exists()

    result = runner.invoke(app, ["probe", "--model", str(model_file), "--data", str(fsdd_copy), "--target", "gender"])
    assert result.exit_code == 2
    assert "gender" in one_line_error(result.output) and "male" in result.output
    result = runner.invoke(app, ["probe", "--model", str(model_file), "--data", str(fsdd_copy), "--target", "age"])
    assert result.exit_code == 2 and "unknown probe target 'age'" in one_line_error(result.output)
    result = runner.invoke(app, ["probe", "--model", str(model_file), "--data", str(fsdd_copy), "--layer", "blocks.7"])
    assert result.exit_code == 2 and "blocks.7" in one_line_error(result.output)


def test_report_is_logged_as_a_table_and_an_image(tmp_path, monkeypatch):
    """log_report puts the probe table, the plot and a summary in the run record and the offline
    W&B run."""
    from audrey.tracking.wandb_run import Tracker, TrackingOptions
    from helpers import wandb_offline_run

    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    clips = fake_clips(4)
    g = torch.Generator().manual_seed(0)
    acts = {"hook_input": torch.randn(len(clips), 8, generator=g)}
    report = run_probes(build_model("cnn"), torch.zeros(len(clips), 1, 1), clips, ["digit"], layers=["hook_input"],
                        activations=acts, random_init=False)
    tracker = Tracker("probe", {"model": "x"}, TrackingOptions("offline"), name="x", runs_dir=tmp_path / "runs")
    log_report(tracker, report, plot_report(report, tmp_path / "p.png"))
    record = json.loads(tracker.finish().read_text())
    assert record["tables"]["probes/table"]["columns"][:3] == ["target", "layer", "acc"]
    assert len(record["tables"]["probes/table"]["rows"]) == len(report.rows)
    assert record["summary"]["probes/digit/readable_from"] in ("hook_input", "none")
    wb = wandb_offline_run(record["wandb"]["dir"])
    assert wb["tables"]["probes/table"]["columns"][:3] == ["target", "layer", "acc"]
    # the image as the client logged it (its history row): W&B's service derives the summary copy on
    # its own schedule, which a loaded machine can leave out of the file (seen once in CI)
    assert any(h.get("probes/plot/_type") == "image-file" for h in wb["history"])
    assert wb["summary"]["probes/digit/readable_from"] == record["summary"]["probes/digit/readable_from"]
