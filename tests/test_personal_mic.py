"""`audrey listen --weights` through the virtual microphone: personal weights made from three takes
per digit of a voice the base handles badly; the other three takes, said into the microphone, come
out right far more often with them than without."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audrey.audio.waveform import load_audio
from audrey.training.personal import personalize
from helpers import Listener, play

pytestmark = pytest.mark.mic
RATE = 16000  # the vmic sink's rate


def said(tmp_path: Path, takes: list[Path]) -> Path:
    """The takes in one recording, 0.6 s apart (well above the segmenter's pause, so each digit is
    its own segment; strings may group them, which changes no digit event)."""
    gap = np.zeros(int(0.6 * RATE), np.float32)
    parts = [np.zeros(RATE // 2, np.float32)]
    for path in takes:
        parts += [load_audio(path, RATE), gap]
    out = tmp_path / "held-out.wav"
    sf.write(str(out), np.concatenate(parts), RATE, subtype="PCM_16")
    return out


def digits_heard(track: Path, *runs: list[str]) -> list[list[int]]:
    """Play `track` once to one listener per argument list, all listening at the same time (the
    sink's monitor feeds every recording stream); the digits each one printed."""
    listeners = [Listener(*args) for args in runs]
    try:
        for listener in listeners:
            listener.expect("listening")
        assert play(track).wait(120) == 0
        time.sleep(1.5)
        for listener in listeners:
            assert listener.stop() == 0
    finally:
        for listener in listeners:
            if listener.proc.poll() is None:
                listener.proc.kill()
    for listener in listeners:
        assert "Traceback" not in listener.stderr, listener.stderr
    return [[e["digit"] for e in listener.events if e["event"] == "digit"] for listener in listeners]


def test_listen_with_personal_weights(vmic, tiny_model, deep_voice, tmp_path):
    enroll = tmp_path / "enroll" / "deep"
    enroll.mkdir(parents=True)
    for path in (deep_voice / "deep").glob("*_[012].wav"):
        shutil.copy(path, enroll / path.name)
    weights = tmp_path / "deep.personal.safetensors"
    personalize("deep", tiny_model, weights, recordings=enroll.parent, holdout=0, curve=False)
    held_out = sorted((deep_voice / "deep").glob("*_[345].wav"))
    truth = [int(p.name[0]) for p in held_out]
    track = said(tmp_path, held_out)

    base, personal = digits_heard(track, ["--model", str(tiny_model)],
                                  ["--model", str(tiny_model), "--weights", str(weights)])
    # each printed digit is one of the 30 said; count the right ones in order (a rejected or missed
    # take prints nothing, so align by matching the sequence)
    import difflib

    def right(printed):
        return sum(b.size for b in difflib.SequenceMatcher(a=truth, b=printed, autojunk=False).get_matching_blocks())

    print(f"\nheard right: base {right(base)}/30 {base}; personal {right(personal)}/30 {personal}")
    assert len(personal) <= len(truth) + 2, personal
    assert right(personal) >= 24, (right(personal), personal)
    assert right(personal) >= right(base) + 8, (right(base), base, right(personal), personal)
