"""Figures for people: matplotlib without a screen (Agg), written as PNG files."""

from __future__ import annotations

import io
from pathlib import Path

from audrey.atomic import atomic_write_bytes


def pyplot():
    """matplotlib.pyplot on the Agg backend: works with no display (servers, CI, ssh)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Lay out, write `fig` as a PNG at `path` (its folder created), close it; returns the path.
    Rendered in memory and written atomically: a full disk leaves no half PNG, only WriteFailed."""
    plt = pyplot()
    try:
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, dpi=dpi, format="png")
    finally:
        plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
