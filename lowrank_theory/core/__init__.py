r"""The shared core: what every paper package builds on, and nothing of the package below it.

* :mod:`~lowrank_theory.core.precision`: the float64 policy (``jax_enable_x64``, set on
  import; :mod:`~lowrank_theory.core.environment` sets it before JAX is imported) and :func:`~lowrank_theory.core.precision.tolerance`, the one tolerance rule
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

import importlib as _importlib

#: the submodules, imported on first use (PEP 562): importing ``core`` loads no JAX
#: (:mod:`~lowrank_theory.core.environment`)
_SUBMODULES = ("deprecation", "environment", "linalg", "precision", "stats", "validation")


def __getattr__(name: str):
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBMODULES})
