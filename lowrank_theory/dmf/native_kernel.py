r"""The native CPU kernel of the masked low-rank products: build, load, FFI calls, packing.

:mod:`lowrank_theory.dmf.masked_products` decides *when* this kernel runs; this module only
knows *how*: a small C++ XLA FFI kernel (``dmf/masked_lowrank.cc``) that computes, for
$E = \Omega\odot(UP - T)$ with $U\in\mathbb R^{m\times k}$, $P\in\mathbb R^{k\times n}$,
$1\le k\le$ ``MAX_WIDTH``,

$$\ell = \tfrac12\|E\|_F^2,\qquad G = E P^\top,\qquad H = U^\top E,$$

visiting only the observed entries: $O(|\Omega|k)$ arithmetic, one read of the mask, no
$m\times n$ intermediate. Two entry points (FFI targets):

* :func:`native_scan_products`: reads the boolean mask and the dense target every call;
* :func:`native_packed_products`: reads the observed entries packed once per GD run by
  :func:`pack_observed` (per 256-column block and row an offset, then a column index and the
  target value of each entry: 12 bytes per observed entry).

The kernel works in two phases per row and 256-column block (the errors of four entries at a
time, their dot products reduced together; then the updates of $G$ and $H$), on 64-byte aligned
work buffers kept between calls, and splits the rows into slots run on XLA's intra-op thread
pool, each slot with a private $H$ buffer; once all slots are done the buffers are summed in slot
order, a range of columns per participant (so results depend on the slot count only).

The kernel is compiled on first use with the system C++ compiler (``$CXX``, else ``c++``,
``g++`` or ``clang++``; :func:`find_compiler`), ``-O3 -march=native`` (or
``-march=$LOWRANK_THEORY_MARCH``, :func:`target_arch`), against the XLA FFI
headers that ship with jaxlib, into a cache directory (``$LOWRANK_THEORY_CACHE``, else
``$XDG_CACHE_HOME/lowrank_theory``, else ``~/.cache/lowrank_theory``) keyed by the source, the
compiler, the flags, the jaxlib version and the CPU; the build takes a few seconds once.
If there is no compiler or the build fails, :func:`native_status` says why and
:mod:`~lowrank_theory.dmf.masked_products` uses the dense formulation;
``LOWRANK_THEORY_NATIVE=0`` disables the kernel (:func:`native_disabled`).
The kernel has no derivative of its own, and under :func:`jax.vmap` these functions loop it over
the batch. Its results are deterministic for a given machine, build and thread count (fixed
when a function is traced), whichever threads run the slots; between machines they may differ
by rounding (``-march=native`` and floating-point contraction).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
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

__all__ = [
    "COLUMN_BLOCK",
    "MAX_WIDTH",
    "PackedObserved",
    "build_kernel",
    "cache_dir",
    "check_packed",
    "column_block",
    "find_compiler",
    "host_signature",
    "kernel_available",
    "kernel_key",
    "native_disabled",
    "native_packed_products",
    "native_scan_products",
    "native_status",
    "pack_entries",
    "pack_observed",
    "target_arch",
]

_TARGET = "lowrank_theory_masked_lowrank"
_TARGET_PACKED = "lowrank_theory_masked_lowrank_packed"
COLUMN_BLOCK = 256  # kColumnBlock in the kernel: the packed entries are ordered by these blocks
_SOURCE = Path(__file__).resolve().parent / "masked_lowrank.cc"
#: the largest width $k$ the kernel takes (its register blocking)
MAX_WIDTH = 32
_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-pthread"]
_OFF = ("0", "false", "no", "off")


def native_disabled() -> bool:
    """Whether ``$LOWRANK_THEORY_NATIVE`` (``0``, ``false``, ``no`` or ``off``) disables the kernel."""
    return os.environ.get("LOWRANK_THEORY_NATIVE", "1").strip().lower() in _OFF


def _cache_dir() -> Path:
    if os.environ.get("LOWRANK_THEORY_CACHE"):
        return Path(os.environ["LOWRANK_THEORY_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "lowrank_theory"


def cache_dir() -> Path:
    """Where the built kernel and the dispatch decision are kept: ``$LOWRANK_THEORY_CACHE``,
    else ``$XDG_CACHE_HOME/lowrank_theory``, else ``~/.cache/lowrank_theory``."""
    return _cache_dir()


def find_compiler() -> str | None:
    """The C++ compiler the kernel is built with: ``$CXX``, else the first of ``c++``, ``g++``,
    ``clang++`` on the ``PATH``; None if there is none."""
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


@functools.cache
def _compiler_version(cxx: str) -> str:
    try:
        res = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30)
        return res.stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def target_arch() -> str:
    """The ``-march`` the kernel is built for: ``$LOWRANK_THEORY_MARCH``, else ``native``
    (e.g. ``x86-64-v3`` for a build that runs on every AVX2 machine)."""
    return os.environ.get("LOWRANK_THEORY_MARCH", "").strip() or "native"


def host_signature() -> dict[str, str]:
    """What a build and the dispatch decision depend on: the CPU model, its vector extensions
    (x86: avx2, avx512f; Arm: asimd, sve), the compiler and its version, the target arch."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, val = ln.partition(":")
            name = name.strip()
            if name in ("model name", "Model") and model == (
                platform.processor() or platform.machine()
            ):
                model = val.strip()
            elif name in ("flags", "Features") and not flags:
                flags = set(val.split())
    except OSError:
        pass
    vec = [f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f", "asimd", "sve") if f in flags]
    cxx = find_compiler()
    version = _compiler_version(cxx).splitlines()[0] if cxx and _compiler_version(cxx) else ""
    return {
        "cpu_model": model,
        "vector_extensions": " ".join(vec),
        "compiler": f"{cxx} ({version})" if cxx else "none",
        "march": target_arch(),
    }


def _key(cxx: str, flags: list[str]) -> str:
    import jaxlib

    parts = (_SOURCE.read_bytes(), cxx, _compiler_version(cxx), " ".join(flags),
             jaxlib.__version__, _cpu_signature())  # fmt: skip
    return hashlib.sha256(
        b"\0".join(s.encode() if isinstance(s, str) else s for s in parts)
    ).hexdigest()[:16]


def kernel_key() -> str | None:
    """The build's key (source, compiler and version, flags, jaxlib, CPU); None without a
    compiler. The built kernel and the dispatch decision are cached under it."""
    cxx = find_compiler()
    return None if cxx is None else _key(cxx, [*_FLAGS, f"-march={target_arch()}"])


def build_kernel(cxx: str | None = None, march: str | None = None) -> Path:
    """Build the kernel (once; cached) for ``-march=march`` (default :func:`target_arch`) and
    return the shared library's path. Raises RuntimeError if the build fails or there is no
    compiler."""
    cxx = cxx or find_compiler()
    if cxx is None:
        raise RuntimeError("no C++ compiler found ($CXX, c++, g++, clang++)")
    flags = [*_FLAGS, f"-march={march or target_arch()}"]
    out = _cache_dir() / f"masked_lowrank-{_key(cxx, flags)}.so"
    if out.exists():
        return out
    include = jax.ffi.include_dir()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so.tmp", dir=out.parent)
    os.close(fd)
    try:
        cmd = [cxx, *flags, "-isystem", include, str(_SOURCE), "-o", tmp]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode != 0 and flags[-1] == "-march=native":  # e.g. no -march=native
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

#: FFI targets registered in this process (name -> why). JAX's FFI registry is process-wide and
#: refuses a second registration of a name from another library, so registration must survive
#: a ``cache_clear()`` of the functions below (or a changed ``$LOWRANK_THEORY_CACHE``, which
#: would build a second copy of the same library): a name is registered at most once.
_REGISTERED: dict[str, str] = {}


def _register(name: str, fn: object) -> None:
    if name not in _REGISTERED:
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(fn), platform="cpu")
        _REGISTERED[name] = str(fn)


