r"""The float64 policy.

Every theorem check in this package compares two sides of an inequality whose slack can be far
below float32 resolution, so the package enables ``jax_enable_x64`` on import, before it creates
any array. Import :mod:`lowrank_theory` before building JAX arrays of your own, or set
``JAX_ENABLE_X64=1`` in the environment.
"""

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

#: Default floating dtype of every computation in the package.
DTYPE = np.float64
#: Machine epsilon of :data:`DTYPE` (2.22e-16).
EPS = float(np.finfo(DTYPE).eps)


def tolerance(scale: float, *, n: float = 1.0, factor: float = 100.0) -> float:
    r"""Absolute tolerance for comparing two computed quantities of size ``scale``.

    $$\mathrm{tol} = \text{factor}\cdot n\cdot \varepsilon_{64}\cdot \text{scale},$$

    the usual backward-error budget of a dense factorization of dimension ``n`` (JAX's and
    LAPACK's test suites use ``100 * eps`` on a norm-wise relative error). Every claim check takes
    its tolerance from here, with ``scale`` the instance's natural magnitude (a norm of the
    inputs times the condition numbers that amplify rounding), so no constant is sprinkled
    through the checks.

    Args:
        scale: magnitude of the quantities compared (non-negative, finite).
        n: problem dimension that rounding errors accumulate over.
        factor: safety factor; 100 unless a claim documents why it needs another.
    """
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"tolerance scale must be finite and non-negative, got {scale!r}")
    return float(factor * n * EPS * max(scale, np.finfo(DTYPE).tiny))
