"""Experiment records: atomic writes, metadata, resumable sweeps, figure smoke runs."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from lowrank_theory.pipeline import records as eio

ROOT = Path(__file__).resolve().parents[1]


def test_atomic_write_replaces_whole_file(tmp_path):
    p = tmp_path / "a" / "x.json"
    eio.atomic_write_text(p, "one")
    eio.atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [q.name for q in p.parent.iterdir()] == ["x.json"]  # no temp file left behind
    assert oct(p.stat().st_mode & 0o777) != oct(0o600)


def test_atomic_write_failure_leaves_old_file(tmp_path, monkeypatch):
    p = tmp_path / "x.txt"
    eio.atomic_write_text(p, "old")

    def boom(*a):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        eio.atomic_write_text(p, "new")
    assert p.read_text() == "old"
    assert len(list(tmp_path.iterdir())) == 1


def test_metadata_has_config_seed_versions_machine():
    meta = eio.run_metadata({"a": 1}, seed=3, wall_time_s=1.5)
    assert meta["config"] == {"a": 1} and meta["seed"] == 3 and meta["wall_time_s"] == 1.5
    assert meta["versions"]["jax"] and meta["machine"]["cores"] >= 1


def test_sweep_resumes_instead_of_restarting(tmp_path):
    calls = []

    def fn(k):
        calls.append(k)
        if k == "c" and len(calls) == 3:
            raise KeyboardInterrupt  # simulated interruption at the third point
        return {"k": k}

    s = eio.Sweep("t", {"cfg": 1}, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        s.run(["a", "b", "c", "d"], fn)
    s2 = eio.Sweep("t", {"cfg": 1}, tmp_path)
    out = s2.run(["a", "b", "c", "d"], fn)
    assert calls == ["a", "b", "c", "c", "d"]
    assert out == {k: {"k": k} for k in "abcd"} and s2.reused == 2 and s2.computed == 2
    # a different configuration never reuses the cache
    s3 = eio.Sweep("t", {"cfg": 2}, tmp_path)
    s3.run(["a"], fn)
    assert s3.computed == 1


def test_to_jsonable_handles_arrays_and_nonfinite():
    import jax.numpy as jnp
    import numpy as np

    out = eio.to_jsonable({"a": jnp.arange(2.0), "b": np.float64("inf"), "c": (1, np.int64(2))})
    assert json.loads(json.dumps(out)) == {"a": [0.0, 1.0], "b": "inf", "c": [1, 2]}


def test_quick_and_full_are_exclusive(monkeypatch):
    monkeypatch.setenv("FULL", "1")
    with pytest.raises(SystemExit):
        eio.select_config(object, quick=True)


SCRIPTS = sorted((ROOT / "experiments").glob("fig_*.py"))


def _run_quick(script: Path, out: Path) -> dict:
    argv = sys.argv
    sys.argv = [script.name, "--quick", "--out", str(out), "--no-cache"]
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = argv
    name = script.stem.removeprefix("fig_").replace("_", "-")
    assert (out / f"{name}.png").stat().st_size > 1000
    rec = json.loads((out / f"{name}.json").read_text())
    for key in ("config", "seed", "versions", "machine", "wall_time_s", "result"):
        assert key in rec, f"{script.name}: record lacks {key}"
    return rec


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_every_figure_script_quick_smoke(script, tmp_path):
    """Every experiments/fig_*.py runs end to end with --quick and writes PNG + JSON record."""
    rec = _run_quick(script, tmp_path)
    if script.stem == "fig_deep_lora":  # all four panels' data, panel (d) with its three variants
        t = rec["result"]["tasks"][0]
        assert set(t["ablation"]) == {f"teacher/ablation/{m}" for m in ("full", "deep", "narrow")}


def test_lora_linear_quick_values(tmp_path):
    rec = _run_quick(ROOT / "experiments" / "fig_lora_linear.py", tmp_path)
    assert rec["config"]["d"] == 8 and rec["seed"] == 0 and rec["wall_time_s"] > 0
    dep = rec["result"]["depths"][0]
    # the construction sits on sigma_{RL+1}(E) and gradient descent never goes below it
    for c, s, gd in zip(dep["construction"], dep["sigma"], dep["gd"], strict=True):
        assert abs(c - s) <= 1e-10 * max(1.0, s)
        assert min(gd) >= s * (1 - 1e-9)


def test_every_figure_script_has_a_documented_header():
    for script in sorted((ROOT / "experiments").glob("fig_*.py")):
        doc = (script.read_text().split('"""')[1]).lower()
        for word in ("command", "runtime", "expected result"):
            assert word in doc, f"{script.name}: header lacks '{word}'"


def test_make_knows_every_figure():
    out = subprocess.run(
        ["make", "-n", "-C", str(ROOT), "fig-lora-linear"], capture_output=True, text=True
    )
    assert "experiments/fig_lora_linear.py" in out.stdout
