"""The linear probe: multinomial logistic regression on one hook point's pooled activations, and
its held-out score.

- Fit: sklearn's `LogisticRegression` (L-BFGS, multinomial) on features standardised with the
  training fold's own statistics (`StandardScaler`); L2 penalty `l2 * |W|^2` added to the mean
  cross-entropy, i.e. C = 1 / (2 * l2 * N) in sklearn's terms; the bias is not penalised. Two
  classes (gender, source) give the same solution through sklearn's one-logit binary fit.
  It replaced a hand-written torch L-BFGS fit of the same objective: on 600 FSDD clips through
  the starter model (digit and speaker probes at all 8 hook points with the type control and the
  random-init twin, 168 fits) the 48 accuracies moved by +0.2 points on average (at most 2.2, one
  or two clips of a fold), and the run took 10.4 s of CPU instead of 11.6 s.
- Score: balanced accuracy (mean recall over classes) of out-of-fold predictions, so chance is
  1/classes even for lopsided targets such as source.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

L2 = 1e-3
MAX_ITER = 100


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


def fit_probe(x: torch.Tensor, y: torch.Tensor, n_classes: int, l2: float = L2, max_iter: int = MAX_ITER) -> LinearProbe:
    """Multinomial logistic regression of y (N,) in 0..n_classes-1 on x (N, D). A class missing
    from `y` (a small training fold, random control labels) is never predicted (bias -inf)."""
    # imported here, not at the top: sklearn takes 1-2 s to load, and reading saved probes live
    # (`listen --observe`) needs only LinearProbe
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    xs = x.double().numpy()
    ys = y.numpy()
    scaler = StandardScaler().fit(xs)
    weight = torch.zeros(xs.shape[1], n_classes)
    bias = torch.full((n_classes,), float("-inf"))
    seen = np.unique(ys)
    if len(seen) == 1:  # nothing to tell apart: always that class
        bias[int(seen[0])] = 0.0
    else:
        # Two classes: sklearn fits one logit v, the multinomial optimum is the pair (-v/2, v/2),
        # whose penalty l2 * |v|^2 / 2 is that of C = 1 / (l2 * N); more classes: C = 1 / (2 * l2 * N).
        binary = len(seen) == 2
        model = LogisticRegression(C=1.0 / ((1 if binary else 2) * l2 * len(xs)), max_iter=max_iter)
        with blas_threads().limit(limits=1), warnings.catch_warnings():
            # the early layers stop at max_iter with the loss still moving in its 5th digit;
            # their held-out accuracies are settled long before that
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(scaler.transform(xs), ys)
        coef, intercept = torch.from_numpy(model.coef_.T).float(), torch.from_numpy(model.intercept_).float()
        if binary:
            coef, intercept = torch.cat([-coef, coef], 1) / 2, torch.cat([-intercept, intercept]) / 2
        columns = torch.as_tensor(model.classes_)
        weight[:, columns] = coef
        bias[columns] = intercept
    return LinearProbe(torch.from_numpy(scaler.mean_).float(), torch.from_numpy(scaler.scale_).float(), weight, bias)


@lru_cache(maxsize=1)
def blas_threads():
    """The BLAS/OpenMP thread pools sklearn's solver runs on, found once (finding them costs ~7 ms,
    a fit ~10-100 ms). Fits run on one thread: they are many small products, and on a busy CPU the
    threads spend more time waiting for each other than computing (measured 20-40x slower with 2
    threads on a loaded 2-core machine)."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def cross_validate(x: torch.Tensor, y: torch.Tensor, folds: np.ndarray, n_classes: int, l2: float = L2) -> float:
    """Balanced accuracy of out-of-fold predictions: each clip predicted by the probe fitted without
    its fold. (The folds are the caller's own speaker-disjoint or take folds; a fold holding every
    clip has no training side and is not scored.)"""
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
