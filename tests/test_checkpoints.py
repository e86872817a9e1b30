"""Chunked GD runs and mid-run checkpoints: bitwise the one-scan run, resumable, Ctrl-C lands.

* every GD driver run in chunks (whole records, pieces of a record, adaptive) gives bitwise the
  iterates and records of its one-scan run;
* a run interrupted after any chunk resumes from its state, bitwise as if never stopped;
* :class:`~lowrank_theory.pipeline.records.Sweep` checkpoints a point mid-run, a rerun resumes
  it, a checkpoint of other code / another config / another run is ignored (the record says
  why), and the checkpoint is gone once the point is cached;
* the batched driver (``run_gd_batch``, a ``vmap`` of many runs) is chunked the same way:
  bitwise the one-scan batch, resumable after any chunk;
* a figure script interrupted with SIGINT exits within seconds with status 130 and one line
  saying what was saved, with SIGTERM (``kill``) the same way with status 143; the rerun
  resumes, also mid-batch in the quick ``dmf-depth-width`` and ``dmc-narrow`` figures.
"""

import dataclasses
import functools
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory.dmf.completion import padded_narrow_init, run_gd_from_inits
from lowrank_theory.dmf.factorization import Chunking
from lowrank_theory.pipeline import interrupts
from lowrank_theory.pipeline import records as eio

ROOT = Path(__file__).resolve().parents[1]


def _problem(d=12, depth=3, eps=0.5, seed=0):
    k = jax.random.split(jax.random.key(seed), 3)
    phi, mask = lt.completion_instance(k[0], d, 2, 0.5)
    return lt.orthogonal_init(k[1], d, depth, eps), phi, mask


def _factorization(chunking):
    ws, phi, _ = _problem()
    return lt.run_factorization(ws, phi, lr=0.2, steps=60, record_every=5, chunking=chunking,
                                record=("loss", "weights", "singular_values", "end_to_end"),
                                record_fn=lambda w: jnp.sum(w[0]))  # fmt: skip


def _completion(chunking):
    ws, phi, mask = _problem(eps=0.3)
    return lt.run_completion(ws, jnp.where(mask, phi, 0.0), mask, truth=phi, lr=0.5, steps=60,
                             record_every=5, record=("loss", "recovery"), chunking=chunking)  # fmt: skip


def _compressed_small(chunking):
    ws, phi, _ = _problem(d=16, eps=1e-2)
    comp = lt.compress(ws, phi, 2)
    return lt.run_compressed(comp, lr=0.3, steps=60, record_every=5, chunking=chunking,
                             record=("loss", "recovery", "weights"))  # fmt: skip


def _compressed_masked(chunking):
    ws, phi, mask = _problem(d=16, eps=1e-2)
    target = jnp.where(mask, phi, 0.0)
    comp = lt.compress(ws, target, 2, mask=mask)
    return lt.run_compressed(comp, lr=0.8, steps=60, gamma=0.1, mask=mask, truth=phi,
                             record_every=5, record=("recovery",), chunking=chunking,
                             record_fn=lambda w: lt.end_to_end(w)[0])  # fmt: skip


def _narrow(chunking):
    _, phi, mask = _problem(d=16)
    return lt.run_narrow(jax.random.key(3), jnp.where(mask, phi, 0.0), 4, 3, 0.3, lr=0.5,
                         steps=60, mask=mask, record_every=5, record=("loss",),
                         chunking=chunking)  # fmt: skip


DRIVERS = {
    "factorization": _factorization,
    "completion": _completion,
    "compressed-kxk": _compressed_small,
    "compressed-masked": _compressed_masked,
    "narrow": _narrow,
}
CHUNKINGS = {
    "1 record": Chunking(records=1),
    "5 records (remainder 2)": Chunking(records=5),
    "1-step pieces": Chunking(steps=1),
    "3-step pieces": Chunking(steps=3),
    "adaptive, short": Chunking(seconds=1e-9),
    "adaptive, long": Chunking(seconds=1e9),
}


