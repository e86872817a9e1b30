"""Input validation shared by every module: clear errors that name the violated assumption."""

from collections.abc import Sequence

import jax.numpy as jnp
import numpy as np
from jax import Array

from .precision import DTYPE


def as_array(x, name: str, *, ndim: int | None = None, finite: bool = True) -> Array:
    """Converts ``x`` to a float64 JAX array, checking its rank and that it is finite."""
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
    if isinstance(xs, np.ndarray | Array) and getattr(xs, "ndim", 0) == 3:
        xs = list(xs)
    if not isinstance(xs, Sequence) or isinstance(xs, str) or len(xs) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of matrices")
    return [as_matrix(x, f"{name}[{i}]", square=square) for i, x in enumerate(xs)]


def check_int(value, name: str, *, lo: int | None = None, hi: int | None = None) -> int:
    """Checks that ``value`` is an integer in ``[lo, hi]`` (bounds inclusive)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if lo is not None and v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    if hi is not None and v > hi:
        raise ValueError(f"{name} must be <= {hi}, got {v}")
    return v
