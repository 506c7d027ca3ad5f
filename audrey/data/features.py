"""Clip -> log-mel features, with a disk cache keyed by file content and frontend config.

A corpus is decoded, resampled and trimmed once; later runs (and later epochs) read the cached
arrays. The key is a hash of the file's bytes, so a re-recorded take is never served stale
features, and a moved or renamed corpus still hits the cache.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import numpy as np
import torch

from audrey.atomic import WriteFailed, atomic_write_bytes
from audrey.console import progress, warn
from audrey.data.corpora import Clip
from audrey.errors import AudreyError
from audrey.audio.frontend import FrontendConfig, features, load_clip


def cache_root() -> Path:
    return Path(os.environ.get("AUDREY_CACHE", Path.home() / ".cache" / "audrey"))


def file_digest(path: Path) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


class FeatureCache:
    """One .npy per clip under <cache>/features/<frontend key>/<aa>/<digest>.npy.

    An entry is used only if it is exactly what the frontend makes: float32 of shape
    (n_mels, n_frames), every value finite. Anything else (damaged, truncated, another shape or
    dtype, NaN) counts as absent and is recomputed, and the rewrite repairs it.

    The cache only saves time: when an entry cannot be written (a full disk), that is said once and
    the features are computed without it from then on.
    """

    def __init__(self, cfg: FrontendConfig, root: Path | None = None):
        self.dir = (root or cache_root()) / "features" / cfg.key()
        self.shape = (cfg.n_mels, cfg.n_frames)
        self.writable = True
        remove_stale_temps(self.dir)

    def _path(self, digest: str) -> Path:
        return self.dir / digest[:2] / f"{digest}.npy"

    def get(self, digest: str) -> np.ndarray | None:
        try:
            with self._path(digest).open("rb") as fh:
                return read_entry(fh, self.shape)
        except (OSError, ValueError, EOFError):
            # absent, or damaged (the .npy header is unreadable: ValueError, or EOFError for an empty file)
            return None

    def put(self, digest: str, feats: np.ndarray) -> None:
        if not self.writable:
            return
        buf = io.BytesIO()
        np.save(buf, feats)
        try:
            atomic_write_bytes(self._path(digest), buf.getvalue(), durable=False)  # a cache: rename, no fsync
        except WriteFailed as exc:
            self.writable = False
            warn(f"feature cache: {exc.path} could not be written ({exc.cause}); "
                 f"carrying on without the cache (same results, computed each time)")


ENTRY_DTYPE = np.dtype("<f4")
STALE_TEMP_SECONDS = 600  # a writer renames its temp file within milliseconds; one this old was left by a killed one


def read_entry(fh, shape: tuple[int, int]) -> np.ndarray | None:
    """The array in an open .npy file if it is float32 of exactly `shape` with finite values, else
    None. The header is checked before any data is read, so a header declaring a huge array costs
    nothing; pickled object arrays are never loaded."""
    fmt = np.lib.format
    version = fmt.read_magic(fh)
    read_header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}.get(version)
    if read_header is None:
        return None
    found, fortran, dtype = read_header(fh)
    if tuple(found) != tuple(shape) or fortran or dtype != ENTRY_DTYPE:
        return None
    count = int(np.prod(shape))
    data = np.fromfile(fh, dtype=ENTRY_DTYPE, count=count)
    if data.size != count or not np.isfinite(data).all():
        return None
    return data.reshape(shape)


def remove_stale_temps(folder: Path) -> None:
    """Delete the hidden `.<name>.*.tmp` files that writers killed mid-write left in the cache
    (atomic_write_bytes never leaves one otherwise). Only old ones: a concurrent writer's fresh
    temp file is left alone."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for tmp in folder.glob("*/.*.tmp"):
        try:
            if tmp.stat().st_mtime < cutoff:
                tmp.unlink()
        except OSError:
            pass  # gone already (another process cleaned it), or not ours to remove


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