def _same(a, b) -> bool:
    la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    ta, tb = jax.tree_util.tree_structure(a), jax.tree_util.tree_structure(b)
    return ta == tb and all(
        np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(la, lb, strict=True)
    )


def _same_result(a, b) -> bool:
    return _same(a.weights, b.weights) and _same(a.records, b.records) and _same(a.steps, b.steps)


@pytest.mark.parametrize("driver", DRIVERS)
def test_chunked_run_is_bitwise_the_one_scan_run(driver):
    run = DRIVERS[driver]
    ref = run(None)
    for name, chunking in CHUNKINGS.items():
        seen: list[int] = []
        res = run(dataclasses.replace(chunking, on_chunk=lambda s, seen=seen: seen.append(s.step)))
        assert _same_result(ref, res), f"{driver}, {name}: not bitwise the one-scan run"
        assert seen[-1] == 60 and seen == sorted(seen), (name, seen)
    # the chunks are what was asked for: whole records, pieces never crossing a record
    steps = []
    run(Chunking(steps=3, on_chunk=lambda s: steps.append(s.step)))
    assert steps[:4] == [3, 5, 8, 10]
    steps.clear()
    run(Chunking(records=5, on_chunk=lambda s: steps.append(s.step)))
    assert steps == [25, 50, 60]


def _interrupt_after(j, states):
    def on_chunk(state):
        states.append(state)
        if len(states) == j:
            raise KeyboardInterrupt

    return on_chunk


@pytest.mark.parametrize("driver", ["completion", "compressed-kxk"])
@pytest.mark.parametrize(
    "chunks", [Chunking(steps=2), Chunking(records=1)], ids=["pieces", "records"]
)
def test_interrupted_run_resumes_bitwise(driver, chunks):
    run = DRIVERS[driver]
    ref = run(None)
    for j in (1, 3, 7):
        states = []
        with pytest.raises(KeyboardInterrupt):
            run(dataclasses.replace(chunks, on_chunk=_interrupt_after(j, states)))
        last = states[-1]
        assert 0 < last.step < last.total == 60
        n = last.step // 5 + 1  # the records so far, the first at step 0
        assert all(a.shape[0] == n for a in jax.tree_util.tree_leaves(last.records))
        # resumed with other chunk lengths: still bitwise the uninterrupted run
        again = run(Chunking(resume=last, records=2))
        assert _same_result(ref, again), f"{driver}: resume after chunk {j} differs"
    # a finished state returns at once, without running a chunk
    done = []
    run(Chunking(on_chunk=done.append, records=4))
    calls = []
    assert _same_result(ref, run(Chunking(resume=done[-1], on_chunk=calls.append)))
    assert calls == []


def test_resume_state_of_another_run_is_refused():
    states = []
    _factorization(Chunking(records=2, on_chunk=states.append))
    bad = dataclasses.replace(states[0], signature={**states[0].signature, "steps": 70})
    with pytest.raises(ValueError, match="another run"):
        _factorization(Chunking(resume=bad))
    with pytest.raises(ValueError, match="another run"):
        _completion(Chunking(resume=states[0]))
    with pytest.raises(ValueError, match="step"):
        _factorization(Chunking(resume=dataclasses.replace(states[0], step=-5)))


# ------------------------------------------------------------------------ batched runs
def _batch(chunking):
    """Six runs (three padded widths x two inits) of one completion problem, one vmap batch."""
    _, phi, mask = _problem(d=16)
    key = jax.random.key(5)
    inits = [padded_narrow_init(jax.random.fold_in(key, 10 * w + t), 16, w, 3, 0.3, pad_to=16)
             for w in (3, 8, 16) for t in range(2)]  # fmt: skip
    return run_gd_from_inits(inits, jnp.where(mask, phi, 0.0), mask, phi, lr=0.6, steps=60,
                             record_every=5, record=("loss", "recovery", "weights"),
                             chunking=chunking)  # fmt: skip


