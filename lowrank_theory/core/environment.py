r"""The environment the package sets on import, without importing JAX.

``import lowrank_theory`` does not import JAX (the package's names load on first use), so the
float64 policy of :mod:`~lowrank_theory.core.precision` is set through JAX's own environment
switch when JAX is not imported yet: :func:`set_environment` sets ``JAX_ENABLE_X64=1``, which
JAX reads when it is imported, and appends :data:`XLA_CPU_FLAGS` to ``XLA_FLAGS``, which XLA
reads when its backend starts. Child processes inherit both. When JAX is already imported,
:mod:`~lowrank_theory.core.precision` sets the config itself (and warns if the backend already
started, too late for the XLA flags).

This module imports nothing but the standard library (``tests/test_public_api.py`` checks that
``import lowrank_theory`` and ``python -m lowrank_theory --help`` load no JAX).
"""

import os

#: XLA flags the package sets unless ``XLA_FLAGS`` already mentions them (see
#: :mod:`~lowrank_theory.core.precision` for why).
XLA_CPU_FLAGS = ("--xla_cpu_enable_concurrency_optimized_scheduler=false",)


def add_xla_flags() -> list[str]:
    """Appends to ``XLA_FLAGS`` each of :data:`XLA_CPU_FLAGS` the variable does not already set
    either way; returns those added."""
    flags = os.environ.get("XLA_FLAGS", "")
    missing = [f for f in XLA_CPU_FLAGS if f.split("=", 1)[0] not in flags]
    if missing:
        os.environ["XLA_FLAGS"] = " ".join([flags, *missing]).strip()
    return missing


def set_environment() -> None:
    """Sets ``JAX_ENABLE_X64=1`` and the XLA flags (:func:`add_xla_flags`) for a JAX not yet
    imported."""
    os.environ["JAX_ENABLE_X64"] = "1"
    add_xla_flags()
