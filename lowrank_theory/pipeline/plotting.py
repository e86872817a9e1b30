"""One figure style for every plot: agg backend, consistent sizes, colours and markers."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("agg")

import matplotlib.pyplot as plt
from matplotlib.transforms import ScaledTranslation

#: Colours by method, shared across figures so a method looks the same everywhere.
COLORS = {
    "construction": "#1f77b4",
    "bound": "#444444",
    "lora": "#d62728",
    "deep_lora": "#2ca02c",
    "s2ft": "#9467bd",
    "full": "#ff7f0e",
    "pretrained": "#7f7f7f",
    "compressed": "#2ca02c",
    "narrow": "#8c564b",
}

STYLE = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "lines.linewidth": 1.5,
    "lines.markersize": 4,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def subplots(nrows: int = 1, ncols: int = 1, *, width: float = 4.0, height: float = 3.2, **kw):
    """``plt.subplots`` under the package style, ``width`` x ``height`` inches per panel."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw
        )
    for ax in axes.flat:
        for k, v in STYLE.items():
            if k == "axes.grid" and v:
                ax.grid(True, alpha=STYLE["grid.alpha"])
    return fig, axes


def legend_outside(ax, where: str = "right", *, handles=None, labels=None, fontsize=7, **kw):
    """A legend beside (``"right"``) or under (``"below"``) the axes, so it covers no data.

    ``tight_layout`` (in :func:`png_bytes`) makes room for it."""
    if where == "right":
        kw = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), **kw}
    elif where == "below":  # under the tick labels and the x label, whatever the panel's height
        lines = 1 + ax.get_xlabel().count("\n") if ax.get_xlabel() else 0
        drop = ScaledTranslation(0, -(0.3 + 0.17 * lines), ax.figure.dpi_scale_trans)
        kw = {"loc": "upper center", "bbox_to_anchor": (0.5, 0.0), "ncol": 1,
              "bbox_transform": ax.transAxes + drop, **kw}  # fmt: skip
    else:
        raise ValueError(f"where must be 'right' or 'below', got {where!r}")
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    return ax.legend(handles, labels, fontsize=fontsize, borderaxespad=0.0, **kw)


def shared_legend(axes, anchor, where: str = "right", **kw):
    """One legend for panels that share their series (deduplicated by label), beside ``anchor``."""
    seen: dict[str, object] = {}
    for ax in getattr(axes, "flat", axes):
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            seen.setdefault(lab, h)
    return legend_outside(anchor, where, handles=list(seen.values()), labels=list(seen), **kw)


def png_bytes(fig) -> bytes:
    """``fig`` rendered as PNG in the house style; the figure is closed.

    The caller writes the bytes (atomically: :func:`lowrank_theory.pipeline.records.run_experiment`
    does), so this module depends on nothing else of the pipeline."""
    with plt.rc_context(STYLE):
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
