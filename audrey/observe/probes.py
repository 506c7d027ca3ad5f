"""Per-layer linear probes with controls, and the live "logit lens" built from them.

What a probe says: a linear read-out of a hook point's activation predicts a target (digit,
speaker, gender, source corpus) on clips it was not fitted on. What it does not say: that the model
*uses* that information (probes read, interventions test use; see explain.patching_effects).

Method
- Activations: every hook point, pooled to one vector per clip. (batch, D) points are kept as they
  are; maps with a time axis are averaged into `time_bins` equal time bins (clips are trimmed and
  centred, so the bins roughly align across clips); CNN feature maps (batch, C, F, T) are first
  averaged into `freq_bins` frequency bands (4 by default: averaging over all frequencies drops
  the first block's speaker-disjoint digit accuracy on FSDD from 79% to 49%, an artefact of the
  pooling, not of the layer). The input log-mel (after RangeNorm) keeps its 40 mels.
- Probe: multinomial logistic regression on standardised features (statistics from the training
  fold only), L2 penalty `l2` on the weights, full-batch L-BFGS. Scored by balanced accuracy (mean
  recall over classes), so chance is 1/classes even for lopsided targets such as source.
- Splits (k folds, every clip predicted once, out of fold):
  * digit, gender, source: speaker-disjoint folds (stratified so that every value of a
    speaker-level target keeps speakers on the training side);
  * speaker: folds over takes within each speaker (a speaker split cannot test speaker identity).
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

import json
import random
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from audrey.data.corpora import Clip
from audrey.errors import AudreyError
from audrey.plots import pyplot, save_figure

TARGETS = ("digit", "speaker", "gender", "source")
SPEAKER_LEVEL = ("gender", "source")  # properties of the speaker: split by speaker, stratified
TIME_BINS = 4
FREQ_BINS = 4
L2 = 1e-3
FOLDS = 3
CONTROLS = ("type", "utterance")
PROBES_FORMAT = "audrey-probes/1"
PROBES_SUFFIX = ".probes.safetensors"


# --- activations ---------------------------------------------------------------------------------


def time_layout(model, name: str) -> str:
    """Axis order of a 3-d activation: B(atch), D (features/mels/channels), T(ime)."""
    if name == "hook_input":
        return "BDT"  # (batch, mels, frames)
    from audrey.models.conformer import Conformer

    if isinstance(model, Conformer):
        return "TBD" if name.startswith("blocks.") else "BTD"  # torchaudio layers run time-first
    return "BDT"


def pool(model, name: str, act: torch.Tensor, time_bins: int = TIME_BINS, freq_bins: int = FREQ_BINS) -> torch.Tensor:
    """One vector per clip from a hook point's activation (see the module docstring)."""
    act = act.detach().float()
    if act.dim() == 2:
        return act
    if act.dim() == 4:  # (B, C, F, T)
        b, c, f, t = act.shape
        x = F.adaptive_avg_pool2d(act.contiguous(), (min(freq_bins, f), min(time_bins, t)))
        return x.reshape(b, -1)
    if act.dim() == 3:
        layout = time_layout(model, name)
        x = {"BDT": act, "TBD": act.permute(1, 2, 0), "BTD": act.transpose(1, 2)}[layout]
        x = F.adaptive_avg_pool1d(x.contiguous(), min(time_bins, x.shape[-1]))
        return x.reshape(x.shape[0], -1)
    raise AudreyError(f"hook point {name}: cannot pool a {act.dim()}-d activation {tuple(act.shape)}")


@torch.no_grad()
def capture(model, feats: torch.Tensor, names: list[str] | None = None, time_bins: int = TIME_BINS,
            freq_bins: int = FREQ_BINS, batch: int = 256) -> dict[str, torch.Tensor]:
    """{hook name: (N, D) pooled activation} over (N, mels, frames) features, in eval mode."""
    model.eval()
    names = list(model.hook_names()) if names is None else list(names)
    out: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    for i in range(0, len(feats), batch):
        _, cache = model.run_with_cache(feats[i : i + batch], names)
        for n in names:
            out[n].append(pool(model, n, cache[n], time_bins, freq_bins))
    return {n: torch.cat(v) for n, v in out.items()}


