"""The peers Audrey's benchmarks compare with (benchmarks/peers.py): PocketSphinx with a digit grammar,
and DTW templates over MFCCs, on espeak-ng digits."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from audrey.audio.waveform import SAMPLE_RATE, load_audio
from audrey.errors import AudreyError

PEERS_FILE = Path(__file__).resolve().parents[1] / "benchmarks" / "peers.py"
HANDFUL = (0, 2, 4, 6, 7, 9)  # DTW: includes both /s/ digits, which sound alike


def _load_peers():
    """benchmarks/ is a folder of scripts, not a package: load peers.py by its path (registered as the
    module `peers`, as the scripts beside it import it; dataclasses look their module up there)."""
    spec = importlib.util.spec_from_file_location("peers", PEERS_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules["peers"] = module
    spec.loader.exec_module(module)
    return module


peers = _load_peers()


@pytest.fixture(scope="module")
def pocketsphinx():
    pytest.importorskip("pocketsphinx", reason="pocketsphinx is not installed (pip install pocketsphinx)")
    return peers


def in_room(wave: np.ndarray, rate: int) -> np.ndarray:
    """An espeak-ng clip as a microphone would give it: 0.3 s of room either side and a -60 dB noise
    floor (seeded). espeak's output starts and ends in digital silence, which real recordings never
    have, and PocketSphinx then often finds no path through the grammar (an empty hypothesis)."""
    pad = np.zeros(int(0.3 * rate), np.float32)
    x = np.concatenate([pad, wave, pad])
    return x + np.random.default_rng(0).normal(0, 1e-3, len(x)).astype(np.float32)


def test_pocketsphinx_one_digit_grammar_recognizes_espeak_digits(pocketsphinx, espeak_digit):
    rate = peers.POCKETSPHINX_RATE
    decoder = peers.PocketSphinxDigits(peers.ONE_DIGIT)
    heard = [decoder.recognize(in_room(load_audio(espeak_digit(d), rate), rate), rate) for d in range(10)]
    assert all(len(h) == 1 for h in heard), heard  # the grammar allows exactly one digit word
    # CMU's model hears 9 of espeak's 10 digits right; its "seven" comes out "2" (real sevens are fine)
    assert sum(h == str(d) for d, h in enumerate(heard)) >= 8, heard


def test_pocketsphinx_resamples_lower_rates_and_reads_files(pocketsphinx, espeak_digit):
    decoder = peers.PocketSphinxDigits(peers.ONE_DIGIT)
    assert decoder.recognize(in_room(load_audio(espeak_digit(4), SAMPLE_RATE), SAMPLE_RATE), SAMPLE_RATE) == "4"  # 8 kHz
    assert decoder.recognize_file(espeak_digit(2)) == "2"  # espeak's own 22.05 kHz file, read at 16 kHz


def test_pocketsphinx_digit_loop_hears_a_string(pocketsphinx, espeak_digit):
    """The loop maps every word of the hypothesis. It is no perfect peer: it inserts words on some
    espeak strings (4 2 9 comes out 42098, 1 2 3 as 10823), as its 9.6% digit error rate on AN4 says."""
    rate = peers.POCKETSPHINX_RATE
    pause = np.zeros(rate // 4, np.float32)
    string = in_room(np.concatenate([load_audio(espeak_digit(4), rate), pause, load_audio(espeak_digit(2), rate), pause,
                                     load_audio(espeak_digit(5), rate)]), rate)
    assert peers.PocketSphinxDigits(peers.DIGIT_LOOP).recognize(string, rate) == "425"
    assert len(peers.PocketSphinxDigits(peers.ONE_DIGIT).recognize(string, rate)) == 1  # one word, whatever is said


def test_pocketsphinx_names_an_unknown_grammar():
    with pytest.raises(AudreyError, match="grammar 'digits'"):
        peers.PocketSphinxDigits("digits")


def test_grammars_map_oh_and_zero_to_0():
    assert peers.WORD_DIGIT["oh"] == peers.WORD_DIGIT["zero"] == "0"
    for grammar in peers.GRAMMARS.values():
        assert "| oh |" in grammar and "nine" in grammar


def test_dtw_matches_a_digit_to_its_own_template(espeak_digit):
    feats = {d: peers.mfcc(espeak_digit(d)) for d in HANDFUL}
    dtw = peers.DTWTemplates([(f, d) for d, f in feats.items()])
    assert all(dtw.classify(f) == d for d, f in feats.items())
    assert peers.dtw_cost(feats[4], feats[4]) == pytest.approx(0.0, abs=1e-9)
    assert peers.dtw_cost(feats[4], feats[6]) > 0.1
    accuracy, ms = dtw.accuracy([(f, d) for d, f in feats.items()])
    assert accuracy == 1.0 and ms > 0


def test_dtw_matches_another_speed_of_the_same_voice(espeak_digit):
    """Warping is the point: the digits said slower are still nearest to their own templates."""
    dtw = peers.DTWTemplates([(peers.mfcc(espeak_digit(d, speed=150)), d) for d in HANDFUL])
    slow = {d: dtw.classify(peers.mfcc(espeak_digit(d, speed=120))) for d in HANDFUL}
    assert slow == {d: d for d in HANDFUL}


def test_dtw_needs_a_template():
    with pytest.raises(AudreyError, match="at least one template"):
        peers.DTWTemplates([])
