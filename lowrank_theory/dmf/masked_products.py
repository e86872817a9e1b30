r"""The masked low-rank residual products of deep matrix completion, and the one place that
chooses how they are computed (dense formulation, native kernel, packed entries).

One GD step (15) of a factorization whose outer factors are thin, $W_L\in\mathbb R^{m\times k}$
and $P = W_{L-1}\cdots W_1\in\mathbb R^{k\times n}$ with $k\ll m, n$ (the compressed
factorization (11), or a narrow one), needs from the $m\times n$ residual
$E = \Omega\odot(W_L P - T)$ only

$$\ell = \tfrac12\|E\|_F^2,\qquad G = E P^\top\ (m\times k),\qquad H = W_L^\top E\ (k\times n).$$

:func:`masked_lowrank_products` computes them in one of two ways, with the same result to
rounding (tested):

* ``"xla"``: the dense formulation, three $m\times n\times k$ matrix products and one fused
  select pass over $m\times n$ arrays. Runs on every backend.
* ``"native"`` (CPU): the C++ XLA FFI kernel of :mod:`lowrank_theory.dmf.native_kernel`, which
  visits only the observed entries: $O(|\Omega|k)$ arithmetic, one read of the mask, no
  $m\times n$ intermediate.

``"auto"`` (what GD uses) takes the native kernel on CPU when it is available, chosen on this
host (:func:`calibrate`: timed once against the dense formulation, the faster kept and cached;
``$LOWRANK_THEORY_NATIVE`` overrides), $1\le k\le 32$ and at most ``DENSE_ABOVE_FRACTION``
(40 %) of the entries are observed, else the dense formulation; on other backends the dense one
(:func:`jax.lax.platform_dependent`).

**What GD asks.** :mod:`lowrank_theory.dmf.factorization` asks this module three things and
knows no threshold or backend itself:

* :func:`step_path`: which formulation the step takes for these factor shapes and this mask
  (``"dense"``, ``"thin"`` or ``"thin-small"``), also the public way for tests to see which
  path runs;
* :func:`prepare_observed`: what to hand the compiled GD loop once per run. The mask and
  target are fixed for the whole run, so the observed entries are packed once, on the host
  (:func:`~lowrank_theory.dmf.native_kernel.pack_observed`), and every step reads only those 12
  bytes per observed entry (:func:`packed_products`) instead of scanning the mask and gathering
  from the dense target; up to ``PACKED_DENSE_ABOVE_FRACTION`` (70 %) observed, where it is
  still faster than dense. At $d=1000$, 20 % observed, $k=10$ the compressed GD step then takes
  a quarter to a fifth of the time of the dense one (``make bench``,
  ``dmc.compressed_step_dense_over_native``: 3.8-5.1);
* :func:`residual_products`: $(\ell, G, H)$ for the step, from the packed entries or the mask.

The kernel has no derivative of its own (``"auto"`` and :func:`packed_products`
differentiate through the dense formulation); under :func:`jax.vmap` they take the dense
formulation (batched GEMMs) and ``"native"`` loops the kernel over the batch.
:func:`dense_only` makes ``"auto"`` trace the dense formulation (for comparisons).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.custom_batching import custom_vmap

from .native_kernel import (
    MAX_WIDTH,
    PackedObserved,
    cache_dir,
    check_packed,
    host_signature,
    kernel_available,
    kernel_key,
    native_disabled,
    native_packed_products,
    native_scan_products,
    pack_entries,
    pack_observed,
)
from .native_kernel import native_status as kernel_status

__all__ = [
    "DENSE_ABOVE_FRACTION",
    "PACKED_DENSE_ABOVE_FRACTION",
    "PackedObserved",
    "calibrate",
    "dense_only",
    "dense_preferred",
    "entry_products",
    "jax_entry_products",
    "masked_lowrank_products",
    "native_applies",
    "native_status",
    "pack_entries",
    "pack_observed",
    "packed_backend",
    "packed_products",
    "prepare_observed",
    "residual_products",
    "step_path",
    "time_products",
]


def _xla(u, p, mask, target):
    e = jnp.where(mask, u @ p - target, 0.0)
    return 0.5 * jnp.sum(e * e), e @ p.T, u.T @ e


# Measured at d = 1000, k = 10, the products alone, kernel/dense time at 5, 20, 40, 50, 60, 70,
# 80, 100 % observed: mask-scanning kernel 0.17, 0.36-0.44, 0.57, 0.79-1.0, 0.90-0.93, 1.04,
# 1.19-1.24, 1.49; packed entries 0.10, 0.24, 0.42, 0.58, 0.67-0.68, 0.82, 0.98-1.03, 1.23.
# "auto" (the mask scanned every call) switches to the dense formulation above
# DENSE_ABOVE_FRACTION, decided at run time from a subsample; prepare_observed packs the
# entries for GD up to PACKED_DENSE_ABOVE_FRACTION, decided on the host from the exact count.
DENSE_ABOVE_FRACTION = 0.4
PACKED_DENSE_ABOVE_FRACTION = 0.7


def dense_preferred(mask):
    """Whether more than ``DENSE_ABOVE_FRACTION`` of a regular ~4096-entry subsample of the
    mask is observed (a traced boolean)."""
    m, n = mask.shape
    stride = max(1, int(math.sqrt(m * n / 4096)))
    sample = mask[::stride, ::stride]
    return jnp.count_nonzero(sample) > DENSE_ABOVE_FRACTION * sample.size


@custom_vmap
def _kernel_single(u, p, mask, target, packed):
    if packed is not None:  # the entries packed once per run: the kernel, no decision
        return native_packed_products(u, p, packed)
    # the observed fraction from a regular subsample of ~4096 entries: a performance decision
    # only (both branches give the same numbers), cheap even when XLA constant-folds it for a
    # closed-over mask (the full count took ~1 s of compile time at d = 1000) or does not hoist
    # it out of a GD loop
    return jax.lax.cond(dense_preferred(mask), _xla, native_scan_products, u, p, mask, target)


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
    check_packed(packed, (u.shape[0], p.shape[1]))
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
        all(jnp.dtype(t) == jnp.float64 for t in dtypes)
        and 1 <= int(k) <= MAX_WIDTH
        and kernel_available()
    )


# ----------------------------------------------------------------------------------------------
# the kernel earns its place: timed against the dense formulation once per host
# ----------------------------------------------------------------------------------------------
#: the calibration problem: d x d, this fraction observed, outer width k (a fraction of a second)
CALIBRATION_PROBLEM = (300, 0.2, 10)
_ON = ("1", "true", "yes", "on")
_DECISIONS: dict[str, dict] = {}
_DECISION_LOCK = threading.Lock()


def time_products(path: str, d: int = 300, frac: float = 0.2, k: int = 10, calls: int = 20,
                  repeats: int = 5) -> float:  # fmt: skip
    r"""Seconds per call of the masked products on a random $d\times d$ problem with ``frac``
    observed and outer width ``k`` (compile excluded; the best of ``repeats`` loops of
    ``calls`` dependent calls): ``path="native"`` the kernel on packed entries (what GD runs),
    ``"dense"`` the dense formulation."""
    if path not in ("native", "dense"):
        raise ValueError(f"path must be 'native' or 'dense', got {path!r}")
    rng = np.random.default_rng(0)
    mask = rng.random((d, d)) < frac
    target = np.where(mask, rng.standard_normal((d, d)), 0.0)
    u0, p0 = rng.standard_normal((d, k)), rng.standard_normal((k, d))
    with jax.default_device(jax.devices("cpu")[0]):
        if path == "native":
            packed = pack_observed(mask, target)
            prod = lambda u, p: native_packed_products(u, p, packed)  # noqa: E731
        else:
            m, t = jnp.asarray(mask), jnp.asarray(target)
            prod = lambda u, p: _xla(u, p, m, t)  # noqa: E731

        def body(_, x):  # each call depends on the last: nothing is hoisted out of the loop
            _, g, h = prod(*x)
            return x[0] + 1e-12 * g, x[1] + 1e-12 * h

        fn = jax.jit(lambda u, p: jax.lax.fori_loop(0, calls, body, (u, p)))
        u, p = jnp.asarray(u0), jnp.asarray(p0)
        jax.block_until_ready(fn(u, p))  # compile
        best = math.inf
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(u, p))
            best = min(best, (time.perf_counter() - t0) / calls)
    return best


def _decision_file():
    key = kernel_key()
    return None if key is None else cache_dir() / f"dispatch-{key}.json"


def _timed_decision() -> dict:
    d, frac, k = CALIBRATION_PROBLEM
    t_native = t_dense = math.inf
    for _ in range(2):  # interleaved: a burst of load hits one window, not one formulation
        t_native = min(t_native, time_products("native", d, frac, k))
        t_dense = min(t_dense, time_products("dense", d, frac, k))
    native = t_native < t_dense
    what = f"d={d}, {frac:.0%} observed, width {k}"
    return {
        "path": "native" if native else "dense",
        "why": (
            f"timed on this host ({what}): native kernel {t_native * 1e3:.3f} ms vs dense "
            f"formulation {t_dense * 1e3:.3f} ms per call; the "
            + ("kernel is faster" if native else "kernel is slower, so GD uses the dense one")
        ),
        "native_s": t_native,
        "dense_s": t_dense,
        "host": host_signature(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def calibrate(refresh: bool = False) -> dict:
    """Which formulation ``"auto"`` and GD use on this host, and why: ``{"path": "native" |
    "dense", "why", "native_s", "dense_s", ...}``.

    ``$LOWRANK_THEORY_NATIVE=0`` (dense) or ``=1`` (native, not timed) decide; unset, the
    masked products are timed once per host on ``CALIBRATION_PROBLEM`` (:func:`time_products`,
    both formulations, best of two interleaved windows), the faster is kept, and the decision is
    cached beside the built kernel (``dispatch-<build key>.json``: per CPU model and flags,
    compiler version, kernel source and jaxlib; delete it, or pass ``refresh=True``, to time
    again). The kernel is never chosen when it measured slower than the dense formulation.
    """
    env = os.environ.get("LOWRANK_THEORY_NATIVE", "").strip().lower()
    if native_disabled():
        return {"path": "dense", "why": "disabled by LOWRANK_THEORY_NATIVE=0"}
    if not kernel_available():
        return {"path": "dense", "why": f"the native kernel is unavailable: {kernel_status()['reason']}"}  # fmt: skip
    if env in _ON:
        return {"path": "native", "why": f"forced by LOWRANK_THEORY_NATIVE={env} (not timed)"}
    path = _decision_file()
    with _DECISION_LOCK:
        if not refresh and str(path) in _DECISIONS:
            return _DECISIONS[str(path)]
        decision = None
        if not refresh and path.exists():
            try:
                decision = json.loads(path.read_text())
                decision["why"] += f" (cached in {path})"
            except (OSError, ValueError, KeyError, TypeError):
                decision = None
        if decision is None or decision.get("path") not in ("native", "dense"):
            # in a thread of its own: no trace of the caller's (jit, vmap) is active there
            box: list = []

            def timed():
                try:
                    box.append(_timed_decision())
                except Exception as exc:  # the kernel fails to run: the dense formulation
                    box.append({"path": "dense", "why": f"timing the kernel failed: {exc!r}"})

            worker = threading.Thread(target=timed)
            worker.start()
            worker.join()
            decision = box[0]
            if "native_s" not in decision:  # a failure: not cached, tried again next process
                _DECISIONS[str(path)] = decision
                return decision
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(decision, indent=1))
                os.replace(tmp, path)  # atomic: concurrent processes agree
            except OSError:
                pass  # an unwritable cache: timed again next time
        _DECISIONS[str(path)] = decision
        return decision


def native_status() -> dict[str, object]:
    """Whether the native masked kernel is built and in use on CPU, and why: ``available`` and
    ``reason`` (the build), ``path`` (``"native"`` or ``"dense"``: what ``"auto"`` and GD
    use), ``why`` and the measured ``native_s``/``dense_s`` (:func:`calibrate`), ``host``
    (CPU model, vector extensions, compiler), ``source`` and ``cache``."""
    status = dict(kernel_status())
    decision = calibrate()
    status.update({
        "path": decision["path"],
        "why": decision["why"],
        "native_s": decision.get("native_s"),
        "dense_s": decision.get("dense_s"),
        "host": host_signature(),
    })  # fmt: skip
    return status


def native_applies(u_shape, dtype) -> bool:
    """Whether ``"auto"`` would consider the native kernel for an outer factor of this shape
    (usable, and chosen on this host by :func:`calibrate`; it still takes the dense formulation
    above ``DENSE_ABOVE_FRACTION`` observed)."""
    return (
        not _DENSE_ONLY.get()
        and _native_usable(u_shape[-1], dtype)
        and calibrate()["path"] == "native"
    )


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
            status = native_status()
            raise ValueError(
                "the native kernel needs float64 operands and 1 <= k <= 32"
                if status["available"]
                else f"the native kernel is unavailable: {status['reason']}"
            )
        return native_scan_products(u, p, mask, target, threads)
    if (
        _DENSE_ONLY.get()
        or not _native_usable(u.shape[1], u.dtype, p.dtype, target.dtype)
        or calibrate()["path"] != "native"
    ):
        return _xla(u, p, mask, target)
    return _kernel_or_dense(u, p, mask, target)


# ----------------------------------------------------------------------------------------------
# what GD asks: the step's path, the entries packed once per run, the residual products
# ----------------------------------------------------------------------------------------------
def step_path(weights, mask) -> str:
    r"""Which formulation a GD step on ``weights`` (``(W_1, ..., W_L)``) with ``mask`` takes.

    * ``"dense"``: the $d_L\times d_0$ residual, back-propagated through every factor (no
      mask, depth 1, a last factor that is not thin, or the kernel not usable for it);
    * ``"thin"``: a mask, depth $\ge 2$ and a thin last factor $W_L$ ($k < d_L$) the native
      kernel takes (float64, $k\le$ ``MAX_WIDTH``, kernel built, not inside
      :func:`dense_only`): the residual enters through :func:`residual_products` only, then
      back-propagation through the middle factors;
    * ``"thin-small"``: as ``"thin"``, and every middle factor $W_2,\dots,W_{L-1}$ is at most
      ``MAX_WIDTH`` on each side (e.g. the $2r\times 2r$ core of (11)): the chain is contracted
      in their coordinates
      (:func:`~lowrank_theory.dmf.factorization.contracted_gradients`).

    :func:`~lowrank_theory.dmf.factorization.loss_and_gradients` dispatches on this value, so
    it is also what tests read to see which path runs.
    """
    thin = (
        mask is not None
        and len(weights) >= 2
        and weights[-1].shape[1] < weights[-1].shape[0]
        and native_applies(weights[-1].shape, weights[-1].dtype)
    )
    if not thin:
        return "dense"
    if all(max(w.shape) <= MAX_WIDTH for w in weights[1:-1]):
        return "thin-small"
    return "thin"


def prepare_observed(weights, target, mask) -> PackedObserved | None:
    r"""What GD on this problem hands every step as ``packed``, once per run.

    The observed entries packed once (:func:`pack_observed`) when the step takes the masked
    low-rank products (:func:`step_path` not ``"dense"``) on the CPU backend, with a concrete
    mask and target, and at most ``PACKED_DENSE_ABOVE_FRACTION`` (70 %) of the entries are
    observed (above, the dense formulation is as fast); else None (the step then reads the
    mask, :func:`masked_lowrank_products`).
    """
    if (
        step_path(weights, mask) == "dense"
        or isinstance(mask, jax.core.Tracer)
        or isinstance(target, jax.core.Tracer)
        or jax.default_backend() != "cpu"  # the kernel runs on CPU only
    ):
        return None
    if float(np.mean(np.asarray(mask))) > PACKED_DENSE_ABOVE_FRACTION:
        return None
    return pack_observed(mask, target)


def residual_products(wl, p, mask, target, packed=None):
    r"""$(\ell, E P^\top, W_L^\top E)$ of a thin step, $E=\Omega\odot(W_L P - T)$.

    From the entries packed once per run when ``packed`` is given (:func:`prepare_observed`,
    :func:`packed_products`), else from the mask (:func:`masked_lowrank_products`,
    ``"auto"``). The same numbers to rounding either way.
    """
    if packed is not None:
        return packed_products(wl, p, mask, target, packed)
    return masked_lowrank_products(wl, p, mask, target)


# ----------------------------------------------------------------------------------------------
# products on packed entries alone (no mask, no dense target): the large-scale completion path
# ----------------------------------------------------------------------------------------------
#: entries per chunk of the pure-JAX packed products (each chunk gathers chunk x k values twice)
JAX_CHUNK = 1 << 18
_PACKED_BACKENDS = ("auto", "native", "jax")


def _chunk_size(cap: int, chunk: int | None) -> int:
    """The largest power of two dividing the capacity ``cap`` and at most ``chunk``."""
    limit = JAX_CHUNK if chunk is None else max(1, int(chunk))
    c = cap & -cap  # _capacity() is a multiple of a power of two
    while c > limit:
        c //= 2
    return c


def jax_entry_products(u, p, packed: PackedObserved, *, chunk: int | None = None):
    r"""$(\tfrac12\|E\|_F^2, EP^\top, U^\top E)$, $E = \Omega\odot(UP - T)$ with $\Omega, T$ the
    packed entries, in pure JAX: gathers of the rows of $U$ and $P^\top$ at the entries'
    coordinates and scatter-adds (``segment_sum``) of the errors times them, ``chunk`` entries
    at a time (a :func:`jax.lax.scan`; default ``JAX_CHUNK``), so the memory beyond the
    operands is $O(\mathrm{chunk}\cdot k + (m+n)k)$. Runs on every backend and is
    differentiable; the accelerator path of :func:`entry_products`.
    """
    check_packed(packed, (u.shape[0], p.shape[1]))
    m, n = packed.shape
    cap = packed.cols.shape[0]
    c = _chunk_size(cap, chunk)
    pt = p.T
    xs = (packed.rows.reshape(-1, c), packed.cols.reshape(-1, c), packed.vals.reshape(-1, c))

    def body(carry, x):
        loss, g, ht = carry
        r, col, v = x
        ur = u.at[r].get(mode="fill", fill_value=0.0)  # padding rows (= m) read zeros
        pc = pt.at[col].get(mode="fill", fill_value=0.0)
        e = jnp.sum(ur * pc, axis=1) - v  # padding: 0 - 0
        g = g.at[r].add(e[:, None] * pc, mode="drop")
        ht = ht.at[col].add(e[:, None] * ur, mode="drop")
        return (loss + jnp.dot(e, e), g, ht), None

    zero = (jnp.zeros((), u.dtype), jnp.zeros((m, u.shape[1]), u.dtype),
            jnp.zeros((n, u.shape[1]), u.dtype))  # fmt: skip
    (loss, g, ht), _ = jax.lax.scan(body, zero, xs)
    return 0.5 * loss, g, ht.T


def packed_backend(k: int, dtype=jnp.float64, backend: str = "auto") -> str:
    """Which implementation :func:`entry_products` runs on CPU for outer width ``k``:
    ``"native"`` (the kernel: built, enabled, float64, $1\\le k\\le$ ``MAX_WIDTH``) or
    ``"jax"`` (:func:`jax_entry_products`). ``backend="jax"`` forces the pure-JAX path;
    ``"native"`` raises ValueError where the kernel cannot run. Off CPU it is always the
    pure-JAX path (decided when traced, :func:`jax.lax.platform_dependent`)."""
    if backend not in _PACKED_BACKENDS:
        raise ValueError(f"backend must be one of {_PACKED_BACKENDS}, got {backend!r}")
    if backend == "jax":
        return "jax"
    usable = _native_usable(k, dtype)
    if backend == "native" and not usable:
        status = native_status()
        raise ValueError(
            "the native kernel needs float64 operands and 1 <= k <= 32"
            if status["available"]
            else f"the native kernel is unavailable: {status['reason']}"
        )
    return "native" if usable else "jax"


def entry_products(u, p, packed: PackedObserved, *, backend: str = "auto", threads=None):
    r"""$(\tfrac12\|E\|_F^2, EP^\top, U^\top E)$ for $E=\Omega\odot(UP-T)$ from packed entries
    alone (:func:`pack_entries`): no $m\times n$ array anywhere, $O(|\Omega|k)$ work.

    ``backend``: ``"auto"`` (the native kernel on CPU where :func:`packed_backend` allows, the
    pure-JAX :func:`jax_entry_products` on every other backend and on CPU otherwise; chosen
    when traced by :func:`jax.lax.platform_dependent`), ``"native"`` (CPU only) or ``"jax"``
    (pure JAX everywhere: how the accelerator path is tested on CPU). Both give the same
    numbers to rounding (tested). ``threads``: the kernel's thread count.
    """
    check_packed(packed, (u.shape[0], p.shape[1]))
    which = packed_backend(u.shape[1], u.dtype, backend)
    if which == "jax":
        return jax_entry_products(u, p, packed)
    if backend == "native":
        return native_packed_products(u, p, packed, threads)
    return jax.lax.platform_dependent(
        u, p, packed,
        cpu=lambda a, b, pk: native_packed_products(a, b, pk, threads),
        default=jax_entry_products,
    )  # fmt: skip