# --- the probe -----------------------------------------------------------------------------------


@dataclass
class LinearProbe:
    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    weight: torch.Tensor  # (D, C)
    bias: torch.Tensor  # (C,)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - self.mean) / self.std) @ self.weight + self.bias

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(x).argmax(-1)


@contextmanager
def single_thread():
    """Probe fits are many small matrix products: on a busy CPU, intra-op threads spend more time
    waiting for each other than computing (measured 10-30x slower with 2 threads on a loaded 2-core
    machine), so they run on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = L2, max_iter: int = 100) -> LinearProbe:
    """Multinomial logistic regression, standardised inputs, L2 on the weights, full-batch L-BFGS.
    Stops when the loss changes by less than 1e-5 (accuracies are settled long before that)."""
    x = x.float()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
    z = (x - mean) / std
    w = torch.zeros(z.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-6, tolerance_change=1e-5)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad(), single_thread():
        opt.step(closure)
    return LinearProbe(mean, std, w.detach(), b.detach())


def cross_validate_many(tasks: list[tuple[torch.Tensor, torch.Tensor, np.ndarray]], n_classes: int, l2: float = L2
                        ) -> list[float]:
    """Out-of-fold accuracy for each (x (N, D), y (N,), folds (N,)) task."""
    return [cross_validate(x, y, folds, n_classes, l2) for x, y, folds in tasks]


def cross_validate(x: torch.Tensor, y: torch.Tensor, folds: np.ndarray, n_classes: int, l2: float = L2) -> float:
    """Accuracy of out-of-fold predictions: each clip predicted by the probe fitted without its fold."""
    pred = torch.full((len(y),), -1, dtype=torch.long)
    for k in sorted(set(folds.tolist())):
        test = torch.from_numpy(folds == k)
        if test.all():
            continue
        pred[test] = fit_probe(x[~test], y[~test], n_classes, l2).predict(x[test])
    return balanced_accuracy(pred, y)


def balanced_accuracy(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Mean recall over the classes present (clips marked -1 are not scored): chance is 1/classes
    whatever the class sizes (FSDD plus a few synthetic voices is 86% FSDD)."""
    scored = pred >= 0
    pred, y = pred[scored], y[scored]
    return float(np.mean([(pred[y == c] == c).float().mean().item() for c in y.unique().tolist()]))


# --- targets and splits --------------------------------------------------------------------------


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


# --- running the probes --------------------------------------------------------------------------


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
    from audrey.models import arch_of, build_model, config_dict

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
            accs = cross_validate_many(tasks, n_classes, l2)
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


# --- presenting ----------------------------------------------------------------------------------


def short_layer(name: str) -> str:
    """blocks.2.hook_out -> b2, head.hook_embed -> embed, hook_input -> input."""
    parts = name.split(".")
    if parts[0] == "blocks" and len(parts) > 1:
        return f"b{parts[1]}"
    return parts[-1].removeprefix("hook_")


