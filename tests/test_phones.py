"""The phone recogniser behind the rejection's phone test (audrey.models.phones)."""

from __future__ import annotations

import shutil

import pytest
import torch

from helpers import spoken

# each digit's phones as espeak-ng's en-us says them (folded), written out so that these tests need no espeak-ng
PRONS = [[("z", "i@", "r", "oU")], [("w", "V", "n")], [("t", "u:")], [("T", "r", "i:")], [("f", "O@"), ("f", "O@", "r")],
         [("f", "aI", "v")], [("s", "I", "k", "s")], [("s", "E", "v", "@", "n")], [("eI", "t")], [("n", "aI", "n")]]
INVENTORY = sorted({p for d in PRONS for pr in d for p in pr} | {"h", "@", "l", "j", "E"})


def ids(phones: str) -> list[int]:
    return [INVENTORY.index(p) + 1 for p in phones.split()]


def test_espeak_transcribes_in_the_accent_of_the_voice():
    from audrey.models.phones import digit_pronunciations, transcribe

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    assert transcribe(["five", "hi", "nothing", "four"]) == [("f", "aI", "v"), ("h", "aI"), ("n", "V", "T", "I", "N"), ("f", "O@")]
    assert transcribe(["four"], "en-gb-scotland") == [("f", "O@", "r")]  # a rhotic accent keeps its r
    prons = digit_pronunciations()
    assert ("f", "O@") in prons[4] and ("f", "O@", "r") in prons[4]
    assert all(prons[d] == sorted(set(prons[d])) for d in range(10))
    assert [PRONS[d][0] in prons[d] for d in range(10)] == [True] * 10


def test_fold_merges_allophones_and_drops_stress():
    from audrey.models.phones import fold

    assert fold(["l", "'I2", "t#", "@L"]) == ["l", "I", "t", "@", "l"]  # "little": stress, allophones, syllabic l
    assert fold(["h", ",aI@", ";"]) == ["h", "aI"]


def test_the_match_is_near_zero_for_the_digit_said_and_far_below_for_anything_else():
    """A segment that clearly says /f aI v/ matches "five" (about 0: its phones are the best path) and
    no other digit; one that says /h aI/ ("hi") matches no digit, five included."""
    from audrey.models.phones import DigitMatcher

    matcher = DigitMatcher(INVENTORY, PRONS)
    five = matcher.match(spoken(matcher, ids("f aI v")))[0]
    assert five[5] > -0.5 and five.argmax() == 5
    assert all(five[d] < -20 for d in range(10) if d != 5)
    hi = matcher.match(spoken(matcher, ids("h aI")))[0]
    assert hi.max() < -15
    assert matcher.heard(spoken(matcher, ids("h aI"))) == ["h aI"]
    # "four" either way: the best of its pronunciations counts
    for said in ("f O@", "f O@ r"):
        assert matcher.match(spoken(matcher, ids(said)))[0][4] > -0.5
    assert matcher.spelling(7) == "s E v @ n"


def test_a_recogniser_that_cannot_spell_a_digit_is_refused():
    from audrey.errors import AudreyError
    from audrey.models.phones import DigitMatcher

    with pytest.raises(AudreyError, match="cannot spell every digit.*audrey calibrate"):
        DigitMatcher([p for p in INVENTORY if p != "v"], PRONS)  # no /v/: "five" and "seven" unspellable


def test_ctc_training_learns_to_spell(tmp_path):
    """600 steps on four made-up "words" (tones at different pitches, one per phone) are enough to
    decode them: the training loop, the blank and the targets line up. (150 steps, in batches of 16,
    left some training seeds, or the same seed on two threads, hearing "bca" as "c a" or "ab" as
    "c b"; in batches of 8 for 20 epochs, seeds 0-5 all spell every word. One torch thread: conftest.)"""
    import numpy as np

    from audrey.audio.frontend import FrontendConfig
    from audrey.models.phones import greedy_decode, train_phone_model
    from audrey.audio.frontend import features as wave_features

    # The loop, not the band, is under test: the 8 kHz frontend (40 bands) the seeds above were tried
    # with, at half the cost of the default one.
    cfg = FrontendConfig(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40, f_max=3800.0)
    rng = np.random.default_rng(0)
    pitch = {"a": 300.0, "b": 900.0, "c": 2000.0}

    def say(word: str) -> np.ndarray:
        t = np.arange(int(0.15 * cfg.sample_rate)) / cfg.sample_rate
        gap = np.zeros(int(0.05 * cfg.sample_rate))
        parts = [np.concatenate([0.3 * np.sin(2 * np.pi * pitch[p] * t * rng.uniform(0.97, 1.03)), gap]) for p in word]
        return np.concatenate([gap, *parts]).astype(np.float32) + 1e-3 * rng.standard_normal(1).astype(np.float32)

    words = ["ab", "ca", "bca", "cb"] * 60
    feats = wave_features([say(w) for w in words], cfg)
    model = train_phone_model(feats, [tuple(w) for w in words], cfg, epochs=20, batch_size=8)
    assert model.inventory == ["a", "b", "c"]
    test = ["ab", "bca", "cb"]
    with torch.no_grad():
        heard = greedy_decode(model(wave_features([say(w) for w in test], cfg)), model.inventory)
    assert heard == ["a b", "b c a", "c b"]
