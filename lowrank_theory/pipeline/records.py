r"""Experiment records: configuration, seed, versions, machine, wall time; atomic writes; resume.

Every figure script in ``experiments/`` follows one shape::

    @dataclasses.dataclass(frozen=True)
    class Config:
        seed: int = 0
        ...
        @classmethod
        def quick(cls): ...   # seconds: what the tests smoke-run (``--quick``)
        @classmethod
        def full(cls): ...    # the paper's sizes (``FULL=1``)

    def main(cfg: Config, sweep: Sweep) -> dict: ...          # the plotted data, JSON-able
    def plot(result: dict, cfg: Config) -> matplotlib.figure.Figure: ...

    if __name__ == "__main__":
        run_experiment("name", Config, main, plot, script=__file__)

:func:`run_experiment` picks the configuration (``--quick``, default, or ``FULL=1``), runs
``main`` with a :class:`Sweep` that caches each finished point under
``figures/.cache/<name>/<config hash>/`` (so an interrupted sweep resumes where it stopped), and
writes ``figures/<name>.png`` and ``figures/<name>.json`` atomically (the JSON holds the result
with the config, seed, package versions, machine and wall time).

Each cached point also records the :func:`code_fingerprint` it was computed with (a hash of the
library's sources and the package versions); a point cached by other code is *stale*: it is
recomputed, and the record's ``"cache"`` entry counts it and says why. Every point prints a
progress line; Ctrl-C ends the script with one line saying what is saved (a rerun resumes from
it) and exit status 130, SIGTERM (``kill <pid>``, a job scheduler) the same way with exit status
143 (:mod:`lowrank_theory.pipeline.interrupts`).

Long GD runs inside a point run in chunks (``chunking=sweep.chunks("<run>")``, see
:class:`lowrank_theory.dmf.factorization.Chunking`): Ctrl-C lands between chunks (about a
second), progress is printed every ``Sweep.progress_every`` s, and the run's state (factors,
step, records so far) is checkpointed to ``<cache dir>/<point>.ckpt.npz`` every
``Sweep.checkpoint_every`` s and on Ctrl-C, keyed like the point's cache entry (config hash,
point, code fingerprint). A rerun continues the run from the checkpoint, bitwise as if it had
not stopped; a checkpoint written by other code or for another run is ignored (the record's
``"cache"`` entry says why), and the checkpoint is deleted when its point is cached.

Atomic writes, JSON conversion, versions, machine and run metadata live in
:mod:`lowrank_theory.pipeline.provenance` and are re-exported here (their earlier path).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .interrupts import exit_status, signal_name, sigterm_as_interrupt
from .provenance import atomic_write_bytes as atomic_write_bytes
from .provenance import atomic_write_text as atomic_write_text
from .provenance import config_hash as config_hash
from .provenance import machine_info as machine_info
from .provenance import package_versions as package_versions
from .provenance import progress as progress
from .provenance import run_metadata as run_metadata
from .provenance import seconds_per_step as seconds_per_step
from .provenance import to_jsonable as to_jsonable


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """SHA-256 (short) of the contents of the library's ``*.py`` and ``*.cc`` files.

    Computed once per process; any edit to the library changes it, so a cached sweep point
    computed by other code is recognised as stale (:class:`Sweep`)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    files = sorted(p for ext in ("*.py", "*.cc") for p in root.rglob(ext))
    for p in files:
        h.update(p.relative_to(root).as_posix().encode() + b"\0")
        h.update(p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=1)
def masked_products_path() -> str:
    """Which formulation the masked completion products take on this host (``"native"`` or
    ``"dense"``, :func:`lowrank_theory.dmf.masked_products.native_status`): the two agree to
    rounding, not bit for bit, so a cached point records which one computed it."""
    from ..dmf.masked_products import native_status

    return str(native_status()["path"])


def code_fingerprint() -> dict[str, Any]:
    """What a cached point depends on besides its config: library sources, package versions and
    the masked-product path chosen on this host."""
    return {
        "source": source_hash(),
        "versions": package_versions(),
        "masked_products": masked_products_path(),
    }


