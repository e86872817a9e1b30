r"""Claims of seed 004 on deep matrix factorization (Theorem 2.1, Lemmas E.1-E.2, low-rank bias).

``dmf.theorem21.block_form``, ``dmf.theorem21.rho``, ``dmf.lemmaE1.identities``,
``dmf.lowrank_bias`` and ``dmf.lemmaE2.sandwich`` (with its ``[corrected]`` and ``[L>=2]``
readings); their maths is in :mod:`lowrank_theory.dmf.factorization` (GD (15)),
:mod:`lowrank_theory.dmf.compression` (the invariant subspaces) and
:mod:`lowrank_theory.dmf.spectra` (the recursion (6)). The instances of Theorem 2.1
(:func:`theorem_params`, :func:`build_theorem`) are shared with
:mod:`lowrank_theory.claims.dmf.compression`.

Instances are drawn by structure and built from ``jax.random.key(seed)`` so that Theorem 2.1's
assumptions hold by construction:

* $W_l(0) = \epsilon_l Q_l$ with Haar $Q_l$ and per-layer scales $\epsilon_l$ drawn
  independently from $\{10^{-3},10^{-2},0.1,0.5,1\}$ (the theorem allows any $\epsilon_l>0$);
* $\Phi = U\operatorname{diag}(s)V^\top$ with Haar $U, V$, exact rank $r^\star\le r$,
  $\|\Phi\|_2 = 1$, and $m = d-2r>0$;
* $\eta = $ ``lr_frac`` $\cdot\,0.5/L$ and $\lambda\in\{0, 10^{-3}, 0.05\}$, which keeps GD
  and the $\rho$ recursion bounded ($\eta(\lambda+\prod_{k\ne l}\epsilon_k^2)\le 0.53$).

Tolerances come from :func:`lowrank_theory.tolerance` with ``scale`` the largest factor norm
along the trajectory and ``n`` $= d\,L\,(T+1)$ (rounding accumulates over the $T$ steps);
the details report the residual at $t = 0, T/2, T$ so the growth with $t$ is visible.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jax
import numpy as np
from hypothesis import strategies as st

from ...core.linalg import numerical_rank, random_with_spectrum
from ...core.precision import tolerance
from ...dmf.compression import invariant_subspaces
from ...dmf.factorization import orthogonal_init, run_factorization
from ...dmf.spectra import rho_sequence
from ..base import CheckResult, Claim, combine, compare, register

SRC = "004, "
EPS_CHOICES = (1e-3, 1e-2, 0.1, 0.5, 1.0)
SIZES = ((6, 1), (6, 2), (8, 1), (8, 3), (12, 2))  # (d, r) with d - 2r > 0


@st.composite
def theorem_params(draw, eps_choices=EPS_CHOICES, max_depth: int = 4, min_depth: int = 1):
    d, r = draw(st.sampled_from(SIZES))
    depth = draw(st.integers(min_depth, max_depth))
    return {
        "d": d,
        "r": r,
        "rstar": draw(st.integers(1, r)),
        "L": depth,
        "eps": [draw(st.sampled_from(eps_choices)) for _ in range(depth)],
        "lam": draw(st.sampled_from([0.0, 1e-3, 0.05])),
        "lr_frac": draw(st.sampled_from([0.2, 0.6, 1.0])),
        "rank_given": draw(st.booleans()),
        "T": 40,
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def _key(p):
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in sorted(p.items()))


@lru_cache(maxsize=16)
def _trajectory(pkey) -> dict[str, Any]:
    p = dict(pkey)
    d, r, depth = p["d"], p["r"], p["L"]
    assert len(p["eps"]) == depth, "one initial scale eps_l per layer"
    k1, k2 = jax.random.split(jax.random.key(p["seed"]))
    ws = orthogonal_init(k1, d, depth, list(p["eps"]))
    spec = np.linspace(1.0, 0.5, p["rstar"])
    phi = random_with_spectrum(k2, d, d, spec)
    assert d - 2 * r > 0 and numerical_rank(phi) == p["rstar"] <= r
    lr = p["lr_frac"] * 0.5 / depth
    rho = rho_sequence(list(p["eps"]), lr, p["lam"], p["T"])
    res = run_factorization(
        ws, phi, lr=lr, steps=p["T"], weight_decay=p["lam"], record_every=1, record=("weights",)
    )
    traj = [
        np.stack([np.asarray(res.records["weights"][l][t]) for l in range(depth)])
        for t in range(p["T"] + 1)
    ]
    scale = max(1.0, max(float(np.linalg.norm(w, 2)) for tr in traj for w in tr))
    return {
        "params": p,
        "w0": ws,
        "phi": phi,
        "lr": lr,
        "rho": rho,
        "traj": traj,
        "scale": scale,
        "tol": tolerance(scale**depth, n=d * depth * (p["T"] + 1)),
    }


def build_theorem(p: dict[str, Any]) -> dict[str, Any]:
    inst = dict(_trajectory(_key(p)))
    sub = invariant_subspaces(inst["w0"], inst["phi"], p["r"] if p["rank_given"] else None)
    assert sub.m >= p["d"] - 2 * p["r"]
    inst["sub"] = sub
    return inst


def residual_series(res: list[float], t_max: int) -> dict[str, float]:
    """The residuals at $t = 0, T/2, T$ (for the details of a check)."""
    return {"resid_t0": res[0], "resid_tmid": res[t_max // 2], "resid_tT": res[t_max]}


def check_block_form(inst) -> CheckResult:
    r"""$U_l^\top W_l(t) V_l = \operatorname{diag}(\widetilde W_l(t), \rho_l(t) I_m)$, $V_{l+1}=U_l$."""
    sub, p, rho = inst["sub"], inst["params"], inst["rho"]
    k = sub.width
    per_t = []
    for t, ws in enumerate(inst["traj"]):
        worst = 0.0
        for l in range(p["L"]):
            b = np.asarray(sub.u[l]).T @ ws[l] @ np.asarray(sub.v[l])
            worst = max(
                worst,
                np.abs(b[:k, k:]).max(initial=0.0),
                np.abs(b[k:, :k]).max(initial=0.0),
                np.abs(b[k:, k:] - rho[t, l] * np.eye(sub.m)).max(initial=0.0),
            )
            if t == 0:
                worst = max(worst, np.abs(b[:k, :k] - p["eps"][l] * np.eye(k)).max(initial=0.0))
        per_t.append(float(worst))
    chain = max(
        [float(np.abs(np.asarray(sub.v[l + 1] - sub.u[l])).max()) for l in range(p["L"] - 1)]
        + [0.0]
    )
    orth = max(float(np.abs(np.asarray(u.T @ u) - np.eye(p["d"])).max()) for u in sub.u + sub.v)
    lhs = max(max(per_t), chain, orth * inst["scale"])
    return compare(
        lhs,
        0.0,
        "==",
        inst["tol"],
        scale=inst["scale"],
        width=k,
        m=sub.m,
        gap=sub.gap,
        **residual_series(per_t, p["T"]),
    )


def check_rho(inst) -> CheckResult:
    r"""The invariant singular value of $W_l(t)$ on $V_{l,2}$ equals $\rho_l(t)$ of (6)."""
    sub, p, rho = inst["sub"], inst["params"], inst["rho"]
    err = []
    for t, ws in enumerate(inst["traj"]):
        e = 0.0
        for l in range(p["L"]):
            blk = np.asarray(sub.u2(l + 1)).T @ ws[l] @ np.asarray(sub.v2(l + 1))
            e = max(e, abs(float(np.trace(blk)) / sub.m - rho[t, l]))
        err.append(e)
    return compare(
        max(err),
        0.0,
        "==",
        inst["tol"],
        scale=max(p["eps"]),
        rho_T=rho[-1].tolist(),
        **residual_series(err, p["T"]),
    )


def check_lemma_e1(inst) -> CheckResult:
    r"""$\mathcal A(t),\mathcal B(t),\mathcal C(t),\mathcal D(t)$ for the constructed $u_i^{(l)}, v_i^{(l)}$."""
    sub, p, rho, phi = inst["sub"], inst["params"], inst["rho"], np.asarray(inst["phi"])
    depth = p["L"]
    names = ("A", "B", "C", "D")
    worst = dict.fromkeys(names, 0.0)
    per_t = []
    for t, ws in enumerate(inst["traj"]):
        wt = 0.0
        for l in range(depth):
            u, v = np.asarray(sub.u2(l + 1)), np.asarray(sub.v2(l + 1))
            after = np.eye(p["d"])
            for j in range(l + 1, depth):
                after = ws[j] @ after  # W_{L:l+1}
            before = np.eye(p["d"])
            for j in range(l):
                before = ws[j] @ before  # W_{l-1:1}
            vals = {
                "A": np.abs(ws[l] @ v - rho[t, l] * u).max(initial=0.0),
                "B": np.abs(ws[l].T @ u - rho[t, l] * v).max(initial=0.0),
                "C": np.abs(phi.T @ after @ u).max(initial=0.0),
                "D": np.abs(phi @ before.T @ v).max(initial=0.0),
            }
            for n in names:
                worst[n] = max(worst[n], float(vals[n]))
                wt = max(wt, float(vals[n]))
        per_t.append(wt)
    return compare(
        max(worst.values()),
        0.0,
        "==",
        inst["tol"],
        scale=inst["scale"],
        **{f"max_{n}": worst[n] for n in names},
        **residual_series(per_t, p["T"]),
    )


def check_lowrank_bias(inst) -> CheckResult:
    r"""$\sigma_{2r+1}(W_l(t)) \le |\rho_l(t)| \le \epsilon_l(1-\eta\lambda)^t$ for all $t$, $l$.

    At $t=0$ both sides are $\epsilon_l$ by construction ($W_l(0)=\epsilon_lQ_l$): checked, but
    the reported sub-check (primary) is the tightest $(t, l)$ with $t\ge1$.
    """
    p = inst["params"]
    r, lam, lr = p["r"], p["lam"], inst["lr"]
    per_t: list[list[CheckResult]] = []
    for t, ws in enumerate(inst["traj"]):
        row = []
        for l in range(p["L"]):
            s = np.linalg.svd(ws[l], compute_uv=False)
            rhs = p["eps"][l] * (1.0 - lr * lam) ** t
            row.append(compare(float(s[2 * r]), rhs, "<=", inst["tol"], t=t, layer=l + 1))
        per_t.append(row)
    initial = combine(per_t[0])
    later = combine([c for row in per_t[1:] for c in row])
    return combine([initial, later], primary=1)


THEOREM_CONV = (
    r"$f=W_L\cdots W_1$, loss $\tfrac12\|f-\Phi\|_F^2$ (sum); $V_{l,2}$ = the last $m$ right "
    r"singular vectors of $[\Psi;\Psi^\top W_1(0)]$, $\Psi=W_{L:2}^\top(0)\Phi$ (proof of "
    r"Lemma E.1), split at $k=2r$ (rank given) or at the largest singular-value gap."
)

register(
    Claim(
        id="dmf.theorem21.block_form",
        source=SRC + "Theorem 2.1, eq. (5)",
        statement=r"W_l(t)=U_l\begin{bmatrix}\widetilde W_l(t)&0\\0&\rho_l(t)I_m\end{bmatrix}V_l^\top,\ V_{l+1}=U_l,\ \widetilde W_l(0)=\epsilon_lI_{2r}",
        convention=THEOREM_CONV,
        params=theorem_params,
        build=build_theorem,
        check=check_block_form,
        test_examples=6,
    )
)

register(
    Claim(
        id="dmf.theorem21.rho",
        source=SRC + "Theorem 2.1, eq. (6)",
        statement=r"\rho_l(t)=\rho_l(t-1)\big(1-\eta\lambda-\eta\prod_{k\ne l}\rho_k^2(t-1)\big),\ \rho_l(0)=\epsilon_l",
        convention=THEOREM_CONV
        + r" $\rho_l(t)$ measured as $\operatorname{tr}(U_{l,2}^\top W_l(t)V_{l,2})/m$.",
        params=theorem_params,
        build=build_theorem,
        check=check_rho,
        test_examples=4,
    )
)

register(
    Claim(
        id="dmf.lemmaE1.identities",
        source=SRC + "Lemma E.1",
        statement=r"W_lv_i^{(l)}=\rho_lu_i^{(l)},\ W_l^\top u_i^{(l)}=\rho_lv_i^{(l)},\ \Phi^\top W_{L:l+1}u_i^{(l)}=0,\ \Phi W_{l-1:1}^\top v_i^{(l)}=0",
        convention=THEOREM_CONV,
        params=theorem_params,
        build=build_theorem,
        check=check_lemma_e1,
        test_examples=4,
    )
)

register(
    Claim(
        id="dmf.lowrank_bias",
        source=SRC + "Section 2.2 (low-rank bias), Appendix E.2",
        statement=r"\sigma_{2r+1}(W_l(t))\le\epsilon_l(1-\eta\lambda)^t\ \text{(approximate rank}\le 2r\text{; }\to0\text{ for }\lambda>0)",
        convention=r"The seed's informal statement made quantitative: the $(2r{+}1)$-th singular value "
        r"is at most $|\rho_l(t)|\le\epsilon_l(1-\eta\lambda)^t$ whenever "
        r"$\eta(\lambda+\prod_{k\ne l}\epsilon_k^2)\le1$ (true for every drawn instance). Reported "
        r"(primary): the tightest $(t,l)$ with $t\ge1$ ($t=0$ is an equality by construction, "
        r"checked but not reported). Tight for $\lambda=0$, $L\ge2$ and small $\epsilon_l$.",
        params=theorem_params,
        build=build_theorem,
        check=check_lowrank_bias,
        test_examples=4,
    )
)


# ------------------------------------------------------------------------------------------
# Lemma E.2: the sandwich on rho(t)
# ------------------------------------------------------------------------------------------
@st.composite
def sandwich_params(draw, min_depth: int = 1):
    return {
        "L": draw(st.integers(min_depth, 5)),
        "eps": draw(st.sampled_from([1e-3, 0.1, 0.5, 0.9, 1.0])),
        "lam": draw(st.sampled_from([0.0, 1e-2, 0.5])),
        "lr_frac": draw(st.sampled_from([0.1, 0.5, 1.0])),
        "T": 200,
    }


def build_sandwich(p, corrected: bool = False, assume: bool = True):
    """Instance of Lemma E.2; ``assume=False`` skips the assertion 0 < eps <= 1 (edge tests)."""
    eps, lam, depth = p["eps"], p["lam"], p["L"]
    assert (0 < eps <= 1) or not assume
    c = eps ** (2 * (depth - 1)) if corrected else eps
    lr = p["lr_frac"] / (lam + c)
    # the recursion (6) with equal scales, computed here without rho_sequence's divergence
    # guard: outside the lemma's assumptions (L = 1 with a large eta) it may blow up
    rho = np.empty(p["T"] + 1)
    rho[0] = eps
    with np.errstate(all="ignore"):
        for t in range(1, p["T"] + 1):
            rho[t] = rho[t - 1] * (1 - lr * (lam + rho[t - 1] ** (2 * (depth - 1))))
    return {"p": p, "lr": lr, "rho": rho, "c": c}


def check_sandwich(inst) -> CheckResult:
    r"""$\epsilon(1-\eta(\lambda+c))^t\le\rho(t)\le\epsilon(1-\eta\lambda)^t$ at every $t$.

    One :func:`compare` per side and time (ratios, with the scale floor ``tol``: a side that has
    decayed to rounding, e.g. the lower bound $0$ when $\eta(\lambda+c)=1$, is degenerate). At
    $t=0$ all three are $\epsilon$ by construction: checked, not reported. Reported (primary):
    the lower side (the one the seed's reading breaks at $L=1$) at its first violation, else at
    its tightest $t\ge1$; the upper side is checked alike.
    """
    p, lr, rho, c = inst["p"], inst["lr"], inst["rho"], inst["c"]
    t = np.arange(rho.shape[0])
    with np.errstate(over="ignore", invalid="ignore"):
        lo = p["eps"] * (1 - lr * (p["lam"] + c)) ** t
        hi = p["eps"] * (1 - lr * p["lam"]) ** t
    tol = tolerance(p["eps"], n=rho.shape[0] * p["L"])

    def side(i: int, rel: str, bound: np.ndarray, name: str) -> CheckResult:
        return compare(float(rho[i]), float(bound[i]), rel, tol, bound=name, t=i, lr=lr)

    initial = combine([side(0, ">=", lo, "lower"), side(0, "<=", hi, "upper")])
    lower = combine([side(i, ">=", lo, "lower") for i in t[1:]])
    upper = combine([side(i, "<=", hi, "upper") for i in t[1:]])
    return combine([initial, lower, upper], primary=1)


register(
    Claim(
        id="dmf.lemmaE2.sandwich",
        source=SRC + "Lemma E.2, eq. (19)",
        statement=r"0<\epsilon\le1,\ 0<\eta\le\tfrac1{\lambda+\epsilon}\Rightarrow \epsilon(1-\eta(\lambda+\epsilon))^t\le\rho(t)\le\epsilon(1-\eta\lambda)^t",
        convention=r"Equal $\epsilon_l=\epsilon$, any depth $L\ge1$ (the lemma is stated 'in the setting "
        r"of Theorem 2.1', which allows $L=1$); $\eta=$ lr_frac$/(\lambda+\epsilon)$; $t\le200$.",
        params=sandwich_params,
        build=build_sandwich,
        check=check_sandwich,
        expected="fails",
        counterexample={"L": 1, "eps": 0.5, "lam": 0.0, "lr_frac": 0.1, "T": 200},
        corrected=r"The proof uses $\epsilon^{2(L-1)}\le\epsilon$, false for $L=1$ (empty product = 1): "
        r"there $\rho(1)=\epsilon(1-\eta(\lambda+1))<\epsilon(1-\eta(\lambda+\epsilon))$. Corrected: "
        r"$\epsilon(1-\eta(\lambda+\epsilon^{2(L-1)}))^t\le\rho(t)\le\epsilon(1-\eta\lambda)^t$ for "
        r"$0<\eta\le1/(\lambda+\epsilon^{2(L-1)})$, every $L\ge1$ (implies the seed's bound for $L\ge2$).",
        test_examples=20,
    )
)

register(
    Claim(
        id="dmf.lemmaE2.sandwich[corrected]",
        source=SRC + "Lemma E.2, corrected",
        statement=r"0<\eta\le\tfrac1{\lambda+\epsilon^{2(L-1)}}\Rightarrow\epsilon(1-\eta(\lambda+\epsilon^{2(L-1)}))^t\le\rho(t)\le\epsilon(1-\eta\lambda)^t",
        convention=r"$\eta=$ lr_frac$/(\lambda+\epsilon^{2(L-1)})$; $L\ge1$.",
        params=sandwich_params,
        build=lambda p: build_sandwich(p, corrected=True),
        check=check_sandwich,
        test_examples=20,
    )
)

register(
    Claim(
        id="dmf.lemmaE2.sandwich[L>=2]",
        source=SRC + "Lemma E.2 restricted to L >= 2",
        statement=r"L\ge2,\ 0<\epsilon\le1,\ 0<\eta\le\tfrac1{\lambda+\epsilon}\Rightarrow(19)",
        convention=r"The seed's statement with $L\ge2$ added.",
        params=lambda: sandwich_params(min_depth=2),
        build=build_sandwich,
        check=check_sandwich,
        test_examples=20,
    )
)
