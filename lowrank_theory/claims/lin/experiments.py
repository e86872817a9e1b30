r"""Claims ``lin.exp.*`` (seed 003, Experiments): the two experiments, as empirical claims.

``lin.exp.lambda_sweep`` (the seed's lambda table; maths in
:mod:`lowrank_theory.lin.linearization`, figure ``lin-lambda``) and ``lin.exp.condition_number``
(condition number vs training loss; maths in :mod:`lowrank_theory.lin.ntk`, figure
``lin-condition``). Instances from :mod:`.instances`.
"""

from __future__ import annotations

import numpy as np

from ...core.precision import tolerance
from ...lin.linearization import regularized_finetune
from ...lin.ntk import risk_bounds
from ..base import Claim, compare, register
from .instances import SRC, build_kernel, build_model, kernel_params, mlp_params


# ------------------------------------------------------------------------------------------
# the lambda table
# ------------------------------------------------------------------------------------------
def check_lambda_sweep(inst):
    r"""$\|\theta_T-\theta_0\|$ after 200 split-GD steps at $\lambda = 10$ vs $0.1$."""
    f, th0, x, y = inst["f"], inst["theta0"], inst["x"], inst["y"]
    out = []
    for lam in (10.0, 0.1):
        tr = regularized_finetune(f, th0, x, y, lam=lam, lr=0.02, steps=200)
        out.append((float(tr.dist[-1]), float(tr.gap[-1])))
    (d_hi, g_hi), (d_lo, g_lo) = out
    # the gap is reported, not asserted: it is not monotone in lambda (nor in the seed's table)
    return compare(
        d_hi,
        d_lo,
        "<=",
        tolerance(d_lo),
        dist=[d_hi, d_lo],
        gap=[g_hi, g_lo],
        criterion="||theta_T - theta_0|| after 200 steps at lambda = 10 is <= the one at "
        "lambda = 0.1",
    )


register(
    Claim(
        id="lin.exp.lambda_sweep",
        source=SRC + ", Experiments (lambda table)",
        statement=r"\text{larger }\lambda\Rightarrow\text{smaller }\|\theta_t-\theta_0\|"
        r"\text{ (and, per the seed, a smaller linearisation gap)}",
        convention=r"Two-layer MLP, split update, $\eta=0.02$, 200 steps, $\lambda=10$ vs $0.1$; "
        r"asserted: the distance decreases; the gap is reported in the details (it is not monotone "
        r"on every instance, e.g. seed 1, target scale 0.3: gap 4.1e-3 at lambda = 10 vs 5.3e-4 "
        r"at 0.1; nor in the seed's own SST-2 row). The figure ``lin-lambda`` has the full sweep.",
        params=mlp_params,
        build=build_model,
        check=check_lambda_sweep,
        expected="empirical",
        test_examples=1,
    )
)


# ------------------------------------------------------------------------------------------
# condition number vs training loss
# ------------------------------------------------------------------------------------------
def check_condition(inst):
    r"""KRR risk of $K$ vs that of $\lambda_{\max}(K)I$ (same $\lambda_{\max}$, $\kappa = 1$)."""
    k, y, s = inst["K"], inst["y"], inst["sigma"]
    rb = risk_bounds(k, y, s)
    rb2 = risk_bounds(k * 0.0 + np.diag(np.full(k.shape[0], np.linalg.eigvalsh(k)[-1])), y, s)
    # at fixed lambda_max, the well-conditioned kernel (kappa = 1) has risk <= this kernel's
    return compare(
        rb2["risk"],
        rb["risk"],
        "<=",
        tolerance(rb["risk"] * rb["kappa"]),
        kappa=rb["kappa"],
        risk=rb["risk"],
        risk_kappa1=rb2["risk"],
        criterion="the KRR training risk of the kappa = 1 kernel lambda_max(K) I is <= that of "
        "K (same lambda_max)",
    )


register(
    Claim(
        id="lin.exp.condition_number",
        source=SRC + ", Experiments (condition number vs train loss)",
        statement=r"\text{at fixed }\lambda_{\max}(K),\ \text{larger }\kappa(K+\sigma I)\Rightarrow"
        r"\text{larger KRR training risk}",
        convention=r"Compared against the $\kappa=1$ kernel $\lambda_{\max}(K)I$, whose risk is "
        r"exactly Theorem 5's lower bound, so this is the controlled form of the experiment and "
        r"follows from Theorem 5. Across real parameter subsets (figure ``lin-condition``) the "
        r"correlation of $\kappa$ with the fine-tuning loss is negative (Spearman -0.14 digits, "
        r"-0.86 synthetic): $\lambda_{\max}$ varies too.",
        params=kernel_params,
        build=build_kernel,
        check=check_condition,
        expected="empirical",
        test_examples=5,
    )
)
