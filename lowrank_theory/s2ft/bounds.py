r"""Every bound term of seed 002's Section 4 / Appendix F, as functions of an instance.

Each function returns a :class:`Terms` record: the two sides (``lhs``, ``rhs``), the relation, and
every named term, so a user sees each side of each inequality. Notation (Appendix F.1-F.2,
all population quantities of the in-distribution task unless said otherwise; each function reads
them once from :func:`~lowrank_theory.s2ft.notation.notation`, whose :class:`~lowrank_theory.s2ft.notation.Notation`
documents every object):
$D = B^{(\mathrm i)}-W^{\mathrm{pre}}$, $\Sigma=\Sigma_x^{(\mathrm i)}$,
$A=(\underline W_{\ell-1}\Sigma\underline W_{\ell-1}^\top)^{1/2}$,
$\Pi = \Sigma^{1/2}\underline W_{\ell-1}^\top(A^2)^\dagger\underline W_{\ell-1}\Sigma^{1/2}$ (the
projector onto the row space of $\underline W_{\ell-1}\Sigma^{1/2}$),
$P'=\Phi'\Phi'^\top$, $P''_S=\Phi''_S\Phi''^\top_S$,
$M = P'D\Sigma\underline W_{\ell-1}^\top A^\dagger$, $\Sigma_f=D\Sigma D^\top$,
$G^{(\mathrm{i,o})}_{\ell-1} = (\underline W_{\ell-1}\Sigma_x^{(\mathrm i)1/2})^\dagger
\underline W_{\ell-1}\Sigma_x^{(\mathrm o)1/2}$ (the garbled F.2 definition, read from its uses in
the proofs of Theorems F.11 and F.15: it makes $\Sigma^{(\mathrm i)1/2}\underline W^\top(A^\dagger)^2
\underline W\Sigma^{(\mathrm o)1/2} = \Sigma^{(\mathrm i)1/2}G$ and
$\|A^\dagger\underline W\Sigma^{(\mathrm o)1/2}\|_{op}=\|G\|_{op}$),
$\kappa_*(X) = \|X\|_{op}/\lambda_*(X)$, $\mathcal E_{\mathrm{pre}} = \mathcal E^{(\mathrm i)}(f^{\mathrm{pre}}) =
\|D\Sigma^{1/2}\|_F^2$, $\mathcal E_{\mathrm{full}}=\mathcal E^{(\mathrm i)}(f^{\mathrm{full}}_\ell)$.

$(T^{\mathrm{LoRA}}_{\mathrm{bias}})^2$ and $(T^{\mathrm{S^2FT}}_{\mathrm{bias}})^2$ are defined as
in the proofs of Theorems F.10/F.13: the in-distribution excess risks of the population
minimum-norm solutions; $T_{\mathrm{variance}}$ the finite-$n$ distance of the proofs.

References:
    Yang et al., *S²FT*, NeurIPS 2024 (seed 002), Theorems 4.2, F.7, F.8, F.10, F.11, F.13,
    F.15, Lemma F.14, Remark F.16, Lemma F.17, Corollary F.18, Assumptions F.4, F.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from jax import Array

from ..core.linalg import kappa_star, low_rank_approx_np, orth_np, rank_from_singular_values
from ..core.validation import check_int
from .instance import DeepLinearInstance, Sample, sample, svd_rtol
from .notation import Notation, notation
from .solutions import (
    excess_risk,
    full_ft,
    lora_eigengap,
    min_norm_lora,
    min_norm_s2ft,
    pretrained,
)

__all__ = [
    "Notation",
    "Terms",
    "channel_sparsity_delta",
    "corollary_f18",
    "label_shift_epsilon",
    "lemma_f14",
    "lemma_f17",
    "notation",
    "remark_f16",
    "theorem_42",
    "theorem_f10_bias",
    "theorem_f11_lower",
    "theorem_f11_upper",
    "theorem_f13_bias",
    "theorem_f15",
    "variance_bounds",
    "variance_terms",
]


@dataclass(frozen=True)
class Terms:
    """Both sides of one inequality/identity and its named terms."""

    lhs: float
    rhs: float
    relation: Literal["<=", ">=", "=="]
    terms: dict[str, Any] = field(default_factory=dict)


def _kappa_star(x: np.ndarray) -> float:
    return kappa_star(x, svd_rtol(x.shape))


def _rank(x: np.ndarray) -> int:
    return rank_from_singular_values(np.linalg.svd(x, compute_uv=False), x.shape, svd_rtol(x.shape))


def _nt(instance: DeepLinearInstance, ell: int, S, nt: Notation | None) -> Notation:
    """The population notation: ``nt`` when given (it must have ``S`` when ``S`` is), else computed."""
    if nt is None:
        return notation(instance, ell, S)
    if nt.n is not None or nt.ell != instance.check_layer(ell):
        raise ValueError(f"nt must be the population notation of layer {ell}")
    if S is not None and nt.S != tuple(int(a) for a in S):
        raise ValueError(f"nt has channels {nt.S}, not S = {tuple(S)}")
    return nt


def e_full(instance: DeepLinearInstance, ell: int, *, nt: Notation | None = None) -> float:
    r"""$\mathcal E^{(\mathrm i)}(f^{\mathrm{full}}_\ell)$ (population full fine-tuning of layer $\ell$)."""
    nt = _nt(instance, ell, None, nt)
    return excess_risk(instance, full_ft(instance, ell, nt=nt), "in")


def bias_lora(
    instance: DeepLinearInstance, ell: int, r: int, *, nt: Notation | None = None
) -> float:
    r"""$(T^{\mathrm{LoRA}}_{\mathrm{bias}})^2 = \|\mathrm{SVD}_r(M)A^\dagger\underline W_{\ell-1}\Sigma^{1/2}-D\Sigma^{1/2}\|_F^2$."""
    nt = _nt(instance, ell, None, nt)
    return float(
        np.sum(
            (
                low_rank_approx_np(nt.M, r) @ nt.A_pinv @ nt.W_below @ nt.Sigma_half
                - nt.D @ nt.Sigma_half
            )
            ** 2
        )
    )


def bias_s2ft(
    instance: DeepLinearInstance, ell: int, S: Sequence[int], *, nt: Notation | None = None
) -> float:
    r"""$(T^{\mathrm{S^2FT}}_{\mathrm{bias}})^2 = \|P''_SD\Sigma\underline W_{\ell-1}^\top(A^2)^\dagger\underline W_{\ell-1}\Sigma^{1/2}-D\Sigma^{1/2}\|_F^2$."""
    nt = _nt(instance, ell, S, nt)
    x = nt.P2 @ nt.D @ instance.sigma_x_in @ nt.W_below.T @ nt.A2_pinv @ nt.W_below @ nt.Sigma_half
    return float(np.sum((x - nt.D @ nt.Sigma_half) ** 2))


def lemma_f17(instance: DeepLinearInstance, ell: int) -> Terms:
    r"""Lemma F.17: $\mathcal E_{\mathrm{full}} = \|D\Sigma^{1/2}(I-\Pi)\|_F^2 + \|(I-P')D\Sigma^{1/2}\Pi\|_F^2$.

    ``lhs`` is the excess risk of :func:`~lowrank_theory.s2ft.solutions.full_ft`; ``rhs`` the formula.
    """
    nt = notation(instance, ell)
    ds = nt.D @ nt.Sigma_half
    i = np.eye(instance.p)
    t2 = float(np.sum((ds @ (i - nt.Pi)) ** 2))
    t3 = float(np.sum(((np.eye(instance.q) - nt.P1) @ ds @ nt.Pi) ** 2))
    return Terms(
        e_full(instance, ell, nt=nt), t2 + t3, "==", {"T2": t2, "T3": t3, "E_pre": nt.E_pre}
    )


def corollary_f18(instance: DeepLinearInstance, ell: int, *, squared: bool = False) -> Terms:
    r"""Corollary F.18: $\mathcal E_{\mathrm{full}} \le \|\Psi_*^\top(D\Sigma^{1/2})(I-\Pi)\|_{op}\mathcal E_{\mathrm{pre}}
    + \|(I-P')\Phi_*(D\Sigma^{1/2})\|_{op}\mathcal E_{\mathrm{pre}}$ (as written: operator norms
    unsquared; ``squared=True``: the squared norms the proof gives)."""
    nt = notation(instance, ell)
    ds = nt.D @ nt.Sigma_half
    u, _s, vt = np.linalg.svd(ds, full_matrices=False)
    k = _rank(ds)
    psi, phi = vt[:k].T, u[:, :k]
    t1 = float(np.linalg.norm(psi.T @ (np.eye(instance.p) - nt.Pi), 2)) if k else 0.0
    t2 = float(np.linalg.norm((np.eye(instance.q) - nt.P1) @ phi, 2)) if k else 0.0
    pw = 2 if squared else 1
    rhs = (t1**pw + t2**pw) * nt.E_pre
    return Terms(
        e_full(instance, ell, nt=nt), rhs, "<=", {"psi_term": t1, "phi_term": t2, "E_pre": nt.E_pre}
    )


def theorem_f10_bias(
    instance: DeepLinearInstance,
    ell: int,
    r: int,
    *,
    reading: Literal["as_written", "proof", "identity"] = "as_written",
) -> Terms:
    r"""Theorem F.10 (11): $(T^{\mathrm{LoRA}}_{\mathrm{bias}})^2\le\frac{0\vee(\operatorname{rank}\Sigma_f-r)}{\operatorname{rank}\Sigma_f}
    \kappa_*^2(\Sigma_f)\mathcal E_{\mathrm{pre}}+\mathcal E_{\mathrm{full}}$.

    ``reading="as_written"`` uses $\kappa_*^2(D\Sigma D^\top)$; ``"proof"`` the
    $\kappa_*^2(D\Sigma^{1/2}) = \kappa_*(D\Sigma D^\top)$ that (14) actually derives;
    ``"identity"`` checks (13): $(T^{\mathrm{LoRA}}_{\mathrm{bias}})^2 = \|\mathrm{SVD}_r(M)-M\|_F^2+\mathcal E_{\mathrm{full}}$.
    """
    nt = notation(instance, ell)
    lhs = bias_lora(instance, ell, r, nt=nt)
    ef = e_full(instance, ell, nt=nt)
    if reading == "identity":
        tail = float(np.sum((low_rank_approx_np(nt.M, r) - nt.M) ** 2))
        return Terms(lhs, tail + ef, "==", {"svd_tail": tail, "E_full": ef})
    sf = nt.Sigma_f
    k = _rank(sf)
    kap = _kappa_star(sf)
    kap_used = kap**2 if reading == "as_written" else kap
    frac = max(k - r, 0) / k if k else 0.0
    rhs = frac * kap_used * nt.E_pre + ef
    return Terms(
        lhs,
        rhs,
        "<=",
        {"rank_Sigma_f": k, "kappa_Sigma_f": kap, "E_pre": nt.E_pre, "E_full": ef, "r": r},
    )


def theorem_f13_bias(
    instance: DeepLinearInstance, ell: int, S: Sequence[int], *, identity: bool = False
) -> Terms:
    r"""Theorem F.13 (21): $(T^{\mathrm{S^2FT}}_{\mathrm{bias}})^2\le\|(P'-P''_S)\Phi_*(D\Sigma^{1/2})\|_{op}^2
    \mathcal E_{\mathrm{pre}}+\mathcal E_{\mathrm{full}}$; ``identity=True`` checks (23):
    $(T^{\mathrm{S^2FT}}_{\mathrm{bias}})^2 = \|(P''_S-P')D\Sigma\underline W^\top A^\dagger\|_F^2+\mathcal E_{\mathrm{full}}$."""
    nt = notation(instance, ell, S)
    lhs = bias_s2ft(instance, ell, S, nt=nt)
    ef = e_full(instance, ell, nt=nt)
    if identity:
        x = (nt.P2 - nt.P1) @ nt.D @ instance.sigma_x_in @ nt.W_below.T @ nt.A_pinv
        t = float(np.sum(x**2))
        return Terms(lhs, t + ef, "==", {"subspace_term": t, "E_full": ef})
    ds = nt.D @ nt.Sigma_half
    phi = orth_np(ds, svd_rtol(ds.shape))
    op = float(np.linalg.norm((nt.P1 - nt.P2) @ phi, 2)) if phi.shape[1] else 0.0
    return Terms(
        lhs, op**2 * nt.E_pre + ef, "<=", {"subspace_op": op, "E_pre": nt.E_pre, "E_full": ef}
    )


def channel_sparsity_delta(
    instance: DeepLinearInstance, ell: int, S0: Sequence[int], *, nt: Notation | None = None
) -> float:
    r"""The smallest $\delta$ for which Assumption F.4 holds with $S_0$:
    $\delta^2 = \sum_{a\notin S_0}\|e_a^\top\overline W_{\ell+1}^\dagger D\Sigma^{1/2}\|^2/\|\overline W_{\ell+1}^\dagger D\Sigma^{1/2}\|_F^2$."""
    nt = _nt(instance, ell, None, nt)
    z = nt.W_above_pinv @ nt.D @ nt.Sigma_half
    tot = float(np.sum(z**2))
    if tot == 0:
        return 0.0
    off = [a for a in range(instance.dims[ell]) if a not in set(int(x) for x in S0)]
    return math.sqrt(float(np.sum(z[off] ** 2)) / tot)


def lemma_f14(
    instance: DeepLinearInstance,
    ell: int,
    r: int,
    S: Sequence[int],
    S0: Sequence[int] | None = None,
) -> dict[str, Terms]:
    r"""Lemma F.14: $\mathcal E_{\mathrm{full}}\le(T^{\mathrm{LoRA}}_{\mathrm{bias}})^2\le(T^{\mathrm{S^2FT}}_{\mathrm{bias}})^2
    \le\mathcal E_{\mathrm{full}}+\delta^2\kappa_*^2(\overline W_{\ell+1})\mathcal E_{\mathrm{pre}}$, as three
    :class:`Terms` (``lower``, ``order``, ``upper``); $\delta$ from :func:`channel_sparsity_delta`
    with $S_0$ (default $S$; the lemma needs $S\supseteq S_0$)."""
    S0 = tuple(S) if S0 is None else tuple(S0)
    if not set(S0) <= set(int(a) for a in S):
        raise ValueError(f"Lemma F.14 needs S ⊇ S0; S = {tuple(S)}, S0 = {S0}")
    nt = notation(instance, ell, S)
    ef = e_full(instance, ell, nt=nt)
    tl = bias_lora(instance, ell, r, nt=nt)
    ts = bias_s2ft(instance, ell, S, nt=nt)
    delta = channel_sparsity_delta(instance, ell, S0, nt=nt)
    kap = _kappa_star(nt.W_above)
    up = ef + delta**2 * kap**2 * nt.E_pre
    info = {
        "E_full": ef,
        "T_lora2": tl,
        "T_s2ft2": ts,
        "delta": delta,
        "kappa_W_above": kap,
        "E_pre": nt.E_pre,
        "r": r,
        "s": len(tuple(S)),
    }
    return {
        "lower": Terms(ef, tl, "<=", info),
        "order": Terms(tl, ts, "<=", info),
        "upper": Terms(ts, up, "<=", info),
    }


def _f11_common(instance: DeepLinearInstance, ell: int, r: int) -> dict[str, Any]:
    nt = notation(instance, ell)
    rso, rsi, g = nt.Sigma_out_half, nt.Sigma_half, nt.G
    bo, bi, w = instance.b_out, instance.b_in, instance.w_pre
    iq = np.eye(instance.q)
    k = _rank(nt.Sigma_f)
    kap = _kappa_star(nt.Sigma_f)
    fit = min_norm_lora(instance, ell, r, nt=nt)
    return {
        "nt": nt,
        "lhs": excess_risk(instance, fit, "out"),
        "g_op": float(np.linalg.norm(g, 2)),
        "frac": max(k - r, 0) / k if k else 0.0,
        "kappa_Sigma_f": kap,
        "iq": iq,
        "rso": rso,
        "rsi": rsi,
        "bo": bo,
        "bi": bi,
        "w": w,
        "svd_tail2": float(np.sum((low_rank_approx_np(nt.M, r) - nt.M) ** 2)),
    }


def theorem_f11_upper(
    instance: DeepLinearInstance,
    ell: int,
    r: int,
    *,
    reading: Literal["as_written", "corrected"] = "as_written",
    constant: float = 4.0,
) -> Terms:
    r"""Theorem F.11, upper bound on $\mathcal E^{(\mathrm o)}(f_{\ell,U^{\mathrm{LoRA}}_\infty,V^{\mathrm{LoRA}}_\infty})$.

    Terms $a^2=\|(I-P')B^{(\mathrm o)}\Sigma_x^{(\mathrm o)1/2}\|_F^2$,
    $b^2=\|(B^{(\mathrm o)}-B^{(\mathrm i)})\Sigma_x^{(\mathrm i)1/2}\|_F^2\|G\|_{op}^2$,
    $c=\|(B^{(\mathrm o)}-W^{\mathrm{pre}})(\Sigma_x^{(\mathrm o)1/2}-\Sigma_x^{(\mathrm i)1/2}G)\|_F$,
    $d^2=\frac{0\vee(\operatorname{rank}\Sigma_f-r)}{\operatorname{rank}\Sigma_f}\kappa_*^2(\Sigma_f)\|G\|_{op}^2\mathcal E_{\mathrm{pre}}$.
    The proof gives $\sqrt{\mathcal E}\le a+b+c+\tilde d$, hence $\mathcal E\le 4(a^2+b^2+c^2+d^2)$:
    ``constant`` is that 4 (the seed's $\lesssim$). ``"as_written"`` uses $c$ unsquared as printed,
    ``"corrected"`` uses $c^2$.
    """
    f = _f11_common(instance, ell, r)
    nt = f["nt"]
    a2 = float(np.sum(((f["iq"] - nt.P1) @ f["bo"] @ f["rso"]) ** 2))
    b2 = float(np.sum(((f["bo"] - f["bi"]) @ f["rsi"]) ** 2)) * f["g_op"] ** 2
    c = float(np.linalg.norm((f["bo"] - f["w"]) @ (f["rso"] - f["rsi"] @ nt.G)))
    d2 = f["frac"] * f["kappa_Sigma_f"] ** 2 * f["g_op"] ** 2 * nt.E_pre
    cc = c if reading == "as_written" else c**2
    rhs = constant * (a2 + b2 + cc + d2)
    return Terms(
        f["lhs"],
        rhs,
        "<=",
        {"a2": a2, "b2": b2, "c": c, "d2": d2, "G_op": f["g_op"], "constant": constant},
    )


def theorem_f11_lower(
    instance: DeepLinearInstance,
    ell: int,
    r: int,
    eta: float,
    *,
    reading: Literal["as_written", "corrected"] = "as_written",
) -> Terms:
    r"""Theorem F.11, lower bound (16), for $\eta\in(0,1)$:
    $\mathcal E^{(\mathrm o)}\ge(1-\eta)\|(B^{(\mathrm o)}-B^{(\mathrm i)})\Sigma_x^{(\mathrm o)1/2}\|_F^2
    -3(\eta^{-1}-1)\big[\|(I-P')B^{(\mathrm i)}\Sigma_x^{(\mathrm o)1/2}\|_F^2
    +\|D(\Sigma_x^{(\mathrm o)1/2}-\Sigma_x^{(\mathrm i)1/2}G)\|_F^2
    +\frac{0\vee(\operatorname{rank}\Sigma_f-r)}{\operatorname{rank}\Sigma_f}\kappa_*^2(\Sigma_f)\|G\|_{op}^{p}\mathcal E_{\mathrm{pre}}\big]$
    with $p=1$ as written and $p=2$ (``"corrected"``, what the proof needs)."""
    if not 0 < eta < 1:
        raise ValueError(f"eta must be in (0, 1), got {eta}")
    f = _f11_common(instance, ell, r)
    nt = f["nt"]
    shift = float(np.sum(((f["bo"] - f["bi"]) @ f["rso"]) ** 2))
    t1 = float(np.sum(((f["iq"] - nt.P1) @ f["bi"] @ f["rso"]) ** 2))
    t2 = float(np.sum((nt.D @ (f["rso"] - f["rsi"] @ nt.G)) ** 2))
    pw = 1 if reading == "as_written" else 2
    t3 = f["frac"] * f["kappa_Sigma_f"] ** 2 * f["g_op"] ** pw * nt.E_pre
    rhs = (1 - eta) * shift - 3 * (1 / eta - 1) * (t1 + t2 + t3)
    return Terms(
        f["lhs"],
        rhs,
        ">=",
        {
            "label_shift2": shift,
            "T1": t1,
            "T2": t2,
            "T3_bound": t3,
            "G_op": f["g_op"],
            "eta": eta,
            "svd_tail2": f["svd_tail2"],
        },
    )


def theorem_f15(instance: DeepLinearInstance, ell: int, S: Sequence[int]) -> Terms:
    r"""Theorem F.15: $\mathcal E^{(\mathrm o)}(f_{\ell,U_S,V^{\mathrm{S^2FT}}_\infty})\le\mathcal E^{(\mathrm o)}(f^{\mathrm{pre}})
    +3\|P''_S(B^{(\mathrm o)}-B^{(\mathrm i)})\Sigma_x^{(\mathrm o)1/2}\|_F^2
    +3\|B^{(\mathrm i)}(\Sigma_x^{(\mathrm o)1/2}-\Sigma_x^{(\mathrm i)1/2}G)\|_F^2
    +3\|\overline W_\ell\|_{op}^2\|\underline W_{\ell-1}(\Sigma_x^{(\mathrm o)1/2}-\Sigma_x^{(\mathrm i)1/2}G)\|_F^2$
    ($\overline W_\ell = W_L\cdots W_\ell$; the garbled last factor read as in the proof)."""
    nt = notation(instance, ell, S)
    fit = min_norm_s2ft(instance, ell, S, nt=nt)
    lhs = excess_risk(instance, fit, "out")
    e_pre_o = excess_risk(instance, pretrained(instance, ell), "out")
    rso, rsi, g = nt.Sigma_out_half, nt.Sigma_half, nt.G
    t1 = float(np.sum((nt.P2 @ (instance.b_out - instance.b_in) @ rso) ** 2))
    t2 = float(np.sum((instance.b_in @ (rso - rsi @ g)) ** 2))
    wl = nt.W_above @ instance.weights[ell - 1]
    t3 = float(np.linalg.norm(wl, 2)) ** 2 * float(np.sum((nt.W_below @ (rso - rsi @ g)) ** 2))
    return Terms(
        lhs,
        e_pre_o + 3 * (t1 + t2 + t3),
        "<=",
        {"E_out_pre": e_pre_o, "shift_in_S": t1, "cov_term": t2, "layer_term": t3},
    )


def remark_f16(instance: DeepLinearInstance, ell: int, S: Sequence[int]) -> Terms:
    r"""Remark F.16 (no covariate shift): $\mathcal E^{(\mathrm o)}\le\mathcal E^{(\mathrm o)}(f^{\mathrm{pre}})
    +3\|P''_S(B^{(\mathrm o)}-B^{(\mathrm i)})\Sigma^{1/2}\|_F^2+3\|B^{(\mathrm i)}\Sigma^{1/2}(I-\Pi)\|_F^2$."""
    if not np.allclose(instance.sigma_x_in, instance.sigma_x_out):
        raise ValueError("Remark F.16 assumes no covariate shift (Sigma_x^(i) = Sigma_x^(o))")
    nt = notation(instance, ell, S)
    lhs = excess_risk(instance, min_norm_s2ft(instance, ell, S, nt=nt), "out")
    e_pre_o = excess_risk(instance, pretrained(instance, ell), "out")
    t1 = float(np.sum((nt.P2 @ (instance.b_out - instance.b_in) @ nt.Sigma_half) ** 2))
    t2 = float(np.sum((instance.b_in @ nt.Sigma_half @ (np.eye(instance.p) - nt.Pi)) ** 2))
    return Terms(
        lhs,
        e_pre_o + 3 * (t1 + t2),
        "<=",
        {"E_out_pre": e_pre_o, "shift_in_S": t1, "unrealisable": t2},
    )


def label_shift_epsilon(
    instance: DeepLinearInstance, ell: int, S: Sequence[int], *, nt: Notation | None = None
) -> float:
    r"""The smallest $\varepsilon$ of Assumption 4.1/F.5:
    $\varepsilon^2 = \|P''_S(B^{(\mathrm o)}-B^{(\mathrm i)})\Sigma_x^{1/2}\|_F^2/\mathcal E^{(\mathrm o)}(f^{\mathrm{pre}})$."""
    nt = _nt(instance, ell, S, nt)
    e_pre_o = excess_risk(instance, pretrained(instance, ell), "out")
    t = float(np.sum((nt.P2 @ (instance.b_out - instance.b_in) @ nt.Sigma_half) ** 2))
    return math.sqrt(t / e_pre_o) if e_pre_o > 0 else math.inf


def theorem_42(
    instance: DeepLinearInstance,
    ell: int,
    r: int,
    S: Sequence[int],
    *,
    which: Literal["s2ft", "s2ft_sharp", "lora", "lora_corrected"],
) -> Terms:
    r"""Theorem 4.2 / F.8 ($n\to\infty$, $\Sigma_x^{(\mathrm i)}=\Sigma_x^{(\mathrm o)}$, realisable $B^{(\mathrm i)}$).

    * ``"s2ft"``: $\mathcal E^{(\mathrm o)}(\text{S²FT})\le(1+3\varepsilon^2)\mathcal E^{(\mathrm o)}(f^{\mathrm{pre}})$;
    * ``"s2ft_sharp"``: the same with $1+\varepsilon^2$ (what the proof's identity gives);
    * ``"lora"``: $\mathcal E^{(\mathrm o)}(\text{LoRA})\ge\|(B^{(\mathrm o)}-B^{(\mathrm i)})\Sigma_x^{1/2}\|_F^2$;
    * ``"lora_corrected"``: $\mathcal E^{(\mathrm o)}(\text{LoRA})\ge\big(\|(B^{(\mathrm o)}-B^{(\mathrm i)})\Sigma_x^{1/2}\|_F
      -\|\mathrm{SVD}_r(M)-M\|_F\big)_+^2$, which equals the seed's bound when $r\ge\operatorname{rank}\Sigma_f$.

    $\varepsilon$ is the smallest admissible one (:func:`label_shift_epsilon`).
    """
    e_pre_o = excess_risk(instance, pretrained(instance, ell), "out")
    nt = notation(instance, ell, S if which.startswith("s2ft") else None)
    if which.startswith("s2ft"):
        eps = label_shift_epsilon(instance, ell, S, nt=nt)
        lhs = excess_risk(instance, min_norm_s2ft(instance, ell, S, nt=nt), "out")
        c = 3.0 if which == "s2ft" else 1.0
        return Terms(lhs, (1 + c * eps**2) * e_pre_o, "<=", {"epsilon": eps, "E_out_pre": e_pre_o})
    shift = float(np.sum(((instance.b_out - instance.b_in) @ nt.Sigma_half) ** 2))
    lhs = excess_risk(instance, min_norm_lora(instance, ell, r, nt=nt), "out")
    tail = float(np.linalg.norm(low_rank_approx_np(nt.M, r) - nt.M))
    rhs = shift if which == "lora" else max(math.sqrt(shift) - tail, 0.0) ** 2
    return Terms(
        lhs,
        rhs,
        ">=",
        {
            "label_shift2": shift,
            "svd_tail": tail,
            "rank_Sigma_f": _rank(nt.Sigma_f),
            "r": r,
            "E_out_pre": e_pre_o,
        },
    )


def variance_terms(
    instance: DeepLinearInstance,
    ell: int,
    r: int,
    S: Sequence[int],
    n: int,
    *,
    key: Array | None = None,
    data: Sample | None = None,
) -> dict[str, float]:
    r"""The finite-$n$ terms of Theorems F.7/F.10/F.13 on one sample.

    ``T_var_lora`` $=\|\mathrm{SVD}_r(\hat M)\hat A^\dagger A-\mathrm{SVD}_r(M)A^\dagger A\|_F$,
    ``T_var_s2ft`` $=\|P''_S(\hat D\hat\Sigma_x\underline W^\top(\hat A^\dagger)^2-D\Sigma\underline W^\top(A^\dagger)^2)A\|_F$,
    ``T_bias_*`` the population biases (square roots), ``E_lora``/``E_s2ft`` the in-distribution
    excess risks of the finite-$n$ minimum-norm solutions, and ``rate_lora``/``rate_s2ft`` the
    simplified F.7 rates $(\|\Sigma_\epsilon\|_{op}+\|\Sigma_f\|_{op})\,\mathrm{dof}\,\log^2(n+p+q)/n$
    with dof $=r(d_\ell+d_{\ell-1})$ and $s\,d_{\ell-1}$.
    """
    ell = instance.check_layer(ell)
    n = check_int(n, "n", lo=1)
    data = sample(instance, n, key, "in") if data is None else data
    nt = notation(instance, ell, S)
    hat = notation(instance, ell, S, n=n, data=data)
    wlow, a_hat_pinv = nt.W_below, hat.A_pinv
    a, ap = nt.A, nt.A_pinv
    tv_l = float(
        np.linalg.norm(
            low_rank_approx_np(hat.M, r) @ a_hat_pinv @ a - low_rank_approx_np(nt.M, r) @ ap @ a
        )
    )
    c_pop = nt.D @ instance.sigma_x_in
    tv_s = float(
        np.linalg.norm(
            nt.P2 @ (hat.C @ wlow.T @ a_hat_pinv @ a_hat_pinv - c_pop @ wlow.T @ ap @ ap) @ a
        )
    )
    e_l = excess_risk(instance, min_norm_lora(instance, ell, r, nt=hat), "in")
    e_s = excess_risk(instance, min_norm_s2ft(instance, ell, S, nt=hat), "in")
    d, dp = instance.dims[ell], instance.dims[ell - 1]
    pref = float(np.linalg.norm(instance.sigma_eps_in, 2) + np.linalg.norm(nt.Sigma_f, 2))
    lg = math.log(n + instance.p + instance.q) ** 2 / n
    return {
        "T_var_lora": tv_l,
        "T_var_s2ft": tv_s,
        "T_bias_lora": math.sqrt(bias_lora(instance, ell, r, nt=nt)),
        "T_bias_s2ft": math.sqrt(bias_s2ft(instance, ell, S, nt=nt)),
        "E_lora": e_l,
        "E_s2ft": e_s,
        "rate_lora": pref * r * (d + dp) * lg,
        "rate_s2ft": pref * len(tuple(S)) * dp * lg,
    }


def _r_eff(x: np.ndarray) -> float:
    """Effective rank tr(X)/||X||_op of a PSD matrix (0 for X = 0)."""
    op = float(np.linalg.norm(x, 2)) if x.size else 0.0
    return float(np.trace(x)) / op if op > 0 else 0.0


def variance_bounds(
    instance: DeepLinearInstance, ell: int, r: int, S: Sequence[int], n: int
) -> dict[str, float]:
    r"""The right-hand sides of the variance bounds of Theorems F.10 and F.13 (squared, constant 1).

    LoRA (Theorem F.10, from (12)), with $\mathcal L=\log^2(n+p+q)$ and $C_g$ of Assumption F.3:
    $C_g^2\kappa_*^4(M)\|\Sigma_\epsilon\|_{op}\kappa_*^2(A)\,r\,(r_e(\Phi'^\top\Sigma_\epsilon\Phi')+r_e(A^2))\mathcal L/n
    + C_g^2\kappa_*^4(M)\|D\Sigma D^\top\|_{op}\,r\,(\kappa_*^2(A)r_e(\Phi'^\top D\Sigma D^\top\Phi')+\kappa_*^6(A)r_e(A^2))\mathcal L/n$;
    S²FT (Theorem F.13, from (22)):
    $\|\Sigma_\epsilon\|_{op}\kappa_*^2(A)\,s\,(r_e(\Phi''^\top_S\Sigma_\epsilon\Phi''_S)+r_e(A^2))\mathcal L/n
    + \|D\Sigma D^\top\|_{op}\,s\,(\kappa_*^2(A)r_e(\Phi''^\top_SD\Sigma D^\top\Phi''_S)+\kappa_*^8(A)r_e(A^2))\mathcal L/n$.
    The seed leaves the constant of $\lesssim$ unspecified; the ratio
    $T_{\mathrm{variance}}^2/\text{bound}$ measured by :func:`variance_terms` is that constant's
    lower estimate.
    """
    n = check_int(n, "n", lo=1)
    nt = notation(instance, ell, S)
    se = instance.sigma_eps_in
    sf = nt.Sigma_f
    a2 = nt.A @ nt.A
    ka, km = _kappa_star(nt.A), _kappa_star(nt.M) if np.any(nt.M) else 1.0
    cg = lora_eigengap(instance, ell, r, nt=nt)
    lg = math.log(n + instance.p + instance.q) ** 2 / n
    p1, p2 = nt.Phi1, nt.Phi2
    ra2 = _r_eff(a2)
    s = len(tuple(S))
    lora = (
        cg**2
        * km**4
        * (
            float(np.linalg.norm(se, 2)) * ka**2 * r * (_r_eff(p1.T @ se @ p1) + ra2) * lg
            + float(np.linalg.norm(sf, 2)) * r * (ka**2 * _r_eff(p1.T @ sf @ p1) + ka**6 * ra2) * lg
        )
    )
    s2 = (
        float(np.linalg.norm(se, 2)) * ka**2 * s * (_r_eff(p2.T @ se @ p2) + ra2) * lg
        + float(np.linalg.norm(sf, 2)) * s * (ka**2 * _r_eff(p2.T @ sf @ p2) + ka**8 * ra2) * lg
    )
    return {"bound_lora": lora, "bound_s2ft": s2, "C_g": cg, "kappa_A": ka, "kappa_M": km}
