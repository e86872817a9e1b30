r"""Claims of seed 004 on the nonlinear factorization (Section 5, eq. (13), Fig. 9).

``dmf.nonlinear.gradient_gap`` (as written: fails, with its smallest counterexample) and
``dmf.nonlinear.gradient_gap[corrected]`` (empirical): the top singular values of
$\nabla_{W_2}\ell$ at small initialisation separate from the rest. Maths in
:mod:`lowrank_theory.dmf.factorization` (:func:`~lowrank_theory.dmf.factorization.nonlinear_gradient`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st

from ...core.linalg import random_with_spectrum
from ...dmf.factorization import nonlinear_gradient, orthogonal_init
from ..base import CheckResult, Claim, compare, register
from .factorization import SRC


@st.composite
def nonlinear_params(draw):
    return {
        "d": draw(st.sampled_from([400, 1000])),
        "rstar": draw(st.sampled_from([2, 3, 5])),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def build_nonlinear(p):
    k = jax.random.split(jax.random.key(p["seed"]))
    ws = orthogonal_init(k[0], p["d"], 3, 1e-3)
    phi = random_with_spectrum(k[1], p["d"], p["d"], np.ones(p["rstar"]))
    return {"p": p, "ws": ws, "phi": phi}


def check_gradient_gap(inst, extra: int = 0) -> CheckResult:
    r"""$\sigma_{j}/\sigma_{j+1}\ge 2$ for $\nabla_{W_2}\ell$ at init, $j=r^\star+$ ``extra``."""
    p = inst["p"]
    g = nonlinear_gradient(inst["ws"], inst["phi"], layer=2)
    s = np.asarray(jnp.linalg.svd(g, compute_uv=False))
    j = p["rstar"] + extra
    gap = float(s[j - 1] / s[j])
    return compare(
        gap,
        2.0,
        ">=",
        0.0,
        criterion=f"sigma_{j} / sigma_{j + 1} of grad_W2 loss at initialisation is >= 2 "
        f"(j = r* + {extra})",
        gap_at_rstar=float(s[p["rstar"] - 1] / s[p["rstar"]]),
        gap_at_rstar_plus_1=float(s[p["rstar"]] / s[p["rstar"] + 1]),
        top_over_s1=(s[: p["rstar"] + 3] / s[0]).tolist(),
    )


NONLIN_CONV = (
    r"ReLU, $L=3$, $\epsilon_l=10^{-3}$, $d\in\{400,1000\}$, $\Phi$ Haar with $r^\star$ unit "
    r"singular values; 'separate' read as a ratio $\ge2$ of consecutive singular values."
)

register(
    Claim(
        id="dmf.nonlinear.gradient_gap",
        source=SRC + "Section 5, eq. (13), Fig. 9",
        statement=r"\text{the top }r^\star\text{ singular values of }\nabla_{W_2}\ell\text{ separate at small init}",
        convention=NONLIN_CONV + r" Checked: $\sigma_{r^\star}/\sigma_{r^\star+1}\ge2$.",
        params=nonlinear_params,
        build=build_nonlinear,
        check=check_gradient_gap,
        expected="fails",
        counterexample={"d": 400, "rstar": 2, "seed": 0},
        corrected=r"$r^\star+1$ values separate, not $r^\star$: $\sigma(W_1)=\mathrm{ReLU}(W_1)$ has a "
        r"rank-one mean part $\approx0.4\epsilon\sqrt d\,\mathbf 1\mathbf 1^\top/\sqrt d$ much larger "
        r"than its centred part, which adds one outlier (the largest) to the $r^\star$ from "
        r"$W_3^\top\Phi$. Smallest counterexample found: $d=400$, $r^\star=2$, seed 0: "
        r"$\sigma_2/\sigma_3=1.79$; at $d=1000$, $r^\star=5$: $\sigma_5/\sigma_6=1.6$, "
        r"$\sigma_6/\sigma_7=3.7$.",
        test_examples=1,
    )
)

register(
    Claim(
        id="dmf.nonlinear.gradient_gap[corrected]",
        source=SRC + "Section 5, Fig. 9, corrected count",
        statement=r"\sigma_{r^\star+1}(\nabla_{W_2}\ell)/\sigma_{r^\star+2}(\nabla_{W_2}\ell)\ge2\text{ at small init}",
        convention=NONLIN_CONV,
        params=nonlinear_params,
        build=build_nonlinear,
        check=lambda inst: check_gradient_gap(inst, extra=1),
        expected="empirical",
        test_examples=1,
    )
)
