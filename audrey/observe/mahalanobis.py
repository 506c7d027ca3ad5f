"""Class statistics of a model's embeddings and the Mahalanobis distance to them (Lee et al., 2018):
class means and one covariance shared by all classes, shrunk towards a scaled identity so that a
few hundred clips in 128 dimensions still give a stable inverse. The OOD score (audrey.observe.ood)
and the rejection's likeness test (audrey.live.judge, test 4) both use them.

Written out rather than sklearn.covariance.ShrunkCovariance: that one divides by N (the maximum
likelihood estimate), this by N - classes (the pooled within-class estimate), which every stored
calibration and OOD file was fitted with.
"""

from __future__ import annotations

import torch

SHRINKAGE = 0.1  # covariance shrinkage towards a scaled identity


@torch.no_grad()
def class_statistics(embeds: torch.Tensor, labels: torch.Tensor, shrinkage: float = SHRINKAGE
                     ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Class means (C, D), shared precision (D, D) and the classes present, in float64 then float32.
    The precision is the inverse of the within-class covariance shrunk towards tr(S)/D * I."""
    x = embeds.double()
    classes = sorted(set(labels.tolist()))
    means = torch.stack([x[labels == c].mean(0) for c in classes])
    centred = x - means[torch.tensor([classes.index(c) for c in labels.tolist()])]
    cov = centred.T @ centred / max(1, len(x) - len(classes))
    d = cov.shape[0]
    cov = (1 - shrinkage) * cov + shrinkage * (torch.trace(cov) / d) * torch.eye(d, dtype=cov.dtype)
    precision = torch.linalg.inv(cov + 1e-9 * torch.eye(d, dtype=cov.dtype))
    return means.float(), precision.float(), classes


def squared_distances(embeds: torch.Tensor, means: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """(N, C) squared Mahalanobis distances of (N, D) embeddings to each class mean, in the dtype given."""
    diff = embeds[:, None, :] - means[None]  # (N, C, D)
    return torch.einsum("ncd,de,nce->nc", diff, precision, diff)