@functools.cache
def _load_once() -> tuple[bool, str]:
    if native_disabled():
        return False, "disabled by LOWRANK_THEORY_NATIVE=0"
    if platform.system() == "Windows":
        return False, "the native kernel is built for Linux and macOS only"
    cxx = find_compiler()
    if cxx is None:
        return False, "no C++ compiler found ($CXX, c++, g++, clang++)"
    if _TARGET in _REGISTERED and _TARGET_PACKED in _REGISTERED:
        return True, f"built with {cxx}"
    try:
        lib = ctypes.CDLL(str(build_kernel(cxx)))
        _register(_TARGET, lib.LrtMaskedLowrank)
        _register(_TARGET_PACKED, lib.LrtMaskedLowrankPacked)
    except Exception as exc:  # the dense formulation stays available
        return False, f"{type(exc).__name__}: {exc}"
    return True, f"built with {cxx}"


@functools.cache
def _variant_target(march: str) -> str:
    """Build the kernel for ``-march=march`` and register its packed handler under its own FFI
    target name (a second shared library beside the default build); returns the name."""
    name = f"{_TARGET_PACKED}_{''.join(c if c.isalnum() else '_' for c in march)}"
    if name not in _REGISTERED:
        lib = ctypes.CDLL(str(build_kernel(march=march)))
        _register(name, lib.LrtMaskedLowrankPacked)
    return name


