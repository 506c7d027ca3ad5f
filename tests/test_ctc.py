"""The digit-string model: CTC decoding on hand-made posteriors, the model's shapes and hook points,
its file, the material's token sequences, and a tiny training run that learns a synthetic pattern."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch

from audrey.errors import AudreyError
from audrey.models.ctc import BLANK, OTHER, STRING_FRONTEND, TOKENS, CTCConfig, CTCModel, output_lengths
from audrey.models.ctc_decode import constrained, digits_of, greedy
from audrey.models.ctc_file import CTCBundle, load_ctc, save_ctc
from tests import crafted

FRAME = 0.04


def posteriors(path: list[int], sure: float = 0.9) -> np.ndarray:
    """(frames, tokens) log-probabilities whose best token at frame t is path[t], with probability `sure`."""
    p = np.full((len(path), len(TOKENS)), (1 - sure) / (len(TOKENS) - 1))
    p[np.arange(len(path)), path] = sure
    return np.log(p)


def tok(d: int) -> int:
    return d + 1


def test_greedy_collapses_repeats_and_drops_blanks():
    b = BLANK
    lp = posteriors([b, tok(4), tok(4), b, tok(2), b, b, tok(2), tok(7), OTHER, OTHER, b])
    tokens = greedy(lp, FRAME)
    assert [t.token for t in tokens] == [tok(4), tok(2), tok(2), tok(7), OTHER]
    assert digits_of(tokens) == "4227"  # non-digit speech prints nothing
    assert tokens[0].start == pytest.approx(0.04) and tokens[0].end == pytest.approx(0.12)
    assert tokens[3].start == pytest.approx(8 * FRAME) and tokens[3].end == pytest.approx(9 * FRAME)
    assert all(t.confidence == pytest.approx(0.9) for t in tokens)
    assert greedy(posteriors([b, b, b]), FRAME) == []


def test_greedy_confidence_is_the_mean_posterior_of_the_run():
    lp = posteriors([tok(1), tok(1)])
    lp[1] = np.log(np.full(len(TOKENS), 0.02))
    lp[1, tok(1)] = np.log(1 - 0.02 * (len(TOKENS) - 1))
    (token,) = greedy(lp, FRAME)
    assert token.confidence == pytest.approx((0.9 + np.exp(lp[1, tok(1)])) / 2)


def brute_force_best(lp: np.ndarray, digits: int) -> float:
    """Highest path log-probability with exactly `digits` digit tokens after collapse, by enumeration."""
    best = -np.inf
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        collapsed = [s for i, s in enumerate(path) if s != BLANK and (i == 0 or path[i - 1] != s)]
        if sum(1 <= s <= 10 for s in collapsed) == digits:
            best = max(best, float(sum(lp[t, s] for t, s in enumerate(path))))
    return best


def test_constrained_matches_brute_force_on_small_random_posteriors():
    rng = np.random.default_rng(0)
    # a 4-token vocabulary would not do: the decoder's own token layout is tested (blank, 10 digits, other)
    for trial in range(3):
        logits = rng.normal(size=(4, len(TOKENS))) * 2
        lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        for digits in range(0, 4):
            tokens = constrained(lp, FRAME, digits)
            assert len(digits_of(tokens)) == digits
            # the score of the decoded path equals the brute-force best
            want = brute_force_best(lp, digits)
            path = decoded_path(tokens, lp.shape[0])
            assert path_score(lp, path, tokens) == pytest.approx(want, abs=1e-9)


def decoded_path(tokens, n_frames: int) -> list[int]:
    path = [BLANK] * n_frames
    for t in tokens:
        for f in range(round(t.start / FRAME), round(t.end / FRAME)):
            path[f] = t.token
    return path


def path_score(lp, path, tokens) -> float:
    return float(sum(lp[t, s] for t, s in enumerate(path)))


def test_constrained_fills_in_a_digit_greedy_missed_and_drops_an_extra_one():
    b = BLANK
    lp = posteriors([b, tok(5), b, b, b, tok(3), b], sure=0.6)
    lp[3, tok(8)] = np.log(0.35)  # a weak third digit that greedy misses
    assert digits_of(greedy(lp, FRAME)) == "53"
    assert digits_of(constrained(lp, FRAME, 3)) == "583"
    assert len(digits_of(constrained(lp, FRAME, 1))) == 1
    assert digits_of(constrained(lp, FRAME, 2)) == "53"


def test_constrained_repeated_digit_needs_a_blank_and_too_many_digits_is_empty():
    lp = posteriors([tok(2), tok(2), tok(2)])
    lp[1, BLANK] = np.log(0.05)  # the likeliest way to split the run into two: 2, blank, 2
    assert digits_of(constrained(lp, FRAME, 2)) == "22"  # 2, blank, 2 is the only way
    assert constrained(lp, FRAME, 4) == []  # three frames cannot hold four digits
    with pytest.raises(AudreyError, match="--digits"):
        constrained(lp, FRAME, -1)


def test_model_shapes_hooks_and_padding():
    torch.manual_seed(0)
    model = CTCModel(CTCConfig(d_model=32, ffn_dim=64, n_layers=2)).eval()
    assert model.hook_names() == ["hook_input", "hook_subsample", "blocks.0.hook_out", "blocks.1.hook_out", "hook_logits"]
    feats = torch.randn(2, 64, 101)
    out, cache = model.run_with_cache(feats)
    assert out.shape == (2, int(output_lengths(torch.tensor(101))), len(TOKENS)) == (2, 26, 12)
    assert torch.allclose(out.exp().sum(-1), torch.ones(2, 26), atol=1e-5)
    assert cache["hook_subsample"].shape == (2, 26, 32) and cache["blocks.1.hook_out"].shape == (26, 2, 32)
    # a clip padded in a batch decodes as it does alone
    long = torch.randn(2, 64, 401)
    short = long[1:, :, :201]
    padded = torch.cat([short, torch.full((1, 64, 200), -13.8)], dim=2)
    alone = model(short)[0]
    batched = model(torch.cat([long[:1], padded]), torch.tensor([401, 201]))[1]
    assert torch.allclose(batched[: alone.shape[0]], alone, atol=1e-4)
    assert not torch.allclose(model(padded)[0, : alone.shape[0]], alone, atol=1e-2)  # without lengths it would not


def test_default_model_is_under_a_megabyte(tmp_path):
    bundle = CTCBundle(CTCModel(), STRING_FRONTEND)
    path = save_ctc(bundle, tmp_path / "strings.safetensors")
    assert path.stat().st_size <= 1_000_000


def test_save_load_round_trip_and_refusals(tmp_path):
    torch.manual_seed(0)
    model = CTCModel(CTCConfig(d_model=16, ffn_dim=32, n_layers=1, n_heads=2)).eval()
    path = save_ctc(CTCBundle(model, STRING_FRONTEND, {"note": "test"}), tmp_path / "m.safetensors")
    loaded = load_ctc(path)
    x = torch.randn(1, 64, 80)
    assert torch.equal(loaded.model(x), model(x))
    assert loaded.frontend == STRING_FRONTEND and loaded.provenance["note"] == "test"
    assert loaded.frame_seconds == pytest.approx(0.04)
    data = path.read_bytes()
    bad = tmp_path / "bad.safetensors"
    for key, change, message in [
        ("model_config", crafted.set_field("model_config", "n_layers", 2), "weights do not fit"),
        ("model_config", crafted.set_field("model_config", "d_model", 10**6), "field d_model"),
        ("frontend", crafted.set_field("frontend", "n_mels", 40), "n_mels"),
        ("tokens", lambda _: ["a", "b"], "tokens are"),
        ("format", lambda _: "audrey-model/1", "not an Audrey digit-string model file"),
    ]:
        bad.write_bytes(crafted.with_metadata(data, key, change))
        with pytest.raises(AudreyError, match=message) as exc:
            load_ctc(bad)
        assert str(bad) in str(exc.value) and "\n" not in str(exc.value)
    weights = dict(model.state_dict())
    name = next(iter(weights))
    bad.write_bytes(crafted.with_tensor(data, name, [float("nan")]))
    with pytest.raises(AudreyError, match="NaN"):
        load_ctc(bad)


def test_word_tokens_map_transcripts():
    from audrey.data.strings import word_tokens

    assert word_tokens(("one", "five", "two")) == (tok(1), tok(5), tok(2))
    assert word_tokens(("x", "i", "sixty", "one")) == (OTHER, tok(1))  # a run of other words is one token
    assert word_tokens(("r", "e", "eight", "oh", "six")) == (OTHER, tok(8), tok(0), tok(6))
    assert word_tokens(("enter",)) == (OTHER,) and word_tokens(()) == (OTHER,)


def test_assemble_places_pieces_with_gaps_and_overlap():
    from audrey.data.strings import RATE, Piece, assemble

    rng = np.random.default_rng(0)
    tone = lambda f: (0.5 * np.sin(2 * np.pi * f * np.arange(RATE // 4) / RATE)).astype(np.float32)
    pieces = [Piece(tone(300), tok(1), "a"), Piece(tone(500), OTHER, "a"), Piece(tone(700), OTHER, "a"), Piece(tone(900), tok(2), "a")]
    wave, tokens = assemble(pieces, rng, gap=(0.2, 0.2))
    assert tokens == (tok(1), OTHER, tok(2))
    assert len(wave) >= 4 * RATE // 4 + 3 * int(0.2 * RATE)
    overlapped, _ = assemble(pieces, np.random.default_rng(0), gap=(-0.05, -0.05))
    assert len(wave) - len(overlapped) == 3 * (int(0.2 * RATE) - int(-0.05 * RATE))  # same seed: same lead and tail


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_moves_duration_and_pitch_together(factor):
    """A tape played `factor` times as fast: 1/factor as long, every frequency times factor, the same tokens."""
    from audrey.data.strings import RATE, Example, speed_perturbed

    seconds = 0.5
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(int(seconds * RATE)) / RATE)).astype(np.float32)
    fast = speed_perturbed(Example(tone, (tok(4), OTHER), "s", "an4"), factor)
    assert (fast.tokens, fast.speaker, fast.kind) == ((tok(4), OTHER), "s", "an4")
    assert abs(len(fast.wave) - len(tone) / factor) <= 2
    spectrum = np.abs(np.fft.rfft(fast.wave * np.hanning(len(fast.wave))))
    peak_hz = np.argmax(spectrum) * RATE / len(fast.wave)
    assert abs(peak_hz - 440 * factor) < 4, peak_hz


@pytest.mark.parametrize("factor", [0.0, -1.0, 0.2, 3.0])
def test_speed_perturbation_refuses_a_factor_no_speech_has(factor):
    from audrey.data.strings import Example, speed_perturbed

    with pytest.raises(ValueError, match=f"speed factor {factor}: expected 0.5 to 2.0"):
        speed_perturbed(Example(np.zeros(1600, np.float32), (OTHER,), "s", "an4"), factor)


def test_held_out_is_stable_and_near_its_share():
    from audrey.data.strings import held_out

    speakers = [f"an4-s{i}" for i in range(400)]
    share = np.mean([held_out(s, 0.25) for s in speakers])
    assert 0.18 < share < 0.32
    assert [held_out(s, 0.25) for s in speakers] == [held_out(s, 0.25) for s in speakers]


def test_tiny_training_learns_a_synthetic_pattern():
    """Two "words" as fixed spectral patterns: after a short training, greedy decoding reads strings of them."""
    from audrey.training.ctc_train import CTCTraining, train_ctc

    rng = np.random.default_rng(0)
    n_mels = 16
    shapes = {tok(3): np.eye(n_mels)[2:6].sum(0), tok(7): np.eye(n_mels)[10:14].sum(0)}

    def sample():
        seq = [int(rng.choice(list(shapes))) for _ in range(rng.integers(1, 4))]
        cols = [np.full((n_mels, rng.integers(4, 9)), 0.0)]
        for s in seq:
            cols.append(np.repeat(shapes[s][:, None] * 6, rng.integers(8, 13), 1))
            cols.append(np.zeros((n_mels, rng.integers(6, 10))))
        x = np.concatenate(cols, 1) - 6 + rng.normal(0, 0.3, (n_mels, sum(c.shape[1] for c in cols)))
        return torch.tensor(x, dtype=torch.float16), tuple(seq)

    data = [sample() for _ in range(160)]
    cfg = CTCConfig(n_mels=n_mels, d_model=32, ffn_dim=64, n_layers=1, n_heads=2, dropout=0.0)
    frontend = STRING_FRONTEND.__class__(**{**STRING_FRONTEND.to_dict(), "n_mels": n_mels})
    model = train_ctc([f for f, _ in data], [t for _, t in data], cfg, frontend,
                      CTCTraining(epochs=20, batch_frames=1600, lr=5e-3, spec_augment=False), log=lambda _: None)
    tests = [sample() for _ in range(20)]
    with torch.no_grad():
        right = sum(tuple(t.token for t in greedy(model(f.float()[None])[0], FRAME)) == seq for f, seq in tests)
    assert right >= 18


def test_damaged_ctc_files_load_or_are_refused_in_one_line(tmp_path):
    """Seeded mutants of a small model file (tests/crafted.py's mutations): each loads and runs,
    or is one AudreyError naming the file; nothing else escapes. (In-process: a mutant can ask for
    at most the bounded config's size, and the layout check refuses that before building it.)"""
    import random

    torch.manual_seed(0)
    model = CTCModel(CTCConfig(d_model=16, ffn_dim=32, n_layers=1, n_heads=2)).eval()
    good = save_ctc(CTCBundle(model, STRING_FRONTEND), tmp_path / "good.safetensors").read_bytes()
    path = tmp_path / "mutant.safetensors"
    rng = random.Random(0)
    refused = 0
    for _ in range(60):
        what, data = crafted.mutant(good, rng)
        path.write_bytes(data)
        try:
            bundle = load_ctc(path)
        except AudreyError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc), what
            refused += 1
            continue
        with torch.no_grad():  # what loads must also run (finite but absurd weights may give NaN: not a crash)
            assert bundle.model(torch.zeros(1, bundle.frontend.n_mels, 40)).shape[-1] == len(TOKENS), what
    assert refused >= 30
