"""Test-suite numeric regime and hypothesis profiles.

* float64 (``jax_enable_x64``, via importing the package first) and rank promotion ``raise``
  (implicit broadcasting across ranks is a bug in theorem checks).
* Hypothesis profiles: ``default`` is deterministic (``derandomize=True``, no database,
  no deadline since JIT compile time varies); ``thorough`` (``HYPOTHESIS_PROFILE=thorough``)
  runs 10x more examples with random seeds.
* ``RUN_SLOW=1`` (or ``-m slow``) runs the tests marked ``slow``.
"""

import os

import jax
import pytest
from hypothesis import HealthCheck, settings

import lowrank_theory  # noqa: F401  (sets jax_enable_x64 before any array exists)

jax.config.update("jax_numpy_rank_promotion", "raise")

settings.register_profile(
    "default",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=20,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.register_profile(
    "thorough",
    derandomize=False,
    database=None,
    deadline=None,
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "default")
settings.load_profile(PROFILE)
#: multiplier on each claim's default example count under the thorough profile
EXAMPLES_FACTOR = 10 if PROFILE == "thorough" else 1


def pytest_collection_modifyitems(config, items):
    if os.environ.get("RUN_SLOW") == "1" or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with RUN_SLOW=1 or -m slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
