"""OOD scores of audio files (`audrey predict`), from the OOD statistics beside a model."""

from __future__ import annotations

from pathlib import Path

from audrey.audio.frontend import load_clip
from audrey.observe.ood import load_for, score_waves


def score_files(model_path: Path, bundle, files: list[Path], required: bool = False) -> list[dict] | None:
    """{"score", "threshold", "flagged"} per file, each loaded as one digit at the model's rate;
    None when the model has no OOD statistics (an error instead when `required`)."""
    stats = load_for(model_path, bundle.model, required=required)
    if stats is None:
        return None
    waves = [load_clip(f, bundle.frontend) for f in files]
    return [stats.describe(s) for s in score_waves(bundle, stats, waves).tolist()]
