"""Activation patching: run a model with one hook point's activation replaced (e.g. by the same
point's activation on another clip), to test whether the model *uses* what a probe can read there
(probes read, interventions test use)."""

from __future__ import annotations

import torch

from audrey.errors import AudreyError


@torch.no_grad()
def patched_logits(model, x: torch.Tensor, name: str, replacement: torch.Tensor, where: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Logits of `x` with hook point `name`'s activation replaced by `replacement` (e.g. the same
    point's activation on another clip, from run_with_cache) wherever `where` is true (everywhere by
    default). The model runs eval-mode; shapes must match the activation's."""

    def patch(act: torch.Tensor, hook) -> torch.Tensor:
        if replacement.shape != act.shape:
            raise AudreyError(f"patch for {name}: shape {tuple(replacement.shape)} does not match the activation's {tuple(act.shape)}")
        return replacement if where is None else torch.where(where, replacement, act)

    return model.eval().run_with_hooks(x, [(name, patch)])
