"""Scenes scored as the Judge scores live segments, for calibration and voice fitting: every scene
through the live segmenter and the Judge's one forward pass (`scene_segments`), then each
segment's score for every thresholded test (`segment_scores`)."""

from __future__ import annotations

import numpy as np
import torch

from audrey.data.scenes import Scene
from audrey.live.calibration import Calibration
from audrey.live.hiss import hiss_array, lacks_hiss
from audrey.live.judge import Judge, detector_agreement
from audrey.models.phones import match_array


def scene_segments(scenes: list[Scene], rate: int, judge: Judge) -> dict:
    """Every scene through the live segmenter and the classifier call; per segment: kind, label,
    digit logits, embedding, detector logits, phone match to each digit (None without a phone
    recogniser), speech seconds, onset hiss. A digit scene gives its longest segment."""
    from audrey.audio.vad import live_segmenter

    kinds, labels, texts, waves, seconds, hiss = [], [], [], [], [], []
    for sc in scenes:
        seg = live_segmenter(rate)
        segs = seg.feed(sc.audio) + seg.flush()
        if sc.kind == "digit":
            segs = sorted(segs, key=lambda s: s.speech_seconds)[-1:]
        for s in segs:
            kinds.append(sc.kind)
            labels.append(sc.label)
            texts.append(sc.text)
            seconds.append(s.speech_seconds)
            (wave,), (h,) = judge.inputs([s.audio], rate)  # per segment: only the model-rate copies are kept
            waves.append(wave)
            hiss.append(h)
    outs = [judge.forward(waves[i : i + 64]) for i in range(0, len(waves), 64)]
    logits, embed, other = (torch.cat([o[k] for o in outs]) for k in range(3))
    match = torch.cat([judge.matcher.match(o[3]) for o in outs]) if judge.matcher is not None else None
    return {"kind": np.array(kinds), "label": torch.tensor(labels), "text": np.array(texts), "seconds": np.array(seconds),
            "hiss": hiss_array(hiss), "logits": logits, "embed": embed, "other": other, "match": match}


def segment_scores(seg: dict, cal: "Calibration") -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """From scene_segments' output: each segment's score for every thresholded test (SCORES), its
    digit, whether the hiss test refuses it, and whether it passes the fixed tests (length, hiss)."""
    probs = (seg["logits"] / cal.temperature).softmax(-1)
    digit = probs.argmax(-1)
    score = {"conf": probs.max(-1).values.numpy(), "p_digit": detector_agreement(seg["other"], digit).numpy(),
             "phone": match_array(seg["match"], digit) if seg["match"] is not None else None,
             "dist": cal.distances(seg["embed"]).numpy()}
    no_hiss = lacks_hiss(digit.numpy(), seg["hiss"])
    fixed_ok = (seg["seconds"] >= cal.min_seconds) & (seg["seconds"] <= cal.max_seconds) & ~no_hiss
    return score, digit.numpy(), no_hiss, fixed_ok
