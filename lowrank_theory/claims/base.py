r"""The claim registry: each stated claim of a seed is one :class:`Claim` object.

A claim bundles

* where it comes from (``source``) and what it says (``statement``, LaTeX as written);
* the convention chosen where the seed is ambiguous (``convention``);
* ``params``: a hypothesis strategy drawing the *structure* of an instance (sizes, ranks, log
  condition numbers, a seed) as a dict of plain Python values;
* ``build(params)``: the instance built from those values with ``jax.random.key(params["seed"])``
  so that it satisfies the claim's assumptions by construction (and asserts them);
* ``check(instance)``: a :class:`CheckResult` with both sides, the tolerance, whether the claim
  holds on this instance, and a tightness figure;
* ``expected``: the registered status: ``"holds"``, ``"fails"`` (the seed's statement is false as
  written; ``counterexample`` then stores the smallest params found, and a ``<id>[corrected]``
  claim carries the corrected statement) or ``"empirical"`` (an experiment-type claim measured
  with its numbers reported).

Tightness: for an upper bound ``lhs <= rhs`` it is ``lhs/rhs``; for a lower bound ``lhs >= rhs``
it is ``rhs/lhs``; both are at most 1 (up to tolerance) when the claim holds and 1 means tight.
For an identity ``lhs == rhs`` it is the residual ``|lhs - rhs| / scale``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "REGISTRY",
    "CheckResult",
    "Claim",
    "Relation",
    "Status",
    "combine",
    "compare",
    "compare_le",
    "register",
    "to_jsonable",
]

Relation = Literal["<=", ">=", "=="]
Status = Literal["holds", "fails", "empirical"]


@dataclass(frozen=True)
class CheckResult:
    """Both sides of one claim on one instance and the verdict."""

    lhs: float
    rhs: float
    relation: Relation
    tol: float
    holds: bool
    tightness: float
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lhs": to_jsonable(self.lhs),
            "rhs": to_jsonable(self.rhs),
            "relation": self.relation,
            "tol": to_jsonable(self.tol),
            "holds": bool(self.holds),
            "tightness": to_jsonable(self.tightness),
            "details": {k: to_jsonable(v) for k, v in self.details.items()},
        }


def to_jsonable(v: Any) -> Any:
    """A JSON-ready copy of ``v``: arrays become lists (0-d arrays scalars), non-finite floats
    strings (``"inf"``, ``"nan"``), mappings dicts with string keys, tuples lists."""
    try:
        import numpy as np

        if isinstance(v, np.ndarray) or hasattr(v, "__array__"):
            arr = np.asarray(v)
            return arr.item() if arr.ndim == 0 else arr.tolist()
    except Exception:  # pragma: no cover - defensive
        pass
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, Mapping):
        return {str(k): to_jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [to_jsonable(x) for x in v]
    return v


def compare(
    lhs: float,
    rhs: float,
    relation: Relation,
    tol: float,
    *,
    scale: float | None = None,
    **details: Any,
) -> CheckResult:
    r"""Compares ``lhs`` and ``rhs`` with absolute tolerance ``tol``.

    ``"<="`` holds when ``lhs <= rhs + tol``; ``">="`` when ``lhs >= rhs - tol``; ``"=="`` when
    ``|lhs - rhs| <= tol``. ``scale`` normalises the identity residual (default
    ``max(|lhs|, |rhs|, tiny)``). NaN on either side never holds.
    """
    lhs, rhs, tol = float(lhs), float(rhs), float(tol)
    if not (tol >= 0):
        raise ValueError(f"tolerance must be non-negative, got {tol}")
    finite = math.isfinite(lhs) and math.isfinite(rhs)
    if relation == "<=":
        holds = finite and lhs <= rhs + tol
        tight = _ratio(lhs, rhs)
    elif relation == ">=":
        holds = finite and lhs >= rhs - tol
        tight = _ratio(rhs, lhs)
    elif relation == "==":
        holds = finite and abs(lhs - rhs) <= tol
        s = scale if scale is not None else max(abs(lhs), abs(rhs), 1e-300)
        tight = abs(lhs - rhs) / s if finite else math.inf
    else:
        raise ValueError(f"unknown relation {relation!r}")
    return CheckResult(lhs, rhs, relation, tol, bool(holds), float(tight), details)


def compare_le(lhs: float, rhs: float, tol: float, **details: Any) -> CheckResult:
    r"""An upper bound ``lhs <= rhs`` (:func:`compare` with ``"<="``) that may be tight at zero.

    When ``rhs`` is zero to rounding (``rhs <= tol``: the exact regime, e.g. $R\ge\lceil
    R_E/L\rceil$) and the bound holds, both sides vanish and ``lhs/rhs`` would be a ratio of
    rounding noise; the tightness is then reported as 1 (attained), not as that ratio.
    """
    r = compare(lhs, rhs, "<=", tol, **details)
    if rhs <= tol and r.holds:
        r = dataclasses.replace(r, tightness=1.0)
    return r


def _ratio(num: float, den: float) -> float:
    if math.isnan(num) or math.isnan(den):
        return math.nan
    if den == 0.0:
        return 1.0 if num == 0.0 else math.inf
    return num / den


def combine(results: list[CheckResult], **details: Any) -> CheckResult:
    """One verdict from several sub-checks: holds iff all hold; reports the worst sub-check.

    The worst is the one that fails, else the one with the largest tightness (bounds) or
    residual (identities).
    """
    if not results:
        raise ValueError("combine needs at least one result")
    failing = [r for r in results if not r.holds]
    worst = failing[0] if failing else max(results, key=lambda r: r.tightness)
    merged = dict(worst.details)
    merged.update(details)
    merged["n_subchecks"] = len(results)
    return CheckResult(
        worst.lhs, worst.rhs, worst.relation, worst.tol, not failing, worst.tightness, merged
    )


@dataclass(frozen=True)
class Claim:
    """One registered claim. See the module docstring for the meaning of each field."""

    id: str
    source: str
    statement: str
    params: Callable[[], Any]
    build: Callable[[dict[str, Any]], Any]
    check: Callable[[Any], CheckResult]
    expected: Status = "holds"
    convention: str = ""
    counterexample: Mapping[str, Any] | None = None
    corrected: str | None = None
    notes: str = ""
    #: examples in the default test profile (the audit takes its own count)
    test_examples: int = 20
    #: a claim whose single check takes more than ~1 s is marked slow in the test suite
    slow: bool = False

    def __post_init__(self) -> None:
        if self.expected == "fails" and self.counterexample is None:
            raise ValueError(f"claim {self.id} is registered as failing without a counterexample")
        if self.expected not in ("holds", "fails", "empirical"):
            raise ValueError(f"claim {self.id}: unknown expected status {self.expected!r}")

    def run(self, params: dict[str, Any]) -> CheckResult:
        """Builds the instance for ``params`` and checks it."""
        return self.check(self.build(params))


REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Adds ``claim`` to the registry; ids are unique and stable."""
    if claim.id in REGISTRY:
        raise ValueError(f"claim id {claim.id!r} registered twice")
    REGISTRY[claim.id] = claim
    return claim
