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

Tightness (one definition for every paper, computed in :func:`compare`): for an upper bound
``lhs <= rhs`` it is ``lhs/rhs``; for a lower bound ``lhs >= rhs`` it is ``rhs/lhs``; both are at
most 1 (up to tolerance) when the claim holds and 1 means tight. For an identity ``lhs == rhs``
it is the normalised residual ``|lhs - rhs| / scale``. A bound's tightness is computed only when
both sides are above the *scale floor* (by default the check's own tolerance ``tol``: a side at
or below it is rounding noise of the instance's scale). An instance with a side below the floor
is *degenerate*: its tightness is NaN, ``CheckResult.degenerate`` is true, the audit counts it in
``n_degenerate`` and never reports it as tight (it still counts as a violation if it violates).

Violation margin (:attr:`CheckResult.margin`): the scalar the audit's search pushes up, > 1
exactly when the check is violated beyond its tolerance on a non-degenerate instance: the
tightness for a bound, ``|lhs - rhs| / tol`` for an identity; NaN when degenerate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "REGISTRY",
    "AssumptionError",
    "CheckResult",
    "Claim",
    "Relation",
    "Status",
    "combine",
    "compare",
    "compare_le",
    "draw_params",
    "register",
    "to_jsonable",
]

Relation = Literal["<=", ">=", "=="]
Status = Literal["holds", "fails", "empirical"]


class AssumptionError(ValueError):
    """Parameters given to :meth:`Claim.run` that the claim does not accept: missing or unknown
    keys, a value of the wrong type, or an instance violating the claim's assumptions (its
    ``build`` asserted a precondition or the package's input validation refused it).

    Raised instead of returning a :class:`CheckResult`, whose ``holds=False`` would read as a
    counterexample. ``claim_id`` names the claim; the message names it and what was violated.
    """

    def __init__(self, claim_id: str, message: str) -> None:
        super().__init__(f"claim {claim_id}: {message}")
        self.claim_id = claim_id


#: deterministic draws of a claim's strategy from which :meth:`Claim.parameter_spec` learns
#: the parameter keys and value types (optional keys appear in some draws only)
SPEC_DRAWS = 20


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
    #: a side of the bound is at or below the scale floor: the tightness (NaN) says nothing
    degenerate: bool = False

    @property
    def margin(self) -> float:
        """The violation margin (module docstring): > 1 iff violated on a non-degenerate
        instance; NaN for a degenerate one."""
        if self.degenerate:
            return math.nan
        if self.relation == "==":
            if not (math.isfinite(self.lhs) and math.isfinite(self.rhs)):
                return math.inf
            gap = abs(self.lhs - self.rhs)
            return gap / self.tol if self.tol > 0 else (0.0 if gap == 0 else math.inf)
        return self.tightness

    def as_dict(self) -> dict[str, Any]:
        return {
            "lhs": to_jsonable(self.lhs),
            "rhs": to_jsonable(self.rhs),
            "relation": self.relation,
            "tol": to_jsonable(self.tol),
            "holds": bool(self.holds),
            "tightness": to_jsonable(self.tightness),
            "degenerate": bool(self.degenerate),
            "margin": to_jsonable(self.margin),
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
    floor: float | None = None,
    **details: Any,
) -> CheckResult:
    r"""Compares ``lhs`` and ``rhs`` with absolute tolerance ``tol``; the one tightness rule.

    ``"<="`` holds when ``lhs <= rhs + tol``; ``">="`` when ``lhs >= rhs - tol``; ``"=="`` when
    ``|lhs - rhs| <= tol``. NaN or inf on either side never holds.

    Tightness: ``lhs/rhs`` (``"<="``), ``rhs/lhs`` (``">="``), ``|lhs - rhs| / scale``
    (``"=="``, ``scale`` defaulting to ``max(|lhs|, |rhs|)``). ``floor`` is the scale floor
    (default ``tol``): a bound with ``|lhs|`` or ``|rhs|`` at or below it, or an identity whose
    ``scale`` is, is *degenerate*: tightness NaN and ``degenerate=True`` (module docstring).
    """
    lhs, rhs, tol = float(lhs), float(rhs), float(tol)
    if not (tol >= 0):
        raise ValueError(f"tolerance must be non-negative, got {tol}")
    floor = tol if floor is None else float(floor)
    if not (floor >= 0):
        raise ValueError(f"scale floor must be non-negative, got {floor}")
    finite = math.isfinite(lhs) and math.isfinite(rhs)
    if relation == "<=":
        holds = finite and lhs <= rhs + tol
        tight = _ratio(lhs, rhs)
    elif relation == ">=":
        holds = finite and lhs >= rhs - tol
        tight = _ratio(rhs, lhs)
    elif relation == "==":
        holds = finite and abs(lhs - rhs) <= tol
        s = scale if scale is not None else max(abs(lhs), abs(rhs))
        tight = abs(lhs - rhs) / max(s, 1e-300) if finite else math.inf
    else:
        raise ValueError(f"unknown relation {relation!r}")
    if relation == "==":
        degenerate = finite and (scale if scale is not None else max(abs(lhs), abs(rhs))) <= floor
        degenerate = degenerate and holds  # a violated identity is never "degenerate"
    else:
        degenerate = finite and min(abs(lhs), abs(rhs)) <= floor
    if degenerate and relation != "==":
        tight = math.nan
    return CheckResult(lhs, rhs, relation, tol, bool(holds), float(tight), details, degenerate)