def print_report(report: ProbeReport, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console(highlight=False)
    by_type = report.config.get("control", "type") == "type"
    for target in report.targets:
        rows = report.for_target(target)
        ctrl = "a random label per (speaker, digit), take folds" if by_type else "a random label per clip"
        table = Table(title=f"{target}: {rows[0].classes} classes, {rows[0].clips} clips, {rows[0].split} folds, "
                            f"chance {rows[0].chance:.1%}; control task: {ctrl}")
        table.add_column("layer", no_wrap=True)
        cols = ["acc", "acc takes", "control", "select.", "rand-init"] if by_type else ["acc", "control", "select.", "rand-init"]
        for col in cols:
            table.add_column(col, justify="right", no_wrap=True)
        for r in rows:
            cells = [f"{r.acc:.1%}", f"{r.acc_control_split:.1%}"] if by_type else [f"{r.acc:.1%}"]
            cells += [f"{r.control:.1%}", f"{r.selectivity:+.1%}", "-" if r.random_init is None else f"{r.random_init:.1%}"]
            table.add_row(r.layer, *cells)
        console.print(table)
        console.print(f"  {target} linearly readable from: {report.readable_from(target) or 'no layer'}")
    console.print("  acc: held-out balanced accuracy" + ("; acc takes: the same on take folds (the control's split)" if by_type else "")
                  + "; select. = " + ("acc takes" if by_type else "acc") + " - control; rand-init: the same probe on a "
                  "randomly initialised model of the same architecture")
    for t, why in report.skipped.items():
        console.print(f"  skipped {t}: {why}")


def plot_report(report: ProbeReport, path: str | Path, title: str = "") -> Path:
    plt = pyplot()

    targets = report.targets
    fig, axes = plt.subplots(1, len(targets), figsize=(4.2 * len(targets), 3.8), squeeze=False)
    xs = range(len(report.layers))
    for ax, target in zip(axes[0], targets):
        rows = {r.layer: r for r in report.for_target(target)}
        rs = [rows[n] for n in report.layers]
        ax.plot(xs, [r.acc for r in rs], "o-", color="C0", label=f"probe ({rs[0].split})")
        if any(abs(r.acc - r.acc_control_split) > 1e-9 for r in rs):
            ax.plot(xs, [r.acc_control_split for r in rs], "o-", color="C0", alpha=0.35, label="probe (take split)")
        ax.plot(xs, [r.control for r in rs], "s--", color="C3", label="control task")
        if rs[0].random_init is not None:
            ax.plot(xs, [r.random_init for r in rs], "^:", color="C2", label="random-init model")
        ax.axhline(rs[0].chance, color="grey", lw=1, ls="-.", label="chance")
        ax.set_xticks(list(xs))
        ax.set_xticklabels([short_layer(n) for n in report.layers], rotation=45)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{target} ({rs[0].classes} classes)")
        ax.set_xlabel("hook point")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("held-out balanced accuracy")
    axes[0][0].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, dpi=120)


def log_report(tracker, report: ProbeReport, png: Path | None = None) -> None:
    """The probe table, the plot and a summary per target, in the run record and W&B."""
    if tracker is None:
        return
    cols = list(asdict(report.rows[0]))
    tracker.table("probes/table", cols, [list(asdict(r).values()) for r in report.rows])
    if png is not None:
        tracker.image("probes/plot", png)
    summary = {}
    for t in report.targets:
        rows = report.for_target(t)
        summary[f"probes/{t}/last_layer_acc"] = rows[-1].acc
        summary[f"probes/{t}/best_acc"] = max(r.acc for r in rows)
        summary[f"probes/{t}/readable_from"] = report.readable_from(t) or "none"
    tracker.summary(summary)


# --- saved probes and the live logit lens --------------------------------------------------------


def probes_path(model_path: str | Path) -> Path:
    """models/starter.safetensors -> models/starter.probes.safetensors"""
    from audrey.models.modelfile import companion_path

    return companion_path(model_path, PROBES_SUFFIX)


