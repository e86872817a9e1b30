r"""The shared core: what every paper package builds on, and nothing of the package below it.

* :mod:`~lowrank_theory.core.precision`: the float64 policy (``jax_enable_x64``, set on
  import) and :func:`~lowrank_theory.core.precision.tolerance`, the one tolerance rule
  (a multiple of $\varepsilon_{64}$ times the problem's scale).
* :mod:`~lowrank_theory.core.validation`: argument checks that raise a ``ValueError``
  naming the argument (shapes, finiteness, integer ranges).
* :mod:`~lowrank_theory.core.linalg`: the one copy of the shared numerics: chain products,
  singular values and truncated SVD, the numerical-rank rule (on the problem's scale),
  pseudo-inverse, PSD roots, orthonormal bases and projectors, principal angles, Haar and
  prescribed-spectrum random matrices.
* :mod:`~lowrank_theory.core.stats`: small statistics (confidence intervals).
* :mod:`~lowrank_theory.core.deprecation`: the old flat module paths, kept for one release.

Imports: ``core`` imports nothing of the package outside ``core`` (``tests/test_layers.py``).
"""

from . import precision as precision  # noqa: I001  (first: sets jax_enable_x64)
from . import linalg as linalg, validation as validation
