"""audrey.data.splits: speaker-disjoint folds and splits, reproducible from the seed; per-speaker take splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from audrey.data.corpora import Clip
from audrey.errors import AudreyError
from audrey.data.splits import (
    AUDIOMNIST_GROUPS,
    audiomnist_fold,
    leave_one_speaker_out,
    random_speaker_split,
    take_split,
)


def fake_clips(speakers, digits=range(10), takes=range(3)) -> list[Clip]:
    return [
        Clip(Path(f"/nowhere/{s}/{d}_{s}_{t}.wav"), d, s, "test", t)
        for s in speakers for d in digits for t in takes
    ]


AUDIOMNIST = fake_clips([f"{n:02d}" for n in range(1, 61)], takes=range(1))


def speakers(clips):
    return {c.speaker for c in clips}


def assert_disjoint(split):
    tr, va, te = speakers(split.train), speakers(split.val), speakers(split.test)
    assert not (tr & va) and not (tr & te) and not (va & te)


def test_audiomnist_groups_cover_60_speakers_once():
    flat = [n for g in AUDIOMNIST_GROUPS for n in g]
    assert sorted(flat) == list(range(1, 61))
    assert all(len(g) == 12 for g in AUDIOMNIST_GROUPS)


@pytest.mark.parametrize("fold", range(5))
def test_audiomnist_fold_sizes_and_disjoint(fold):
    split = audiomnist_fold(AUDIOMNIST, fold)
    assert_disjoint(split)
    assert (len(speakers(split.train)), len(speakers(split.val)), len(speakers(split.test))) == (36, 12, 12)
    assert len(split.train) + len(split.val) + len(split.test) == len(AUDIOMNIST)


def test_audiomnist_every_speaker_tested_once():
    tested = Counter(s for fold in range(5) for s in speakers(audiomnist_fold(AUDIOMNIST, fold).test))
    assert tested == {f"{n:02d}": 1 for n in range(1, 61)}
    validated = Counter(s for fold in range(5) for s in speakers(audiomnist_fold(AUDIOMNIST, fold).val))
    assert validated == tested


def test_audiomnist_matches_published_folds():
    # soerenab/AudioMNIST preprocess_data.py, digit task: split 0 tests on speakers 26, 52, ...,
    # validates on 12, 47, ...; split 1 tests on 28, 56, ... and validates on 26, 52, ...
    s0, s1 = audiomnist_fold(AUDIOMNIST, 0), audiomnist_fold(AUDIOMNIST, 1)
    assert speakers(s0.test) == {f"{n:02d}" for n in (26, 52, 60, 18, 32, 42, 5, 13, 22, 33, 45, 51)}
    assert speakers(s0.val) == {f"{n:02d}" for n in (12, 47, 59, 15, 27, 41, 4, 11, 21, 31, 44, 50)}
    assert speakers(s1.test) == {f"{n:02d}" for n in (28, 56, 7, 19, 35, 1, 6, 16, 23, 34, 46, 53)}
    assert speakers(s1.val) == speakers(s0.test)


@pytest.mark.parametrize("fold", [-1, 5])
def test_audiomnist_bad_fold(fold):
    with pytest.raises(AudreyError, match="0-4"):
        audiomnist_fold(AUDIOMNIST, fold)


SIX = fake_clips(["george", "jackson", "lucas", "nicolas", "theo", "yweweler"])


def test_leave_one_speaker_out():
    split = leave_one_speaker_out(SIX, "theo", n_val=2, seed=3)
    assert_disjoint(split)
    assert speakers(split.test) == {"theo"}
    assert len(speakers(split.val)) == 2 and len(speakers(split.train)) == 3
    assert split.describe().startswith("train 90 clips / 3 speakers")
    again = leave_one_speaker_out(SIX, "theo", n_val=2, seed=3)
    assert (again.train, again.val, again.test) == (split.train, split.val, split.test)
    vals = {frozenset(speakers(leave_one_speaker_out(SIX, "theo", n_val=2, seed=s).val)) for s in range(20)}
    assert len(vals) > 1  # the seed does choose


def test_leave_one_speaker_out_no_val_and_errors():
    split = leave_one_speaker_out(SIX, "lucas", n_val=0)
    assert split.val == [] and len(speakers(split.train)) == 5
    with pytest.raises(AudreyError, match="'bob'"):
        leave_one_speaker_out(SIX, "bob")
    with pytest.raises(AudreyError):
        leave_one_speaker_out(SIX, "lucas", n_val=5)  # nobody left to train on


def test_random_speaker_split_reproducible():
    clips = fake_clips([f"s{i}" for i in range(20)], takes=range(1))
    a = random_speaker_split(clips, 0.15, 0.15, seed=7)
    b = random_speaker_split(clips, 0.15, 0.15, seed=7)
    assert_disjoint(a)
    assert (a.train, a.val, a.test) == (b.train, b.val, b.test)
    assert (len(speakers(a.train)), len(speakers(a.val)), len(speakers(a.test))) == (14, 3, 3)
    tests = {frozenset(speakers(random_speaker_split(clips, seed=s).test)) for s in range(10)}
    assert len(tests) > 1


@pytest.mark.parametrize("n, expected", [(1, (1, 0, 0)), (2, (1, 1, 0)), (3, (1, 1, 1)), (6, (4, 1, 1))])
def test_random_speaker_split_small(n, expected):
    split = random_speaker_split(fake_clips([f"s{i}" for i in range(n)]), seed=0)
    assert_disjoint(split)
    assert (len(speakers(split.train)), len(speakers(split.val)), len(speakers(split.test))) == expected


def test_take_split():
    clips = fake_clips(["ann", "bob"], digits=range(10), takes=range(50))
    split = take_split(clips, enroll_takes=5)
    assert len(split.train) == 2 * 10 * 5 and split.val == [] and len(split.test) == 2 * 10 * 45
    assert {c.take for c in split.train} == set(range(5))
    per = Counter((c.speaker, c.digit) for c in split.train)
    assert set(per.values()) == {5} and len(per) == 20

    fsdd = take_split(clips, enroll_takes=3, test_from=10)  # FSDD k-shot: test on takes 10..49
    assert {c.take for c in fsdd.train} == {0, 1, 2}
    assert {c.take for c in fsdd.val} == set(range(3, 10))
    assert {c.take for c in fsdd.test} == set(range(10, 50))


def test_take_split_orders_by_take_number():
    clips = list(reversed(fake_clips(["ann"], digits=[4], takes=[9, 2, 30, 11])))
    split = take_split(clips, enroll_takes=2)
    assert [c.take for c in split.train] == [2, 9] and [c.take for c in split.test] == [11, 30]


def test_take_split_refuses_overlap():
    with pytest.raises(AudreyError, match="overlap"):
        take_split(fake_clips(["ann"]), enroll_takes=5, test_from=3)
