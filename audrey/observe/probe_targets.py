"""What a probe is asked to read, and how clips are split to score it held out.

- Targets: digit, speaker, gender, source; a clip lacking a target's value (no gender in the
  speaker metadata) is left out of that target's probe.
- Splits (k folds, every clip predicted once, out of fold):
  * digit, gender, source: speaker-disjoint folds (stratified so that every value of a
    speaker-level target keeps speakers on the training side);
  * speaker: folds over takes within each speaker (a speaker split cannot test speaker identity).
- Control labels (Hewitt & Liang 2019): a fixed random label per (speaker, digit) type, or per clip.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import torch

from audrey.data.corpora import Clip
from audrey.errors import AudreyError

TARGETS = ("digit", "speaker", "gender", "source")
SPEAKER_LEVEL = ("gender", "source")  # properties of the speaker: split by speaker, stratified
CONTROLS = ("type", "utterance")


def _gender(clip: Clip) -> str | None:
    value = str(clip.meta.get("gender", "")).strip().lower()
    return {"m": "male", "f": "female"}.get(value, value) or None


def label_of(clip: Clip, target: str) -> str | None:
    if target == "digit":
        return str(clip.digit)
    if target == "speaker":
        return clip.speaker
    if target == "gender":
        return _gender(clip)
    if target == "source":
        return clip.source
    raise AudreyError(f"unknown probe target {target!r}; known: {', '.join(TARGETS)}")


def class_order(labels: list[str | None]) -> list[str]:
    """The distinct labels, numbers in numeric order first ("2" before "10"), then the rest."""
    return sorted({v for v in labels if v is not None}, key=lambda v: (not v.isdigit(), v.zfill(8)))


def target_problem(clips: list[Clip], target: str) -> str | None:
    """Why `target` cannot be probed on `clips` (None when it can)."""
    labels = [label_of(c, target) for c in clips]
    have = [(c, v) for c, v in zip(clips, labels) if v is not None]
    values = sorted({v for _, v in have})
    speakers = {c.speaker for c, _ in have}
    if not have:
        return f"no clip in the data has a {target} (add it to the speaker metadata)"
    if len(values) < 2:
        return f"every clip has the same {target} ({values[0]!r}): nothing to tell apart"
    if target == "speaker":
        few = [s for s in speakers if sum(1 for c, _ in have if c.speaker == s) < 2]
        if few:
            return f"speaker(s) {', '.join(sorted(few)[:3])} have fewer than 2 clips: cannot split by take"
        return None
    if len(speakers) < 2:
        return f"a speaker-disjoint {target} probe needs clips of at least 2 speakers, the data has {len(speakers)}"
    if target in SPEAKER_LEVEL:
        per_value = defaultdict(set)
        for c, v in have:
            per_value[v].add(c.speaker)
        thin = sorted(v for v, s in per_value.items() if len(s) < 2)
        if thin:
            return (f"{target} {', '.join(map(repr, thin))} has only one speaker; a speaker-disjoint probe needs "
                    "at least 2 speakers of each value")
    return None


def speaker_folds(clips: list[Clip], strata: list[str], k: int, seed: int = 0) -> np.ndarray:
    """Fold per clip; whole speakers per fold, each stratum's speakers spread over the folds."""
    by_stratum: dict[str, set[str]] = defaultdict(set)
    for c, s in zip(clips, strata):
        by_stratum[s].add(c.speaker)
    rng = random.Random(seed)
    fold_of, counter = {}, 0
    for stratum in sorted(by_stratum):
        speakers = sorted(by_stratum[stratum] - set(fold_of))
        rng.shuffle(speakers)
        for s in speakers:
            fold_of[s] = counter % k
            counter += 1
    return np.array([fold_of[c.speaker] for c in clips])


def take_folds(clips: list[Clip], k: int) -> np.ndarray:
    """Fold per clip over takes: within each (speaker, digit), takes in order go round the folds
    (offset by the digit, so a speaker with one take per digit still lands in every fold)."""
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, c in enumerate(clips):
        groups[(c.speaker, c.digit)].append(i)
    folds = np.zeros(len(clips), dtype=np.int64)
    for (speaker, digit), idx in groups.items():
        for rank, i in enumerate(sorted(idx, key=lambda i: (clips[i].take, str(clips[i].path)))):
            folds[i] = (rank + digit) % k
    return folds


def control_labels(clips: list[Clip], n_classes: int, mode: str, seed: int = 0) -> torch.Tensor:
    """Hewitt & Liang control labels: per (speaker, digit) type ("type") or per clip ("utterance")."""
    if mode not in CONTROLS:
        raise AudreyError(f"unknown control {mode!r}; use one of {', '.join(CONTROLS)}")
    rng = random.Random(seed)
    if mode == "utterance":
        return torch.tensor([rng.randrange(n_classes) for _ in clips])
    mapping: dict[tuple[str, int], int] = {}
    for key in sorted({(c.speaker, c.digit) for c in clips}):
        mapping[key] = rng.randrange(n_classes)
    return torch.tensor([mapping[(c.speaker, c.digit)] for c in clips])
