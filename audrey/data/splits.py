"""Train / validation / test splits. Speaker-disjoint by construction wherever a model is meant to
meet new voices; a per-speaker take split where it is meant to learn one voice.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from audrey.data.corpora import Clip
from audrey.errors import AudreyError

# AudioMNIST's published digit-task folds (soerenab/AudioMNIST, audiomnist/train/splits.py): five
# groups of 12 speakers; fold i tests on group i, validates on group i+4 and trains on the other
# three (indices mod 5).
AUDIOMNIST_GROUPS = (
    (26, 52, 60, 18, 32, 42, 5, 13, 22, 33, 45, 51),
    (28, 56, 7, 19, 35, 1, 6, 16, 23, 34, 46, 53),
    (36, 57, 9, 24, 37, 2, 8, 17, 29, 39, 48, 54),
    (43, 58, 14, 25, 38, 3, 10, 20, 30, 40, 49, 55),
    (12, 47, 59, 15, 27, 41, 4, 11, 21, 31, 44, 50),
)


@dataclass
class Split:
    train: list[Clip]
    val: list[Clip]
    test: list[Clip]

    def describe(self) -> str:
        def spk(clips):
            return len({c.speaker for c in clips})

        return (
            f"train {len(self.train)} clips / {spk(self.train)} speakers, "
            f"val {len(self.val)} / {spk(self.val)}, test {len(self.test)} / {spk(self.test)}"
        )


def speakers_of(clips: list[Clip]) -> list[str]:
    return sorted({c.speaker for c in clips})


def by_speakers(clips: list[Clip], train: set[str], val: set[str], test: set[str]) -> Split:
    if train & val or train & test or val & test:
        raise AudreyError(f"speaker sets overlap: {sorted((train & val) | (train & test) | (val & test))}")
    return Split(
        [c for c in clips if c.speaker in train],
        [c for c in clips if c.speaker in val],
        [c for c in clips if c.speaker in test],
    )


def audiomnist_fold(clips: list[Clip], fold: int) -> Split:
    """AudioMNIST's fold `fold` (0-4) for the digit task. Speakers are AudioMNIST's "01".."60"."""
    if not 0 <= fold < 5:
        raise AudreyError(f"AudioMNIST fold {fold} does not exist; use 0-4")
    name = lambda n: f"{n:02d}"  # noqa: E731
    test = {name(n) for n in AUDIOMNIST_GROUPS[fold]}
    val = {name(n) for n in AUDIOMNIST_GROUPS[(fold + 4) % 5]}
    train = {name(n) for i in (1, 2, 3) for n in AUDIOMNIST_GROUPS[(fold + i) % 5]}
    return by_speakers(clips, train, val, test)


def leave_one_speaker_out(clips: list[Clip], speaker: str, n_val: int = 1, seed: int = 0) -> Split:
    """Test on every clip of `speaker`; validate on `n_val` other speakers drawn from the seed.

    With n_val=0 the validation set is empty and training uses every other speaker.
    """
    speakers = speakers_of(clips)
    if speaker not in speakers:
        raise AudreyError(f"speaker {speaker!r} is not in the data; speakers: {', '.join(speakers)}")
    others = [s for s in speakers if s != speaker]
    if n_val >= len(others):
        raise AudreyError(f"{len(others)} speakers besides {speaker!r} cannot give {n_val} for validation and any for training")
    val = set(random.Random(seed).sample(others, n_val))
    return by_speakers(clips, set(others) - val, val, {speaker})


def random_speaker_split(clips: list[Clip], val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> Split:
    """Whole speakers drawn at random (from the seed) into val and test; at least one each when possible."""
    speakers = speakers_of(clips)
    rng = random.Random(seed)
    rng.shuffle(speakers)
    n = len(speakers)
    n_test = max(1, round(n * test_fraction)) if test_fraction and n >= 3 else 0
    n_val = max(1, round(n * val_fraction)) if val_fraction and n - n_test >= 2 else 0
    test, val = set(speakers[:n_test]), set(speakers[n_test : n_test + n_val])
    return by_speakers(clips, set(speakers) - test - val, val, test)


def take_split(clips: list[Clip], enroll_takes: int, test_from: int | None = None) -> Split:
    """Per speaker and digit: the first `enroll_takes` takes (by take number) train, the rest test.

    `test_from` starts the test set at a later take (FSDD's k-shot protocol tests takes 10..49).
    Clips between the two go to validation.
    """
    if test_from is not None and test_from < enroll_takes:
        # takes[test_from:] would then include training takes: test scores on seen clips
        raise AudreyError(f"test_from={test_from} is before the end of the {enroll_takes} enrolment takes; "
                          "the test set would overlap the training set")
    groups: dict[tuple[str, int], list[Clip]] = defaultdict(list)
    for c in clips:
        groups[(c.speaker, c.digit)].append(c)
    split = Split([], [], [])
    for key in sorted(groups):
        takes = sorted(groups[key], key=lambda c: c.take)
        start = enroll_takes if test_from is None else test_from
        split.train.extend(takes[:enroll_takes])
        split.val.extend(takes[enroll_takes:start])
        split.test.extend(takes[start:])
    return split
