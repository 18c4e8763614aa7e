"""Figures for Dagster metadata and HTML reports, rendered to PNG bytes (headless matplotlib)."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import numpy as np


def _figure(n_panels: int, cols: int = 4, size: tuple[float, float] = (3.2, 2.6)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(1, min(cols, n_panels))
    rows = max(1, -(-n_panels // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(size[0] * cols, size[1] * rows), squeeze=False)
    return plt, fig, axes.ravel()


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def precision_coverage_png(
    curves: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray, float | None]]],
    target: float = 0.8,
    max_panels: int = 12,
) -> bytes:
    """One panel per category: precision against coverage for each source, the target and the chosen cut.

    ``curves[category][source] = (precision, coverage, coverage_at_threshold or None)``.
    """
    names = list(curves)[:max_panels]
    plt, fig, axes = _figure(len(names))
    for ax, name in zip(axes, names, strict=False):
        for source, (precision, cov, chosen) in curves[name].items():
            if len(precision):
                line = ax.plot(cov, precision, label=source, lw=1.4)[0]
                if chosen is not None:
                    ax.axvline(chosen, color=line.get_color(), ls=":", lw=1)
        ax.axhline(target, color="grey", ls="--", lw=0.8)
        ax.set_title(name[:38], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("coverage", fontsize=7)
        ax.set_ylabel("precision", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=6, loc="lower left")
    for ax in axes[len(names) :]:
        ax.axis("off")
    return _png(plt, fig)


def curves_png(series: Mapping[str, Sequence[float]], title: str, xlabel: str = "epoch") -> bytes:
    """Training curves (loss, validation GAP, ...) on one axis each."""
    plt, fig, axes = _figure(len(series), cols=len(series))
    for ax, (name, values) in zip(axes, series.items(), strict=False):
        ax.plot(range(1, len(values) + 1), list(values), marker="o", ms=3)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=10)
    return _png(plt, fig)


def markdown_image(png: bytes, alt: str) -> str:
    """Inline PNG for a Dagster markdown metadata value."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
