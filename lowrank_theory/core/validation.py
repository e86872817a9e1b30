"""Input validation shared by every module: clear errors that name the violated assumption.

Every helper first checks the float64 policy (:func:`~lowrank_theory.core.precision.require_x64`),
so a public function that validates its arguments also refuses to run in float32.
"""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import Array

from .precision import DTYPE, require_x64


def as_array(x, name: str, *, ndim: int | None = None, finite: bool = True) -> Array:
    """Converts ``x`` to a float64 JAX array, checking its rank and that it is finite."""
    require_x64()
    try:
        a = jnp.asarray(x, dtype=DTYPE)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a real array, got {type(x).__name__}: {e}") from e
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    if finite and not bool(jnp.all(jnp.isfinite(a))):
        raise ValueError(f"{name} contains NaN or inf")
    return a


def as_matrix(x, name: str, *, square: bool = False) -> Array:
    """Converts ``x`` to a finite float64 matrix; ``square=True`` also requires m == n."""
    a = as_array(x, name, ndim=2)
    if square and a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be square, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    return a


def as_matrix_list(xs: Sequence, name: str, *, square: bool = False) -> list[Array]:
    """Converts a non-empty sequence of matrices, naming the offending index in errors."""
    require_x64()
    if isinstance(xs, np.ndarray | Array) and getattr(xs, "ndim", 0) == 3:
        xs = list(xs)
    if not isinstance(xs, Sequence) or isinstance(xs, str) or len(xs) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of matrices")
    return [as_matrix(x, f"{name}[{i}]", square=square) for i, x in enumerate(xs)]


def check_int(value, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """Checks that ``value`` is an integer in ``[lo, hi]`` (bounds inclusive)."""
    require_x64()
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")
    return v


def check_float(
    value,
    name: str,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Checks that ``value`` is a finite real number in ``[lo, hi]`` (``lo_open`` / ``hi_open``
    exclude the bound) and returns it as a float."""
    require_x64()
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        if not (isinstance(value, np.ndarray | Array) and getattr(value, "shape", None) == ()):
            raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {v}")
    if lo is not None and (v <= lo if lo_open else v < lo):
        raise ValueError(f"{name} must be {'>' if lo_open else '>='} {lo}, got {v}")
    if hi is not None and (v >= hi if hi_open else v > hi):
        raise ValueError(f"{name} must be {'<' if hi_open else '<='} {hi}, got {v}")
    return v


def check_sizes(sizes, name: str, *, min_len: int = 1, lo: int = 1) -> tuple[int, ...]:
    """Checks a sequence of layer sizes: at least ``min_len`` integers, each ``>= lo``."""
    require_x64()
    if isinstance(sizes, str) or not isinstance(sizes, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a sequence of integers, got {sizes!r}")
    if len(sizes) < min_len:
        raise ValueError(f"{name} must list at least {min_len} sizes, got {list(sizes)}")
    return tuple(check_int(s, f"{name}[{i}]", lo=lo) for i, s in enumerate(sizes))