def _load() -> tuple[bool, str]:
    """Build (once per machine) and register the kernel; returns (available, why)."""
    with _LOAD_LOCK:
        return _load_once()


def kernel_available() -> bool:
    """Whether the kernel is built and registered (building it on first call)."""
    return _load()[0]


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


def _call(target_name, u, p, *entries, threads=None, **attrs):
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
        u, p, *entries, threads=np.int64(nt), **attrs
    )
    return loss, g, h


def native_scan_products(u, p, mask, target, threads=None):
    r"""$(\tfrac12\|E\|_F^2, EP^\top, U^\top E)$ by the kernel, scanning ``mask`` this call.

    No checks beyond the kernel's own (see
    :func:`~lowrank_theory.dmf.masked_products.masked_lowrank_products` with
    ``backend="native"`` for the checked entry point); raises RuntimeError if the kernel is
    unavailable. ``threads``: the kernel's thread count (default: the CPUs this process may
    use, at most 16; ``$LOWRANK_THEORY_THREADS`` overrides).
    """
    return _call(_TARGET, u, p, mask, target, threads=threads)


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["ptr", "cols", "vals", "rows"],
    meta_fields=["shape", "block"],
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
    rows: jax.Array  # int32 (capacity,), the row of each entry; m for padding
    shape: tuple[int, int] = field(default=(0, 0))
    block: int = COLUMN_BLOCK  # the column blocks' width

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
    return _pack(rows, cols, vals, m, n, COLUMN_BLOCK)


#: entries per (column block, row) that :func:`column_block` aims at for sparse entries
ENTRIES_PER_SEGMENT = 16
#: the widest column block :func:`column_block` picks (its P^T and H^T rows stay in L2)
MAX_COLUMN_BLOCK = 4096


def column_block(nnz: int, m: int, n: int) -> int:
    r"""The column block width for ``nnz`` entries of an $m\times n$ matrix.

    ``COLUMN_BLOCK`` (256) unless a (block, row) would then hold fewer than
    ``ENTRIES_PER_SEGMENT`` entries on average; then the power of two that brings it there, at
    most ``MAX_COLUMN_BLOCK`` (the block's rows of $P^\top$ and $H^\top$ stay in cache), but
    always wide enough for 2 entries per (block, row) on average (so the offsets,
    $8m\lceil n/\mathrm{block}\rceil$ bytes, stay $O(|\Omega| + m)$), and at most $n$
    rounded up to a power of two times 256."""

    def at_least(x: float) -> int:
        block = COLUMN_BLOCK
        while block < x and block < n:
            block *= 2
        return block

    nnz = max(int(nnz), 1)
    cached = min(at_least(ENTRIES_PER_SEGMENT * m * n / nnz), MAX_COLUMN_BLOCK)
    return max(cached, at_least(2.0 * m * n / nnz))


