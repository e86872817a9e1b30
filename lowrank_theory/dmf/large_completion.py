r"""Deep matrix completion at scale: memory $O(|\Omega| + (d_1+d_2)r)$ end to end (seed 004,
Section 3, the compressed problem (11)).

Nothing of size $d_1\times d_2$ is ever formed. The pieces, each with its memory:

* **Observed entries** (:func:`sample_observed`, :func:`sparse_completion_instance`): $|\Omega|$
  coordinates drawn uniformly without replacement from a :func:`jax.random.key` (linear indices
  in rounds, the first $|\Omega|$ distinct ones kept), then packed once
  (:func:`~lowrank_theory.dmf.native_kernel.pack_entries`): int32 rows and columns, float64
  values, int64 offsets per (column block, row): $16|\Omega| + 8 d_1\lceil d_2/b\rceil$ bytes,
  the block $b$ wide enough for the offsets to be $O(|\Omega|)$.
* **Ground truth** $\Phi = LR^\top$ by its factors (:class:`LowRankTruth`, $(d_1+d_2)r^\star$);
  its observed values are computed at the coordinates, a chunk at a time.
* **Initialisation.** A full-width $L$-layer factorization with scaled orthogonal $W_l(0)$
  (3) is never stored: everything the compressed problem needs from it is its end-to-end
  product $W_{L:1}(0) = \prod_l\epsilon_l\,O$ (the proof of Theorem 2.1 and the Section 2.3
  recipe see $W_l(0)$ only through $O$ and the scales). We take $O$ a random *signed
  permutation* of size $d=\max(d_1,d_2)$ (:class:`SignedPermutation`, $O(d)$ memory, applied
  by a gather), e.g. $W_1 = \epsilon_1Q_1$, $W_2=\epsilon_2Q_2$,
  $W_3=\epsilon_3 O Q_1^\top Q_2^\top$ with Haar $Q_l$ (each $W_l$ then Haar-distributed); a
  rectangular $\Phi$ is the top-left block of a $d\times d$ problem with the other rows or
  columns unobserved.
* **Compression setup** (:func:`compress_sparse`). With $c=\prod_{l\ge2}\epsilon_l$ and
  $Q=W_{L:2}(0)/c$ orthogonal, the gradient at initialisation is
  $G_1 = c\,Q^\top E$, $E = \Omega\odot(\prod_l\epsilon_l O - \Phi)$ (``method="gradient"``;
  ``"exact"`` drops the $O$ term: $\Psi$ of Lemma E.1), and the stacked matrix of
  :func:`~lowrank_theory.dmf.compression.subspaces_from_gradient` is
  $M = [G_1;\ G_1^\top W_1(0)/\epsilon_1] = c\,\mathrm{diag}(Q^\top, I)\,[E;\ E^\top O]$: its
  right singular vectors are those of the sparse $[E;\ E^\top O]$. Its top $2r$ are found by
  block subspace iteration with Rayleigh-Ritz on $A = E^\top E + O^\top EE^\top O$ (four
  packed products of width $2r+$``oversample`` per iteration, started from a Gaussian block
  drawn from the key: deterministic), stopped when every kept Ritz pair has residual
  $\le$ ``tol``$\cdot\lambda_1$. Then $V_{1,1}$ = those vectors, $U_{L,1} = OV_{1,1}$ and
  $\widetilde W_l(0) = \epsilon_lI_{2r}$, as in :func:`~lowrank_theory.dmf.compression.compress`
  (tested against it on small problems). Why not ``scipy.sparse.linalg.svds``: the block
  iteration runs the same packed products as GD (the native kernel on CPU, multi-threaded; the
  pure-JAX path on accelerators), needs no second (CSR) copy of the entries, and its result
  is a function of the key alone. Memory $O(d(2r+\mathrm{oversample}))$.
* **Compressed GD** (:func:`run_sparse_compressed`): (11) on $(V_{1,1}^\top,\widetilde
  W_1,\dots,\widetilde W_L,U_{L,1})$ with rates $(\gamma\eta,\eta,\dots,\eta,\gamma\eta)$. A
  step is one call of the packed products
  (:func:`~lowrank_theory.dmf.masked_products.entry_products`: $\ell$, $G=EP^\top$,
  $H=U^\top E$ with $P = \widetilde W_{L:1}V^\top$) plus $O((d_1+d_2)k^2)$ for the chain
  contracted in $k\times k$ coordinates: $O(|\Omega|k + dk^2)$ per step. Steps run in jitted
  chunks (:func:`jax.lax.fori_loop`), the recovery error is recorded after each chunk and the
  run stops at ``tol``.
* **Recovery error** (:func:`factor_recovery_error`): $f-\Phi = [U\ L]\,\mathrm{diag}(A,
  -I)\,[V\ R]^\top$, so with thin QR factorizations $[U\ L] = Q_aR_a$, $[V\ R]=Q_bR_b$,
  $\|f-\Phi\|_F = \|R_a\,\mathrm{diag}(A,-I)\,R_b^\top\|_F$: exact to rounding relative to
  $\|\Phi\|_F$ (no cancellation of squared norms), $O(d(k+r^\star)^2)$.

Hyper-parameters adapted to the sampling rate (:func:`lr_for_sampling`): the loss is
$\tfrac12$ the *sum* over observed entries, whose curvature scales with the observed fraction
$p = |\Omega|/(d_1d_2)$, so $\eta = c/p$ with Fig. 5's $c$ (``dmc.compressed_seconds_to_1e-12``
uses $c=0.6$, 90 % of the stability limit $2/(pL\|\Phi\|_2^{2-2/L})$); $\epsilon_l$, $L$ and
$\gamma$ as in Fig. 5.

This module holds compressed GD and the recovery error; the problem (truth, observed entries,
:func:`lr_for_sampling`) is built in :mod:`~lowrank_theory.dmf.large_problem` and the
compression set up in :mod:`~lowrank_theory.dmf.large_compression`; their names are also
importable from here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from ..core.precision import DTYPE
from ..core.validation import check_float, check_int
from .large_compression import (
    SignedPermutation,
    SparseCompressed,
    compress_sparse,
    signed_permutation,
)
from .large_problem import DRAW_CHUNK as DRAW_CHUNK  # the old path of the tuning constants
from .large_problem import VALUE_CHUNK as VALUE_CHUNK
from .large_problem import (
    LowRankTruth,
    SparseCompletion,
    low_rank_truth,
    lr_for_sampling,
    sample_observed,
    sparse_completion_instance,
    truth_values,
)
from .masked_products import entry_products

__all__ = [
    "LowRankTruth",
    "SignedPermutation",
    "SparseCompletion",
    "SparseCompressed",
    "SparseRun",
    "compress_sparse",
    "factor_recovery_error",
    "low_rank_truth",
    "lr_for_sampling",
    "run_sparse_compressed",
    "sample_observed",
    "signed_permutation",
    "sparse_completion_instance",
    "sparse_step",
    "truth_values",
]


def _chain(mids):
    """W_L ... W_1 of small square factors."""
    out = mids[0]
    for w in mids[1:]:
        out = w @ out
    return out


def factor_recovery_error(u, a, v, truth: LowRankTruth) -> Array:
    r"""$\|UAV^\top - \Phi\|_F / \|\Phi\|_F$ without forming either matrix (module docstring):
    thin QR factorizations of $[U\ L]$ and $[V\ R]$, then a $(k+r)\times(k+r)$ product."""
    ra = jnp.linalg.qr(jnp.concatenate([u, truth.left], axis=1), mode="r")
    rb = jnp.linalg.qr(jnp.concatenate([v, truth.right], axis=1), mode="r")
    k, r = a.shape[0], truth.rank
    c = jnp.zeros((k + r, k + r), DTYPE).at[:k, :k].set(a).at[k:, k:].set(-jnp.eye(r, dtype=DTYPE))
    phi = jnp.zeros_like(c).at[k:, k:].set(jnp.eye(r, dtype=DTYPE))
    return jnp.linalg.norm(ra @ c @ rb.T) / jnp.linalg.norm(ra @ phi @ rb.T)


def sparse_step(state, entries, lrs, decay, backend: str = "auto"):
    r"""One GD step of (11) on packed entries: ``state = (U, (W~_1, ..., W~_L), V)``; ``lrs`` =
    $(\gamma\eta, \eta)$ (outer, inner), ``decay`` $\lambda$ on the inner factors. Returns
    (loss before the step, new state). The chain is contracted in $k\times k$ coordinates
    (as :func:`~lowrank_theory.dmf.factorization.contracted_gradients`): with
    $M=\widetilde W_{L:1}$, $(\ell, G, H)$ = the packed products of $(U, MV^\top)$,
    $\nabla_U = G$, $\nabla_V = H^\top M$, $\nabla_{\widetilde W_l} = A_l^\top (HV) B_l^\top$."""
    u, mids, v = state
    outer, inner = lrs
    n = len(mids)
    below = [None]  # below[i] = W_i ... W_1
    for w in mids:
        below.append(w if below[-1] is None else w @ below[-1])
    above = [None]  # above[i] = W_L ... W_{L-i+1}
    for w in reversed(mids):
        above.append(w if above[-1] is None else above[-1] @ w)
    m = below[-1]
    loss, g, h = entry_products(u, m @ v.T, entries, backend=backend)
    c = h @ v  # U^T E V
    grads = []
    for i in range(n):
        a, b = above[n - 1 - i], below[i]
        gi = c if a is None else a.T @ c
        grads.append(gi if b is None else gi @ b.T)
    new_mids = tuple(
        (1.0 - inner * decay) * w - inner * gw for w, gw in zip(mids, grads, strict=True)
    )
    return loss, (u - outer * g, new_mids, v - outer * (h.T @ m))


@partial(jax.jit, static_argnames=("n_steps", "backend"), donate_argnums=(0,))
def _gd_chunk(state, entries, truth, lrs, decay, *, n_steps, backend):
    def body(_, carry):
        st, _ = carry
        return sparse_step(st, entries, lrs, decay, backend)[::-1]

    st, loss = jax.lax.fori_loop(0, n_steps, body, (state, jnp.zeros((), DTYPE)))
    u, mids, v = st
    return st, loss, factor_recovery_error(u, _chain(mids), v, truth)


@dataclass(frozen=True)
class SparseRun:
    r"""The result of :func:`run_sparse_compressed`: the final factors, and per record (after
    every ``record_every`` steps, and at step 0) ``steps``, ``recovery`` (relative error of
    $f_C$), ``loss`` (the loss at the last step of the chunk, NaN at step 0) and ``seconds``
    (wall time since the start of GD, compile excluded where the chunk was compiled before).
    ``reached``: the first recorded step with recovery $\le$ ``tol`` (None if never)."""

    u: Array
    weights: tuple[Array, ...]
    v: Array
    steps: np.ndarray
    recovery: np.ndarray
    loss: np.ndarray
    seconds: np.ndarray
    reached: int | None
    info: dict = field(default_factory=dict)


def run_sparse_compressed(
    comp: SparseCompressed,
    problem: SparseCompletion,
    *,
    lr: float,
    steps: int,
    gamma: float = 0.01,
    weight_decay: float = 0.0,
    tol: float | None = None,
    record_every: int = 50,
    backend: str = "auto",
    progress: Callable[[dict], None] | None = None,
) -> SparseRun:
    r"""Compressed GD (11) on the packed entries, from ``comp``, for at most ``steps`` steps.

    Rates $\gamma\eta$ on $U_{L,1}, V_{1,1}$ and $\eta$ (with weight decay $\lambda$) on the
    $\widetilde W_l$, as :func:`~lowrank_theory.dmf.compression.run_compressed` (the same
    iterates to rounding, tested). Runs ``record_every`` steps per jitted chunk; after each
    chunk the exact recovery error is recorded (:func:`factor_recovery_error`), ``progress``
    (if given) is called with ``{"step", "recovery", "loss", "seconds"}``, and the run stops
    once the error is $\le$ ``tol``. Ctrl-C between chunks stops it cleanly (the records so far
    are returned, ``info["interrupted"]`` True).

    Raises:
        ValueError: bad rates, steps, record_every or tol; ``comp`` not made for ``problem``.
        FloatingPointError: the iterates became non-finite (lower ``lr``).
    """
    lr = check_float(lr, "lr", lo=0.0, lo_open=True)
    gamma = check_float(gamma, "gamma", lo=0.0)
    weight_decay = check_float(weight_decay, "weight_decay", lo=0.0)
    steps = check_int(steps, "steps", lo=1)
    stride = check_int(record_every, "record_every", lo=1)
    if tol is not None:
        tol = check_float(tol, "tol", lo=0.0)
    if comp.u.shape[0] != problem.shape[0] or comp.v.shape[0] != problem.shape[1]:
        raise ValueError(
            f"comp has factors for {(comp.u.shape[0], comp.v.shape[0])}, problem is {problem.shape}"
        )
    lrs = (jnp.asarray(gamma * lr, DTYPE), jnp.asarray(lr, DTYPE))
    decay = jnp.asarray(weight_decay, DTYPE)
    state = (comp.u + 0.0, tuple(w + 0.0 for w in comp.weights), comp.v + 0.0)  # donated copies
    err0 = float(factor_recovery_error(comp.u, _chain(comp.weights), comp.v, problem.truth))
    rec = {"steps": [0], "recovery": [err0], "loss": [math.nan], "seconds": [0.0]}
    reached = 0 if tol is not None and err0 <= tol else None
    done, interrupted, t0 = 0, False, time.perf_counter()
    try:
        while done < steps and reached is None:
            n = min(stride, steps - done)
            state, loss, err = _gd_chunk(state, problem.entries, problem.truth, lrs, decay,
                                         n_steps=n, backend=backend)  # fmt: skip
            err = float(err)  # syncs
            done += n
            for name, val in (("steps", done), ("recovery", err), ("loss", float(loss)),
                              ("seconds", time.perf_counter() - t0)):  # fmt: skip
                rec[name].append(val)
            if not math.isfinite(err):
                raise FloatingPointError(f"compressed GD diverged at step {done}: lower lr")
            if progress is not None:
                progress({k: v[-1] for k, v in rec.items()} | {"step": done})
            if tol is not None and err <= tol:
                reached = done
    except KeyboardInterrupt:
        interrupted = True
    u, mids, v = state
    arrays = {
        k: np.asarray(v, dtype=np.int64 if k == "steps" else np.float64) for k, v in rec.items()
    }
    info = {"lr": lr, "gamma": gamma, "weight_decay": weight_decay, "interrupted": interrupted}
    return SparseRun(u, mids, v, arrays["steps"], arrays["recovery"], arrays["loss"],
                     arrays["seconds"], reached, info)  # fmt: skip
