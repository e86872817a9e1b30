"""The claim registry: one module per seed, each registering its claims on import.

Modules in this package are discovered automatically: adding ``claims/<paper>/<topic>.py``
that calls :func:`register` is all it takes for the audit and the test suite to pick the claims up.
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
    for mod in sorted(pkgutil.walk_packages(__path__, f"{__name__}."), key=lambda m: m.name):
        leaf = mod.name.rpartition(".")[2]
        if not mod.ispkg and leaf != "base" and not leaf.startswith("_"):
            importlib.import_module(mod.name)
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
