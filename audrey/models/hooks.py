"""Hook points, in the style of TransformerLens's hook_points.py.

A `HookPoint` is an identity module placed at every point worth observing. Because it is a module,
it gets a name from its path in the model (`blocks.2.hook_out`), so caching activations and
intervening on them works on any model built from these pieces without editing the model.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable

import torch
from torch import nn

# A hook gets (activation, hook point) and may return a replacement activation.
HookFn = Callable[[torch.Tensor, "HookPoint"], torch.Tensor | None]


class HookPoint(nn.Module):
    """Identity; its name is filled in by HookedModule so hooks know where they are."""

    def __init__(self):
        super().__init__()
        self.name: str = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class HookedModule(nn.Module):
    """Base class for Audrey's models: names its hook points and runs with caches or hooks."""

    def setup_hooks(self) -> None:
        """Call at the end of __init__: gives every HookPoint its module path as its name."""
        self._hook_points = {}
        for name, module in self.named_modules():
            if isinstance(module, HookPoint):
                module.name = name
                self._hook_points[name] = module

    def hook_names(self) -> list[str]:
        return list(self._hook_points)

    def hook_point(self, name: str) -> HookPoint:
        try:
            return self._hook_points[name]
        except KeyError:
            raise KeyError(f"no hook point {name!r}; this model has {', '.join(self._hook_points)}") from None

    @contextmanager
    def hooks(self, fwd_hooks: Iterable[tuple[str, HookFn]]):
        """Attach forward hooks for the duration of the block; they are always removed after."""
        handles = []
        try:
            for name, fn in fwd_hooks:
                point = self.hook_point(name)
                handles.append(point.register_forward_hook(lambda mod, args, out, fn=fn: fn(out, mod)))
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def run_with_hooks(self, x: torch.Tensor, fwd_hooks: Iterable[tuple[str, HookFn]]) -> torch.Tensor:
        with self.hooks(fwd_hooks):
            return self(x)

    def run_with_cache(
        self, x: torch.Tensor, names: Iterable[str] | None = None, detach: bool = True
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Logits and {hook name: activation} for `names` (all hook points by default)."""
        cache: dict[str, torch.Tensor] = {}

        def save(act: torch.Tensor, point: HookPoint) -> None:
            cache[point.name] = act.detach() if detach else act

        names = list(self._hook_points) if names is None else list(names)
        logits = self.run_with_hooks(x, [(n, save) for n in names])
        return logits, cache
