"""The worked notebooks (``notebooks/<paper>.py``, jupytext percent format) run top to bottom.

Each notebook is executed as a script (every ``# %%`` cell in order) in a subprocess at its
quick sizes (``NOTEBOOK_QUICK=1``) with matplotlib's agg backend, every warning an error and
JAX's rank promotion ``raise`` (the suite's regime), so a notebook whose API calls,
claim ids, claim parameters or checks rot fails here. The notebooks assert their own checks
(the claim verdicts and both sides of each inequality); this test asserts exit status 0, that
each drew its figure, and that each is a well-formed percent-format notebook (jupytext header,
code and markdown cells), without a Jupyter kernel dependency.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
#: one notebook per paper package
PAPERS = ("lora", "s2ft", "lin", "dmf")
#: generous per-notebook limit on a loaded 2-core machine (each takes a few seconds when idle)
TIMEOUT_S = 240


def test_one_notebook_per_paper():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.py")) == sorted(PAPERS)


@pytest.mark.parametrize("name", PAPERS)
def test_notebook_is_percent_format(name):
    text = (NOTEBOOKS / f"{name}.py").read_text()
    header = text.split("\n# ---\n", 1)[0]
    assert text.startswith("# ---\n# jupyter:\n") and "format_name: percent" in header
    lines = text.splitlines()
    assert lines.count("# %% [markdown]") >= 4, "a tour needs text cells"
    assert lines.count("# %%") >= 4, "and code cells"
    # the tour's four steps: an instance, the construction, a claim check, a figure
    assert "jax.random.key(" in text or "build_instance(" in text
    assert 'get("' in text and ".run(params)" in text
    assert "lt.tolerance(" in text
    assert ".savefig(" in text


@pytest.mark.parametrize("name", PAPERS)
def test_notebook_runs(name, tmp_path):
    env = {
        **os.environ,
        "MPLBACKEND": "agg",
        "NOTEBOOK_QUICK": "1",
        "NOTEBOOK_OUT": str(tmp_path),
        # the suite's regime (conftest.py): implicit rank broadcasting is an error
        "JAX_NUMPY_RANK_PROMOTION": "raise",
    }
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(NOTEBOOKS / f"{name}.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, f"notebooks/{name}.py failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / f"{name}.png").stat().st_size > 0
