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
* ``"native"`` (CPU): a small C++ XLA FFI kernel (``dmf/masked_lowrank.cc``) that visits only
  the observed entries: $O(|\Omega|k)$ arithmetic, one read of the mask, no $m\times n$
  intermediate.

``"auto"`` (what GD uses) takes the native kernel on CPU when it is available, $1\le k\le 32$
and at most ``DENSE_ABOVE_FRACTION`` (40 %) of the entries are observed, else the dense
formulation; on other backends the dense one (:func:`jax.lax.platform_dependent`).

GD runs (:func:`~lowrank_theory.dmf.factorization.run_gd` and everything built on it) go one step
further: the mask and target are fixed for the whole run, so
:func:`~lowrank_theory.dmf.factorization.prepare_observed` packs the observed entries once, on the
host (:func:`pack_observed`: per 256-column block and row an offset, then a column index and
the target value of each entry), and every step reads only those 12 bytes per observed entry
(:func:`packed_products`) instead of scanning the mask and gathering from the dense target;
up to ``PACKED_DENSE_ABOVE_FRACTION`` (70 %) observed, where it is still faster than dense.
At $d=1000$, 20 % observed, $k=10$ the compressed GD step then takes a quarter to a fifth of
the time of the dense one (``make bench``, ``dmc.compressed_step_dense_over_native``: 3.8-5.1).

The kernel works in two phases per row and 256-column block (the errors of four entries at a
time, their dot products reduced together; then the updates of $G$ and $H$), on 64-byte aligned
work buffers kept between calls, and splits the rows into slots run on XLA's intra-op thread
pool, each slot with a private $H$ buffer; once all slots are done the buffers are summed in slot
order, a range of columns per participant (so results depend on the slot count only).

The kernel is compiled on first use with the system C++ compiler (``$CXX``, else ``c++``,
``g++`` or ``clang++``), ``-O3 -march=native``, against the XLA FFI headers that ship with
jaxlib, into a cache directory (``$LOWRANK_THEORY_CACHE``, else
``$XDG_CACHE_HOME/lowrank_theory``, else ``~/.cache/lowrank_theory``) keyed by the source, the
compiler, the flags, the jaxlib version and the CPU; the build takes a few seconds once.
If there is no compiler or the build fails, ``"auto"`` uses the dense formulation and
:func:`native_status` says why; ``LOWRANK_THEORY_NATIVE=0`` disables the kernel.
The kernel has no derivative of its own (``"auto"`` and :func:`packed_products`
differentiate through the dense formulation); under :func:`jax.vmap` they take the dense
formulation (batched GEMMs) and ``"native"`` loops the kernel over the batch. Its results are
deterministic for a given machine, build and thread count (fixed when a function is traced),
whichever threads run the slots; between machines they may differ by rounding
(``-march=native`` and floating-point contraction).
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

__all__ = [
    "PackedObserved",
    "dense_only",
    "masked_lowrank_products",
    "native_status",
    "pack_observed",
    "packed_products",
]

_TARGET = "lowrank_theory_masked_lowrank"
_TARGET_PACKED = "lowrank_theory_masked_lowrank_packed"
COLUMN_BLOCK = 256  # kColumnBlock in the kernel: the packed entries are ordered by these blocks
_SOURCE = Path(__file__).resolve().parent / "masked_lowrank.cc"
MAX_WIDTH = 32
_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-pthread"]
_OFF = ("0", "false", "no", "off")


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
    """What ``-march=native`` depends on: the machine and the CPU's model and features."""
    keys = ("model name", "flags", "Features", "CPU implementer", "CPU part", "CPU variant")
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        seen = {}
        for ln in lines:
            name = ln.split(":", 1)[0].strip()
            if name in keys and name not in seen:
                seen[name] = ln
        info = "\n".join(seen[k] for k in keys if k in seen)
    except OSError:
        info = ""
    return f"{platform.machine()}\n{platform.processor()}\n{info}"


def _compiler_version(cxx: str) -> str:
    try:
        res = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
        return res.stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _build(cxx: str) -> Path:
    import jaxlib

    src = _SOURCE.read_bytes()
    include = jax.ffi.include_dir()
    flags = [*_FLAGS, "-march=native"]
    key = hashlib.sha256(
        b"\0".join(
            s.encode() if isinstance(s, str) else s
            for s in (src, cxx, _compiler_version(cxx), " ".join(flags), jaxlib.__version__,
                      _cpu_signature())
        )
    ).hexdigest()[:16]  # fmt: skip
    out = _cache_dir() / f"masked_lowrank-{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so.tmp", dir=out.parent)
    os.close(fd)
    try:
        cmd = [cxx, *flags, "-isystem", include, str(_SOURCE), "-o", tmp]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode != 0:  # e.g. compilers without -march=native: portable build
            cmd = [c for c in cmd if c != "-march=native"]
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError(
                f"building {_SOURCE.name} failed ({' '.join(cmd)}):\n{res.stderr[-2000:]}"
            )
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o755 & ~umask)  # mkstemp makes it 0600: others sharing the cache load it
        os.replace(tmp, out)  # atomic: concurrent builders (test workers) agree on the result
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