def test_chunked_batch_is_bitwise_the_one_scan_batch():
    ref = _batch(None)
    assert ref["loss"].shape == (6, 13) and ref["weights"][0].shape == (6, 13, 16, 16)
    for name, chunking in CHUNKINGS.items():
        seen: list[int] = []
        res = _batch(
            dataclasses.replace(chunking, on_chunk=lambda s, seen=seen: seen.append(s.step))
        )
        assert _same(ref, res), f"{name}: not bitwise the one-scan batch"
        assert seen[-1] == 60 and seen == sorted(seen), (name, seen)
    steps = []
    _batch(Chunking(steps=3, on_chunk=lambda s: steps.append(s.step)))
    assert steps[:4] == [3, 5, 8, 10]


@pytest.mark.parametrize(
    "chunks", [Chunking(steps=1), Chunking(records=1)], ids=["pieces", "records"]
)
def test_each_chunk_is_finished_before_python_goes_on(chunks):
    """A chunk hands back finished arrays: JAX dispatches asynchronously, and without a wait
    Python queued pieces ahead of the computation (32 pieces of 0.67 s on the paper-scale narrow
    batch of dmc-narrow), so Ctrl-C or a checkpoint waited 20-25 s for the queue (issue 17)."""
    k = jax.random.split(jax.random.key(5), 2)
    phi, mask = lt.completion_instance(k[0], 160, 3, 0.3)
    inits = [
        padded_narrow_init(jax.random.fold_in(k[1], t), 160, 16, 3, 1e-2, pad_to=16)
        for t in range(4)
    ]
    ready = []

    def on_chunk(state):
        ready.append(all(x.is_ready() for x in jax.tree_util.tree_leaves(state.carry)))

    run_gd_from_inits(inits, jnp.where(mask, phi, 0.0), mask, phi, lr=0.6, steps=40,
                      record_every=20, chunking=dataclasses.replace(chunks, on_chunk=on_chunk))  # fmt: skip
    assert len(ready) >= 2 and all(ready), ready


