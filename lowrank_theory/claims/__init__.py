"""The claim registry: one module per seed, each registering its claims on import.

Modules in this package are discovered automatically: adding ``claims/<paper>/<topic>.py``
that calls :func:`register` is all it takes for the audit and the test suite to pick the claims up.
"""

import difflib
import importlib
import pkgutil

from .base import REGISTRY, AssumptionError, CheckResult, Claim, combine, compare, register

__all__ = [
    "REGISTRY",
    "AssumptionError",
    "CheckResult",
    "Claim",
    "all_claims",
    "close_matches",
    "combine",
    "compare",
    "get",
    "register",
    "unknown_claim_message",
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


def close_matches(text: str, n: int = 5, *, prefixes: bool = False) -> list[str]:
    """At most ``n`` registered ids close to ``text``, best first.

    The ids starting with ``text`` come first, then :func:`difflib.get_close_matches` of
    ``text`` among the ids; with ``prefixes`` also among their dotted prefixes (``lora``,
    ``lora.lemma1``, ...), so that a typo in a prefix (``lora.lema1``) finds the prefix.
    """
    _load()
    ids = sorted(REGISTRY)
    out = [k for k in ids if k.startswith(text)][:n]
    pool = set(ids)
    if prefixes:
        for k in ids:
            parts = k.split("[", 1)[0].split(".")
            pool.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    for m in difflib.get_close_matches(text, sorted(pool), n=n, cutoff=0.6):
        if len(out) < n and m not in out and m != text:
            out.append(m)
    return out


def unknown_claim_message(text: str, *, prefix: bool = False) -> str:
    """One line saying that no claim has id (``prefix=False``) or id prefix ``text``, with the
    close matches of :func:`close_matches` (or the papers' prefixes when nothing is close)."""
    _load()
    what = "no registered claim starts with" if prefix else "no claim"
    matches = close_matches(text, prefixes=prefix)
    if matches:
        return f"{what} {text!r}; did you mean: {', '.join(matches)}?"
    papers = sorted({k.split(".", 1)[0] for k in REGISTRY})
    return f"{what} {text!r}; ids start with one of: {', '.join(papers)}"


def get(claim_id: str) -> Claim:
    """The claim registered under ``claim_id``; a ``KeyError`` naming a handful of close
    matches (:func:`close_matches`) when there is none."""
    _load()
    try:
        return REGISTRY[claim_id]
    except KeyError:
        raise KeyError(unknown_claim_message(claim_id)) from None
