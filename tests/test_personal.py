"""Personal weights: adaptation on a voice the base handles badly, the weights file, and its errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from audrey.cli import app
from audrey.errors import AudreyError
from audrey.models.modelfile import load_model, model_digest, save_model
from audrey.audio.waveform import load_audio
from audrey.audio.frontend import LogMel
from audrey.live.recognizer import Recognizer
from audrey.models.personal_file import FORMAT, apply_personal, load_bundle, read_personal
from audrey.training.personal import AdaptConfig, check_enrollment, first_takes, learning_curve_advice, personalize, split_takes
from helpers import one_line_error


def test_adaptation_raises_accuracy_on_held_out_takes(tiny_model, deep_voice, tmp_path):
    """Three takes per digit enrolled, three held out: the base gets at most 70% of the held-out
    takes, the personal weights at least 90% and at least 20 points more; the file says so."""
    out = tmp_path / "deep.personal.safetensors"
    r = personalize("deep", tiny_model, out, recordings=deep_voice, holdout=3, curve=False)
    assert r.held_out == 30 and r.takes == {d: 6 for d in range(10)}
    before, after = round(r.before * 30), round(r.after * 30)  # held-out takes right
    assert before <= 21, f"the base should handle this voice badly, got {before}/30"
    assert after >= 27 and after >= before + 6, (before, after)
    meta, tensors = read_personal(out)
    assert meta["format"] == FORMAT and meta["arch"] == "cnn"
    base, _ = load_model(tiny_model)
    assert meta["base_digest"] == model_digest(base.model)
    info = meta["info"]
    assert info["speaker"] == "deep" and info["takes"] == {str(d): 6 for d in range(10)}
    assert len(info["take_files"]) == 60 and (info["before"], info["after"]) == (r.before, r.after)
    assert "head.fc.weight" in tensors and r.file_bytes == out.stat().st_size
    # the base's rejection, fitted to this voice: never stricter than the base's, and what
    # listen/transcribe use with these weights
    from audrey.live.calibration import Calibration, sidecar_path
    from audrey.live.judge import Judge
    from audrey.live.thresholds import SCORES

    rejection = info["rejection"]
    assert rejection == json.loads(json.dumps(r.rejection)) and rejection["takes"] == 60
    base_cal = Calibration.load(sidecar_path(tiny_model))
    fitted = rejection["thresholds"]
    for name, higher in SCORES.values():
        assert (fitted[name] <= getattr(base_cal, name)) if higher else (fitted[name] >= getattr(base_cal, name)), name
    assert rejection["accepted_after"] >= rejection["accepted_before"]
    judge = Judge.from_file(tiny_model, weights=out)
    assert {name: getattr(judge.calibration, name) for name in fitted} == pytest.approx(fitted)

    # `predict --weights` uses the personal model (the file was adapted on all 60 takes): it differs
    # from the base, and it is what load_bundle gives
    personal = load_bundle(tiny_model, out)
    assert model_digest(personal.model) != model_digest(base.model)
    assert personal.provenance["personal"]["speaker"] == "deep"
    runner = CliRunner()
    takes = sorted((deep_voice / "deep").glob("*.wav"))
    res = runner.invoke(app, ["predict", "--model", str(tiny_model), "--weights", str(out), "--json", *map(str, takes)])
    assert res.exit_code == 0, res.output
    predicted = [json.loads(line)["digit"] for line in res.stdout.splitlines()]
    assert predicted == [p.digit for p in Recognizer(personal).predict_files(takes)]
    assert predicted != [p.digit for p in Recognizer(base).predict_files(takes)]

    # transcribe/listen: digits from the personal model, rejection by the base's calibration (its
    # Mahalanobis class means live in the base's embedding space)
    assert judge.calibration is not None and judge.net is not None
    logits, embed, _, _ = judge.forward([load_audio(takes[0], personal.frontend.sample_rate)])
    base_embed = base.model.embed(LogMel(base.frontend)(torch.from_numpy(Recognizer(base).prepare(
        load_audio(takes[0], base.frontend.sample_rate)))[None]))
    assert torch.allclose(embed, base_embed, atol=1e-4)
    personal_embed = personal.model.embed(LogMel(base.frontend)(torch.from_numpy(Recognizer(base).prepare(
        load_audio(takes[0], base.frontend.sample_rate)))[None]))
    assert not torch.allclose(personal_embed, base_embed, atol=1e-2)  # so the check above can fail
    assert int(logits.argmax()) == predicted[0]
    res = runner.invoke(app, ["transcribe", "--model", str(tiny_model), "--weights", str(out), "--json", str(takes[0])])
    assert res.exit_code == 0, res.output

    res = runner.invoke(app, ["eval", "--data", str(deep_voice / "deep"), "--model", str(tiny_model), "--weights", str(out),
                              "--json", "--confusion", str(tmp_path / "cm.png")])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["accuracy"] >= 0.9


def test_personalize_cli_reports_before_after_and_curve(tiny_model, deep_voice, tmp_path):
    out = tmp_path / "p.personal.safetensors"
    res = CliRunner().invoke(app, ["personalize", "--speaker", "deep", "--recordings", str(deep_voice), "--base", str(tiny_model),
                                   "--out", str(out), "--holdout", "2", "--steps", "20", "--json"])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["held_out"] == 20 and [p["takes_per_digit"] for p in r["curve"]] == [1, 2, 4]
    assert 0 <= r["before"] <= 1 and r["after"] == r["curve"][-1]["accuracy"] and r["advice"]
    assert read_personal(out)[0]["info"]["adapt"]["steps"] == 20
    assert r["rejection"]["takes"] == 60 and 0 <= r["rejection"]["accepted_before"] <= r["rejection"]["accepted_after"] <= 1
    res = CliRunner().invoke(app, ["personalize", "--speaker", "deep", "--recordings", str(deep_voice), "--base", str(tiny_model),
                                   "--out", str(out), "--holdout", "0", "--steps", "2"])
    assert res.exit_code == 0, res.output
    assert "rejection fitted to your voice: of your 60 takes" in " ".join(res.output.split())


def test_a_calibration_for_another_model_is_not_fitted_silently(tiny_model, deep_voice, tmp_path):
    """A base whose rejection calibration was made for other weights: personalize works, and says why
    the rejection is not fitted to the voice and what to run."""
    from audrey.live.calibration import Calibration, sidecar_path

    base = tmp_path / "base.safetensors"
    shutil.copy(tiny_model, base)
    cal = Calibration.load(sidecar_path(tiny_model))
    cal.model_digest = "0" * len(cal.model_digest)
    cal.save(sidecar_path(base))
    res = CliRunner().invoke(app, ["personalize", "--speaker", "deep", "--recordings", str(deep_voice), "--base", str(base),
                                   "--out", str(tmp_path / "p.personal.safetensors"), "--holdout", "0", "--steps", "2"])
    assert res.exit_code == 0, res.output
    said = " ".join(res.output.split())
    assert f"{sidecar_path(base)}: calibrated for another model" in said and "audrey calibrate --model" in said
    assert "rejection fitted to your voice" not in said


def test_wrong_or_changed_base_is_a_clear_error(tiny_model, deep_voice, tmp_path):
    out = tmp_path / "deep.personal.safetensors"
    personalize("deep", tiny_model, out, recordings=deep_voice, holdout=0, curve=False, cfg=AdaptConfig(steps=2))
    # a base that changed: one weight nudged, saved under the same name elsewhere
    base, _ = load_model(tiny_model)
    with torch.no_grad():
        base.model.head.fc.bias[0] += 1e-3
    changed = save_model(base, tmp_path / "tiny.safetensors")
    with pytest.raises(AudreyError, match=r"personal weights made for another base model .*tiny\.safetensors has weights"):
        load_bundle(changed, out)
    res = CliRunner().invoke(app, ["predict", "--model", str(changed), "--weights", str(out), str(next((deep_voice / "deep").glob("*.wav")))])
    assert res.exit_code == 2 and "made for another base model" in one_line_error(res.output)
    # a model file where personal weights belong, a truncated file, a missing one
    with pytest.raises(AudreyError, match="it is a model file: pass it with --model"):
        apply_personal(base, changed)
    cut = tmp_path / "cut.personal.safetensors"
    cut.write_bytes(out.read_bytes()[:200])
    with pytest.raises(AudreyError, match="not a readable personal weights file"):
        apply_personal(base, cut)
    res = CliRunner().invoke(app, ["eval", "--data", str(deep_voice), "--model", str(tiny_model), "--weights", str(tmp_path / "none.safetensors")])
    assert res.exit_code == 2 and "none.safetensors: no such personal weights file" in one_line_error(res.output)
    # fitted rejection thresholds that are not numbers: transcribe names the file and the fix
    from safetensors.torch import load_file, save_file

    meta, _ = read_personal(out)
    assert "rejection" in meta["info"]
    meta["info"]["rejection"]["thresholds"] = {"min_p_digit": "high"}
    bad = tmp_path / "bad.personal.safetensors"
    save_file(load_file(str(out)), str(bad), metadata={**meta, "info": json.dumps(meta["info"])})
    res = CliRunner().invoke(app, ["transcribe", "--model", str(tiny_model), "--weights", str(bad),
                                   str(next((deep_voice / "deep").glob("*.wav")))])
    assert res.exit_code == 2 and ('bad.personal.safetensors: info.rejection.thresholds field min_p_digit is "high"; '
                                   "expected a number from 0 to 1") in one_line_error(res.output), res.output


def test_missing_digits_and_unknown_speaker_are_clear_errors(tiny_model, deep_voice, tmp_path):
    partial = tmp_path / "recordings" / "deep"
    partial.mkdir(parents=True)
    for path in (deep_voice / "deep").glob("*.wav"):
        if path.name[0] not in "37":
            shutil.copy(path, partial / path.name)
    runner = CliRunner()
    res = runner.invoke(app, ["personalize", "--speaker", "deep", "--recordings", str(tmp_path / "recordings"), "--base", str(tiny_model)])
    msg = one_line_error(res.output)
    assert res.exit_code == 2 and "missing: 3 (three): 0, 7 (seven): 0" in msg and "audrey record --speaker deep --digits 3,7" in msg, msg
    res = runner.invoke(app, ["personalize", "--speaker", "nobody", "--recordings", str(tmp_path / "recordings"), "--base", str(tiny_model)])
    assert res.exit_code == 2 and "no recordings for speaker 'nobody'" in one_line_error(res.output)
    assert not list(tmp_path.glob("**/*.personal.safetensors"))


def test_take_selection_and_advice():
    from audrey.data.corpora import Clip

    clips = [Clip(Path(f"{d}_x_{t}.wav"), d, "x", "t", t) for d in range(10) for t in range(5)]
    enroll, held = split_takes(clips, 2)
    assert len(enroll) == 30 and {c.take for c in held} == {3, 4}
    assert {c.take for c in first_takes(enroll, 2)} == {0, 1} and len(first_takes(enroll, 2)) == 20
    one = [c for c in clips if c.take == 0]
    assert split_takes(one, 1) == (one, [])  # every digit keeps its only take
    with pytest.raises(AudreyError, match=r"need at least 2 per digit, missing: 0 \(zero\): 1"):
        check_enrollment([c for c in clips if c.take < 2 and c.digit != 0] + clips[:1], need=2)
    assert "more take(s) per digit should halve it" in learning_curve_advice(
        [{"takes_per_digit": 1, "accuracy": 0.8}, {"takes_per_digit": 4, "accuracy": 0.95}], 5)
    assert "more takes would add little" in learning_curve_advice([{"takes_per_digit": 1, "accuracy": 0.99},
                                                                   {"takes_per_digit": 4, "accuracy": 1.0}], 5)


@pytest.mark.parametrize("args, message", [
    (["--holdout", "-1"], "--holdout -1: must be 0 or more"),
    (["--steps", "-5"], "--steps -5: must be 0 or more"),
    (["--rank", "65"], "--rank 65: expected 0 (every change whole) up to 64"),
])
def test_bad_personalize_options_are_one_line(tiny_model, deep_voice, tmp_path, args, message):
    res = CliRunner().invoke(app, ["personalize", "--speaker", "deep", "--recordings", str(deep_voice), "--base", str(tiny_model),
                                   "--out", str(tmp_path / "p.personal.safetensors"), "--wandb", "disabled", *args])
    assert res.exit_code == 2 and message in one_line_error(res.output)
    assert not (tmp_path / "p.personal.safetensors").exists()


def rank_r_personal(base, rank: int = 2, seed: int = 0):
    """A copy of `base` whose last convolution changed by an exact rank-`rank` matrix and whose
    head changed in full: what adaptation with low_rank_change leaves."""
    import copy

    g = torch.Generator().manual_seed(seed)
    personal = copy.deepcopy(base)
    with torch.no_grad():
        w = personal.model.blocks[4].conv.weight
        change = torch.randn(w.shape[0], rank, generator=g) @ torch.randn(rank, w[0].numel(), generator=g)
        w += 1e-2 * change.reshape(w.shape)
        personal.model.head.fc.bias += 0.1
    return personal


def test_large_changes_are_stored_as_low_rank_factors(tiny_model, tmp_path):
    """A rank-2 change of a 110k-element convolution is stored as two small factors, and loading
    multiplies them back: the same weights to float precision, in a file a fraction of the size."""
    from audrey.models.personal_file import LOW_RANK_U, LOW_RANK_V, save_personal

    base, _ = load_model(tiny_model)
    personal = rank_r_personal(base)
    small = save_personal(tmp_path / "r4.personal.safetensors", base, personal, {"speaker": "x"}, rank=4)
    whole = save_personal(tmp_path / "r0.personal.safetensors", base, personal, {"speaker": "x"}, rank=0)
    _, tensors = read_personal(small)
    name = "blocks.4.conv.weight"
    assert set(tensors) == {name + LOW_RANK_U, name + LOW_RANK_V, "head.fc.bias"}
    assert tensors[name + LOW_RANK_U].shape == (128, 2) and tensors[name + LOW_RANK_V].shape == (2, 96 * 9)
    assert set(read_personal(whole)[1]) == {name, "head.fc.bias"}
    assert small.stat().st_size < whole.stat().st_size / 20
    for path in (small, whole):
        loaded = apply_personal(base, path, tiny_model).model.state_dict()
        for key, value in personal.model.state_dict().items():
            assert torch.allclose(loaded[key], value, atol=1e-6), (path.name, key)
    # the base itself is untouched, and adapting keeps each large change within the rank
    assert torch.equal(load_model(tiny_model)[0].model.blocks[4].conv.weight, base.model.blocks[4].conv.weight)


def test_adaptation_keeps_each_large_change_within_its_rank(tiny_model, deep_voice, tmp_path):
    out = tmp_path / "deep.personal.safetensors"
    r = personalize("deep", tiny_model, out, recordings=deep_voice, holdout=0, curve=False, cfg=AdaptConfig(steps=5, rank=3))
    _, tensors = read_personal(out)
    factored = sorted(k for k in tensors if k.endswith(".lowrank_u"))
    assert factored == [f"blocks.{i}.conv.weight.lowrank_u" for i in (1, 2, 3, 4)]
    assert all(tensors[k].shape[1] == 3 for k in factored)
    base, _ = load_model(tiny_model)
    personal = load_bundle(tiny_model, out).model.state_dict()
    for i in (1, 2, 3, 4):
        key = f"blocks.{i}.conv.weight"
        change = (personal[key] - base.model.state_dict()[key]).reshape(personal[key].shape[0], -1)
        s = torch.linalg.svdvals(change.double())
        assert s[3:].max() <= 1e-5 * s[0], key  # rank 3, up to float error
    assert r.file_bytes < 40_000, r.file_bytes


@pytest.mark.parametrize("damage, message", [
    ("no_v", "the low-rank change of blocks.4.conv.weight lacks blocks.4.conv.weight.lowrank_v"),
    ("both", "blocks.4.conv.weight is stored both in full and as a low-rank change"),
    ("rank", "has an unexpected tensor blocks.4.conv.weight.lowrank_u"),
    ("v_shape", "tensor blocks.4.conv.weight.lowrank_v is F32 [2, 800], expected F32 [2, 864]"),
    ("nan", "tensor blocks.4.conv.weight.lowrank_u holds NaN"),
])
def test_damaged_low_rank_factors_are_one_line(tiny_model, tmp_path, damage, message):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from audrey.models.personal_file import save_personal

    base, _ = load_model(tiny_model)
    good = save_personal(tmp_path / "good.personal.safetensors", base, rank_r_personal(base), {"speaker": "x"}, rank=4)
    with safe_open(str(good), framework="pt") as fh:
        meta, tensors = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}
    u, v = "blocks.4.conv.weight.lowrank_u", "blocks.4.conv.weight.lowrank_v"
    if damage == "no_v":
        del tensors[v]
    elif damage == "both":
        tensors["blocks.4.conv.weight"] = base.model.blocks[4].conv.weight.detach().contiguous().clone()
    elif damage == "rank":
        tensors[u], tensors[v] = torch.zeros(128, 900), torch.zeros(900, 864)
    elif damage == "v_shape":
        tensors[v] = torch.zeros(2, 800)
    elif damage == "nan":
        tensors[u][0, 0] = float("nan")
    bad = tmp_path / "bad.personal.safetensors"
    save_file(tensors, str(bad), metadata=meta)
    with pytest.raises(AudreyError) as info:
        apply_personal(base, bad, tiny_model)
    assert message in str(info.value) and "bad.personal.safetensors" in str(info.value) and "\n" not in str(info.value)



def test_digits_without_a_take_are_not_unlearned(tiny_model, deep_voice):
    """Takes of only some digits (as when enrolling from a few utterances): nothing teaches the
    model that the other digits are unlikely (their head rows stay the base's: no loss term and no
    prototype reaches them), and the enrolled digits are heard better."""
    from audrey.data.corpora import read_corpus
    from audrey.data.features import FeatureCache, clip_features
    from audrey.training.personal import accuracy, adapt

    base, _ = load_model(tiny_model)
    feats, clips = clip_features(read_corpus(deep_voice / "deep"), base.frontend, FeatureCache(base.frontend), "deep")
    labels = torch.tensor([c.digit for c in clips])
    takes = torch.tensor([c.take for c in clips])
    enroll = (takes < 3) & (labels < 6)
    personal = adapt(base, feats[enroll], labels[enroll], AdaptConfig(steps=30))
    fc, base_fc = personal.model.head.fc, base.model.head.fc
    assert torch.equal(fc.weight[6:], base_fc.weight[6:]) and torch.equal(fc.bias[6:], base_fc.bias[6:])
    assert not torch.allclose(fc.weight[:6], base_fc.weight[:6])
    seen = (takes >= 3) & (labels < 6)
    assert accuracy(personal, feats[seen], labels[seen]) > accuracy(base, feats[seen], labels[seen])


@pytest.mark.parametrize("before, after, warned", [(0.99, 0.98, True), (0.95, 0.99, False), (0.97, 0.97, False)])
def test_personalize_says_when_the_base_hears_the_voice_better(tmp_path, capsys, before, after, warned):
    """When the personal weights do worse on the held-out takes than the base (a base that already
    knows the voice can lose a little to adaptation), `personalize` says to keep the base."""
    from audrey.report import print_personal
    from audrey.training.personal import PersonalResult

    result = PersonalResult(path=tmp_path / "ada.personal.safetensors", speaker="ada", takes={d: 3 for d in range(10)},
                            held_out=10, before=before, after=after, curve=[], advice="", adapt_seconds=1.0,
                            file_bytes=45_000, changed=12, rank=4)
    print_personal(result)
    text = " ".join(capsys.readouterr().out.split())
    assert ("keep using the base" in text) is warned, text
    assert f"base {before:.1%} -> personal {after:.1%}" in text