def _pack(rows, cols, vals, m, n, block) -> PackedObserved:
    """Entries (rows, cols, vals: NumPy, in range) in the kernel's layout: by column block,
    then row, then column; padded to :func:`_capacity` (rows m, columns n, values 0).
    Raises ValueError on duplicate coordinates."""
    nnz = rows.size
    lin = rows.astype(np.int64) * n + cols
    if nnz > 1 and not bool(np.all(lin[1:] > lin[:-1])):  # not row-major: sort (once)
        order = np.argsort(lin)
        lin = lin[order]
        if not bool(np.all(lin[1:] > lin[:-1])):
            raise ValueError("duplicate observed entries (the same (row, column) twice)")
        rows, cols, vals = rows[order], cols[order], vals[order]
        del order
    del lin
    # row-major and unique: the entries of (block b, row i) are contiguous, so the layout is a
    # permutation of contiguous segments (a counting sort, O(nnz), no comparison sort)
    nb = -(-n // block)
    key = (cols // block).astype(np.int64) * m + rows
    ptr = np.zeros(nb * m + 1, dtype=np.int64)
    np.cumsum(np.bincount(key, minlength=nb * m), out=ptr[1:])
    dest = np.arange(nnz, dtype=np.int64)
    if nnz:
        new_seg = np.empty(nnz, dtype=bool)
        new_seg[0] = True
        np.not_equal(key[1:], key[:-1], out=new_seg[1:])
        starts = np.flatnonzero(new_seg)
        dest -= starts[np.cumsum(new_seg) - 1]
        del new_seg, starts
        dest += ptr[key]
    del key
    cap = _capacity(nnz)
    cols_p = np.full(cap, n, dtype=np.int32)
    rows_p = np.full(cap, m, dtype=np.int32)
    vals_p = np.zeros(cap, dtype=np.float64)
    cols_p[dest] = cols
    rows_p[dest] = rows
    vals_p[dest] = vals
    del dest
    return PackedObserved(
        jnp.asarray(ptr), jnp.asarray(cols_p), jnp.asarray(vals_p), jnp.asarray(rows_p),
        (int(m), int(n)), int(block),
    )  # fmt: skip


def pack_entries(rows, cols, vals, shape, *, block: int | None = None) -> PackedObserved:
    r"""Pack observed entries given by coordinates: $T_{\mathrm{rows}[s],\mathrm{cols}[s]} =
    \mathrm{vals}[s]$ of an $m\times n$ matrix (``shape``), for the native kernel and the
    pure-JAX packed products (:func:`~lowrank_theory.dmf.masked_products.entry_products`).

    Host side (NumPy), $O(|\Omega|)$ memory and $O(|\Omega|\log|\Omega|)$ time: no
    $m\times n$ array is formed. ``block``: the column block width (default
    :func:`column_block`, wider than 256 for sparse entries).

    Raises:
        TypeError: traced inputs.
        ValueError: arrays that are not 1-D of one length, non-integer or out-of-range
            coordinates, duplicate coordinates, non-finite values, a shape that is not two
            positive integers below $2^{31}$, or a block < 1.
    """
    if any(isinstance(x, jax.core.Tracer) for x in (rows, cols, vals)):
        raise TypeError("pack_entries needs concrete arrays (it packs on the host)")
    if len(shape) != 2 or any(
        isinstance(x, bool) or not isinstance(x, int | np.integer) or not 0 < x < 2**31
        for x in shape
    ):
        raise ValueError(f"shape must be two positive integers below 2^31, got {shape!r}")
    m, n = (int(x) for x in shape)
    r, c, v = np.asarray(rows), np.asarray(cols), np.asarray(vals)
    if r.ndim != 1 or r.shape != c.shape or r.shape != v.shape:
        raise ValueError(
            f"rows, cols and vals must be 1-D of one length, got {r.shape}, {c.shape}, {v.shape}"
        )
    for name, x, hi in (("rows", r, m), ("cols", c, n)):
        if x.size and not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"{name} must be integers, got dtype {x.dtype}")
        if x.size and (int(x.min()) < 0 or int(x.max()) >= hi):
            raise ValueError(f"{name} must lie in [0, {hi}), got [{int(x.min())}, {int(x.max())}]")
    v = v.astype(np.float64, copy=False)
    if not np.all(np.isfinite(v)):
        raise ValueError("vals contains NaN or inf")
    if block is None:
        block = column_block(r.size, m, n)
    elif isinstance(block, bool) or not isinstance(block, int | np.integer) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    return _pack(r.astype(np.int32, copy=False), c.astype(np.int32, copy=False), v, m, n,
                 int(block))  # fmt: skip


def _require() -> None:
    ok, why = _load()
    if not ok:
        raise RuntimeError(f"the native kernel is unavailable: {why}")


def check_packed(packed: PackedObserved, shape) -> None:
    """Raises ValueError unless ``packed`` was packed from a matrix of this ``shape``."""
    if packed.shape != tuple(shape):
        raise ValueError(f"packed entries of a {packed.shape} matrix, but U P is {tuple(shape)}")


def native_packed_products(u, p, packed: PackedObserved, threads=None, march=None):
    r"""(loss, G, H) by the kernel from entries packed by :func:`pack_observed`.

    The kernel only (no fallback, no derivative; loops under :func:`jax.vmap`); GD goes through
    :func:`~lowrank_theory.dmf.masked_products.packed_products`, which adds both. Raises
    ValueError if ``packed`` is of another shape than $UP$, RuntimeError if the kernel is
    unavailable. ``march``: run a build of the kernel for ``-march=march`` (e.g.
    ``"x86-64-v3"``, built and cached on first use) instead of the default one (for checks that
    the builds for different x86-64 levels agree); RuntimeError if that build fails.
    """
    check_packed(packed, (u.shape[0], p.shape[1]))
    target = _TARGET_PACKED if march in (None, target_arch()) else _variant_target(march)
    return _call(
        target,
        u,
        p,
        packed.ptr,
        packed.cols,
        packed.vals,
        threads=threads,
        block=np.int64(packed.block),
    )
