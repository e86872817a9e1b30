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
progress line; Ctrl-C ends the script with one line saying how many points are saved (a rerun
resumes from them) and exit status 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_PACKAGES = (
    "lowrank_theory",
    "jax",
    "jaxlib",
    "numpy",
    "scipy",
    "optax",
    "matplotlib",
    "hypothesis",
    "scikit-learn",
)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Writes ``data`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode())


def to_jsonable(x: Any) -> Any:
    """Converts arrays, dataclasses, NumPy scalars and non-finite floats for ``json.dumps``."""
    import numpy as np

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return to_jsonable(dataclasses.asdict(x))
    if isinstance(x, dict):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_jsonable(v) for v in x]
    if hasattr(x, "__array__") and not isinstance(x, str | bytes):
        a = np.asarray(x)
        return to_jsonable(a.item() if a.ndim == 0 else a.tolist())
    if isinstance(x, float) and not np.isfinite(x):
        return str(x)  # "nan", "inf": JSON has no such numbers
    if isinstance(x, np.integer | np.floating | np.bool_):
        return to_jsonable(x.item())
    return x


def package_versions() -> dict[str, str]:
    """Installed versions of the packages the results depend on."""
    out = {"python": platform.python_version()}
    for p in _PACKAGES:
        try:
            out[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def machine_info() -> dict[str, Any]:
    """Cores, processor model, platform and JAX devices of this machine."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
    }
    try:
        import jax

        info["jax_devices"] = [str(d) for d in jax.devices()]
        info["jax_backend"] = jax.default_backend()
    except Exception as e:  # pragma: no cover - jax always present in this package
        info["jax_devices"] = f"unavailable: {e}"
    return info


def run_metadata(config: Any, seed: int | None, wall_time_s: float | None = None) -> dict:
    """The record stored beside every result: config, seed, versions, machine, wall time."""
    return {
        "config": to_jsonable(config),
        "seed": seed,
        "versions": package_versions(),
        "machine": machine_info(),
        "wall_time_s": wall_time_s,
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "full": os.environ.get("FULL", "0") == "1",
    }


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


def config_hash(config: Any) -> str:
    """Stable short hash of a configuration (dataclass or dict)."""
    blob = json.dumps(to_jsonable(config), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def progress(
    items: Iterable[T],
    total: int | None = None,
    desc: str = "",
    stream=None,
    min_interval: float = 1.0,
) -> Iterator[T]:
    """Yields ``items``, printing ``desc i/total, elapsed, eta`` at most every ``min_interval`` s."""
    stream = sys.stderr if stream is None else stream
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    t0 = last = time.perf_counter()
    i = 0
    for i, x in enumerate(items, 1):
        yield x
        now = time.perf_counter()
        if now - last >= min_interval or i == total:
            el = now - t0
            eta = f", eta {el / i * (total - i):.0f} s" if total else ""
            tot = f"/{total}" if total else ""
            print(f"  {desc} {i}{tot} ({el:.0f} s{eta})", file=stream, flush=True)
            last = now


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
    """

    _TAG = "lowrank_theory.sweep_point"

    def __init__(self, name: str, config: Any, root: Path | None):
        self.name = name
        self.dir = None if root is None else Path(root) / name / config_hash(config)
        self.computed = 0
        self.reused = 0
        self.stale = 0
        self.reasons: list[str] = []
        self.saved: list[str] = []  # keys on disk (reused or written) in this process
        self.pending: list[str] = []  # keys of the sweep now running that are not yet done

    def _path(self, key: str) -> Path:
        assert self.dir is not None
        safe = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in str(key))
        return self.dir / f"{safe}.json"

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
            out[k] = self.put(k, fn(k))
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
        result = main(cfg, sweep)
    except KeyboardInterrupt:
        print(interrupted_message(name, sweep), file=sys.stderr, flush=True)
        raise SystemExit(130) from None
    wall = time.perf_counter() - t0
    record = run_metadata(cfg, getattr(cfg, "seed", None), wall)
    record["cache"] = sweep.summary()
    record["result"] = to_jsonable(result)
    atomic_write_text(out / f"{name}.json", json.dumps(record, indent=1))
    from .plotting import png_bytes  # matplotlib only when a figure is drawn

    atomic_write_bytes(out / f"{name}.png", png_bytes(plot(result, cfg)))
    print(f"{name}: wrote {out / (name + '.png')} and .json in {wall:.1f} s", file=sys.stderr)
    return record


def interrupted_message(name: str, sweep: Sweep) -> str:
    """The one line printed when a figure script is interrupted (Ctrl-C)."""
    if sweep.dir is None:
        return f"{name}: interrupted; nothing saved (--no-cache)"
    now = f" at point {sweep.pending[0]}" if sweep.pending else ""
    return (
        f"{name}: interrupted{now}; {len(sweep.saved)} finished point(s) saved in {sweep.dir}, "
        "run the same command again to resume from them"
    )


def seconds_per_step(run: Callable[[int], object], steps: int) -> float:
    """Wall time per step of ``run(steps)`` (a jitted run of ``steps`` steps), compile excluded.

    ``run`` is called once to compile and warm up, then timed once (until its result is ready,
    :func:`jax.block_until_ready`); the time is divided by ``steps``.
    """
    import jax  # the pipeline's other helpers work without JAX

    jax.block_until_ready(run(steps))
    t0 = time.perf_counter()
    jax.block_until_ready(run(steps))
    return (time.perf_counter() - t0) / steps
