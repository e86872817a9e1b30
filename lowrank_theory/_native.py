r"""The masked low-rank residual products of deep matrix completion, on the observed entries.

One GD step (15) of a factorization whose outer factors are thin, $W_L\in\mathbb R^{m\times k}$
and $P = W_{L-1}\cdots W_1\in\mathbb R^{k\times n}$ with $k\ll m, n$ (the compressed
factorization (11), or a narrow one), needs from the $m\times n$ residual
$E = \Omega\odot(W_L P - T)$ only

$$\ell = \tfrac12\|E\|_F^2,\qquad G = E P^\top\ (m\times k),\qquad H = W_L^\top E\ (k\times n).$$

:func:`masked_lowrank_products` computes them in one of two ways, with the same result to
rounding (tested):

* ``"xla"``: the dense formulation, three $m\times n\times k$ matrix products and one fused
  select pass over $m\times n$ arrays. Runs on every backend.
* ``"native"`` (CPU): a small C++ XLA FFI kernel (``_native/masked_lowrank.cc``) that visits only
  the observed entries: $O(|\Omega|k)$ work, no $m\times n$ intermediate. At $d=1000$, 20 %
  observed, $k=10$ it is several times faster than the dense step (``make bench``,
  ``dmc.compressed_step_*``).

``"auto"`` (what GD uses) takes the native kernel on CPU when it is available and
$1\le k\le 32$, else the dense formulation; on other backends the dense one
(:func:`jax.lax.platform_dependent`).

The kernel is compiled on first use with the system C++ compiler (``$CXX``, else ``c++``,
``g++`` or ``clang++``), ``-O3 -march=native``, against the XLA FFI headers that ship with
jaxlib, into a cache directory (``$LOWRANK_THEORY_CACHE``, else
``$XDG_CACHE_HOME/lowrank_theory``, else ``~/.cache/lowrank_theory``) keyed by the source, the
compiler, the flags, the jaxlib version and the CPU; the build takes a few seconds once.
If there is no compiler or the build fails, ``"auto"`` uses the dense formulation and
:func:`native_status` says why; ``LOWRANK_THEORY_NATIVE=0`` disables the kernel.
Limitations: the kernel has no autodiff rule (the GD code computes gradients explicitly) and
under :func:`jax.vmap` it runs the batch sequentially.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["dense_only", "masked_lowrank_products", "native_status"]

_TARGET = "lowrank_theory_masked_lowrank"
_SOURCE = Path(__file__).resolve().parent / "_native" / "masked_lowrank.cc"
MAX_WIDTH = 32
_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-pthread"]


def _cache_dir() -> Path:
    if os.environ.get("LOWRANK_THEORY_CACHE"):
        return Path(os.environ["LOWRANK_THEORY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lowrank_theory"


def _compiler() -> str | None:
    if os.environ.get("CXX"):
        return shutil.which(os.environ["CXX"]) or os.environ["CXX"]
    for name in ("c++", "g++", "clang++"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _cpu_signature() -> str:
    """The CPU model and feature flags (``-march=native`` binaries are not portable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
        lines = [ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))][:2]
        return "\n".join(lines)
    except OSError:
        return platform.processor() or platform.machine()


def _build(cxx: str) -> Path:
    import jaxlib

    src = _SOURCE.read_bytes()
    include = jax.ffi.include_dir()
    flags = [*_FLAGS, "-march=native"]
    key = hashlib.sha256(
        b"\0".join(
            [
                src,
                cxx.encode(),
                " ".join(flags).encode(),
                jaxlib.__version__.encode(),
                _cpu_signature().encode(),
            ]
        )
    ).hexdigest()[:16]
    out = _cache_dir() / f"masked_lowrank-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
    os.close(fd)
    try:
        cmd = [cxx, *flags, "-isystem", include, str(_SOURCE), "-o", tmp]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode != 0 and "-march=native" in res.stderr:
            cmd = [c for c in cmd if c != "-march=native"]  # compilers without -march=native
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError(
                f"building {_SOURCE.name} failed ({' '.join(cmd)}):\n{res.stderr[-2000:]}"
            )
        os.replace(tmp, out)  # atomic: concurrent builders (test workers) agree on the result
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


