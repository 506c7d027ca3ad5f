"""One `audrey probe` run: a model file and corpora in; the probe report, its plot, the tracked run
(record + W&B) and the digit probe file that `listen --observe` reads out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from audrey.data.corpora import read_corpora
from audrey.data.features import clip_features
from audrey.errors import AudreyError
from audrey.models.modelfile import load_model, writable_output
from audrey.observe.activations import FREQ_BINS, TIME_BINS, capture
from audrey.observe.probe_file import fit_probe_set, probes_path
from audrey.observe.probe_report import log_report, plot_report
from audrey.observe.probe_targets import CONTROLS, TARGETS
from audrey.observe.probing import FOLDS, ProbeReport, run_probes
from audrey.tracking.wandb_run import Tracker, TrackingOptions


@dataclass
class ProbeRun:
    report: ProbeReport
    plot: Path
    probes_file: Path | None  # the digit probes written (None: not asked for, or no digit target)

    def to_dict(self) -> dict:
        return {**self.report.to_dict(), "plot": str(self.plot), "probes_file": str(self.probes_file) if self.probes_file else None}


def check_options(targets: list[str] | None, control: str, time_bins: int, freq_bins: int) -> None:
    """Refuse bad options before any model or corpus is read."""
    for t in targets or []:
        if t not in TARGETS:
            raise AudreyError(f"unknown probe target {t!r}; use one of {', '.join(TARGETS)}")
    if control not in CONTROLS:
        raise AudreyError(f"--control {control!r}: use one of {', '.join(CONTROLS)}")
    if time_bins < 1 or freq_bins < 1:
        raise AudreyError(f"--time-bins {time_bins} / --freq-bins {freq_bins}: each must be at least 1")


def probe_run(model_path: Path, data: list[Path], targets: list[str] | None = None, layers: list[str] | None = None,
              folds: int = FOLDS, control: str = "type", time_bins: int = TIME_BINS, freq_bins: int = FREQ_BINS,
              random_init: bool = True, plot: Path = Path("probes.png"), save: Path | None = None,
              write_probes: bool = True, seed: int = 0, tracking: TrackingOptions = TrackingOptions("disabled")) -> ProbeRun:
    """Probe every layer (or `layers`) of the model for every target the data supports (or `targets`),
    plot and log the report, and write the digit probes to `save` (default: probe_file.probes_path,
    beside the model unless it is a shipped one)."""
    check_options(targets, control, time_bins, freq_bins)
    if save is not None and write_probes:
        writable_output(save, "--save")  # before the work, not after it
    bundle, _ = load_model(model_path)
    unknown = [n for n in layers or [] if n not in bundle.model.hook_names()]
    if unknown:
        raise AudreyError(f"--layer {unknown[0]!r}: not a hook point of {model_path.name}; it has {', '.join(bundle.model.hook_names())}")
    feats, clips = clip_features(read_corpora(data), bundle.frontend, desc="features (probe)")
    config = {"model": str(model_path), "data": [str(d) for d in data], "targets": targets, "layers": layers, "folds": folds,
              "control": control, "time_bins": time_bins, "freq_bins": freq_bins, "random_init": random_init, "seed": seed}
    tracker = Tracker("probe", config, tracking, name=model_path.stem)
    try:
        acts = capture(bundle.model, feats, layers or None, time_bins, freq_bins)
        report = run_probes(bundle.model, feats, clips, targets, layers=layers or None, folds=folds, control=control,
                            random_init=random_init, time_bins=time_bins, freq_bins=freq_bins, seed=seed, activations=acts)
        png = plot_report(report, plot, f"{model_path.name} ({bundle.arch}) on {len(clips)} clips")
        log_report(tracker, report, png)
        saved = None
        if write_probes and "digit" in report.targets:
            probe_set = fit_probe_set(bundle.model, feats, clips, "digit", report, time_bins, freq_bins, activations=acts)
            saved = probe_set.save(save or probes_path(model_path))
    finally:
        tracker.finish()
    return ProbeRun(report, png, saved)
