"""The claim registry: one module per seed, each registering its claims on import.

Modules in this package are discovered automatically: adding ``claims/<topic>.py`` that calls
:func:`register` is all it takes for the audit and the test suite to pick the claims up.
"""

import importlib
import pkgutil

from .base import REGISTRY, CheckResult, Claim, combine, compare, register

__all__ = [
    "REGISTRY",
    "CheckResult",
    "Claim",
    "all_claims",
    "combine",
    "compare",
    "get",
    "register",
]

_LOADED = False


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name != "base" and not mod.name.startswith("_"):
            importlib.import_module(f"{__name__}.{mod.name}")
    _LOADED = True


def all_claims(prefix: str = "") -> list[Claim]:
    """Every registered claim whose id starts with ``prefix``, sorted by id."""
    _load()
    return [REGISTRY[k] for k in sorted(REGISTRY) if k.startswith(prefix)]


def get(claim_id: str) -> Claim:
    """The claim registered under ``claim_id``."""
    _load()
    try:
        return REGISTRY[claim_id]
    except KeyError:
        raise KeyError(f"no claim {claim_id!r}; known: {sorted(REGISTRY)}") from None
