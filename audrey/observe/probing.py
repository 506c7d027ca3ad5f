"""Per-layer linear probes with controls: which hook points a target (digit, speaker, gender,
source) can be linearly read from, on clips the probe was not fitted on.

What a probe says: a linear read-out of a hook point's activation predicts a target on held-out
clips. What it does not say: that the model *uses* that information (probes read, interventions
test use; see audrey.observe.patching).

Method
- Activations: every hook point, pooled to one vector per clip (audrey.observe.activations).
- Probe: multinomial logistic regression on standardised features (statistics from the training
  fold only), L2 penalty `l2` on the weights, scored by balanced accuracy (audrey.observe.probes).
- Splits: speaker-disjoint folds, or folds over takes for the speaker target
  (audrey.observe.probe_targets).
- Controls, each probe run again with the same hyper-parameters:
  * control task (Hewitt & Liang 2019): each speaker gets a fixed random mapping from digit to a
    label of the target's label set, i.e. every (speaker, digit) "type" gets one random label, the
    same for all its takes. The control is scored on the take folds, where a type's takes sit on both
    sides, so a probe can beat chance on it only by memorising types. Selectivity = task accuracy
    on the same take folds minus control accuracy (the same split on both sides, as in H&L).
    `control="utterance"` instead gives every clip its own random label (scored on the task's own
    folds): always at chance on held-out clips, a sanity check of the evaluation rather than of the
    probe's expressivity.
  * random-init model: the same probe on the same clips through a randomly initialised model of
    the same architecture and config. Where the trained model reads no better than the random one,
    the information is in the input and the pooling, not learned.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from audrey.data.corpora import Clip
from audrey.errors import AudreyError
from audrey.models import arch_of, build_model, config_dict
from audrey.observe.activations import FREQ_BINS, TIME_BINS, capture
from audrey.observe.probe_targets import (CONTROLS, SPEAKER_LEVEL, TARGETS, class_order, control_labels, label_of,
                                          speaker_folds, take_folds, target_problem)
from audrey.observe.probes import L2, cross_validate

FOLDS = 3


@dataclass
class ProbeRow:
    target: str
    layer: str
    acc: float  # task, on the task's split (speaker-disjoint except for the speaker target); all
    # accuracies are balanced (mean recall over classes), so chance is 1/classes
    acc_control_split: float  # task, on the control's split (equals acc for the speaker target)
    control: float  # control task, on the control's split
    selectivity: float  # acc_control_split - control
    random_init: float | None  # task on a randomly initialised model, on the task's split
    chance: float  # 1/classes
    clips: int
    classes: int
    split: str


@dataclass
class ProbeReport:
    rows: list[ProbeRow]
    layers: list[str]
    skipped: dict[str, str] = field(default_factory=dict)
    config: dict = field(default_factory=dict)

    def for_target(self, target: str) -> list[ProbeRow]:
        return [r for r in self.rows if r.target == target]

    @property
    def targets(self) -> list[str]:
        return list(dict.fromkeys(r.target for r in self.rows))

    def readable_from(self, target: str, share: float = 0.9) -> str | None:
        """First layer whose accuracy gets `share` of the way from chance to the best layer's
        (compare its random-init column to tell learned from inherited readability)."""
        rows = self.for_target(target)
        if not rows:
            return None
        best = max(r.acc for r in rows)
        for r in rows:
            if r.acc >= r.chance + share * (best - r.chance):
                return r.layer
        return None

    def to_dict(self) -> dict:
        return {"rows": [asdict(r) for r in self.rows], "layers": self.layers, "skipped": self.skipped,
                "readable_from": {t: self.readable_from(t) for t in self.targets}, "config": self.config}


def random_twin(model, seed: int = 0):
    """A randomly initialised model of the same architecture and config, in eval mode."""
    with torch.random.fork_rng():  # leave the caller's random state alone
        torch.manual_seed(seed)
        return build_model(arch_of(model), **config_dict(model)).eval()


def run_probes(model, feats: torch.Tensor, clips: list[Clip], targets: list[str] | None = None, *,
               layers: list[str] | None = None, folds: int = FOLDS, control: str = "type", random_init: bool = True,
               time_bins: int = TIME_BINS, freq_bins: int = FREQ_BINS, l2: float = L2, seed: int = 0,
               activations: dict[str, torch.Tensor] | None = None, on_row=None) -> ProbeReport:
    """Probe every layer for every target (all the data supports when `targets` is None)."""
    if len(feats) != len(clips):
        raise AudreyError(f"{len(feats)} feature rows for {len(clips)} clips")
    if folds < 2:
        raise AudreyError(f"--folds {folds}: cross-validation needs at least 2 folds")
    if control not in CONTROLS:
        raise AudreyError(f"unknown control {control!r}; use one of {', '.join(CONTROLS)}")
    skipped: dict[str, str] = {}
    if targets is None:
        chosen = []
        for t in TARGETS:
            problem = target_problem(clips, t)
            if problem:
                skipped[t] = problem
            else:
                chosen.append(t)
    else:
        chosen = list(dict.fromkeys(targets))
        for t in chosen:
            if t not in TARGETS:
                raise AudreyError(f"unknown probe target {t!r}; known: {', '.join(TARGETS)}")
            problem = target_problem(clips, t)
            if problem:
                raise AudreyError(f"cannot probe {t}: {problem}")
    if not chosen:
        raise AudreyError("no target can be probed on this data: " + "; ".join(f"{t}: {p}" for t, p in skipped.items()))
    names = layers or list(model.hook_names())
    unknown = [n for n in names if n not in model.hook_names()]
    if unknown:
        raise AudreyError(f"unknown hook point(s) {', '.join(unknown)}; this model has {', '.join(model.hook_names())}")
    acts = activations if activations is not None else capture(model, feats, names, time_bins, freq_bins)
    rand_acts = None
    if random_init:
        rand_acts = capture(random_twin(model, seed + 1), feats, names, time_bins, freq_bins)

    rows = []
    for target in chosen:
        labels = [label_of(c, target) for c in clips]
        keep = np.array([v is not None for v in labels])
        kept = [c for c, k in zip(clips, keep) if k]
        classes = class_order(labels)
        y = torch.tensor([classes.index(v) for v in labels if v is not None])
        n_classes = len(classes)
        n_speakers = len({c.speaker for c in kept})
        if target == "speaker":
            k = folds
            task_folds, split = take_folds(kept, k), "takes within speakers"
        else:
            k = min(folds, n_speakers)
            strata = [label_of(c, target) if target in SPEAKER_LEVEL else "" for c in kept]
            task_folds, split = speaker_folds(kept, strata, k, seed), "speaker-disjoint"
        ctrl_folds = take_folds(kept, k) if control == "type" else task_folds
        y_ctrl = control_labels(kept, n_classes, control, seed)
        chance = 1 / n_classes  # of balanced accuracy
        sel = torch.from_numpy(keep)
        for name in names:
            x = acts[name][sel]
            same = np.array_equal(ctrl_folds, task_folds)
            tasks = [(x, y, task_folds), (x, y_ctrl, ctrl_folds)]
            if not same:
                tasks.append((x, y, ctrl_folds))
            if rand_acts is not None:
                tasks.append((rand_acts[name][sel], y, task_folds))
            accs = [cross_validate(tx, ty, tf, n_classes, l2) for tx, ty, tf in tasks]
            acc, ctrl = accs[0], accs[1]
            acc_ctrl_split = acc if same else accs[2]
            rand = accs[-1] if rand_acts is not None else None
            row = ProbeRow(target, name, acc, acc_ctrl_split, ctrl, acc_ctrl_split - ctrl, rand, chance,
                           len(kept), n_classes, split)
            rows.append(row)
            if on_row:
                on_row(row)
    config = {"folds": folds, "control": control, "time_bins": time_bins, "freq_bins": freq_bins, "l2": l2,
              "seed": seed, "clips": len(clips), "speakers": len({c.speaker for c in clips})}
    return ProbeReport(rows, names, skipped, config)