@functools.cache
def _load() -> tuple[bool, str]:
    """Build (once per machine) and register the kernel; returns (available, why)."""
    if os.environ.get("LOWRANK_THEORY_NATIVE", "1").strip().lower() in ("0", "false", "no", "off"):
        return False, "disabled by LOWRANK_THEORY_NATIVE=0"
    if platform.system() == "Windows":
        return False, "the native kernel is built for Linux and macOS only"
    cxx = _compiler()
    if cxx is None:
        return False, "no C++ compiler found ($CXX, c++, g++, clang++)"
    try:
        lib = ctypes.CDLL(str(_build(cxx)))
        jax.ffi.register_ffi_target(
            _TARGET, jax.ffi.pycapsule(lib.LrtMaskedLowrank), platform="cpu"
        )
    except Exception as exc:  # the dense formulation stays available
        return False, f"{type(exc).__name__}: {exc}"
    return True, f"built with {cxx}"


def native_status() -> dict[str, object]:
    """Whether the native masked kernel is in use on CPU, and why (building it if needed)."""
    ok, why = _load()
    return {"available": ok, "reason": why, "source": str(_SOURCE), "cache": str(_cache_dir())}


def _threads() -> int:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        n = os.cpu_count() or 1
    return max(1, min(n, 16))


def _xla(u, p, mask, target):
    e = jnp.where(mask, u @ p - target, 0.0)
    return 0.5 * jnp.sum(e * e), e @ p.T, u.T @ e


def _native(u, p, mask, target):
    m, k = u.shape
    n = p.shape[1]
    out = (
        jax.ShapeDtypeStruct((m, k), u.dtype),
        jax.ShapeDtypeStruct((k, n), u.dtype),
        jax.ShapeDtypeStruct((), u.dtype),
    )
    g, h, loss = jax.ffi.ffi_call(_TARGET, out, vmap_method="sequential")(
        u, p, mask, target, threads=np.int64(_threads())
    )
    return loss, g, h


_DENSE_ONLY = [False]


@contextlib.contextmanager
def dense_only():
    """Within this context, ``"auto"`` traces the dense formulation (for comparisons).

    It acts when a function is traced: functions jit-compiled before keep what they compiled.
    """
    old = _DENSE_ONLY[0]
    _DENSE_ONLY[0] = True
    try:
        yield
    finally:
        _DENSE_ONLY[0] = old


def native_applies(u_shape, dtype) -> bool:
    """Whether ``"auto"`` would use the native kernel for an outer factor of this shape."""
    k = int(u_shape[-1])
    return (
        not _DENSE_ONLY[0]
        and jnp.dtype(dtype) == jnp.float64
        and 1 <= k <= MAX_WIDTH
        and _load()[0]
    )


def masked_lowrank_products(u, p, mask, target, *, backend: str = "auto"):
    r"""$(\tfrac12\|E\|_F^2,\ E P^\top,\ U^\top E)$ for $E=\Omega\odot(UP-T)$.

    Args:
        u: $(m, k)$ outer factor $W_L$.
        p: $(k, n)$ product of the other factors $W_{L-1}\cdots W_1$.
        mask: $(m, n)$ boolean $\Omega$ (entries of ``target`` outside it are never read by
            the native kernel and are multiplied by 0 in the dense formulation).
        target: $(m, n)$ $T$.
        backend: ``"auto"``, ``"xla"`` (dense) or ``"native"`` (CPU kernel; raises if it is
            unavailable or $k\notin[1, 32]$ or the dtype is not float64).

    Returns:
        (loss, G, H) with shapes (), (m, k), (k, n).
    """
    if backend not in ("auto", "xla", "native"):
        raise ValueError(f"backend must be 'auto', 'xla' or 'native', got {backend!r}")
    if u.ndim != 2 or p.ndim != 2 or u.shape[1] != p.shape[0]:
        raise ValueError(f"u (m, k) and p (k, n) expected, got {u.shape} and {p.shape}")
    if mask.shape != (u.shape[0], p.shape[1]) or target.shape != mask.shape:
        raise ValueError(
            f"mask and target must have shape {(u.shape[0], p.shape[1])}, got "
            f"{mask.shape} and {target.shape}"
        )
    mask = jnp.asarray(mask, dtype=bool)
    if backend == "xla":
        return _xla(u, p, mask, target)
    usable = native_applies(u.shape, u.dtype) and p.dtype == u.dtype and target.dtype == u.dtype
    if backend == "native":
        if not usable:
            ok, why = _load()
            raise ValueError(
                "the native kernel needs float64 operands and 1 <= k <= 32"
                if ok
                else f"the native kernel is unavailable: {why}"
            )
        return _native(u, p, mask, target)
    if not usable:
        return _xla(u, p, mask, target)
    return jax.lax.platform_dependent(u, p, mask, target, cpu=_native, default=_xla)