_LOAD_LOCK = threading.Lock()


@functools.cache
def _load_once() -> tuple[bool, str]:
    if os.environ.get("LOWRANK_THEORY_NATIVE", "1").strip().lower() in _OFF:
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
        jax.ffi.register_ffi_target(
            _TARGET_PACKED, jax.ffi.pycapsule(lib.LrtMaskedLowrankPacked), platform="cpu"
        )
    except Exception as exc:  # the dense formulation stays available
        return False, f"{type(exc).__name__}: {exc}"
    return True, f"built with {cxx}"


def _load() -> tuple[bool, str]:
    """Build (once per machine) and register the kernel; returns (available, why)."""
    with _LOAD_LOCK:
        return _load_once()


def native_status() -> dict[str, object]:
    """Whether the native masked kernel is in use on CPU, and why (building it if needed)."""
    ok, why = _load()
    return {"available": ok, "reason": why, "source": str(_SOURCE), "cache": str(_cache_dir())}


def _cgroup_cpus() -> float | None:
    """The CPU quota of this process's cgroup (v2 ``cpu.max``, v1 ``cfs_quota``), if any."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def _threads() -> int:
    """Threads for the kernel: the CPUs this process may use (affinity and cgroup quota), <= 16."""
    if os.environ.get("LOWRANK_THEORY_THREADS"):
        return max(1, int(os.environ["LOWRANK_THEORY_THREADS"]))
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        n = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        n = min(n, max(1, int(quota)))
    return max(1, min(n, 16))


def _xla(u, p, mask, target):
    e = jnp.where(mask, u @ p - target, 0.0)
    return 0.5 * jnp.sum(e * e), e @ p.T, u.T @ e


def _call(target_name, u, p, *entries, threads=None):
    """(loss, G, H) from the kernel registered as ``target_name``, given U, P and the entries
    (mask and target, or the packed arrays)."""
    _require()
    m, k = u.shape
    n = p.shape[1]
    out = (
        jax.ShapeDtypeStruct((m, k), u.dtype),
        jax.ShapeDtypeStruct((k, n), u.dtype),
        jax.ShapeDtypeStruct((), u.dtype),
    )
    nt = _threads() if threads is None else max(1, int(threads))
    g, h, loss = jax.ffi.ffi_call(target_name, out, vmap_method="sequential")(
        u, p, *entries, threads=np.int64(nt)
    )
    return loss, g, h


def _native(u, p, mask, target, threads=None):
    return _call(_TARGET, u, p, mask, target, threads=threads)


@functools.partial(
    jax.tree_util.register_dataclass, data_fields=["ptr", "cols", "vals"], meta_fields=["shape"]
)
@dataclass(frozen=True)
class PackedObserved:
    r"""The observed entries of a fixed mask and target, packed once for a whole GD run.

    Made by :func:`pack_observed`; read by the native kernel in place of the mask and the dense
    target, so a step reads 12 bytes per observed entry (a column index and a value) and no
    $m\times n$ array. Entries are ordered by column block (``COLUMN_BLOCK`` columns), then
    row, then column; those of (block $b$, row $i$) are ``ptr[b m + i] : ptr[b m + i + 1]``.
    A pytree (the arrays are leaves, ``shape`` is static), so it passes through ``jax.jit``.
    The entry arrays are padded to a capacity that depends only on the count's magnitude
    (:func:`_capacity`), so runs on different masks with similar counts share one compiled loop.
    """

    ptr: jax.Array  # int64 (n_blocks * m + 1,); ptr[-1] = number of observed entries
    cols: jax.Array  # int32 (capacity,), entries past ptr[-1] are padding (never read)
    vals: jax.Array  # float64 (capacity,)
    shape: tuple[int, int] = field(default=(0, 0))

    @property
    def nnz(self) -> int:
        """The number of observed entries (reads ``ptr[-1]`` back from the device)."""
        return int(self.ptr[-1])


def _capacity(nnz: int) -> int:
    """``nnz`` rounded up to a multiple of 2^(floor(log2 nnz) - 3): at most 12.5 % padding, and
    the same capacity for counts that differ by less than that (new random masks of one size
    and density then reuse the compiled GD loop instead of recompiling it)."""
    if nnz <= 16:
        return 16
    quantum = 1 << max(0, nnz.bit_length() - 4)
    return -(-nnz // quantum) * quantum


def pack_observed(mask, target) -> PackedObserved:
    r"""Pack the observed entries of ``target`` under ``mask`` for the native kernel.

    Host-side (NumPy) and done once per run: the mask must be concrete (not traced).

    Raises:
        TypeError: a traced mask or target (inside ``jax.jit``/``vmap``).
        ValueError: shapes that differ or are not 2-D, or a non-finite observed target entry.
    """
    if isinstance(mask, jax.core.Tracer) or isinstance(target, jax.core.Tracer):
        raise TypeError("pack_observed needs a concrete mask and target (it packs on the host)")
    msk = np.asarray(mask).astype(bool)
    tgt = np.asarray(target, dtype=np.float64)
    if msk.ndim != 2 or msk.shape != tgt.shape:
        raise ValueError(
            f"mask and target must be matrices of one shape, got {msk.shape} and {tgt.shape}"
        )
    m, n = msk.shape
    if n >= 2**31:
        raise ValueError(f"at most 2^31 - 1 columns (int32 column indices), got {n}")
    rows, cols = np.nonzero(msk)  # row-major order
    vals = tgt[rows, cols]
    if not np.all(np.isfinite(vals)):
        raise ValueError("target has non-finite entries where the mask observes it")
    key = (cols // COLUMN_BLOCK) * m + rows
    order = np.argsort(key, kind="stable")  # by block, then row; columns stay ascending
    n_blocks = -(-n // COLUMN_BLOCK)
    ptr = np.zeros(n_blocks * m + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=n_blocks * m), out=ptr[1:])
    cap = _capacity(len(order))
    cols_p = np.zeros(cap, dtype=np.int32)
    vals_p = np.zeros(cap, dtype=np.float64)
    cols_p[: len(order)] = cols[order]
    vals_p[: len(order)] = vals[order]
    return PackedObserved(
        jnp.asarray(ptr),
        jnp.asarray(cols_p),
        jnp.asarray(vals_p),
        (m, n),
    )


def _require() -> None:
    ok, why = _load()
    if not ok:
        raise RuntimeError(f"the native kernel is unavailable: {why}")


def _check_packed(packed: PackedObserved, shape) -> None:
    if packed.shape != tuple(shape):
        raise ValueError(f"packed entries of a {packed.shape} matrix, but U P is {tuple(shape)}")


def _packed(u, p, packed: PackedObserved, threads=None):
    _check_packed(packed, (u.shape[0], p.shape[1]))
    return _call(_TARGET_PACKED, u, p, packed.ptr, packed.cols, packed.vals, threads=threads)


# Measured at d = 1000, k = 10, the products alone, kernel/dense time at 5, 20, 40, 50, 60, 70,
# 80, 100 % observed: mask-scanning kernel 0.17, 0.36-0.44, 0.57, 0.79-1.0, 0.90-0.93, 1.04,
# 1.19-1.24, 1.49; packed entries 0.10, 0.24, 0.42, 0.58, 0.67-0.68, 0.82, 0.98-1.03, 1.23.
# "auto" (the mask scanned every call) switches to the dense formulation above
# DENSE_ABOVE_FRACTION, decided at run time from a subsample; prepare_observed packs the
# entries for GD up to PACKED_DENSE_ABOVE_FRACTION, decided on the host from the exact count.
DENSE_ABOVE_FRACTION = 0.4
PACKED_DENSE_ABOVE_FRACTION = 0.7


def _dense_preferred(mask):
    """Whether more than ``DENSE_ABOVE_FRACTION`` of a regular ~4096-entry subsample of the
    mask is observed (a traced boolean)."""
    m, n = mask.shape
    stride = max(1, int(math.sqrt(m * n / 4096)))
    sample = mask[::stride, ::stride]
    return jnp.count_nonzero(sample) > DENSE_ABOVE_FRACTION * sample.size


@custom_vmap
def _kernel_single(u, p, mask, target, packed):
    if packed is not None:  # the entries packed once per run: the kernel, no decision
        return _packed(u, p, packed)
    # the observed fraction from a regular subsample of ~4096 entries: a performance decision
    # only (both branches give the same numbers), cheap even when XLA constant-folds it for a
    # closed-over mask (the full count took ~1 s of compile time at d = 1000) or does not hoist
    # it out of a GD loop
    return jax.lax.cond(_dense_preferred(mask), _xla, _native, u, p, mask, target)


@_kernel_single.def_vmap
def _kernel_batched(axis_size, in_batched, u, p, mask, target, packed):
    # a batch of problems: the dense formulation's batched GEMMs (under vmap the run-time switch
    # would become a select running both formulations, and the kernel would loop the batch)
    axes = tuple(0 if b else None for b in in_batched[:4])
    out = jax.vmap(_xla, in_axes=axes, axis_size=axis_size)(u, p, mask, target)
    return out, (True, True, True)


@jax.custom_jvp
def _kernel_cpu(u, p, mask, target, packed):
    return _kernel_single(u, p, mask, target, packed)


@_kernel_cpu.defjvp
def _kernel_cpu_jvp(primals, tangents):
    # the kernel has no derivative of its own: differentiate the dense formulation
    u, p, mask, target, _ = primals
    du, dp, _, dt, _ = tangents
    return jax.jvp(lambda a, b, c: _xla(a, b, mask, c), (u, p, target), (du, dp, dt))


def _kernel_or_dense(u, p, mask, target, packed=None):
    """The kernel on CPU (packed entries if given, else the density switch), the dense
    formulation on other backends, under vmap and for derivatives."""
    return jax.lax.platform_dependent(
        u, p, mask, target, packed,
        cpu=_kernel_cpu,
        default=lambda u, p, m, t, _: _xla(u, p, m, t),
    )  # fmt: skip


def packed_products(u, p, mask, target, packed: PackedObserved):
    r""":func:`masked_lowrank_products` on entries packed by :func:`pack_observed` from this
    ``mask`` and ``target``: the native kernel on CPU, the dense formulation (from ``mask`` and
    ``target``) on other backends, under :func:`jax.vmap` and for derivatives. Use
    :func:`native_applies` first (the kernel must be available)."""
    _check_packed(packed, (u.shape[0], p.shape[1]))
    return _kernel_or_dense(u, p, mask, target, packed)


_DENSE_ONLY = contextvars.ContextVar("lowrank_theory_dense_only", default=False)


@contextlib.contextmanager
def dense_only():
    """Within this context GD (``"auto"``) traces the dense formulation (for comparisons).

    The choice is made when a function is traced, so entering and leaving the context clears
    JAX's compilation caches (:func:`jax.clear_caches`): everything run inside is retraced with
    the dense formulation, and everything after it with the native kernel again.
    """
    jax.clear_caches()
    token = _DENSE_ONLY.set(True)
    try:
        yield
    finally:
        _DENSE_ONLY.reset(token)
        jax.clear_caches()


def _native_usable(k: int, *dtypes) -> bool:
    """The kernel is built and takes this width and these operand dtypes."""
    return (
        all(jnp.dtype(t) == jnp.float64 for t in dtypes) and 1 <= int(k) <= MAX_WIDTH and _load()[0]
    )


def native_applies(u_shape, dtype) -> bool:
    """Whether ``"auto"`` would consider the native kernel for an outer factor of this shape
    (it still takes the dense formulation above ``DENSE_ABOVE_FRACTION`` observed)."""
    return not _DENSE_ONLY.get() and _native_usable(u_shape[-1], dtype)


def masked_lowrank_products(u, p, mask, target, *, backend: str = "auto", threads=None):
    r"""$(\tfrac12\|E\|_F^2,\ E P^\top,\ U^\top E)$ for $E=\Omega\odot(UP-T)$.

    Args:
        u: $(m, k)$ outer factor $W_L$.
        p: $(k, n)$ product of the other factors $W_{L-1}\cdots W_1$.
        mask: $(m, n)$ boolean $\Omega$ (entries of ``target`` outside it are never read by
            the native kernel and are multiplied by 0 in the dense formulation).
        target: $(m, n)$ $T$.
        backend: ``"auto"`` (on CPU the native kernel when it is available, float64,
            $1\le k\le32$ and at most ``DENSE_ABOVE_FRACTION`` of the entries are observed;
            else the dense formulation), ``"xla"`` (dense) or ``"native"`` (CPU kernel; raises
            if it is unavailable, $k\notin[1, 32]$ or the dtype is not float64).
        threads: ``"native"`` only: the kernel's thread count (default, and always for
            ``"auto"``: the CPUs this process may use, at most 16; ``$LOWRANK_THEORY_THREADS``
            overrides).

    Returns:
        (loss, G, H) with shapes (), (m, k), (k, n). ``"auto"`` is differentiable (through
        the dense formulation); ``"native"`` is not. Under :func:`jax.vmap`, ``"auto"`` runs
        the dense formulation (batched GEMMs); ``"native"`` loops the kernel over the batch.
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
    if backend == "native":
        if not _native_usable(u.shape[1], u.dtype, p.dtype, target.dtype):
            ok, why = _load()
            raise ValueError(
                "the native kernel needs float64 operands and 1 <= k <= 32"
                if ok
                else f"the native kernel is unavailable: {why}"
            )
        return _native(u, p, mask, target, threads)
    if _DENSE_ONLY.get() or not _native_usable(u.shape[1], u.dtype, p.dtype, target.dtype):
        return _xla(u, p, mask, target)
    return _kernel_or_dense(u, p, mask, target)
