r"""Claims of seed 000 for ReLU networks: ``lora.lemma9.*`` and ``lora.theorem5.*``.

Instances (all built from ``jax.random.key(seed)``, assumptions asserted):

* frozen weights with singular values log-spaced in $[10^{-c},1]$ and Haar singular vectors;
  each error matrix $E$ of exact rank ``rank_e``, flat or decaying spectrum, scaled to
  ``e_scale``$\cdot\sigma_{\min}$ of the frozen product (Lemma 1's non-singularity, asserted by
  the construction);
* the input distribution is the **uniform distribution on a finite set** of ``N_POINTS`` points
  drawn once (cube, sphere, scaled one-hot, non-negative cube, a low-rank set, or points
  $\pm c\,v_{k+1}$ aligned with $E$'s $(k+1)$-th right singular vector, $k=RL\wedge R_E$): its
  support is bounded and every expectation ($\Sigma=\mathbb E xx^\top$, $\mathbb E\|f-\bar f\|^2$,
  $\mathbb E\|f-\bar f\|$) is an exact finite mean, so no verdict is sampling noise;
* target bias ``bias="random"`` ($\mathcal N(0,1)$ entries) or ``"active"``: large enough that
  target and adapted last-layer ReLUs are active on the support, so $f-\bar f=(E'-E)x$ (the
  regime where the bounds are tight).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

from ...core.linalg import chain_product, random_with_spectrum
from ...core.precision import tolerance
from ...lora.linear import lemma1_construction
from ...lora.relu import (
    relu_adapters,
    relu_fnn,
    theorem5_bound,
    theorem5_construction,
    uniform_partition,
)
from ..base import CheckResult, Claim, combine, compare, register
from .linear import error_spectrum, frozen_and_error

SOURCE_L9 = "000, Case 2, Lemma 9 (detailed Lemma 2)"
SOURCE_T5 = "000, Case 3, Theorem 5"
N_POINTS = 64
DISTS = ("cube", "sphere", "onehot", "positive", "lowrank", "aligned")


def _points(key, kind: str, d: int, v: np.ndarray | None = None) -> np.ndarray:
    """``N_POINTS`` support points of a bounded input distribution (uniform on the points)."""
    k1, k2 = jax.random.split(key)
    n = N_POINTS
    if kind == "cube":
        x = jax.random.uniform(k1, (n, d), minval=-1.0, maxval=1.0) * math.sqrt(3)
    elif kind == "positive":
        x = jax.random.uniform(k1, (n, d)) * math.sqrt(3)
    elif kind == "sphere":
        g = jax.random.normal(k1, (n, d))
        x = math.sqrt(d) * g / jnp.linalg.norm(g, axis=1, keepdims=True)
    elif kind == "onehot":
        idx = jax.random.randint(k1, (n,), 0, d)
        sgn = jnp.where(jax.random.bernoulli(k2, 0.5, (n,)), 1.0, -1.0)
        x = math.sqrt(d) * jax.nn.one_hot(idx, d) * sgn[:, None]
    elif kind == "lowrank":
        g = jax.random.normal(k1, (2, d))
        x = jax.random.uniform(k2, (n, 2), minval=-1.0, maxval=1.0) @ g
    elif kind == "aligned":
        assert v is not None
        sgn = jnp.where(jax.random.bernoulli(k1, 0.5, (n,)), 1.0, -1.0)
        x = sgn[:, None] * jnp.asarray(v)[None, :] * math.sqrt(d)
    else:  # pragma: no cover
        raise ValueError(kind)
    return np.asarray(x)


@st.composite
def lemma9_params(draw, exact: bool = False, dims=(2, 3, 4, 6, 8, 16, 32)) -> dict[str, Any]:
    d = draw(st.sampled_from(dims))
    n_layers = draw(st.integers(1, 3))
    rank_e = draw(st.integers(0 if exact else 1, d))
    lo = max(1, math.ceil(rank_e / n_layers)) if exact else 1
    return {
        "D": d,
        "L": n_layers,
        "R": draw(st.integers(lo, d)),
        "rank_e": rank_e,
        "spectrum": draw(st.sampled_from(["flat", "decaying"])),
        "log10_cond": draw(st.sampled_from([0.0, 0.5, 1.0])),
        "e_scale": draw(st.sampled_from([0.5, 2.0])),
        "dist": draw(st.sampled_from(DISTS)),
        "bias": draw(st.sampled_from(["random", "active"])),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def build_lemma9(p: dict[str, Any]) -> dict[str, Any]:
    d, n_layers, rank_e = p["D"], p["L"], p["rank_e"]
    keys = jax.random.split(jax.random.key(p["seed"]), n_layers + 4)
    ws, prod, e = frozen_and_error(keys, p)
    wbar = prod + e
    k = min(p["R"] * n_layers, rank_e)
    # E - E' exactly as the construction truncates it (with a flat spectrum LR_k is not unique,
    # so the aligned direction must come from the construction's own SVD)
    lin = lemma1_construction(ws, wbar, p["R"])
    e_tail = np.asarray(lin.e - lin.e_prime)
    x = _points(keys[n_layers + 1], p["dist"], d, np.linalg.svd(e_tail)[2][0])
    radius = float(np.max(np.linalg.norm(x, axis=1)))
    if p["bias"] == "active":
        rows = np.linalg.norm(np.asarray(wbar), axis=1) + np.linalg.norm(e_tail, axis=1)
        bbar = jnp.asarray(rows * radius + 1.0)
    else:
        bbar = jax.random.normal(keys[n_layers + 2], (d,))
    fb = [jax.random.normal(kk, (d,)) for kk in jax.random.split(keys[n_layers + 3], n_layers)]
    c = relu_adapters(ws, fb, wbar, bbar, p["R"], x)
    assert not bool(jnp.any(c.outside(x))), "construction must cover the sample"
    return {"params": p, "frozen": ws, "wbar": wbar, "bbar": bbar, "E": e, "x": x, "c": c, "k": k}


def build_lemma9_exact(p: dict[str, Any]) -> dict[str, Any]:
    r"""A Lemma 9 instance in the exactness regime: asserts $R\ge\lceil R_E/L\rceil$."""
    assert p["R"] >= math.ceil(p["rank_e"] / p["L"]), "exactness needs R >= ceil(R_E / L)"
    return build_lemma9(p)


def _tol_f(inst: dict[str, Any]) -> tuple[float, float]:
    """Rounding budget of $f(x)$: sizes of the affine terms the construction cancels, times
    the condition number of the matrices Lemma 1 inverts."""
    c = inst["c"]
    d, n_layers = inst["params"]["D"], inst["params"]["L"]
    norms = [float(jnp.linalg.norm(w, 2)) for w in c.weights]
    scale = math.prod(norms) * c.input_bound + float(jnp.linalg.norm(inst["bbar"]))
    for l, b in enumerate(c.biases[:-1]):
        scale += math.prod(norms[l + 1 :]) * float(jnp.linalg.norm(b))
    kappa = max(c.lemma1.cond.values())
    return scale, tolerance(scale * kappa, n=d * n_layers)


def _diffs(inst: dict[str, Any]):
    c, x = inst["c"], inst["x"]
    f = np.asarray(c(x))
    fbar = np.asarray(relu_fnn([inst["wbar"]], [inst["bbar"]], x))
    return f, fbar


def check_identity_as_written(inst: dict[str, Any]) -> CheckResult:
    r"""$f(x)-\bar f(x)=\mathrm{ReLU}((E'-E)x)$ on every support point (max-abs residual)."""
    f, fbar = _diffs(inst)
    e_prime = inst["c"].lemma1.e_prime
    rhs = np.asarray(jax.nn.relu(inst["x"] @ (e_prime - inst["E"]).T))
    scale, tol = _tol_f(inst)
    resid = float(np.max(np.abs((f - fbar) - rhs)))
    return compare(resid, 0.0, "==", tol, scale=scale, k=inst["k"], dist=inst["params"]["dist"])


def check_identity_corrected(inst: dict[str, Any]) -> CheckResult:
    r"""$f(x)=\mathrm{ReLU}((\prod W_l+E')x+\bar b_1)$, so
    $f-\bar f=\mathrm{ReLU}(\bar Wx+\bar b_1+(E'-E)x)-\mathrm{ReLU}(\bar Wx+\bar b_1)$ and
    $|f-\bar f|\le|(E'-E)x|$ entrywise."""
    f, fbar = _diffs(inst)
    c, x = inst["c"], inst["x"]
    pre = np.asarray(x @ inst["wbar"].T + inst["bbar"][None, :])
    shift = np.asarray(x @ (c.lemma1.e_prime - inst["E"]).T)
    rhs = np.maximum(pre + shift, 0.0) - np.maximum(pre, 0.0)
    scale, tol = _tol_f(inst)
    lip_excess = float(np.max(np.abs(f - fbar) - np.abs(shift)))
    ident = compare(float(np.max(np.abs((f - fbar) - rhs))), 0.0, "==", tol, scale=scale)
    # |f - fbar| <= |(E'-E)x| is implied by the identity (ReLU is 1-Lipschitz): a guard
    lip = compare(lip_excess, 0.0, "<=", tol, condition="|f-fbar| <= |(E'-E)x|")
    return combine([ident, lip], primary=0, k=inst["k"], lip_excess=lip_excess)


def check_exact(inst: dict[str, Any]) -> CheckResult:
    r"""$R\ge\lceil R_E/L\rceil\Rightarrow f=\bar f$ on the support."""
    f, fbar = _diffs(inst)
    scale, tol = _tol_f(inst)
    p = inst["params"]
    return compare(float(np.max(np.abs(f - fbar))), 0.0, "==", tol, scale=scale, R=p["R"])


def check_mse(inst: dict[str, Any], reading: str = "as-written") -> CheckResult:
    r"""$\mathbb E\|f-\bar f\|_2^2\le c(\Sigma)\,\sigma^2_{RL\wedge R_E+1}(E)$, exact finite mean.

    ``reading="as-written"``: $c(\Sigma)=\|\Sigma\|_F$; ``"trace"`` (corrected):
    $c(\Sigma)=\operatorname{tr}\Sigma=\mathbb E\|x\|_2^2$, what the proof's last step needs.

    Tolerance: each entry of $f-\bar f$ is known to $\pm\tau_f$ (:func:`_tol_f`), so the mean
    of $\|f-\bar f\|^2$ to $\pm(2\tau_f\max\|f-\bar f\|\sqrt D+D\tau_f^2)$; the scale floor
    (below which a side is rounding noise and the instance degenerate, e.g. $R\ge\lceil
    R_E/L\rceil$ where both sides vanish) is that budget. Tight (ratio 1) for $x=\pm c\,v_{k+1}$
    with active biases and $R_E>RL$ (``dist="aligned"``, ``bias="active"``).
    """
    f, fbar = _diffs(inst)
    x = inst["x"]
    sig = x.T @ x / x.shape[0]
    s = np.linalg.svd(np.asarray(inst["E"]), compute_uv=False)
    k = inst["k"]
    sk = float(s[k]) if k < len(s) else 0.0
    c_sig = float(np.linalg.norm(sig)) if reading == "as-written" else float(np.trace(sig))
    lhs = float(np.mean(np.sum((f - fbar) ** 2, axis=1)))
    _, tol_f = _tol_f(inst)
    d = inst["params"]["D"]
    err_max = float(np.max(np.linalg.norm(f - fbar, axis=1)))
    floor = 2 * tol_f * err_max * math.sqrt(d) + d * tol_f**2
    return compare(
        lhs,
        c_sig * sk**2,
        "<=",
        floor + tolerance(c_sig * sk**2),
        floor=floor,
        sigma_k_plus_1=sk,
        fro_sigma=float(np.linalg.norm(sig)),
        trace_sigma=float(np.trace(sig)),
        dist=inst["params"]["dist"],
        bias=inst["params"]["bias"],
    )


register(
    Claim(
        id="lora.lemma9.identity",
        source=SOURCE_L9,
        statement=r"f(x)-\bar f(x)=\mathrm{ReLU}\big((\mathrm{LR}_{RL\wedge R_E}(E)-E)x\big)\ \forall x\in\mathcal X",
        convention="Biases of the proof's construction; checked on every support point.",
        params=lemma9_params,
        build=build_lemma9,
        check=check_identity_as_written,
        expected="fails",
        counterexample={
            "D": 2,
            "L": 1,
            "R": 1,
            "rank_e": 2,
            "spectrum": "flat",
            "log10_cond": 0.0,
            "e_scale": 0.5,
            "dist": "cube",
            "bias": "active",
            "seed": 0,
        },
        corrected=r"f(x)=\mathrm{ReLU}((\prod_l W_l+E')x+\bar b_1), i.e. f-\bar f="
        r"\mathrm{ReLU}(\bar W_1x+\bar b_1+(E'-E)x)-\mathrm{ReLU}(\bar W_1x+\bar b_1), and "
        r"|f-\bar f|\le|(E'-E)x| entrywise. ReLU(a+d)-ReLU(a) is not ReLU(d) (a=1, d=-1/2).",
        test_examples=4,
    )
)

register(
    Claim(
        id="lora.lemma9.identity[corrected]",
        source=SOURCE_L9 + ", proof (14)",
        statement=r"f(x)-\bar f(x)=\mathrm{ReLU}(\bar W_1x+\bar b_1+(E'-E)x)-\mathrm{ReLU}(\bar W_1x+\bar b_1),\ |f-\bar f|\le|(E'-E)x|",
        params=lemma9_params,
        build=build_lemma9,
        check=check_identity_corrected,
        test_examples=6,
    )
)

register(
    Claim(
        id="lora.lemma9.exact",
        source=SOURCE_L9,
        statement=r"R\ge\lceil R_E/L\rceil\implies f(x)=\bar f(x)\ \forall x\in\mathcal X",
        params=lambda: lemma9_params(exact=True),
        build=build_lemma9_exact,
        check=check_exact,
        test_examples=3,
    )
)

register(
    Claim(
        id="lora.lemma9.mse_bound",
        source=SOURCE_L9,
        statement=r"\mathbb E\|f(x)-\bar f(x)\|_2^2\le\|\Sigma\|_F\,\sigma^2_{RL\wedge R_E+1}(E),\ \Sigma=\mathbb E xx^\top",
        convention="Expectation = exact mean over the finite support. The index "
        r"$RL\wedge R_E+1$ is right ($\sigma_{R_E+1}=0$, equal to $\sigma_{RL+1}$).",
        params=lemma9_params,
        build=build_lemma9,
        check=check_mse,
        expected="fails",
        counterexample={
            "D": 3,
            "L": 1,
            "R": 1,
            "rank_e": 3,
            "spectrum": "flat",
            "log10_cond": 0.0,
            "e_scale": 0.5,
            "dist": "sphere",
            "bias": "active",
            "seed": 0,
        },
        corrected=r"E||f-\bar f||^2 <= tr(Sigma) sigma^2_{RL^R_E+1}(E) (E||x||^2 = tr Sigma, "
        r"not ||Sigma||_F, in the proof's last step); tight for x = +-c v_{k+1} with active biases.",
        test_examples=4,
    )
)

register(
    Claim(
        id="lora.lemma9.mse_bound[corrected]",
        source=SOURCE_L9 + ", proof 'Error Derivation'",
        statement=r"\mathbb E\|f(x)-\bar f(x)\|_2^2\le\operatorname{tr}(\Sigma)\,\sigma^2_{RL\wedge R_E+1}(E)",
        params=lemma9_params,
        build=build_lemma9,
        check=lambda inst: check_mse(inst, "trace"),
        test_examples=6,
    )
)


# --- Theorem 5 ------------------------------------------------------------------------------


@st.composite
def theorem5_params(draw, dims=(2, 3, 4, 8, 16)) -> dict[str, Any]:
    d = draw(st.sampled_from(dims))
    lbar = draw(st.integers(1, 3))
    regime = draw(st.sampled_from(["generic", "generic", "small-target"]))
    m = 1 if regime == "small-target" else draw(st.integers(1, 2))
    extra = 0 if regime == "small-target" else draw(st.integers(0, 1))
    return {
        "D": d,
        "Lbar": lbar,
        "L": lbar * m + extra,
        "R": draw(st.integers(1, d)),
        "rank_e": draw(st.integers(1, d)),
        "spectrum": draw(st.sampled_from(["flat", "decaying"])),
        "e_scale": draw(st.sampled_from([0.5, 2.0])),
        "regime": regime,
        "dist": draw(st.sampled_from(DISTS)),
        "bias_scale": draw(st.sampled_from([0.0, 0.3, 3.0])),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def build_theorem5(p: dict[str, Any]) -> dict[str, Any]:
    d, n_layers, lbar = p["D"], p["L"], p["Lbar"]
    keys = jax.random.split(jax.random.key(p["seed"]), n_layers + 2 * lbar + 2)
    small = p["regime"] == "small-target"
    spec = np.ones(d) if small else np.logspace(0.0, -0.5, d)
    ws = [random_with_spectrum(k, d, d, spec) for k in keys[:n_layers]]
    blocks = uniform_partition(n_layers, lbar)
    tws, tbs = [], []
    for i, block in enumerate(blocks):
        prod = chain_product([ws[l - 1] for l in block])
        kk = keys[n_layers + 2 * i]
        if small:
            tws.append(0.01 * random_with_spectrum(kk, d, d, np.ones(d)))
        else:
            smin = float(jnp.linalg.svd(prod, compute_uv=False)[-1])
            se = error_spectrum(p["spectrum"], p["rank_e"]) * p["e_scale"] * smin
            tws.append(prod + random_with_spectrum(kk, d, d, se))
        tbs.append(p["bias_scale"] * jax.random.normal(keys[n_layers + 2 * i + 1], (d,)))
    e1 = np.asarray(tws[0] - chain_product([ws[l - 1] for l in blocks[0]]))
    vt = np.linalg.svd(e1)[2]
    k = min(p["R"] * len(blocks[0]), d - 1)
    x = _points(keys[-1], p["dist"], d, vt[k])
    fb = [jnp.zeros(d)] * n_layers
    c = theorem5_construction(ws, fb, tws, tbs, p["R"], x)
    return {"params": p, "frozen": ws, "tws": tws, "tbs": tbs, "x": x, "c": c}


def check_theorem5(inst: dict[str, Any], reading: str = "as-written") -> CheckResult:
    r"""$\mathbb E\|f(x)-\bar f(x)\|_2\le\beta\sum_i\alpha^{\bar L-i}E_i$ (exact finite mean)."""
    x, c = inst["x"], inst["c"]
    f = np.asarray(c(x))
    fbar = np.asarray(relu_fnn(inst["tws"], inst["tbs"], x))
    lhs = float(np.mean(np.linalg.norm(f - fbar, axis=1)))
    sig = x.T @ x / x.shape[0]
    t = theorem5_bound(inst["frozen"], inst["tws"], inst["tbs"], inst["params"]["R"], sig)
    rhs = t.bound if reading == "as-written" else t.bound_corrected
    d, n_layers = inst["params"]["D"], inst["params"]["L"]
    kappa = max(max(b.lemma1.cond.values()) for b in c.blocks)
    norms = [float(jnp.linalg.norm(w, 2)) for w in c.weights]
    scale = (math.prod(norms) + 1.0) * c.input_bound + sum(
        float(jnp.linalg.norm(b)) * math.prod(norms[l + 1 :]) for l, b in enumerate(c.biases)
    )
    tol = tolerance(scale * kappa, n=d * n_layers) + tolerance(rhs)
    return compare(
        lhs,
        rhs,
        "<=",
        tol,
        E=t.e,
        alpha=t.alpha,
        beta=t.beta if reading == "as-written" else t.beta_corrected,
        M=t.m,
        regime=inst["params"]["regime"],
        dist=inst["params"]["dist"],
    )


register(
    Claim(
        id="lora.theorem5.bound",
        source=SOURCE_T5,
        statement=r"\mathbb E\|f(x)-\bar f(x)\|_2\le\beta\sum_{i=1}^{\bar L}\max_{k}(\|\bar W_k\|_F+E_k)^{\bar L-i}E_i,"
        r"\ \beta=\max_i(\sqrt{\|\Sigma\|_F}\prod_{j\le i}\|\bar W_j\|_F+\sum_{j\le i}\prod_{k=j+1}^{i-1}\|\bar W_k\|_F\|\bar b_j\|_2)\vee\sqrt{\|\Sigma\|_F}",
        convention=r"Uniform partition; $E_i=\sigma_{RM+1}(\bar W_i-\prod_{P_i}W_l)$; "
        r"$\alpha=\max_k(\|\bar W_k\|_F+E_k)$ (the statement's reading; the proof's "
        r"$\max_k(\|\bar W_k\|_F+E_i)$ depends on $i$). Expectation = exact finite mean. Each "
        r"block is linearised on a ball containing the adapted and the target intermediates.",
        params=theorem5_params,
        build=build_theorem5,
        check=check_theorem5,
        expected="fails",
        counterexample={
            "D": 8,
            "Lbar": 1,
            "L": 1,
            "R": 1,
            "rank_e": 1,
            "spectrum": "flat",
            "e_scale": 0.5,
            "regime": "small-target",
            "dist": "sphere",
            "bias_scale": 0.0,
            "seed": 0,
        },
        corrected=r"replace sqrt(||Sigma||_F) by sqrt(tr Sigma) >= E||x||_2 and take "
        r"beta' = max_{0<=i<Lbar}(sqrt(tr Sigma) prod_{j<=i}||W_j||_F + sum_{j<=i} "
        r"prod_{k=j+1}^{i}||W_k||_F ||b_j||_2), the bound on E||z_i|| the proof uses.",
        test_examples=4,
    )
)

register(
    Claim(
        id="lora.theorem5.bound[corrected]",
        source=SOURCE_T5 + ", proof (17)-(21)",
        statement=r"\mathbb E\|f(x)-\bar f(x)\|_2\le\beta'\sum_{i=1}^{\bar L}\alpha^{\bar L-i}E_i,"
        r"\ \beta'=\max_{0\le i<\bar L}\big(\sqrt{\operatorname{tr}\Sigma}\prod_{j\le i}\|\bar W_j\|_F+\sum_{j\le i}\prod_{k=j+1}^{i}\|\bar W_k\|_F\|\bar b_j\|_2\big)",
        params=theorem5_params,
        build=build_theorem5,
        check=lambda inst: check_theorem5(inst, "corrected"),
        test_examples=5,
    )
)