def stale_reason(old: dict[str, Any] | None, new: dict[str, Any]) -> str | None:
    """Why a point cached under fingerprint ``old`` is stale under ``new`` (``None``: it is not)."""
    if not isinstance(old, dict):
        return "cached without a code fingerprint (older cache format)"
    why = []
    if old.get("source") != new["source"]:
        why.append("library sources changed")
    ov, nv = old.get("versions") or {}, new["versions"]
    changed = [f"{k} {ov.get(k)} -> {nv[k]}" for k in sorted(nv) if ov.get(k) != nv[k]]
    if changed:
        why.append("package versions changed (" + ", ".join(changed) + ")")
    if old.get("masked_products", new["masked_products"]) != new["masked_products"]:
        why.append(
            f"masked products now {new['masked_products']} (cached: {old['masked_products']})"
        )
    return "; ".join(why) or None


def _safe_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in str(key))


class PointCheckpoint:
    """The mid-run states of one sweep point's chunked GD runs (see the module docstring).

    :meth:`chunking` gives a named run of the point its
    :class:`~lowrank_theory.dmf.factorization.Chunking`: resume from the run's saved state when
    a valid one is on disk, print progress, keep the latest state in memory and write all of the
    point's states to :attr:`path` every ``sweep.checkpoint_every`` s. :meth:`flush` writes them
    now (on Ctrl-C), :meth:`clear` deletes the file (the point is cached). Run names must be
    unique within a point.
    """

    _TAG = "lowrank_theory.checkpoint"

    def __init__(self, sweep: Sweep, key: str, desc: str = ""):
        self.sweep, self.key, self.desc = sweep, key, desc or sweep.name
        self.path = None if sweep.dir is None else sweep.dir / f"{_safe_name(key)}.ckpt.npz"
        self.states: dict[str, Any] = {}  # run -> latest RunState of this process
        self.on_disk: dict[str, tuple[int, int]] = {}  # run -> (step, total) in the file
        self._file: dict[str, Any] | None = None  # the valid file read: runs' meta and arrays
        self._loaded = False
        self.dirty = False
        self.last_save = time.perf_counter()

    def chunking(self, run: str):
        """The :class:`~lowrank_theory.dmf.factorization.Chunking` of run ``run``."""
        from ..dmf.factorization import Chunking

        clock = {"t0": time.perf_counter(), "from": 0, "printed": time.perf_counter()}

        def on_chunk(state) -> None:
            self.states[run] = state
            self.dirty = True
            self._progress(run, state, clock)
            due = time.perf_counter() - self.last_save >= self.sweep.checkpoint_every
            if due and state.step < state.total:
                self.save()

        def resume(template):
            state = self._resume(run, template)
            if state is not None:
                clock["from"] = state.step
            return state

        return Chunking(seconds=self.sweep.chunk_seconds, on_chunk=on_chunk, resume=resume)

    def _progress(self, run: str, state, clock: dict) -> None:
        now = time.perf_counter()
        if now - clock["printed"] < self.sweep.progress_every and state.step < state.total:
            return
        el = now - clock["t0"]
        if state.step == state.total and el < self.sweep.progress_every:
            return  # a short run: the point's own line is enough
        clock["printed"] = now
        rate = (state.step - clock["from"]) / el if el > 0 else 0.0
        eta = f", eta {(state.total - state.step) / rate:.0f} s" if rate > 0 else ""
        print(f"  {self.desc} [{self.key}] {run}: step {state.step}/{state.total} "
              f"({el:.0f} s{eta})", file=sys.stderr, flush=True)  # fmt: skip

    def _ignore(self, why: str) -> None:
        self.sweep.checkpoints_ignored += 1
        if why not in self.sweep.checkpoint_reasons:
            self.sweep.checkpoint_reasons.append(why)
        print(f"  {self.desc} [{self.key}]: checkpoint ignored ({why}); starting the run over",
              file=sys.stderr, flush=True)  # fmt: skip

    def _load(self) -> dict[str, Any] | None:
        """The checkpoint file's runs and arrays, or None (no file; or ignored, and why)."""
        import numpy as np

        if self._loaded:
            return self._file
        self._loaded = True
        if self.path is None or not self.path.exists():
            return None
        try:
            with np.load(self.path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(arrays.pop("__meta__").tobytes())
        except Exception as e:  # any unreadable file is ignored, not fatal
            self._ignore(f"unreadable checkpoint: {type(e).__name__}: {e}")
            return None
        why = None
        if not isinstance(meta, dict) or meta.get(self._TAG) != 1:
            why = "not a checkpoint of this format"
        elif meta.get("config_hash") != self.sweep.config_hash or meta.get("key") != self.key:
            why = "checkpoint of another configuration or point"
        else:
            why = stale_reason(meta.get("fingerprint"), code_fingerprint())
        if why is not None:
            self._ignore(f"checkpoint: {why}")
            return None
        self._file = {"runs": meta["runs"], "arrays": arrays}
        self.on_disk = {r: (m["step"], m["total"]) for r, m in meta["runs"].items()}
        return self._file

    def _resume(self, run: str, template) -> Any | None:
        """The saved state of ``run`` when it fits ``template`` (the run's signature, carry and
        record structure), else None (and, when there was one, why it was ignored)."""
        from ..dmf.factorization import RunState

        f = self._load()
        if f is None or run not in f["runs"]:
            return None
        m = f["runs"][run]
        sig = json.loads(json.dumps(to_jsonable(template.signature)))
        try:
            if m["signature"] != sig or m["total"] != template.total:
                raise ValueError(f"saved for another run ({m['signature']}, {m['total']} steps)")
            n = m["step"] // int(sig.get("stride", 1)) + 1
            carry = _unflatten(f["arrays"], f"{m['index']}.carry", m["carry_paths"], template.carry)
            recs = _unflatten(f["arrays"], f"{m['index']}.records", m["records_paths"],
                              template.records, leading=n)  # fmt: skip
        except (KeyError, ValueError, TypeError) as e:
            self._ignore(f"run {run}: {e}")
            return None
        state = RunState(m["step"], m["total"], carry, recs, template.signature)
        self.states[run] = state
        self.sweep.checkpoints_resumed += 1
        print(f"  {self.desc} [{self.key}] {run}: resuming at step {state.step}/{state.total} "
              f"from {self.path}", file=sys.stderr, flush=True)  # fmt: skip
        return state

    def save(self) -> None:
        """Writes every run's latest state (and the file's runs not rerun yet) atomically."""
        import numpy as np

        if self.path is None or not (self.states or self._file):
            return
        arrays: dict[str, Any] = {}
        runs: dict[str, Any] = {}
        for i, (run, st) in enumerate(self.states.items()):
            runs[run] = {"index": i, "step": st.step, "total": st.total,
                         "signature": to_jsonable(st.signature)}  # fmt: skip
            for part in ("carry", "records"):
                paths, leaves = _flatten(getattr(st, part))
                runs[run][f"{part}_paths"] = paths
                arrays.update({f"{i}.{part}.{j}": np.asarray(a) for j, a in enumerate(leaves)})
        for run, m in (self._file or {"runs": {}})["runs"].items():
            if run not in runs:  # saved by an earlier process, not reached yet in this one
                i = len(runs)
                old = f"{m['index']}."
                arrays.update({f"{i}.{k[len(old):]}": a for k, a in self._file["arrays"].items()
                               if k.startswith(old)})  # fmt: skip
                runs[run] = {**m, "index": i}
        meta = {self._TAG: 1, "fingerprint": code_fingerprint(), "key": self.key,
                "config_hash": self.sweep.config_hash, "runs": runs}  # fmt: skip
        arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(self.path, buf.getvalue())
        self.on_disk = {r: (m["step"], m["total"]) for r, m in runs.items()}
        self.last_save = time.perf_counter()
        self.dirty = False

    def flush(self) -> None:
        """Saves now if a run advanced since the last save."""
        if self.dirty:
            self.save()

    def clear(self) -> None:
        """Deletes the checkpoint file (its point is cached)."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)
        self.on_disk = {}

    def describe(self) -> str | None:
        """What the file holds, e.g. ``step 400/1000 of point p``; None when nothing."""
        if not self.on_disk:
            return None
        open_ = [(r, s, t) for r, (s, t) in self.on_disk.items() if s < t]
        done = len(self.on_disk) - len(open_)
        parts = [f"step {s}/{t}" + (f" (run {r})" if len(self.on_disk) > 1 else "")
                 for r, s, t in open_]  # fmt: skip
        if done:
            parts.append(f"{done} finished run(s)")
        return f"{' and '.join(parts)} of point {self.key}"


def _flatten(tree) -> tuple[list[str], list[Any]]:
    import jax

    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [jax.tree_util.keystr(p) for p, _ in leaves], [a for _, a in leaves]


def _unflatten(arrays: dict, prefix: str, paths: list, like, leading: int | None = None):
    """The tree of ``like``'s structure from ``arrays[f"{prefix}.{j}"]`` (ValueError when the
    saved paths, shapes or dtypes differ; ``leading``: records, whose first axis is that)."""
    import jax
    import numpy as np

    want_paths, leaves = _flatten(like)
    if want_paths != paths:
        raise ValueError(f"saved structure {paths} differs from {want_paths}")
    out = []
    for j, leaf in enumerate(leaves):
        a = arrays[f"{prefix}.{j}"]
        shape = tuple(leaf.shape) if leading is None else (leading, *leaf.shape[1:])
        if a.shape != shape or a.dtype != np.dtype(leaf.dtype):
            raise ValueError(f"saved {a.shape} {a.dtype}, expected {shape} {leaf.dtype}")
        out.append(a)
    return jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(like), out)


class Sweep:
    """A resumable sweep: each finished point is cached on disk under its key.

    ``sweep.run(keys, fn)`` calls ``fn(key)`` for each key not yet cached, stores the JSON-able
    result atomically, and returns ``{key: result}`` for every key. Killing the process and
    running the same command again recomputes only the missing points. The cache lives under
    ``<root>/<name>/<config hash>/``, so a changed configuration never reuses stale points; each
    point stores the :func:`code_fingerprint` it was computed with, and a point computed by other
    library sources or package versions is recomputed (counted in ``stale``, ``reasons`` says
    why). A point's value goes through JSON (floats round-trip exactly), so a resumed sweep
    returns the same numbers as an uninterrupted one.

    Inside a point, ``sweep.chunks("<run>")`` is the ``chunking=`` argument of a long GD run
    (:class:`PointCheckpoint`): progress, Ctrl-C between chunks of about ``chunk_seconds``,
    checkpoints every ``checkpoint_every`` s and on Ctrl-C, resume mid-run.
    """

    _TAG = "lowrank_theory.sweep_point"
    chunk_seconds = 1.0  # wall time of a GD chunk: about the longest wait for Ctrl-C
    checkpoint_every = 30.0  # seconds between mid-run checkpoints (and one on Ctrl-C)
    progress_every = 10.0  # seconds between mid-run progress lines

    def __init__(self, name: str, config: Any, root: Path | None):
        self.name = name
        self.config_hash = config_hash(config)
        self.dir = None if root is None else Path(root) / name / self.config_hash
        self.computed = 0
        self.reused = 0
        self.stale = 0
        self.reasons: list[str] = []
        self.saved: list[str] = []  # keys on disk (reused or written) in this process
        self.pending: list[str] = []  # keys of the sweep now running that are not yet done
        self.current: PointCheckpoint | None = None  # the point being computed
        self.checkpoints_resumed = 0
        self.checkpoints_ignored = 0
        self.checkpoint_reasons: list[str] = []

    def _path(self, key: str) -> Path:
        assert self.dir is not None
        return self.dir / f"{_safe_name(key)}.json"

    def chunks(self, run: str = "gd"):
        """The ``chunking=`` argument of a GD run named ``run`` inside the current point
        (checkpointed; outside a point, or with ``--no-cache``, chunked for Ctrl-C only)."""
        if self.current is None:
            from ..dmf.factorization import Chunking

            return Chunking(seconds=self.chunk_seconds)
        return self.current.chunking(run)

    def get(self, key: str) -> Any | None:
        """The cached value of ``key``, or ``None`` when it is missing or stale."""
        if self.dir is None:
            return None
        p = self._path(key)
        if not p.exists():
            return None
        data = json.loads(p.read_text())
        fp = data.get("fingerprint") if isinstance(data, dict) and self._TAG in data else None
        why = stale_reason(fp, code_fingerprint())
        if why is not None:
            self.stale += 1
            if why not in self.reasons:
                self.reasons.append(why)
            return None
        return data["value"]

    def put(self, key: str, value: Any) -> Any:
        value = to_jsonable(value)
        if self.dir is not None:
            rec = {self._TAG: 1, "fingerprint": code_fingerprint(), "value": value}
            atomic_write_text(self._path(key), json.dumps(rec))
            self.saved.append(key)
        return value

    def summary(self) -> dict[str, Any]:
        """The ``"cache"`` entry of the figure's record."""
        out: dict[str, Any] = {"computed": self.computed, "reused": self.reused}
        out["stale"] = self.stale
        out["reason"] = "; ".join(self.reasons) if self.stale else None
        out["source_hash"] = source_hash()
        out["checkpoints"] = {
            "resumed": self.checkpoints_resumed,
            "ignored": self.checkpoints_ignored,
            "reason": "; ".join(self.checkpoint_reasons) or None,
        }
        return out

    def run(self, keys: Iterable[str], fn: Callable[[str], Any], desc: str = "") -> dict[str, Any]:
        keys = list(keys)
        desc = desc or self.name
        out: dict[str, Any] = {}
        todo = []
        stale0 = self.stale
        for k in keys:
            v = self.get(k)
            if v is None:
                todo.append(k)
            else:
                out[k] = v
                self.reused += 1
                self.saved.append(k)
        if self.stale > stale0:
            print(f"  {desc}: recomputing {self.stale - stale0} cached point(s): "
                  f"{'; '.join(self.reasons)}", file=sys.stderr, flush=True)  # fmt: skip
        if out and todo:
            print(f"  {desc}: resuming, {len(out)} of {len(keys)} points cached",
                  file=sys.stderr, flush=True)  # fmt: skip
        self.pending = list(todo)
        t0 = time.perf_counter()
        for i, k in enumerate(todo, 1):
            self.current = PointCheckpoint(self, k, desc)
            try:
                value = fn(k)
            except KeyboardInterrupt:
                self.current.flush()  # the latest mid-run state, for the message and a rerun
                raise
            out[k] = self.put(k, value)
            self.current.clear()
            self.current = None
            self.pending.remove(k)
            self.computed += 1
            el = time.perf_counter() - t0
            eta = el / i * (len(todo) - i)
            print(f"  {desc} {i}/{len(todo)} [{k}] ({el:.0f} s, eta {eta:.0f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip
        return {k: out[k] for k in keys}


def select_config(config_cls: type, quick: bool) -> Any:
    """``Config.quick()`` with ``--quick``, ``Config.full()`` with ``FULL=1``, else ``Config()``."""
    full = os.environ.get("FULL", "0") == "1"
    if quick and full:
        raise SystemExit("--quick and FULL=1 are mutually exclusive")
    if quick:
        return config_cls.quick()
    if full:
        return config_cls.full()
    return config_cls()


def run_experiment(
    name: str,
    config_cls: type,
    main: Callable[[Any, Sweep], dict],
    plot: Callable[[dict, Any], Any],
    *,
    script: str,
    argv: list[str] | None = None,
) -> dict:
    """Command-line entry point of a figure script; see the module docstring."""
    parser = argparse.ArgumentParser(description=(sys.modules["__main__"].__doc__ or name))
    parser.add_argument("--quick", action="store_true", help="seconds-scale smoke configuration")
    parser.add_argument("--out", default=None, help="output folder (default: <repo>/figures)")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--no-cache", action="store_true", help="do not resume from / write cache")
    args = parser.parse_args(argv)
    cfg = select_config(config_cls, args.quick)
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    out = Path(args.out) if args.out else Path(script).resolve().parents[1] / "figures"
    sweep = Sweep(name, cfg, None if args.no_cache else out / ".cache")
    print(f"{name}: config {to_jsonable(cfg)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    try:
        with sigterm_as_interrupt():  # SIGTERM (``kill``, a job scheduler) ends it as Ctrl-C
            result = main(cfg, sweep)
    except KeyboardInterrupt as e:
        print(interrupted_message(name, sweep, signal_name(e)), file=sys.stderr, flush=True)
        raise SystemExit(exit_status(e)) from None
    wall = time.perf_counter() - t0
    record = run_metadata(cfg, getattr(cfg, "seed", None), wall)
    record["cache"] = sweep.summary()
    record["result"] = to_jsonable(result)
    atomic_write_text(out / f"{name}.json", json.dumps(record, indent=1))
    from .plotting import png_bytes  # matplotlib only when a figure is drawn

    atomic_write_bytes(out / f"{name}.png", png_bytes(plot(result, cfg)))
    print(f"{name}: wrote {out / (name + '.png')} and .json in {wall:.1f} s", file=sys.stderr)
    return record


def interrupted_message(name: str, sweep: Sweep, signal: str = "SIGINT") -> str:
    """The one line printed when a figure script is interrupted (Ctrl-C, or ``signal="SIGTERM"``:
    ``interrupted (SIGTERM)``): what is saved where."""
    now = (" (SIGTERM)" if signal == "SIGTERM" else "") + (
        f" at point {sweep.pending[0]}" if sweep.pending else ""
    )
    if sweep.dir is None:
        return f"{name}: interrupted{now}; nothing saved (--no-cache)"
    mid = sweep.current.describe() if sweep.current is not None else None
    what = f"{len(sweep.saved)} finished point(s)" + (f" and {mid}" if mid else "")
    return (
        f"{name}: interrupted{now}; saved {what} to {sweep.dir}; rerun the same command to resume"
    )
