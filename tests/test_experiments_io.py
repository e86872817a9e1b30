"""Experiment records: atomic writes, metadata, resumable sweeps, figure smoke runs."""

import dataclasses
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


def _quick_dir(tmp_path_factory) -> Path:
    """The session's folder of --quick records, read again by tests/test_figures.py."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # shared by the workers
        base = base.parent
    return base / "figs_quick"


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.stem for s in SCRIPTS])
def test_every_figure_script_quick_smoke(script, tmp_path_factory):
    """Every experiments/fig_*.py runs end to end with --quick and writes PNG + JSON record."""
    rec = _run_quick(script, _quick_dir(tmp_path_factory))
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


def test_stale_cache_point_is_recomputed_and_the_record_says_why(tmp_path, monkeypatch):
    calls = []
    s = eio.Sweep("t", {"cfg": 1}, tmp_path)
    s.run(["a", "b"], lambda k: calls.append(k) or {"k": k})
    s2 = eio.Sweep("t", {"cfg": 1}, tmp_path)
    assert s2.run(["a", "b"], lambda k: calls.append(k) or {"k": k}) == {
        "a": {"k": "a"},
        "b": {"k": "b"},
    }
    assert calls == ["a", "b"] and s2.summary()["stale"] == 0 and s2.summary()["reason"] is None
    # the library's sources change: every cached point is recomputed, and the record says why
    monkeypatch.setattr(eio, "source_hash", lambda: "0123456789abcdef")
    s3 = eio.Sweep("t", {"cfg": 1}, tmp_path)
    s3.run(["a", "b"], lambda k: calls.append(k) or {"k": k})
    assert calls == ["a", "b", "a", "b"]
    summ = s3.summary()
    assert (summ["computed"], summ["reused"], summ["stale"]) == (2, 0, 2)
    assert summ["reason"] == "library sources changed"
    # ... and now under the new fingerprint they are reused
    s4 = eio.Sweep("t", {"cfg": 1}, tmp_path)
    s4.run(["a", "b"], lambda k: calls.append(k) or {"k": k})
    assert s4.reused == 2 and len(calls) == 4
    # a package upgrade is stale as well
    real = eio.package_versions()
    monkeypatch.setattr(eio, "package_versions", lambda: {**real, "jax": "9.9.9"})
    s5 = eio.Sweep("t", {"cfg": 1}, tmp_path)
    s5.run(["a"], lambda k: {"k": k})
    assert s5.stale == 1 and "package versions changed (jax" in s5.summary()["reason"]
    # the masked completion products switch formulation (native kernel <-> dense) on this host
    other = "dense" if eio.masked_products_path() == "native" else "native"
    monkeypatch.setattr(eio, "masked_products_path", lambda: other)
    s6 = eio.Sweep("t", {"cfg": 1}, tmp_path)
    s6.run(["a"], lambda k: {"k": k})
    assert s6.stale == 1 and f"masked products now {other}" in s6.summary()["reason"]


def test_cache_point_of_the_old_format_is_stale(tmp_path):
    s = eio.Sweep("t", {"cfg": 1}, tmp_path)
    s.dir.mkdir(parents=True)
    (s.dir / "a.json").write_text(json.dumps({"k": "old"}))  # written by the code before
    assert s.run(["a"], lambda k: {"k": "new"}) == {"a": {"k": "new"}}
    assert s.stale == 1 and "older cache format" in s.summary()["reason"]


def test_ctrl_c_ends_with_one_line_saying_what_was_saved(tmp_path, capsys):
    def main(cfg, sweep):
        def fn(k):
            if k == "c":
                raise KeyboardInterrupt
            return {"k": k}

        return sweep.run(["a", "b", "c", "d"], fn, desc="pts")

    with pytest.raises(SystemExit) as e:
        eio.run_experiment("t", _Cfg, main, lambda r, c: None, script=__file__,
                           argv=["--out", str(tmp_path)])  # fmt: skip
    assert e.value.code == 130
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("t: interrupted at point c;")
    assert last == (f"t: interrupted at point c; saved 2 finished point(s) to "
                    f"{tmp_path / '.cache' / 't' / eio.config_hash(_Cfg())}; "
                    "rerun the same command to resume")  # fmt: skip
    assert "Traceback" not in err
    # progress: one line per finished point
    assert "pts 1/4 [a]" in err and "pts 2/4 [b]" in err
    # the rerun resumes from the two saved points
    sw = eio.Sweep("t", _Cfg(), tmp_path / ".cache")
    assert sw.get("a") == {"k": "a"} and sw.get("b") == {"k": "b"} and sw.get("c") is None


@dataclasses.dataclass(frozen=True)
class _Cfg:
    seed: int = 0

    @classmethod
    def quick(cls):
        return cls()


def test_split_figures_resume_inside_the_figure(tmp_path, capsys):
    """dmf-svd is two sweep points: a rerun after an interruption reuses the first (same result)."""
    script = ROOT / "experiments" / "fig_dmf_svd.py"
    mod = runpy.run_path(str(script))
    cfg = mod["Config"].quick()
    first = mod["main"](cfg, eio.Sweep("dmf-svd", cfg, tmp_path))
    (eio.Sweep("dmf-svd", cfg, tmp_path).dir / "analysis.json").unlink()  # "interrupted" there
    s = eio.Sweep("dmf-svd", cfg, tmp_path)
    again = mod["main"](cfg, s)
    assert (s.reused, s.computed) == (1, 1)
    assert eio.to_jsonable(again) == eio.to_jsonable(first)
