r"""The float64 policy, and the one XLA CPU setting the package needs.

Every theorem check in this package compares two sides of an inequality whose slack can be far
below float32 resolution, so the package enables ``jax_enable_x64`` on import, before it creates
any array. Import :mod:`lowrank_theory` before building JAX arrays of your own, or set
``JAX_ENABLE_X64=1`` in the environment. Turning x64 off again afterwards makes the public
functions refuse to run (:func:`require_x64`) rather than compute in float32.

**XLA CPU scheduler.** With jax/jaxlib 0.10.2 on CPU, XLA's *concurrency-optimized* HLO
scheduler (on by default) lets a vmapped program that contains several independent LAPACK
custom calls (the batched QR/SVD of Deep LoRA's compression) deadlock: every runtime thread
waits and the result never arrives (measured: 3 of 4 fresh processes hung within 20 repeated
few-shot calls; with the scheduler off, 0 of 16 processes x 30 calls). The package therefore
appends ``--xla_cpu_enable_concurrency_optimized_scheduler=false`` to ``XLA_FLAGS`` on import,
unless the variable already sets that flag either way. XLA reads the variable when the backend
starts (the first array), so import :mod:`lowrank_theory` first; if a backend was already
running, a :class:`RuntimeWarning` says the setting could not take effect.
"""

import warnings

import jax
import numpy as np

from .environment import XLA_CPU_FLAGS as XLA_CPU_FLAGS
from .environment import add_xla_flags


def _apply_xla_flags() -> None:
    missing = add_xla_flags()
    if not missing:
        return
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        warnings.warn(
            "lowrank_theory was imported after JAX started its backend, so "
            f"{' '.join(missing)} could not take effect; vmapped programs with several LAPACK "
            "calls (Deep LoRA compression) can deadlock on CPU. Import lowrank_theory first or "
            "set XLA_FLAGS yourself.",
            RuntimeWarning,
            stacklevel=3,
        )


_apply_xla_flags()
jax.config.update("jax_enable_x64", True)


def require_x64() -> None:
    """Raises :class:`RuntimeError` unless ``jax_enable_x64`` is on (where it is read now).

    The package turns x64 on when it is imported; a user who later calls
    ``jax.config.update("jax_enable_x64", False)`` (or enters ``jax.enable_x64(False)``) would
    otherwise get every result silently in float32 (the claims' slack is far below float32
    resolution). The validation helpers of :mod:`lowrank_theory.core.validation`, which every
    public function calls on its arguments, call this first. It is one config read (~0.1 us)
    and plain Python, so it is harmless at trace time inside :func:`jax.jit`.
    """
    if not jax.config.jax_enable_x64:
        raise RuntimeError(
            "lowrank_theory computes in float64; jax_enable_x64 was turned off after import "
            "(jax.config.update('jax_enable_x64', False) or jax.enable_x64(False)), so results "
            "would silently be float32. Turn it back on with "
            "jax.config.update('jax_enable_x64', True)."
        )


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