@pytest.mark.parametrize(
    "chunks", [Chunking(steps=2), Chunking(records=1)], ids=["pieces", "records"]
)
def test_interrupted_batch_resumes_bitwise(chunks):
    ref = _batch(None)
    for j in (1, 4):
        states = []
        with pytest.raises(KeyboardInterrupt):
            _batch(dataclasses.replace(chunks, on_chunk=_interrupt_after(j, states)))
        last = states[-1]
        assert 0 < last.step < last.total == 60 and last.signature["driver"] == "run_gd_batch"
        # the records so far have the record axis first (as one run's), the batch second
        assert last.records["loss"].shape == (last.step // 5 + 1, 6)
        # resumed from host copies (as from a checkpoint file), with other chunk lengths
        host = dataclasses.replace(last, carry=jax.tree_util.tree_map(np.asarray, last.carry))
        assert _same(ref, _batch(Chunking(resume=host, records=2))), f"resume after chunk {j}"
        # as a checkpoint loader sees it: a template of the run's carry and records
        seen = []
        loader = functools.partial(
            lambda t, seen, host: seen.append(t) or host, seen=seen, host=host
        )
        assert _same(ref, _batch(Chunking(resume=loader, steps=5)))
        assert seen[0].records["loss"].shape == (1, 6) and seen[0].signature == last.signature
    with pytest.raises(ValueError, match="another run"):
        _completion(Chunking(resume=last))


# ------------------------------------------------------------------------ Sweep checkpoints
def _gd_point(sweep, run="gd", stop_after=None, steps=60):
    """A sweep point running one GD run through ``sweep.chunks``; KeyboardInterrupt after
    ``stop_after`` chunks."""
    ws, phi, mask = _problem(eps=0.3)
    chunking = sweep.chunks(run)
    count = [0]

    def on_chunk(state):
        chunking.on_chunk(state)
        count[0] += 1
        if count[0] == stop_after:
            raise KeyboardInterrupt

    ch = dataclasses.replace(chunking, on_chunk=on_chunk, steps=2)
    res = lt.run_completion(ws, jnp.where(mask, phi, 0.0), mask, truth=phi, lr=0.5, steps=steps,
                            record_every=5, record=("loss", "recovery"), chunking=ch)  # fmt: skip
    return {"loss": res.records["loss"], "recovery": res.records["recovery"],
            "w": res.weights[0]}  # fmt: skip


@pytest.fixture
def sweep_clock(monkeypatch):
    """Checkpoints after every chunk (not every 30 s)."""
    monkeypatch.setattr(eio.Sweep, "checkpoint_every", 0.0)


def _uninterrupted(tmp_path, keys=("p",), fn=_gd_point):
    sweep = eio.Sweep("ref", {"c": 1}, tmp_path / "ref")
    return sweep.run(list(keys), lambda k: fn(sweep))


def _interrupted(tmp_path, stop_after, keys=("p",), config=None, fn=_gd_point):
    sweep = eio.Sweep("t", config or {"c": 1}, tmp_path)
    with pytest.raises(KeyboardInterrupt):
        sweep.run(list(keys), lambda k: fn(sweep, stop_after=stop_after if k == keys[-1] else None))
    return sweep


def test_sweep_point_resumes_mid_run_and_drops_its_checkpoint(tmp_path, sweep_clock, capsys):
    ref = _uninterrupted(tmp_path)
    s1 = _interrupted(tmp_path, stop_after=7)
    ckpt = s1.dir / "p.ckpt.npz"
    assert ckpt.exists() and s1.current.describe() == "step 12/60 of point p"
    msg = eio.interrupted_message("t", s1)
    assert msg == (f"t: interrupted at point p; saved 0 finished point(s) and step 12/60 of "
                   f"point p to {s1.dir}; rerun the same command to resume")  # fmt: skip
    s2 = eio.Sweep("t", {"c": 1}, tmp_path)
    out = s2.run(["p"], lambda k: _gd_point(s2))
    assert out == ref  # bitwise: the values went through JSON, floats round-trip exactly
    assert s2.summary()["checkpoints"] == {"resumed": 1, "ignored": 0, "reason": None}
    assert not ckpt.exists() and (s2.dir / "p.json").exists()
    assert "gd: resuming at step 12/60" in capsys.readouterr().err


def test_sweep_point_with_several_runs_resumes_each(tmp_path, sweep_clock):
    def two_runs(sweep, stop_after=None):
        a = _gd_point(sweep, "a")
        b = _gd_point(sweep, "b", stop_after=stop_after, steps=40)
        return {"a": a, "b": b}

    ref = _uninterrupted(tmp_path, fn=two_runs)
    s1 = _interrupted(tmp_path, stop_after=5, fn=two_runs)
    assert s1.current.describe() == "step 9/40 (run b) and 1 finished run(s) of point p"
    s2 = eio.Sweep("t", {"c": 1}, tmp_path)
    out = s2.run(["p"], lambda k: two_runs(s2))
    assert out == ref and s2.checkpoints_resumed == 2


def _fingerprint_changes(monkeypatch):
    monkeypatch.setattr(eio, "source_hash", lambda: "0123456789abcdef")


def test_stale_checkpoints_are_ignored_and_the_record_says_why(tmp_path, sweep_clock, monkeypatch):
    ref = _uninterrupted(tmp_path)

    def rerun():
        s = eio.Sweep("t", {"c": 1}, tmp_path)
        assert s.run(["p"], lambda k: _gd_point(s)) == ref
        (s.dir / "p.json").unlink()  # computed again by the next interrupted run
        return s.summary()["checkpoints"]

    # another configuration's checkpoint (copied here) is ignored
    other = _interrupted(tmp_path, stop_after=3, config={"c": 2})
    here = eio.Sweep("t", {"c": 1}, tmp_path).dir
    here.mkdir(parents=True, exist_ok=True)
    shutil.copy(other.dir / "p.ckpt.npz", here / "p.ckpt.npz")
    ck = rerun()
    assert ck["ignored"] == 1 and "another configuration or point" in ck["reason"]
    assert not (here / "p.ckpt.npz").exists()
    # a checkpoint for another run (other steps) under the same name is ignored
    _interrupted(
        tmp_path,
        stop_after=3,
        fn=lambda s, stop_after: _gd_point(s, stop_after=stop_after, steps=50),
    )
    ck = rerun()
    assert ck["ignored"] == 1 and "saved for another run" in ck["reason"]
    # an unreadable file is ignored
    here.joinpath("p.ckpt.npz").write_bytes(b"not a zip file")
    ck = rerun()
    assert ck["ignored"] == 1 and "unreadable checkpoint" in ck["reason"]
    # other library sources: ignored, and the figure record's "cache" entry says why
    _interrupted(tmp_path, stop_after=3)
    _fingerprint_changes(monkeypatch)
    ck = rerun()
    assert ck == {"resumed": 0, "ignored": 1, "reason": "checkpoint: library sources changed"}


def test_no_cache_runs_chunked_without_checkpoints(tmp_path):
    s = eio.Sweep("t", {"c": 1}, None)
    with pytest.raises(KeyboardInterrupt):
        s.run(["p"], lambda k: _gd_point(s, stop_after=2))
    assert (
        eio.interrupted_message("t", s) == "t: interrupted at point p; nothing saved (--no-cache)"
    )
    assert not list(tmp_path.iterdir())


@dataclasses.dataclass(frozen=True)
class _Cfg:
    seed: int = 0

    @classmethod
    def quick(cls):
        return cls()


def test_ctrl_c_mid_point_says_which_step_was_saved(tmp_path, capsys):
    # no checkpoint is due yet (every 30 s): the state on disk is the one saved on Ctrl-C
    def main(cfg, sweep):
        return sweep.run(["a", "b"], lambda k: _gd_point(sweep, stop_after=4 if k == "b" else None))

    with pytest.raises(SystemExit) as e:
        eio.run_experiment("t", _Cfg, main, lambda r, c: None, script=__file__,
                           argv=["--out", str(tmp_path)])  # fmt: skip
    assert e.value.code == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    d = tmp_path / ".cache" / "t" / eio.config_hash(_Cfg())
    assert err.strip().splitlines()[-1] == (
        f"t: interrupted at point b; saved 1 finished point(s) and step 7/60 of point b to {d}; "
        "rerun the same command to resume"
    )
    assert (d / "b.ckpt.npz").exists() and (d / "a.json").exists()


# ------------------------------------------------------------------------ SIGINT, for real
_SCRIPT = textwrap.dedent('''
    """A figure-shaped script with one long GD run (for the SIGINT test)."""
    import dataclasses, json, sys
    import jax, jax.numpy as jnp
    import lowrank_theory as lt
    from lowrank_theory.pipeline import records
    from lowrank_theory.pipeline.records import Sweep, run_experiment

    Sweep.progress_every = 0.0
    Sweep.chunk_seconds = 0.05
    # sources edited between the two runs (another session at work) must not make it stale
    records.source_hash = lambda: "sigint-test"

    @dataclasses.dataclass(frozen=True)
    class Config:
        seed: int = 0
        steps: int = STEPS

        @classmethod
        def quick(cls):
            return cls()

    def point(cfg, sweep):
        k = jax.random.split(jax.random.key(cfg.seed), 2)
        phi = lt.completion_instance(k[0], 40, 2, 0.5)[0]
        ws = lt.orthogonal_init(k[1], 40, 3, 0.3)
        res = lt.run_factorization(ws, phi, lr=0.05, steps=cfg.steps, record_every=100,
                                   record=("loss",), chunking=sweep.chunks("gd"))
        return {"loss": res.records["loss"]}

    def main(cfg, sweep):
        return sweep.run(["gd"], lambda k: point(cfg, sweep))["gd"]

    if __name__ == "__main__":
        run_experiment("sigint", Config, main, lambda r, c: __import__("matplotlib.pyplot").pyplot.figure(),
                       script=__file__)
''')


def _run_and_interrupt(cmd, trigger, cwd, timeout=120, sig=signal.SIGINT):
    """Runs ``cmd``, sends ``sig`` (SIGINT) when ``trigger`` holds for a stderr line; (rc,
    stderr, seconds from the signal to exit)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines, t_sig = [], None
    deadline = time.monotonic() + timeout
    with subprocess.Popen(cmd, cwd=cwd, env=env, stderr=subprocess.PIPE, text=True) as p:
        for line in p.stderr:
            lines.append(line)
            if t_sig is None and trigger(line):
                p.send_signal(sig)
                t_sig = time.monotonic()
            if time.monotonic() > deadline:
                p.kill()
                break
        rc = p.wait(timeout=60)
    return rc, "".join(lines), (time.monotonic() - t_sig) if t_sig else None


@pytest.mark.parametrize(
    ("sig", "status", "how"),
    [(signal.SIGINT, 130, ""), (signal.SIGTERM, 143, " (SIGTERM)")],
    ids=["SIGINT", "SIGTERM"],
)
def test_sigint_mid_run_lands_fast_and_the_rerun_resumes(tmp_path, sig, status, how):
    """Ctrl-C, or SIGTERM (``kill <pid>``, a job scheduler): the same ending, 130 or 143."""
    script = tmp_path / "fig_sigint.py"
    script.write_text(_SCRIPT.replace("STEPS", "20_000"))
    out = tmp_path / "out"
    cmd = [sys.executable, str(script), "--out", str(out)]
    rc, err, latency = _run_and_interrupt(
        cmd, lambda l: "gd: step" in l and "step 0/" not in l, tmp_path, sig=sig
    )
    assert rc == status, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        f"sigint: interrupted{how} at point gd; saved 0 finished point(s) and step "
    )
    assert last.endswith("rerun the same command to resume")
    print(f"{sig.name} landed in {latency:.2f} s")
    assert latency < 5.0, f"{sig.name} took {latency:.1f} s to land"
    saved = int(last.split(" and step ")[1].split("/")[0])
    assert 0 < saved < 20_000
    # the rerun resumes there, and ends with the records of an uninterrupted run
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"gd: resuming at step {saved}/20000" in done.stderr
    rec = json.loads((out / "sigint.json").read_text())
    assert rec["cache"]["checkpoints"]["resumed"] == 1
    assert not list((out / ".cache").rglob("*.ckpt.npz"))
    ns = {}
    exec(compile(_SCRIPT.replace("STEPS", "20_000").split("if __name__")[0], "s", "exec"), ns)
    cfg = ns["Config"]()
    ref = ns["main"](cfg, eio.Sweep("x", cfg, None))
    assert rec["result"]["loss"] == eio.to_jsonable(ref["loss"])


@pytest.mark.slow
def test_sigint_on_a_quick_figure_run(tmp_path):
    """``fig_dmc_compression.py --quick``: SIGINT after its first point lands within seconds,
    exit 130 and the one line; the rerun resumes from the saved points."""
    out = tmp_path / "out"
    cmd = [sys.executable, "experiments/fig_dmc_compression.py", "--quick", "--out", str(out)]
    rc, err, latency = _run_and_interrupt(cmd, lambda l: "runs 1/4 [full]" in l, ROOT)
    assert rc == 130 and "Traceback" not in err, err
    assert "dmc-compression: interrupted at point gamma=0.0; saved 1 finished point(s)" in err
    assert latency < 5.0
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "runs: resuming, 1 of 4 points cached" in done.stderr


# ------------------------------------------------------------------------ figure scripts, mid-batch
_PACED = textwrap.dedent("""
    import dataclasses, runpy, sys, time
    from lowrank_theory.pipeline import records
    from lowrank_theory.pipeline.records import Sweep

    # sources edited between the two runs (another session at work) must not make it stale
    records.source_hash = lambda: "figure-resume-test"
    Sweep.progress_every = 0.0
    chunks = Sweep.chunks

    def paced(self, run="gd"):
        # the quick batch takes well under a second: 10-step chunks and a pause after each,
        # so that the signal lands mid-batch
        ch = chunks(self, run)
        if run != "batch":
            return ch
        inner = ch.on_chunk

        def on_chunk(state):
            time.sleep(0.03)
            if inner is not None:
                inner(state)

        return dataclasses.replace(ch, steps=10, on_chunk=on_chunk)

    Sweep.chunks = paced
    script = sys.argv[1]
    sys.argv = [script, *sys.argv[2:]]
    runpy.run_path(script, run_name="__main__")
""")

FIGURES = {
    # script, the point holding the batch, finished points before it, deterministic result keys
    "dmf-depth-width": ("fig_dmf_depth_width.py", "L=2", 0, None),
    "dmc-narrow": ("fig_dmc_narrow.py", "narrow", 2,
                   ("compressed_iters", "narrow_iters", "final_recovery_narrow")),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "sig", "status"),
    [("dmf-depth-width", signal.SIGTERM, 143), ("dmc-narrow", signal.SIGINT, 130)],
)
def test_quick_figure_resumes_mid_batch(tmp_path, name, sig, status):
    """``fig_dmf_depth_width.py`` / ``fig_dmc_narrow.py --quick`` (paced): a signal in the middle
    of the batched GD run ends it with the one line naming the step saved; the rerun resumes the
    batch there and writes the numbers of an uninterrupted run."""
    script, point, before, keys = FIGURES[name]
    launcher = tmp_path / "paced.py"
    launcher.write_text(_PACED)
    out = tmp_path / "out"
    cmd = [sys.executable, str(launcher), str(ROOT / "experiments" / script), "--quick",
           "--out", str(out)]  # fmt: skip
    rc, err, _ = _run_and_interrupt(cmd, lambda l: f"[{point}] batch: step" in l, ROOT, sig=sig)
    assert rc == status and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    how = " (SIGTERM)" if sig == signal.SIGTERM else ""
    assert last.startswith(f"{name}: interrupted{how} at point {point}; saved {before} finished "
                           f"point(s) and step "), last  # fmt: skip
    assert last.endswith("rerun the same command to resume")
    saved = int(last.split(" and step ")[1].split("/")[0])
    assert 0 < saved < 1000
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"[{point}] batch: resuming at step {saved}/1000" in done.stderr
    rec = json.loads((out / f"{name}.json").read_text())
    assert rec["cache"]["checkpoints"]["resumed"] == 1
    assert not list((out / ".cache").rglob("*.ckpt.npz"))
    # the numbers of an uninterrupted run (the timings of dmc-narrow excepted)
    mod = runpy.run_path(str(ROOT / "experiments" / script))
    cfg = mod["Config"].quick()
    ref = eio.to_jsonable(mod["main"](cfg, eio.Sweep(name, cfg, None)))
    for k in keys or ref:
        assert rec["result"][k] == ref[k], k


_CLI = textwrap.dedent("""
    import sys, time
    from lowrank_theory.pipeline.interrupts import interruptible

    def main():
        try:
            print("working", file=sys.stderr, flush=True)
            time.sleep(60)
            return 0
        except KeyboardInterrupt:
            print("interrupted: 1 finished claim(s) saved", file=sys.stderr, flush=True)
            return 130

    sys.exit(interruptible(main)())
""")


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interruptible_cli_ends_the_same_way_on_sigterm(tmp_path, sig, status):
    """A CLI ``main`` that turns Ctrl-C into a message and 130 (``python -m lowrank_theory
    audit``), wrapped by ``interruptible``: SIGTERM gives the same message and 143."""
    script = tmp_path / "cli.py"
    script.write_text(_CLI)
    rc, err, latency = _run_and_interrupt([sys.executable, str(script)],
                                          lambda l: "working" in l, tmp_path, sig=sig)  # fmt: skip
    assert rc == status and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == "interrupted: 1 finished claim(s) saved"
    assert latency < 5.0
    assert interrupts.exit_status(interrupts.Terminated()) == 143
    assert interrupts.exit_status(KeyboardInterrupt()) == 130
