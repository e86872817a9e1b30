r"""Provenance of experiment records: atomic writes, JSON, versions, machine, run metadata.

The pieces of :mod:`lowrank_theory.pipeline.records` that need nothing of a sweep: writing a
file whole or not at all, turning results into JSON, describing the software and machine a
result came from, hashing a configuration, progress lines and the time per step of a jitted
run. All are re-exported by :mod:`~lowrank_theory.pipeline.records` (their earlier path).
"""

from __future__ import annotations

import dataclasses
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

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "config_hash",
    "machine_info",
    "package_versions",
    "progress",
    "run_metadata",
    "seconds_per_step",
    "to_jsonable",
]

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
