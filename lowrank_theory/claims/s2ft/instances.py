r"""Shared instance builders, tolerances and registration helpers of the ``s2ft.*`` claims.

Instances are drawn by *structure* and built with :func:`~lowrank_theory.s2ft.builders.build_instance`
from ``seed``, so each claim's assumptions hold by construction:

* shapes (``dims``, ``ell``) from a small set: ``funnel`` (6,5,4,6), ℓ=2 (with unit weight
  spectra $\underline W_{\ell-1}$ is a co-isometry and $\overline W_{\ell+1}$ an isometry: the
  tight regimes), ``wide`` (4,6,6,3), ℓ=2 (rank-deficient $A$, non-injective
  $\overline W_{\ell+1}$), ``first`` (5,4,5), ℓ=1 and ``last`` (3,6,4), ℓ=2=L;
* realisable $B^{(\mathrm i)}=\overline W_{\ell+1}\tilde B\underline W_{\ell-1}$ with residual of
  chosen rank and spectrum on chosen channels $S_0$ (Assumption F.4 with chosen $\delta$),
  eigengap by a geometric spectrum (F.3), label shift and covariate shift of chosen size.

Tolerances: ``tolerance(scale, n=...)`` with scale = the natural size of the compared quantity
times the condition numbers the closed forms invert ($\kappa(\overline W_{\ell+1})$,
$\kappa(A)$, and the eigengap constant $C_g$ for LoRA's rank-$r$ truncation).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np
from hypothesis import strategies as st

from ...core.linalg import kappa_star, psd_roots
from ...core.precision import tolerance
from ...s2ft import (
    PSD_RTOL,
    DeepLinearInstance,
    build_instance,
    excess_risk,
    sample,
    sparsity_level,
    svd_rtol,
)
from ..base import CheckResult, Claim, compare, register

__all__ = [
    "SHAPES",
    "SRC",
    "base_params",
    "bound_check",
    "build",
    "counterexample",
    "data_for",
    "lstsq_min_norm",
    "nat_scale",
    "pseudo_data",
    "reg",
    "scale",
    "terms_check",
]


SRC = "002, Appendix F"
SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "funnel": ((6, 5, 4, 6), 2),
    "wide": ((4, 6, 6, 3), 2),
    "first": ((5, 4, 5), 1),
    "last": ((3, 6, 4), 2),
}


# --- parameter strategies and builders -----------------------------------------------------------
@st.composite
def base_params(
    draw, shapes=tuple(SHAPES), tight: bool = False, n_choices=(None,)
) -> dict[str, Any]:
    """Structure of an instance: shape, residual rank/spectrum, conditioning, r, S, n, seed."""
    shape = draw(st.sampled_from(shapes))
    dims, ell = SHAPES[shape]
    d, dp = dims[ell], dims[ell - 1]
    r = draw(st.integers(1, min(2, d, dp)))
    s = min(sparsity_level(r, d, dp), d)
    rank = draw(st.integers(1, min(3, d, dp)))
    return {
        "shape": shape,
        "r": r,
        "s": s,
        "residual_rank": rank,
        "decay": draw(st.sampled_from([0.5, 1.0] if not tight else [1.0])),
        "weight_cond": 1.0 if tight else draw(st.sampled_from([1.0, 3.0])),
        "x_cond": 1.0 if tight else draw(st.sampled_from([1.0, 4.0])),
        "delta": draw(st.sampled_from([0.0, 0.3])),
        "label_shift": draw(st.sampled_from([0.0, 1.0, 3.0])),
        "covariate": draw(st.sampled_from([1.0, 2.0])),
        "n": draw(st.sampled_from(n_choices)),
        "seed": draw(st.integers(0, 2**20)),
    }


def build(p: dict[str, Any]) -> dict[str, Any]:
    """Builds the instance of ``p``; ``S0`` = first ``residual_rank`` channels, ``S`` = ``S0``
    plus random channels up to ``s``."""
    dims, ell = SHAPES[p["shape"]]
    d = dims[ell]
    rank = p["residual_rank"]
    s0 = tuple(range(rank))
    delta = p.get("delta", 0.0) if rank < d else 0.0
    inst = build_instance(
        p["seed"],
        dims,
        ell,
        residual_rank=rank,
        residual_decay=p.get("decay", 1.0),
        channels=s0,
        delta=delta,
        weight_cond=p.get("weight_cond", 1.0),
        x_cond=p.get("x_cond", 1.0),
        label_shift=p.get("label_shift", 0.0),
        covariate_scale=p.get("covariate", 1.0),
        covariate_cond=p.get("covariate_cond", p.get("covariate", 1.0)),
        realisable=p.get("realisable", True),
        outside_scale=p.get("outside", 0.0),
    )
    rng = np.random.default_rng(p["seed"])
    if p.get("random_S"):
        S = tuple(sorted(rng.permutation(d).tolist()[: p["s"]]))
    else:
        extra = [a for a in rng.permutation(d).tolist() if a not in s0][: max(p["s"] - len(s0), 0)]
        S = tuple(sorted(s0 + tuple(extra)))
    return {"params": p, "inst": inst, "ell": ell, "r": p["r"], "S": S, "S0": s0, "n": p.get("n")}


def scale(b: dict[str, Any]) -> float:
    """Condition-number amplification of the closed forms (kappa_* of W_above, A, Sigma_x), each
    with the s2ft package's own rank rule: ``svd_rtol`` for the weights, ``PSD_RTOL`` for the
    PSD matrices built from covariances (the cut-offs the closed forms themselves use)."""
    inst, ell = b["inst"], b["ell"]
    a2 = inst.below(ell) @ inst.sigma_x_in @ inst.below(ell).T
    w = inst.above(ell)
    return (
        kappa_star(w, svd_rtol(w.shape)) ** 2
        * kappa_star(a2, PSD_RTOL)
        * kappa_star(inst.sigma_x_in, PSD_RTOL)
    )


def nat_scale(b: dict[str, Any]) -> float:
    """Natural magnitude of the risks of an instance (pre-trained risks, noise) times _scale."""
    inst, _ell = b["inst"], b["ell"]
    pre = inst.w_pre
    mags = [excess_risk(inst, pre, k) for k in ("in", "out")] + [float(np.trace(inst.sigma_eps_in))]
    return max(*mags, 1e-300) * scale(b)


def pseudo_data(
    inst: DeepLinearInstance, n: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    r"""$(X_{\mathrm{eff}}, R_{\mathrm{eff}})$ with empirical risk $\|R-\overline W\Delta\underline WX\|_F^2$+const:
    raw data $/\sqrt n$, or $(\Sigma^{1/2}, D\Sigma^{1/2})$ in the population."""
    if n is None:
        rs = psd_roots(inst.sigma_x_in, PSD_RTOL).root
        return rs, (inst.b_in - inst.w_pre) @ rs
    data = sample(inst, n, jax.random.fold_in(jax.random.key(seed), n))
    return data.x / math.sqrt(n), (data.y - inst.w_pre @ data.x) / math.sqrt(n)


def data_for(b: dict[str, Any]):
    n = b["n"]
    if n is None:
        return None
    return sample(b["inst"], n, jax.random.fold_in(jax.random.key(b["params"]["seed"]), n))


def lstsq_min_norm(left: np.ndarray, right: np.ndarray, target: np.ndarray) -> np.ndarray:
    r"""Minimum-norm $Z$ minimising $\|T-LZR\|_F$ via ``lstsq`` on $(R^\top\otimes L)\operatorname{vec}Z$."""
    k = np.kron(right.T, left)
    z = np.linalg.lstsq(k, target.reshape(-1, order="F"), rcond=None)[0]
    return z.reshape(left.shape[1], right.shape[0], order="F")


def bound_check(lhs: float, rhs: float, rel, tol: float, scale: float, **details) -> CheckResult:
    """:func:`~lowrank_theory.claims.base.compare` for the bounds, with the scale floor ``tol``.

    A side at or below the rounding tolerance (e.g. a bias that is exactly 0 in exact
    arithmetic, computed as 1e-31) makes the ratio meaningless: such an instance is
    *degenerate* (tightness NaN, counted apart by the audit, never reported as tight). A lower
    bound ``>=`` whose right side is negative is vacuous for a non-negative risk but not
    degenerate: its ratio (<= 0) is kept. ``scale`` is recorded in the details.
    """
    return compare(lhs, rhs, rel, tol, floor=tol, tol_scale=scale, **details)


def terms_check(t, scale: float, n: int, **extra) -> CheckResult:
    if t.relation == "==":
        return compare(
            t.lhs, t.rhs, t.relation, tolerance(scale, n=n), scale=scale, **{**t.terms, **extra}
        )
    return bound_check(
        t.lhs, t.rhs, t.relation, tolerance(scale, n=n), scale, **{**t.terms, **extra}
    )


def counterexample(**changes: Any) -> dict[str, Any]:
    """A stored counterexample: the default draw (funnel, r = s = 1, no shift, seed 0) with
    ``changes``, keys in the order of :func:`base_params`."""
    d = {**_CE_DEFAULT, **changes}
    return {k: d[k] for k in _CE_ORDER if k in d}


_CE_DEFAULT = dict(shape="funnel", r=1, s=1, residual_rank=1, decay=1.0, weight_cond=1.0,
                   x_cond=1.0, delta=0.0, label_shift=0.0, covariate=1.0, n=None, seed=0)  # fmt: skip
_CE_ORDER = (*list(_CE_DEFAULT)[:10], "covariate_cond", "n", "seed", "null_shift", "adversarial")


def reg(id_, source, statement, params, build_fn, check, **kw) -> None:
    """Registers claim ``id_`` (source prefixed by :data:`SRC`)."""
    register(
        Claim(
            id=id_,
            source=f"{SRC}, {source}",
            statement=statement,
            params=params,
            build=build_fn,
            check=check,
            **kw,
        )
    )