@dataclass
class ProbeSet:
    """Digit probes for every layer, fitted on all the probe data, to read a model live."""

    target: str
    classes: list[str]
    probes: dict[str, LinearProbe]
    time_bins: int = TIME_BINS
    freq_bins: int = FREQ_BINS
    model_digest: str = ""
    accuracy: dict[str, float] = field(default_factory=dict)  # cross-validated, from the report

    @property
    def layers(self) -> list[str]:
        return list(self.probes)

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save

        from audrey.atomic import atomic_write_bytes

        tensors = {}
        for i, (name, p) in enumerate(self.probes.items()):
            for part in ("mean", "std", "weight", "bias"):
                tensors[f"{i}.{part}"] = getattr(p, part).contiguous()
        meta = {"format": PROBES_FORMAT, "target": self.target, "classes": json.dumps(self.classes),
                "layers": json.dumps(self.layers), "time_bins": str(self.time_bins), "freq_bins": str(self.freq_bins),
                "model_digest": self.model_digest, "accuracy": json.dumps(self.accuracy)}
        return atomic_write_bytes(Path(path), save(tensors, metadata=meta))

    @classmethod
    def load(cls, path: str | Path) -> "ProbeSet":
        from audrey.models.modelfile import read_safetensors

        meta, tensors = read_safetensors(path, PROBES_FORMAT, "probe file",
                                         "make one with `audrey probe --model <model> --data <corpus>`")
        try:
            layers = json.loads(meta["layers"])
            probes = {name: LinearProbe(*(tensors[f"{i}.{part}"] for part in ("mean", "std", "weight", "bias")))
                      for i, name in enumerate(layers)}
            return cls(meta["target"], json.loads(meta["classes"]), probes, int(meta["time_bins"]),
                       int(meta["freq_bins"]), meta.get("model_digest", ""), json.loads(meta.get("accuracy", "{}")))
        except (KeyError, ValueError) as exc:
            raise AudreyError(f"{path}: damaged probe file ({exc}); run `audrey probe` again") from None


def fit_probe_set(model, feats: torch.Tensor, clips: list[Clip], target: str = "digit", report: ProbeReport | None = None,
                  time_bins: int = TIME_BINS, freq_bins: int = FREQ_BINS, l2: float = L2,
                  activations: dict[str, torch.Tensor] | None = None) -> ProbeSet:
    """Probes for `target` on every layer, fitted on all the clips (the report holds their held-out accuracy)."""
    from audrey.observe.ood import model_digest

    problem = target_problem(clips, target)
    if problem:
        raise AudreyError(f"cannot fit {target} probes: {problem}")
    acts = activations if activations is not None else capture(model, feats, None, time_bins, freq_bins)
    labels = [label_of(c, target) for c in clips]
    keep = torch.tensor([v is not None for v in labels])
    classes = class_order(labels)
    y = torch.tensor([classes.index(v) for v in labels if v is not None])
    probes = {name: fit_probe(x[keep], y, len(classes), l2) for name, x in acts.items()}
    acc = {r.layer: round(r.acc, 4) for r in report.for_target(target)} if report else {}
    return ProbeSet(target, classes, probes, time_bins, freq_bins, model_digest(model), acc)


@dataclass
class LayerReading:
    layer: str
    label: str  # the probe's top class
    p: float
    agrees: bool  # with the model's own answer


@dataclass
class Observation:
    digit: int  # the model's answer
    confidence: float
    layers: list[LayerReading]
    reads_from: str | None  # first layer from which every probe agrees with the answer
    ood: dict | None  # {"score", "threshold", "flagged"}

    def to_dict(self) -> dict:
        return {"digit": self.digit, "confidence": round(self.confidence, 4), "reads_from": self.reads_from,
                "lens": [{"layer": r.layer, "reads": r.label, "p": round(r.p, 3), "agrees": r.agrees} for r in self.layers],
                "ood": self.ood}

    def line(self) -> str:
        """One line for people: `lens input 3 .21 | b0 8 .30 | ... reads from b3; OOD 41.2 (ok, < 180.0)`."""
        parts = [f"{short_layer(r.layer)} {r.label}{'*' if r.agrees else ''} {r.p:.2f}" for r in self.layers]
        text = "lens " + " | ".join(parts) if parts else "lens -"
        text += f"; reads from {short_layer(self.reads_from) if self.reads_from else 'no layer'}"
        if self.ood:
            state = "OUT OF DISTRIBUTION" if self.ood["flagged"] else "ok"
            text += f"; OOD {self.ood['score']:.1f} ({state}, threshold {self.ood['threshold']:.1f})"
        return text


