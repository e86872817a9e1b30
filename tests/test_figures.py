"""Every figure reads at a glance: labelled axes, legends that cover no data.

Each figure is rebuilt by its script's ``plot(result, cfg)`` from the ``--quick`` record that the
smoke test in ``test_experiments_io.py`` writes (:func:`quick_record`: shared through a folder of
the pytest session, so nothing is computed twice; computed here when run alone).
"""

import json
import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "experiments").glob("fig_*.py"))


def figure_name(script: Path) -> str:
    return script.stem.removeprefix("fig_").replace("_", "-")


def quick_dir(tmp_path_factory) -> Path:
    """One folder per pytest session (shared by the xdist workers) for the --quick records."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    return base / "figs_quick"


def run_quick(script: Path, out: Path) -> dict:
    """Runs ``script --quick --no-cache --out out``; returns the script's globals."""
    argv = sys.argv
    sys.argv = [script.name, "--quick", "--out", str(out), "--no-cache"]
    try:
        return runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv


def quick_record(script: Path, tmp_path_factory) -> dict:
    """The --quick JSON record of ``script`` (the smoke test's, or computed now)."""
    out = quick_dir(tmp_path_factory)
    p = out / f"{figure_name(script)}.json"
    if not p.exists():
        run_quick(script, out)
    return json.loads(p.read_text())


def _along_segments(disp: np.ndarray, per_segment: int = 16) -> np.ndarray:
    """Points along each drawn segment between consecutive finite display points (a legend over
    the middle of a straight segment covers data too, not only over its vertices)."""
    a, b = disp[:-1], disp[1:]
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    s = np.linspace(0.0, 1.0, per_segment)[None, :, None]
    return (a[ok, None, :] * (1 - s) + b[ok, None, :] * s).reshape(-1, 2)


def data_points(ax) -> np.ndarray:
    """Display coordinates of every finite data point drawn in ``ax``, and of points along the
    segments of its lines."""
    from matplotlib.collections import PolyCollection

    pts, along = [], []
    for line in ax.get_lines():
        xy = np.column_stack([np.asarray(line.get_xdata(), float),
                              np.asarray(line.get_ydata(), float)])  # fmt: skip
        if line.get_transform() == ax.transData:
            pts.append(xy)
            if line.get_linestyle() not in ("None", "none", "", " ") and len(xy) > 1:
                with np.errstate(all="ignore"):
                    along.append(_along_segments(ax.transData.transform(xy)))
    for coll in ax.collections:
        if isinstance(coll, PolyCollection):  # fill_between bands: their vertices
            for path in coll.get_paths():
                pts.append(path.vertices)
        else:
            pts.append(np.asarray(coll.get_offsets(), float).reshape(-1, 2))
    if not pts:
        return np.zeros((0, 2))
    xy = np.concatenate(pts)
    with np.errstate(all="ignore"):  # log axes: non-positive values are not drawn
        disp = ax.transData.transform(xy) if len(xy) else xy
    disp = np.concatenate([disp, *along]) if along else disp
    disp = disp[np.isfinite(disp).all(axis=1)]
    box = ax.bbox  # only what is inside the axes is drawn (clipped)
    keep = ((disp[:, 0] >= box.x0 - 1) & (disp[:, 0] <= box.x1 + 1)
            & (disp[:, 1] >= box.y0 - 1) & (disp[:, 1] <= box.y1 + 1))  # fmt: skip
    return disp[keep]


def same_place(ax) -> list:
    """``ax`` and its twins (axes drawn in the same box)."""
    pos = ax.get_position().bounds
    return [a for a in ax.figure.axes if np.allclose(a.get_position().bounds, pos)]


def legend_problems(fig) -> list[str]:
    """Axes without x/y labels, and legends whose box holds a plotted data point."""
    fig.canvas.draw()
    bad = []
    legends = [(lg, None) for lg in fig.legends]
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.has_data():
            continue
        title = ax.get_title() or f"axes {i}"
        if not any(a.get_xlabel().strip() for a in same_place(ax)):  # a twin labels it once
            bad.append(f"{title}: no x label")
        if not ax.get_ylabel().strip():
            bad.append(f"{title}: no y label")
        if ax.get_legend() is not None:
            legends.append((ax.get_legend(), ax))
    for lg, owner in legends:
        box = lg.get_window_extent()
        for ax in same_place(owner) if owner is not None else fig.axes:
            if not ax.has_data():
                continue
            xy = data_points(ax)
            inside = ((xy[:, 0] > box.x0) & (xy[:, 0] < box.x1)
                      & (xy[:, 1] > box.y0) & (xy[:, 1] < box.y1))  # fmt: skip
            if inside.any():
                bad.append(f"{ax.get_title() or 'axes'}: legend covers {inside.sum()} data points")
    return bad


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_figure_reads_at_a_glance(script, tmp_path_factory):
    import matplotlib.pyplot as plt

    from lowrank_theory.pipeline.plotting import STYLE

    rec = quick_record(script, tmp_path_factory)
    mod = runpy.run_path(str(script))  # not as __main__: only the definitions
    cfg = mod["Config"].quick()
    with plt.rc_context(STYLE):
        fig = mod["plot"](rec["result"], cfg)
        fig.tight_layout()
        try:
            bad = legend_problems(fig)
        finally:
            plt.close(fig)
    assert not bad, f"{script.name}: " + "; ".join(bad)


def test_checker_catches_a_legend_on_data_and_a_missing_label():
    from lowrank_theory.pipeline.plotting import subplots

    fig, axes = subplots(1, 1)
    x = np.linspace(0, 1, 50)
    axes[0, 0].plot(x, np.ones_like(x) * 0.98, label="covered")
    axes[0, 0].plot(x, x, label="other")
    axes[0, 0].set(xlabel="x")
    axes[0, 0].legend(loc="upper left")
    fig.tight_layout()
    bad = legend_problems(fig)
    import matplotlib.pyplot as plt

    plt.close(fig)
    assert any("no y label" in b for b in bad) and any("covers" in b for b in bad)


def test_checker_catches_a_legend_over_the_middle_of_a_straight_segment():
    """A two-point line whose only vertices lie outside the legend box is still covered."""
    import matplotlib.pyplot as plt

    from lowrank_theory.pipeline.plotting import subplots

    fig, axes = subplots(1, 1)
    axes[0, 0].plot([0.0, 1.0], [0.97, 0.97], label="one segment")
    axes[0, 0].set(xlabel="x", ylabel="y", xlim=(0, 1), ylim=(0, 1))
    axes[0, 0].legend(loc="upper center")
    fig.tight_layout()
    bad = legend_problems(fig)
    plt.close(fig)
    assert any("covers" in b for b in bad), bad
