"""How well a score separates two groups: the area under the ROC curve."""

from __future__ import annotations

import numpy as np


def auroc(negatives, positives) -> float:
    """Area under the ROC curve for telling `positives` (higher scores expected) from `negatives`:
    the probability that a random positive outscores a random negative, ties counting half."""
    from sklearn.metrics import roc_auc_score  # 2 s to import: only when a figure is asked for

    neg = np.asarray(negatives, dtype=np.float64).ravel()
    pos = np.asarray(positives, dtype=np.float64).ravel()
    if not len(neg) or not len(pos):
        raise ValueError("AUROC needs at least one score on each side")
    return float(roc_auc_score(np.r_[np.zeros(len(neg)), np.ones(len(pos))], np.r_[neg, pos]))