def compare_le(lhs: float, rhs: float, tol: float, **details: Any) -> CheckResult:
    r"""An upper bound ``lhs <= rhs``: :func:`compare` with ``"<="``.

    Kept for callers of earlier versions, which reported tightness 1 when ``rhs`` vanished to
    rounding; such an instance is now degenerate (tightness NaN, counted apart), like every
    bound with a side below the scale floor.
    """
    return compare(lhs, rhs, "<=", tol, **details)


def _ratio(num: float, den: float) -> float:
    if math.isnan(num) or math.isnan(den):
        return math.nan
    if den == 0.0:
        return math.nan if num == 0.0 else math.inf
    return num / den


def combine(
    results: list[CheckResult], *, primary: int | None = None, **details: Any
) -> CheckResult:
    """One verdict from several sub-checks: holds iff all hold.

    The reported sub-check (its sides, tolerance, tightness) is the first failing one; if all
    hold, ``results[primary]``, the sub-check the claim is about (each claim says which in its
    ``convention`` or ``notes``); without ``primary``, the one with the largest tightness
    among the non-degenerate ones (the first if all are degenerate). ``details`` records
    ``n_subchecks`` and, when given, ``primary``.
    """
    if not results:
        raise ValueError("combine needs at least one result")
    if primary is not None and not 0 <= primary < len(results):
        raise ValueError(f"primary={primary} is not a sub-check index (0..{len(results) - 1})")
    failing = [r for r in results if not r.holds]
    if failing:
        worst = failing[0]
    elif primary is not None:
        worst = results[primary]
    else:
        ok = [r for r in results if not r.degenerate and not math.isnan(r.tightness)]
        worst = max(ok, key=lambda r: r.tightness) if ok else results[0]
    merged = dict(worst.details)
    merged.update(details)
    merged["n_subchecks"] = len(results)
    if primary is not None:
        merged["primary"] = primary
    return CheckResult(
        worst.lhs,
        worst.rhs,
        worst.relation,
        worst.tol,
        not failing,
        worst.tightness,
        merged,
        worst.degenerate,
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
    #: cache of :meth:`parameter_spec`
    spec_cache: dict[str, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.expected == "fails" and self.counterexample is None:
            raise ValueError(f"claim {self.id} is registered as failing without a counterexample")
        if self.expected not in ("holds", "fails", "empirical"):
            raise ValueError(f"claim {self.id}: unknown expected status {self.expected!r}")

    def run(self, params: Mapping[str, Any], *, validate: bool = True) -> CheckResult:
        """Builds the instance for ``params`` and checks it.

        With ``validate`` (the default) the parameters are first checked against the claim's
        strategy (:meth:`validate_params`), and an instance its ``build`` refuses (a failed
        ``assert`` of a precondition, a ``ValueError`` of the package's input validation)
        raises :class:`AssumptionError` naming the claim and the violated assumption, never a
        ``CheckResult`` that would look like a counterexample. The audit passes
        ``validate=False`` for the instances hypothesis draws, which are valid by construction
        and keep exactly their earlier treatment.
        """
        if not validate:
            return self.check(self.build(dict(params)))
        params = self.validate_params(params)
        try:
            inst = self.build(params)
        except AssumptionError:
            raise
        except AssertionError as e:
            raise AssumptionError(
                self.id, f"the instance violates an assumption: {_assertion_text(e)}"
            ) from e
        except ValueError as e:
            raise AssumptionError(self.id, f"the instance violates an assumption: {e}") from e
        except KeyError as e:
            key = e.args[0] if e.args else None
            if isinstance(key, str) and key not in params:
                raise AssumptionError(self.id, f"missing parameter {key!r}") from e
            raise
        return self.check(inst)

    def parameter_spec(self) -> dict[str, Any]:
        """What the claim's strategy draws, learned from :data:`SPEC_DRAWS` deterministic draws
        (``derandomize=True``; cached): ``required`` (keys in every draw and in the stored
        counterexample), ``allowed`` (keys in any) and ``types`` (key -> the set of value type
        names drawn). Value ranges and string choices are not learned (a few draws do not
        show them all); ``build`` asserts the assumptions."""
        if not self.spec_cache:
            draws = draw_params(self.params(), SPEC_DRAWS)
            if self.counterexample is not None:
                draws.append(dict(self.counterexample))
            keys = [frozenset(p) for p in draws]
            types: dict[str, set[str]] = {}
            for p in draws:
                for k, v in p.items():
                    types.setdefault(k, set()).add(_kind(v))
            self.spec_cache.update(
                required=frozenset.intersection(*keys),
                allowed=frozenset.union(*keys),
                types=types,
            )
        return self.spec_cache

    def validate_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``params`` after checking it against :meth:`parameter_spec`: no missing or
        unknown key, each value of a type the strategy draws (an ``int`` is accepted for a
        ``float``). Raises :class:`AssumptionError`."""
        if not isinstance(params, Mapping):
            raise AssumptionError(
                self.id, f"params must be a dict of parameters, got {type(params).__name__}"
            )
        params = dict(params)
        spec = self.parameter_spec()
        missing = sorted(spec["required"] - params.keys())
        extra = sorted(params.keys() - spec["allowed"])
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing parameter(s) {', '.join(map(repr, missing))}")
            if extra:
                parts.append(f"unknown parameter(s) {', '.join(map(repr, extra))}")
            raise AssumptionError(
                self.id,
                "; ".join(parts)
                + f" (its strategy draws {', '.join(map(repr, sorted(spec['allowed'])))})",
            )
        for k, v in params.items():
            drawn = spec["types"][k]
            kind = _kind(v)
            if kind not in drawn and not (kind == "int" and "float" in drawn):
                raise AssumptionError(
                    self.id,
                    f"parameter {k!r} must be {' or '.join(sorted(drawn))} (as its strategy "
                    f"draws), got {kind} {v!r}",
                )
        return params


def _kind(v: Any) -> str:
    """The type name :meth:`Claim.validate_params` compares: ``bool``, ``int``, ``float``,
    ``str``, ``None`` or the type's own name (NumPy scalars count as their Python kinds)."""
    if v is None:
        return "None"
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return "bool"
    if isinstance(v, int) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") in "iu"):
        return "int"
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        return "float"
    return "str" if isinstance(v, str) else type(v).__name__


def _assertion_text(e: AssertionError) -> str:
    """The message of a failed ``assert``, or its source line when it has none."""
    if e.args and str(e.args[0]):
        return str(e.args[0])
    import traceback

    frames = traceback.extract_tb(e.__traceback__)
    line = frames[-1].line if frames else ""
    return line or "a precondition assert failed"


def draw_params(strategy: Any, n: int) -> list[dict[str, Any]]:
    """``n`` deterministic draws of ``strategy`` (hypothesis with ``derandomize=True``).

    Run in a worker thread: hypothesis refuses a nested ``@given`` in the thread of a running
    one (its test context is thread-local), and ``Claim.run`` is called inside such tests.
    """
    import threading

    from hypothesis import HealthCheck, Phase, given, settings

    seen: list[dict[str, Any]] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:

            @settings(
                max_examples=n,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(strategy)
            def collect(p: dict[str, Any]) -> None:
                seen.append(dict(p))

            collect()
        except BaseException as e:  # re-raised in the caller's thread
            failure.append(e)

    worker = threading.Thread(target=target, name="claim-parameter-spec")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return seen


REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    """Adds ``claim`` to the registry; ids are unique and stable."""
    if claim.id in REGISTRY:
        raise ValueError(f"claim id {claim.id!r} registered twice")
    REGISTRY[claim.id] = claim
    return claim
