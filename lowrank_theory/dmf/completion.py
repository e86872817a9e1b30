r"""Deep matrix completion instances and batched sweeps (seed 004, Section 3, Figs. 2, 5, 10).

* :func:`completion_instance`: a rank-$r^\star$ ground truth $\Phi$ and a Bernoulli mask.
* :func:`padded_narrow_init`: a width-$w$ factorization embedded in width $D$ by zero padding.
  GD preserves the zero blocks exactly (their gradients are products with zero blocks), so a
  width sweep becomes a batch of equal-shape problems that :func:`run_gd_batch` vmaps.
* :func:`run_gd_batch`: GD (15) on a batch of problems through :func:`jax.vmap`; with several
  devices the batch axis is sharded across them (``jax.sharding``; on CPU emulate devices with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=4``), and across processes after
  :func:`jax.distributed.initialize` (every process calls it with the same arrays; each
  computes the batch entries of its own devices and the records are gathered to all; on CPU
  the gloo collectives, JAX's default). The numbers are the same as on one device (tested,
  also with two local CPU processes). With ``chunking=``
  (:class:`~lowrank_theory.dmf.chunking.Chunking`) the batch runs in chunks, bitwise the
  one-scan run, with progress, Ctrl-C, checkpoints and resume between them (the figure scripts'
  ``sweep.chunks``).
* :func:`run_gd_from_inits`: the same for many initialisations (e.g. a width sweep of
  :func:`padded_narrow_init`) of one problem.
* :func:`first_below`: iterations to reach a tolerance from strided records.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..core.linalg import random_with_spectrum
from ..core.precision import DTYPE
from ..core.validation import check_int
from .chunking import Chunking, run_chunked
from .factorization import RECORDABLE, gd_scan, gd_steps, orthogonal_init

__all__ = [
    "completion_instance",
    "first_below",
    "padded_narrow_init",
    "run_gd_batch",
    "run_gd_from_inits",
]


def completion_instance(
    key: Array, d: int, rank: int, frac: float, *, scale: str = "unit"
) -> tuple[Array, Array]:
    r"""$(\Phi, \Omega)$: $\Phi = U\operatorname{diag}(s)V^\top$ (Haar $U, V$, rank $r^\star$) and
    $\Omega_{ij}\sim\mathrm{Bernoulli}(p)$.

    ``scale="unit"``: all $r^\star$ singular values 1 ($\|\Phi\|_2=1$); ``"entries"``: singular
    values $d/\sqrt{r^\star}$, so that entries are $O(1)$ (the reference code's scale).
    """
    d = check_int(d, "d", lo=2)
    rank = check_int(rank, "rank", lo=1, hi=d)
    if not 0 < frac <= 1:
        raise ValueError(f"observed fraction must be in (0, 1], got {frac}")
    k1, k2 = jax.random.split(key)
    if scale not in ("unit", "entries"):
        raise ValueError(f"scale must be 'unit' or 'entries', got {scale!r}")
    s = np.ones(rank) * (1.0 if scale == "unit" else d / math.sqrt(rank))
    phi = random_with_spectrum(k1, d, d, s)
    mask = jax.random.uniform(k2, (d, d), dtype=DTYPE) < frac
    if not bool(mask.any()):
        raise ValueError("the drawn mask observes no entry; raise frac")
    return phi, mask


def padded_narrow_init(key: Array, d: int, width: int, depth: int, eps, pad_to: int):
    r"""Width-``width`` factorization $d\to w\to\dots\to w\to d$ zero-padded to ``pad_to``.

    Inner widths become ``pad_to``; zero rows/columns stay zero under GD, so the padded run
    equals the narrow one (up to summation order).
    """
    ws = orthogonal_init(key, [d] + [width] * (depth - 1) + [d], depth, eps)
    out = []
    for l, w in enumerate(ws):
        rows = d if l == depth - 1 else pad_to
        cols = d if l == 0 else pad_to
        out.append(jnp.zeros((rows, cols), dtype=DTYPE).at[: w.shape[0], : w.shape[1]].set(w))
    return tuple(out)


def run_gd_batch(
    weights0: Sequence[Array],
    target: Array,
    mask: Array | None,
    truth: Array | None,
    *,
    lr: float,
    steps: int,
    record_every: int,
    record: Sequence[str] = ("recovery",),
    weight_decay: float = 0.0,
    devices: Sequence | None = None,
    chunking: Chunking | None = None,
) -> dict[str, np.ndarray]:
    r"""GD (15) on a batch: every array has a leading batch axis $B$ (targets/masks too).

    Args:
        weights0: tuple of $(B, d_l, d_{l-1})$ arrays.
        target, mask, truth: $(B, d_L, d_0)$ (mask boolean; ``None`` for full observation;
            ``truth`` None = target).
        lr, weight_decay: shared $\eta$, $\lambda$.
        steps, record_every: as in :func:`~lowrank_theory.dmf.factorization.run_gd`.
        devices: devices to shard the batch over (default: all of ``jax.devices()``, every
            process's after :func:`jax.distributed.initialize`); the batch is padded to a
            multiple of their number and the padding dropped.
        chunking: None (default): one compiled scan. A
            :class:`~lowrank_theory.dmf.chunking.Chunking`: the same iterates and records
            bitwise, in chunks (whole records or pieces of one) with progress, checkpoint and
            resume hooks between them, as in ``run_gd``. The ``RunState`` carry is the
            padded batch of factors (gathered to every process when the batch spans several).

    Returns:
        records (NumPy) with leading axes (B, n_records + 1).
    """
    names = tuple(sorted(set(record)))
    if any(n not in RECORDABLE for n in names):
        raise ValueError(f"record names must be among {RECORDABLE}")
    steps = check_int(steps, "steps", lo=1)
    stride = check_int(record_every, "record_every", lo=1)
    if steps % stride:
        raise ValueError("steps must be a multiple of record_every")
    if not bool(jnp.all(jnp.isfinite(target))):
        raise ValueError("target contains NaN or inf")
    b = int(weights0[0].shape[0])
    devices = list(jax.devices() if devices is None else devices)
    pad = (-b) % len(devices)
    if truth is None:
        truth = target

    def padb(x):
        if x is None or pad == 0:
            return x
        return jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)], axis=0)

    place = _placement(devices)
    ws = place(tuple(padb(w) for w in weights0))
    problem = place((padb(target), padb(mask), padb(truth)))
    rates = {"lrs": (float(lr),) * len(ws), "decays": (float(weight_decay),) * len(ws)}

    def advance(w, n):
        w, recs = _batch_scan(place(w), *problem, **rates, n_records=n, stride=stride, names=names)
        return w, jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 1, 0), _gathered(recs))

    if chunking is None:
        recs = advance(ws, steps // stride)[1]
    else:
        sig = {"driver": "run_gd_batch", "steps": steps, "stride": stride, "records": list(names),
               "batch": b, "shapes": [list(w.shape) for w in ws]}  # fmt: skip
        if chunking.on_chunk is not None and jax.process_count() > 1:
            chunking = dataclasses.replace(chunking, on_chunk=_with_host_carry(chunking.on_chunk))
        recs = run_chunked(
            advance, ws, n_records=steps // stride, stride=stride, signature=sig,
            chunking=chunking,
            advance_steps=lambda w, n: _batch_steps(place(w), *problem[:2], **rates, n=n),
        )[1]  # fmt: skip
    return jax.tree_util.tree_map(lambda v: np.moveaxis(np.asarray(v), 0, 1)[:b], recs)


@partial(jax.jit, static_argnames=("lrs", "decays", "n_records", "stride", "names"))
def _batch_scan(ws, target, mask, truth, *, lrs, decays, n_records, stride, names):
    """:func:`~lowrank_theory.dmf.factorization.gd_scan` vmapped over the batch: (final
    factors, records). The per-layer ``lrs``, ``decays`` (tuples) are compile-time constants."""
    lrs, decays = jnp.asarray(lrs, dtype=DTYPE), jnp.asarray(decays, dtype=DTYPE)

    def one(w, t, m, tr):
        return gd_scan(w, t, m, tr, lrs, decays, n_records=n_records, stride=stride,
                       names=names, custom=None)  # fmt: skip

    return jax.vmap(one)(ws, target, mask, truth)


@partial(jax.jit, static_argnames=("lrs", "decays", "n"))
def _batch_steps(ws, target, mask, *, lrs, decays, n):
    """``n`` steps of :func:`~lowrank_theory.dmf.factorization.gd_steps` on the batch."""
    lrs, decays = jnp.asarray(lrs, dtype=DTYPE), jnp.asarray(decays, dtype=DTYPE)
    return jax.vmap(lambda w, t, m: gd_steps(w, t, m, lrs, decays, n=n))(ws, target, mask)


def _placement(devices):
    """The function laying batch arrays out along ``devices`` (identity on one device; arrays
    already laid out so are left as they are, e.g. a chunked run's carry)."""
    if len(devices) == 1:
        return lambda x: x
    sh = NamedSharding(Mesh(np.array(devices), ("b",)), P("b"))

    def place(tree):
        leaves = jax.tree_util.tree_leaves(tree)
        if all(getattr(x, "sharding", None) == sh for x in leaves):
            return tree
        return _shard_batch(tree, sh)

    return place


def _gathered(tree):
    """``tree`` with arrays other processes hold parts of gathered to this one."""
    leaves = jax.tree_util.tree_leaves(tree)
    if all(isinstance(v, jax.core.Tracer) or v.is_fully_addressable for v in leaves):
        return tree
    return multihost_utils.process_allgather(tree, tiled=True)


def _with_host_carry(on_chunk):
    """``on_chunk`` handed the state with its carry gathered (a batch across processes)."""

    def call(state):
        on_chunk(dataclasses.replace(state, carry=_gathered(state.carry)))

    return call


def _shard_batch(args, sharding):
    """The batch arrays laid out along ``sharding``'s batch axis. In one process a
    :func:`jax.device_put`; across processes (:func:`jax.distributed.initialize`, every
    process holding the same full arrays) each process hands over the slices of its own
    devices (:func:`jax.make_array_from_callback`)."""
    if jax.process_count() == 1:
        return jax.device_put(args, sharding)

    def global_array(x):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree_util.tree_map(global_array, args)


def run_gd_from_inits(
    inits: Sequence[Sequence[Array]],
    target: Array,
    mask: Array | None,
    truth: Array | None,
    **kw,
) -> dict[str, np.ndarray]:
    r"""GD (15) from each of ``inits`` on one problem: :func:`run_gd_batch` on the stacked
    initialisations, with ``target``, ``mask`` and ``truth`` (each $d_L	imes d_0$) broadcast
    to the batch.

    Args:
        inits: $B$ initialisations, each a tuple $(W_1,\dots,W_L)$ of one set of shapes (e.g.
            :func:`padded_narrow_init` for several widths).
        target, mask, truth: the one problem (``mask``, ``truth`` may be None).
        kw: as in :func:`run_gd_batch` (``lr``, ``steps``, ``record_every``, ``record``, ...).

    Returns:
        records (NumPy) with leading axes (B, n_records + 1), in the order of ``inits``.
    """
    depth = len(inits[0])
    ws = tuple(jnp.stack([w[l] for w in inits]) for l in range(depth))
    b = len(inits)

    def batch(x):
        return None if x is None else jnp.broadcast_to(x, (b, *x.shape))

    return run_gd_batch(ws, batch(target), batch(mask), batch(truth), **kw)


def first_below(values: np.ndarray, steps: np.ndarray, tol: float) -> float:
    r"""The first recorded iteration at which ``values`` $<$ ``tol`` (``inf`` if never)."""
    idx = np.nonzero(np.asarray(values) < tol)[0]
    return float(steps[idx[0]]) if idx.size else math.inf
