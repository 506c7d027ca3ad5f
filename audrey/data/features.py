"""Clip -> log-mel features, with a disk cache keyed by file content and frontend config.

A corpus is decoded, resampled and trimmed once; later runs (and later epochs) read the cached
arrays. The key is a hash of the file's bytes, so a re-recorded take is never served stale
features, and a moved or renamed corpus still hits the cache.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch

from audrey.atomic import atomic_write_bytes
from audrey.console import progress, warn
from audrey.data.corpora import Clip
from audrey.errors import AudreyError
from audrey.audio.frontend import FrontendConfig, features, load_clip


def cache_root() -> Path:
    return Path(os.environ.get("AUDREY_CACHE", Path.home() / ".cache" / "audrey"))


def file_digest(path: Path) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


class FeatureCache:
    """One .npy per clip under <cache>/features/<frontend key>/<aa>/<digest>.npy."""

    def __init__(self, cfg: FrontendConfig, root: Path | None = None):
        self.dir = (root or cache_root()) / "features" / cfg.key()

    def _path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        path = self._path(digest)
        try:
            return np.load(path)
        except (OSError, ValueError, EOFError):
            # absent, or damaged (np.load raises EOFError for an empty file, ValueError for
            # garbage or a short one): recompute
            return None

    def put(self, digest: str, feats: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, feats)
        atomic_write_bytes(self._path(digest), buf.getvalue(), durable=False)  # a cache: rename, no fsync


def clip_features(
    clips: list[Clip], cfg: FrontendConfig, cache: FeatureCache | None = None, desc: str = "features"
) -> tuple[torch.Tensor, list[Clip]]:
    """Features (N, n_mels, frames) for every readable clip, and the clips they belong to.

    Unreadable clips are skipped with a single warning that counts them and names the first.
    """
    cache = cache if cache is not None else FeatureCache(cfg)
    feats, kept, bad = [], [], []
    with progress() as bar:
        task = bar.add_task(desc, total=len(clips), status="")
        for clip in clips:
            bar.advance(task)
            try:
                digest = file_digest(clip.path)
            except OSError as exc:
                bad.append(f"{clip.path}: unreadable ({exc.strerror})")
                continue
            x = cache.get(digest)
            if x is None:
                try:
                    wave = load_clip(clip.path, cfg)
                except AudreyError as exc:
                    bad.append(str(exc))
                    continue
                x = features([wave], cfg)[0].numpy()
                cache.put(digest, x)
            feats.append(x)
            kept.append(clip)
    if bad:
        warn(f"skipped {len(bad)} unreadable clip(s) of {len(clips)}; first: {bad[0]}")
    if not kept:
        raise AudreyError(f"none of the {len(clips)} clips could be read; first problem: {bad[0]}")
    return torch.from_numpy(np.stack(feats)), kept