class Observer:
    """Reads a model while it recognises: per layer, what the digit probes say (a logit lens), and
    the OOD score, all from one forward pass with a cache."""

    def __init__(self, bundle, probes: ProbeSet | None = None, ood=None):
        if probes is None and ood is None:
            raise AudreyError("nothing to observe: neither probes nor OOD statistics were given")
        self.bundle, self.probes, self.ood = bundle, probes, ood
        self.model = bundle.model.eval()
        names = list(probes.layers) if probes else []
        if ood is not None and ood.layer not in names:
            names.append(ood.layer)
        missing = [n for n in names if n not in self.model.hook_names()]
        if missing:
            raise AudreyError(f"probe/OOD layer(s) {', '.join(missing)} are not hook points of this model")
        self.names = names
        from audrey.audio.frontend import LogMel

        self.frontend = LogMel(bundle.frontend)

    @classmethod
    def from_file(cls, model_path: str | Path, probes: str | Path | None = None, ood: str | Path | None = None) -> "Observer":
        """The model, and the probe and OOD sidecars beside it (or at the paths given); at least one must exist."""
        from audrey.observe import ood as ood_mod
        from audrey.models.modelfile import load_model

        model_path = Path(model_path)
        bundle, _ = load_model(model_path)
        ppath = Path(probes) if probes else probes_path(model_path)
        probe_set = None
        if ppath.exists():
            probe_set = ProbeSet.load(ppath)
            if probe_set.model_digest and probe_set.model_digest != ood_mod.model_digest(bundle.model):
                raise AudreyError(f"{ppath}: probes were fitted for another model; run `audrey probe --model {model_path} ...` again")
        elif probes:
            raise AudreyError(f"{ppath}: no such probe file")
        stats = ood_mod.load_for(model_path, bundle.model, ood, required=bool(ood))
        if probe_set is None and stats is None:
            raise AudreyError(f"nothing to observe for {model_path}: make probes with `audrey probe --model {model_path} "
                              f"--data <corpus>` and/or OOD statistics with `audrey ood-fit --model {model_path}`")
        return cls(bundle, probe_set, stats)

    @torch.no_grad()
    def observe_features(self, feats: torch.Tensor) -> list[Observation]:
        """(N, mels, frames) or (mels, frames) log-mel features -> one Observation per clip."""
        if feats.dim() == 2:
            feats = feats[None]
        logits, cache = self.model.run_with_cache(feats, self.names)
        probs = logits.softmax(-1)
        answer = probs.argmax(-1)
        labels = self.bundle.labels
        readings: list[list[LayerReading]] = [[] for _ in range(len(feats))]
        if self.probes:
            for name, probe in self.probes.probes.items():
                pp = probe.logits(pool(self.model, name, cache[name], self.probes.time_bins, self.probes.freq_bins)).softmax(-1)
                top = pp.argmax(-1)
                for i in range(len(feats)):
                    label = self.probes.classes[int(top[i])]
                    readings[i].append(LayerReading(name, label, float(pp[i, top[i]]), label == labels[int(answer[i])]))
        scores = self.ood.scores(cache[self.ood.layer].reshape(len(feats), -1)) if self.ood else None
        out = []
        for i in range(len(feats)):
            reads_from = None
            for j in range(len(readings[i]) - 1, -1, -1):
                if not readings[i][j].agrees:
                    break
                reads_from = readings[i][j].layer
            out.append(Observation(int(answer[i]), float(probs[i, answer[i]]), readings[i], reads_from,
                                   self.ood.describe(float(scores[i])) if scores is not None else None))
        return out

    def observe_wave(self, wave: np.ndarray, rate: int | None = None) -> Observation:
        """One utterance (any length up to a few seconds; at `rate`, default the model's): resampled,
        trimmed and centred like every clip, then observed."""
        from audrey.audio.frontend import features

        feats = features([wave], self.bundle.frontend, rate)
        return self.observe_features(feats)[0]
