r"""The audit: search every registered claim for a violation and report, claim by claim.

``python -m lowrank_theory audit [--claims PREFIX] [--examples N] [--seed S] [--no-stored]
[--json PATH [--resume]]``

For each claim the audit *searches* for an instance that violates it, in three steps:

1. **Sampling and targeting.** Hypothesis draws ``N`` instance structures from the claim's
   strategy (seeded by ``S``; the same command gives the same instances). Each instance's
   check reports both sides and a scalar *violation margin* (:attr:`CheckResult.margin`:
   the tightness on the side that matters for a bound, ``|lhs - rhs| / tol`` for an
   identity; > 1 exactly when the instance violates the claim; NaN on a degenerate instance).
   The audit passes every finite margin to ``hypothesis.target``, so that from half the
   budget on hypothesis' optimiser mutates the instances with the largest margins: the
   bounds are pushed toward their worst case instead of only sampled. Equality cases (a
   bound met exactly) are targeted under a label of their own (:func:`_label`), so that a
   family of them (a bound attained on a plateau of instances) does not hold the optimiser.
2. **Local refinement** (:func:`refine`). If no violation was found, a first-improvement hill
   climb on the margin runs from each of the best instances in turn (at most
   :data:`REFINE_STARTS`, equality cases last, no two with the same discrete parameters or
   margin), the seed fixed. A move changes one parameter: a float by half, then a quarter,
   of the range the strategy draws it in; a discrete parameter to another value the strategy
   draws (an integer to the nearest drawn value below or above), only where that value was
   drawn together with the others (:class:`_Space`: a rank never moves without the sparsity
   the strategy derives from it). Moves to another family of instances (a distribution, a
   regime, a shape) come first. The ranges and combinations are learned from the sampled
   instances and :data:`SPACE_DRAWS` deterministic draws of the strategy (nothing is built
   for those). An instance the claim refuses (a failed ``assert`` in ``build`` or a
   ``ValueError`` of the package's validation, in ``build`` or in the check) is infeasible and
   skipped, never a finding. It stops at the first violation, or after ``refine_budget``
   evaluations in all, refused ones included (default :func:`default_refine_budget`: half
   of ``N``), shared evenly by the starts.
3. **Stored counterexample.** A claim registered as failing is also re-checked on its stored
   counterexample, unless ``--no-stored`` (``use_stored=False``): then a false claim must be
   rediscovered by the search alone, as for a new claim that has none.

When a claim is violated hypothesis *shrinks* to the smallest violating instance it can find
(targeting the margin too), reported with both sides' values; a violation only the
refinement found is reported as found (drawing the strategy again would not find one).

Each claim's report (JSON schema: :class:`ClaimReport`) records the search budget used
(``search``: instances checked per step, ``generate``, ``target``, ``refine`` (with
``refine_infeasible`` of them refused), ``stored``, and ``shrink``), the number of instances
the search checked up to and including its first violation (``examples_to_violation``, with
the step that found it in ``found_by``), and ``n_degenerate``: instances with a side of the
bound at or below the scale floor, counted apart and never taken as tight (``max_tightness``
and ``tightest`` are over the non-degenerate instances; a degenerate instance that violates
the claim still counts as a violation).

Status column: ``holds`` (no violation found), ``fails`` (a violation found: for a claim
registered as failing this reproduces the known counterexample; for one registered as holding
it is flagged ``UNEXPECTED``), ``empirical (criterion met on k/n)`` (experiment-type claim: its
check's ``holds`` is its stated criterion, met on ``k`` of the ``n`` instances; the numbers are
in the JSON ``details``; no targeting or refinement, which would bias ``k/n``), ``error`` (the
check raised).

Progress: one line per finished claim on stdout and, when stderr is a terminal, a ``tqdm`` bar
of the claim's sampled instances with an ETA. With ``--json`` the report is rewritten
atomically after each claim, so an interrupted audit keeps what it finished; ``--resume``
continues it (refused when the report was made with other ``--examples``, ``--seed`` or
``--no-stored``).
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import traceback
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase

from ..claims import Claim, all_claims, unknown_claim_message
from ..claims.base import AssumptionError, CheckResult, to_jsonable

#: the label of the violation margin passed to ``hypothesis.target``
MARGIN_LABEL = "violation margin"
#: a holding bound with margin within this of 1 is an equality case (:func:`_label`)
EQUALITY_RTOL = 1e-6
#: halvings of the refinement's float step (the first step is half the drawn range)
REFINE_HALVINGS = 1
#: starting points of the refinement (the best instances, distinct discrete parameters)
REFINE_STARTS = 3
#: deterministic draws of a claim's strategy from which the refinement learns its space
SPACE_DRAWS = 300
#: an integer parameter drawn with more values than this is a size or a rank (``_Space``)
FEW_VALUES = 4
#: margins within this relative difference are equal (rounding): no improvement
MARGIN_RTOL = 1e-9
#: the search steps, in the order they run (the keys of ``ClaimReport.search``)
SEARCH_STEPS = ("generate", "target", "refine", "stored")


def default_refine_budget(examples: int) -> int:
    """Evaluations of the local refinement per claim: half of ``examples``, at least 4."""
    return max(4, examples // 2)


@dataclass
class ClaimReport:
    """The audit's findings for one claim (``as_dict`` is the JSON schema; module docstring)."""

    id: str
    source: str
    expected: str
    status: str
    n_instances: int
    n_violations: int
    max_tightness: float | None
    tightest: dict[str, Any] | None
    counterexample: dict[str, Any] | None
    elapsed_s: float
    statement: str = ""
    convention: str = ""
    corrected: str | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: instances with a side at or below the scale floor (never counted as tight)
    n_degenerate: int = 0
    #: instances the search (not the stored counterexample) checked up to its first violation
    examples_to_violation: int | None = None
    #: the step that found the first violation: generate, target, refine or stored
    found_by: str | None = None
    #: the search budget used: instances checked per step (module docstring)
    search: dict[str, int] = field(default_factory=dict)

    @property
    def unexpected(self) -> bool:
        return self.status not in (self.expected, "empirical") or self.status == "error"

    @property
    def status_text(self) -> str:
        """The status as shown: ``empirical (criterion met on k/n)`` for empirical claims."""
        if self.status == "empirical":
            met = self.n_instances - self.n_violations
            return f"empirical (criterion met on {met}/{self.n_instances})"
        return self.status

    @property
    def found_text(self) -> str:
        """Where the first violation came from: ``"7 (target)"``, ``"stored"`` or ``"-"``."""
        if self.examples_to_violation is not None:
            return f"{self.examples_to_violation} ({self.found_by})"
        return self.found_by or "-"

    def as_dict(self) -> dict[str, Any]:
        d = {k: to_jsonable(v) for k, v in self.__dict__.items()}
        d["unexpected"] = self.unexpected
        return d


def _settings(examples: int, phases: list[Phase]) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=phases,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
        report_multiple_bugs=False,
    )


def _instance_record(params: dict[str, Any], r: CheckResult) -> dict[str, Any]:
    return {"params": to_jsonable(dict(params)), **r.as_dict()}


def _equality(r: CheckResult) -> bool:
    """An equality case: a bound met with equality (margin 1 up to :data:`EQUALITY_RTOL`)."""
    return r.relation != "==" and r.holds and abs(r.margin - 1.0) <= EQUALITY_RTOL


def _label(r: CheckResult) -> str:
    """The ``hypothesis.target`` label of an instance's margin: equality cases apart, so that
    a plateau of them (a bound attained on a whole family of instances) does not hold the
    optimiser, which climbs from the best instance of each label."""
    return MARGIN_LABEL + (" (equality cases)" if _equality(r) else "")


def _finite(x: float) -> bool:
    return isinstance(x, float | int) and math.isfinite(x)


def _key(params: dict[str, Any]) -> str:
    return json.dumps(to_jsonable(params), sort_keys=True)


@contextmanager
def _phase_observer(on_case: Callable[[str], None]) -> Iterator[None]:
    """Calls ``on_case(phase)`` after each valid hypothesis test case (``"generate"`` or
    ``"target"``), from hypothesis' observability callbacks, with its coverage tracing off
    (which would slow every check; hypothesis supports setting that flag)."""
    from hypothesis.internal import observability as obs

    def callback(o: Any) -> None:
        if getattr(o, "type", None) == "test_case" and getattr(o, "status", None) == "passed":
            on_case("target" if "target phase" in str(o.how_generated) else "generate")

    saved = obs.OBSERVABILITY_COLLECT_COVERAGE
    obs.OBSERVABILITY_COLLECT_COVERAGE = False
    try:
        with obs.with_observability_callback(callback):
            yield
    finally:
        obs.OBSERVABILITY_COLLECT_COVERAGE = saved


@dataclass
class _Search:
    """The instances checked for one claim, in order, with the step that checked each."""

    claim: Claim
    on_instance: Callable[[str], None] | None = None
    target: bool = True
    records: list[tuple[dict[str, Any], CheckResult]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    #: ``len(records)`` at each refinement candidate ``build`` refused
    infeasible_at: list[int] = field(default_factory=list)
    shrink: int = 0

    @property
    def violated(self) -> bool:
        return any(not r.holds for _, r in self.records)

    def check(self, params: dict[str, Any], step: str) -> CheckResult:
        r = self.claim.run(params, validate=False)
        self._record(params, r, step)
        return r

    def _record(self, params: dict[str, Any], r: CheckResult, step: str) -> None:
        self.records.append((params, r))
        self.steps.append(step)
        if self.on_instance is not None:
            self.on_instance("check" if step in ("generate", "stored") else step)

    def sample(self, examples: int, seed: int) -> None:
        """Step 1: hypothesis draws ``examples`` instances, targeting the violation margin."""
        start = len(self.records)

        def probe(params: dict[str, Any]) -> None:
            r = self.check(params, "generate")
            if self.target and _finite(r.margin):
                hypothesis.target(float(r.margin), label=_label(r))

        def tag(step: str) -> None:
            if len(self.steps) > start:
                self.steps[-1] = step

        phases = [Phase.explicit, Phase.generate] + [Phase.target] * self.target
        test = _settings(examples, phases)(hypothesis.given(params=self.claim.params())(probe))
        with _phase_observer(tag):
            hypothesis.seed(seed)(test)()

    def try_instance(self, params: dict[str, Any]) -> CheckResult | None:
        """A refinement candidate: its check, or ``None`` if the instance is refused: ``build``
        asserts a precondition or the package's validation raises ``ValueError`` (in ``build``
        or, for a condition only the computation can see such as an eigengap, in ``check``).
        A candidate lies outside the drawn set, so its refusal is no finding."""
        try:
            r = self.claim.check(self.claim.build(dict(params)))
        except (AssertionError, AssumptionError, ValueError):
            self.infeasible_at.append(len(self.records))
            if self.on_instance is not None:
                self.on_instance("refine")
            return None
        self._record(params, r, "refine")
        return r

    def budget(self) -> dict[str, int]:
        used = {s: self.steps.count(s) for s in SEARCH_STEPS}
        used["refine"] += len(self.infeasible_at)
        return {**used, "refine_infeasible": len(self.infeasible_at), "shrink": self.shrink}


def _is_float(v: Any) -> bool:
    return isinstance(v, float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _discrete(x: dict[str, Any]) -> dict[str, Any]:
    """The discrete parameters of an instance: everything but floats and the seed."""
    return {k: v for k, v in x.items() if k != "seed" and not _is_float(v)}


class _Space:
    """What the claim's strategy draws, so that the refinement stays within it: each float
    parameter's range, each discrete parameter's values, and which values of the other
    discrete parameters were drawn together with each (see :meth:`compatible`). Learned
    from the instances the search checked (``records``, whose margins also rank the moves)
    and from :data:`SPACE_DRAWS` deterministic draws of the strategy (``drawn``; nothing is
    built)."""

    def __init__(
        self, records: list[tuple[dict[str, Any], CheckResult]], drawn: list[dict[str, Any]]
    ) -> None:
        self.scored = [(p, r.margin) for p, r in records if _usable(r)]
        self.equal = {_key(p) for p, r in records if _usable(r) and _equality(r)}
        self.ranges: dict[str, tuple[float, float]] = {}
        self.values: dict[str, dict[str, Any]] = {}
        #: (key, value) -> other key -> {value key: value} drawn together
        self.together: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        for p in [*drawn, *(p for p, _ in records)]:
            for k, v in p.items():
                if k != "seed" and _is_float(v):
                    lo, hi = self.ranges.get(k, (v, v))
                    self.ranges[k] = (min(lo, v), max(hi, v))
            disc = _discrete(p)
            for k, v in disc.items():
                self.values.setdefault(k, {})[_key(v)] = v
                with_kv = self.together.setdefault((k, _key(v)), {})
                for q, w in disc.items():
                    with_kv.setdefault(q, {})[_key(w)] = w

    def compatible(self, k: str, v: Any, q: str, w: Any) -> bool:
        """Whether ``q = w`` goes with ``k = v`` in the strategy's draws.

        Yes when they were drawn together. Otherwise: two integers go together when ``w``
        lies within the range of ``q`` drawn beside ``k = v`` (an inequality such as a rank
        at most a size is kept; a derived value, with few values, is not) and both are not
        of few values (then only what was drawn together goes: a sparsity derived from a
        rank); an integer of many values (more than :data:`FEW_VALUES`: a size, a rank) goes
        with any value of a parameter that is not a number (a distribution): too many
        combinations to see them all, and such families do not constrain sizes."""
        seen = self.together.get((k, _key(v)), {}).get(q, {})
        if _key(w) in seen:
            return True
        if _is_int(v) and _is_int(w):
            ints = [u for u in seen.values() if _is_int(u)]
            in_range = bool(ints) and min(ints) <= w <= max(ints)
            return in_range and (self._many(k) or self._many(q))
        return (_is_int(v) and self._many(k)) or (_is_int(w) and self._many(q))

    def _many(self, k: str) -> bool:
        return sum(_is_int(u) for u in self.values.get(k, {}).values()) > FEW_VALUES

    def moves(self, x: dict[str, Any], best: float, steps: dict[str, float]) -> list[dict]:
        """One-parameter moves from ``x`` (margin ``best``): each float parameter by +-its
        step (clamped to its range), each discrete one to another value (an integer to the
        nearest drawn below and above) :meth:`compatible` with each other discrete value.

        Order: first the moves to another family of instances (a parameter that is not a
        number: a distribution, a regime, a shape; the quickest way off a plateau of equal
        margins), then the integer moves, then the float ones; within each, the most
        promising first: by the largest margin checked with the new value (a float: beyond
        the old value on that side), leaving out the margins that tie ``best``."""
        scored = [(p, m) for p, m in self.scored if not _ties(m, best)]
        out: list[tuple[int, float, dict[str, Any]]] = []
        for k, step in steps.items():
            if not _is_float(x.get(k)) or k not in self.ranges:  # an optional float left unset
                continue
            lo, hi = self.ranges[k]
            for v in (min(hi, x[k] + step), max(lo, x[k] - step)):
                if v != x[k]:
                    side = [
                        m
                        for p, m in scored
                        if _is_float(p.get(k)) and (p[k] - x[k]) * (v - x[k]) > 0
                    ]
                    out.append((2, max(side, default=-math.inf), {**x, k: float(v)}))
        disc = _discrete(x)
        for k in disc:
            group = 1 if _is_int(x[k]) else 0
            for kv, v in self._alternatives(k, x[k]):
                if all(self.compatible(k, v, q, w) for q, w in disc.items() if q != k):
                    same = [m for p, m in scored if k in p and _key(p[k]) == kv]
                    out.append((group, max(same, default=-math.inf), {**x, k: v}))
        out.sort(key=lambda gmc: (gmc[0], -gmc[1]))
        return [c for _, _, c in out]

    def _alternatives(self, k: str, v: Any) -> list[tuple[str, Any]]:
        """Other drawn values of ``k``: for an integer the nearest drawn below and above."""
        others = [(kv, w) for kv, w in self.values.get(k, {}).items() if kv != _key(v)]
        if _is_int(v):
            ints = [(kv, w) for kv, w in others if _is_int(w)]
            below = max((kw for kw in ints if kw[1] < v), key=lambda kw: kw[1], default=None)
            above = min((kw for kw in ints if kw[1] > v), key=lambda kw: kw[1], default=None)
            return [kw for kw in (below, above) if kw is not None]
        return others


def _usable(r: CheckResult) -> bool:
    """An instance the refinement can start from or compare with: finite margin, not
    degenerate."""
    return not r.degenerate and _finite(r.margin)


def _starts(space: _Space) -> list[tuple[dict[str, Any], float]]:
    """Starting points of the refinement: the instances with the largest margins, equality
    cases last (see :func:`_label`), at most :data:`REFINE_STARTS`, no two with the same
    discrete parameters or the same margin (a plateau of equal margins starts one climb, not
    several)."""
    out: list[tuple[dict[str, Any], float]] = []
    seen = set()
    for p, m in sorted(space.scored, key=lambda pm: (_key(pm[0]) in space.equal, -pm[1])):
        d = _key(_discrete(p))
        if d not in seen and not any(_ties(m, m2) for _, m2 in out):
            seen.add(d)
            out.append((p, m))
    return out[:REFINE_STARTS]


def _ties(a: float, b: float) -> bool:
    """Margins equal up to rounding (relative :data:`MARGIN_RTOL`)."""
    return abs(a - b) <= MARGIN_RTOL * max(abs(a), abs(b))


def refine(search: _Search, budget: int) -> None:
    """Step 2 (module docstring): a first-improvement hill climb on the margin from each of
    the best instances in turn (:func:`_starts`), at most ``budget`` evaluations in all
    (refused instances included), shared evenly by the starts, what one leaves going to the
    next; stops at the first violation."""
    from ..claims.base import draw_params

    space = _Space(search.records, draw_params(search.claim.params(), SPACE_DRAWS))
    tried = {_key(p) for p, _ in search.records}
    starts = _starts(space)
    left = budget
    for i, (x, best) in enumerate(starts):
        share = -(-left // (len(starts) - i))
        used, done = _climb(search, space, dict(x), best, tried, share)
        left -= used
        if done or left <= 0:
            return


def _climb(search, space: _Space, x, best: float, tried: set[str], budget: int):
    """Hill climb from ``x`` until no move improves the margin beyond rounding (float steps
    halved :data:`REFINE_HALVINGS` times) or ``budget`` evaluations are spent; returns the
    evaluations used and whether a violation was found."""
    steps = {k: (hi - lo) / 2 for k, (lo, hi) in space.ranges.items() if k in x and _is_float(x[k])}
    steps = {k: s for k, s in steps.items() if s > 0}
    used = 0
    for _ in range(REFINE_HALVINGS + 1):
        improved = True
        while improved:
            improved = False
            for cand in space.moves(x, best, steps):
                if _key(cand) in tried:
                    continue
                if used >= budget:
                    return used, False
                tried.add(_key(cand))
                used += 1
                r = search.try_instance(cand)
                if r is not None and not r.holds:
                    return used, True
                if r is not None and _usable(r) and r.margin > best and not _ties(r.margin, best):
                    x, best, improved = cand, float(r.margin), True
                    break
        steps = {k: s / 2 for k, s in steps.items()}
    return used, False


def _smallest_counterexample(claim: Claim, search: _Search, examples: int, seed: int):
    """Hypothesis' shrunk violating instance of ``claim`` (targeting the margin, as the
    search does), as a report record; the first violation found if it finds none. A
    violation only the refinement found is reported as found: drawing the strategy again
    would not find one (the search's own draws did not)."""
    first = next(i for i, (_, r) in enumerate(search.records) if not r.holds)
    if search.steps[first] == "refine":
        return _instance_record(*search.records[first])

    def violates(p: dict[str, Any]) -> bool:
        r = claim.run(p, validate=False)
        search.shrink += 1
        if search.on_instance is not None:
            search.on_instance("shrink")
        if _finite(r.margin):
            hypothesis.target(float(r.margin), label=_label(r))
        return not r.holds

    try:
        smallest = hypothesis.find(
            claim.params(),
            violates,
            settings=_settings(max(examples, 20), [Phase.generate, Phase.target, Phase.shrink]),
            random=random.Random(seed),
        )
        return _instance_record(smallest, claim.run(smallest, validate=False))
    except hypothesis.errors.NoSuchExample:
        p, r = next((p, r) for p, r in search.records if not r.holds)
        return _instance_record(p, r)


def run_claim(
    claim: Claim,
    examples: int = 50,
    seed: int = 0,
    on_instance: Callable[[str], None] | None = None,
    *,
    use_stored: bool = True,
    refine_budget: int | None = None,
    shrink: bool = True,
) -> ClaimReport:
    """Searches one claim for a violation (module docstring: sampling with targeting, local
    refinement, the stored counterexample) and shrinks any violation found.

    Args:
        claim: the claim.
        examples, seed: hypothesis instances and the seed.
        on_instance: called after each instance checked with the step: ``"check"`` (a sampled
            instance or the stored counterexample), ``"refine"`` (a refinement candidate,
            refused ones included) or ``"shrink"`` (the search for the smallest violating
            instance): the progress bar counts them.
        use_stored: re-check the stored counterexample of a claim registered as failing
            (``False``: ``--no-stored``).
        refine_budget: evaluations of the refinement (default
            :func:`default_refine_budget`; 0 turns it off).
        shrink: look for the smallest violating instance (``False``: the counterexample
            reported is the first violation found).

    Sampled instances are run with ``claim.run(params, validate=False)``: hypothesis draws
    them from the claim's strategy. Empirical claims are sampled only (no targeting, no
    refinement), so that their ``criterion met on k/n`` is a plain sample.
    """
    t0 = time.perf_counter()
    search = _Search(claim, on_instance, target=claim.expected != "empirical")
    budget = default_refine_budget(examples) if refine_budget is None else refine_budget
    error = None
    try:
        search.sample(examples, seed)
        if search.target and not search.violated:
            refine(search, budget)
        if use_stored and claim.counterexample is not None:
            search.check(dict(claim.counterexample), "stored")
    except Exception as e:  # the check itself broke: report, do not hide
        error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"
    counterexample = None
    if search.violated and error is None and shrink:
        counterexample = _smallest_counterexample(claim, search, examples, seed)
    elif search.violated and error is None:
        counterexample = _instance_record(*next(pr for pr in search.records if not pr[1].holds))
    return _report(claim, search, error, counterexample, time.perf_counter() - t0)


def _report(claim: Claim, search: _Search, error, counterexample, elapsed: float) -> ClaimReport:
    records = search.records
    violations = [i for i, (_, r) in enumerate(records) if not r.holds]
    tight = [(p, r) for p, r in records if not r.degenerate and not math.isnan(r.tightness)]
    tightest = max(tight, key=lambda pr: pr[1].tightness) if tight else None
    if error is not None:
        status = "error"
    elif claim.expected == "empirical":
        status = "empirical"
    else:
        status = "fails" if violations else "holds"
    first = violations[0] if violations else None
    found_by = search.steps[first] if first is not None else None
    n_searched = sum(s != "stored" for s in search.steps[: (first or 0) + 1])
    n_searched += sum(i <= (first or 0) for i in search.infeasible_at)  # refused candidates
    details: dict[str, Any] = {}
    if claim.expected == "empirical" and records:
        details = {"instances": [_instance_record(p, r) for p, r in records]}
    return ClaimReport(
        id=claim.id,
        source=claim.source,
        expected=claim.expected,
        status=status,
        n_instances=len(records),
        n_violations=len(violations),
        max_tightness=tightest[1].tightness if tightest else None,
        tightest=_instance_record(*tightest) if tightest else None,
        counterexample=counterexample,
        elapsed_s=elapsed,
        statement=claim.statement,
        convention=claim.convention,
        corrected=claim.corrected,
        error=error,
        details=details,
        n_degenerate=sum(r.degenerate for _, r in records),
        examples_to_violation=n_searched if found_by not in (None, "stored") else None,
        found_by=found_by,
        search=search.budget(),
    )


def progress_line(rep: ClaimReport) -> str:
    """The summary printed for a finished claim: status, instances, time, where the first
    violation came from."""
    where = f", first violation: {rep.found_text}" if rep.status == "fails" else ""
    return f"{rep.status_text} ({rep.n_instances} instances, {rep.elapsed_s:.1f} s{where})"


def run_audit(
    prefix: str = "",
    examples: int = 50,
    seed: int = 0,
    progress: bool = True,
    *,
    skip: Collection[str] = (),
    on_report: Callable[[ClaimReport], None] | None = None,
    bar: bool | None = None,
    use_stored: bool = True,
    refine_budget: int | None = None,
) -> list[ClaimReport]:
    """Runs :func:`run_claim` on every claim whose id starts with ``prefix``.

    Args:
        prefix: claim id prefix; one that no id starts with raises ``ValueError`` naming
            close matches.
        examples, seed: hypothesis instances per claim and the seed.
        progress: one line per claim on stdout (``[i/n] id ... status (k instances, t s)``,
            with where the first violation came from for a failing claim).
        skip: ids not to run (``--resume``: those already in the report).
        on_report: called with each claim's report as soon as it is finished (the CLI writes
            the JSON report there, so an interrupted audit keeps what it finished).
        bar: a ``tqdm`` bar of each claim's instances with an ETA, on stderr; default: when
            ``progress`` and stderr is a terminal.
        use_stored, refine_budget: passed to :func:`run_claim` (``use_stored=False`` is
            ``--no-stored``).

    Returns:
        The reports of the claims run (not of those skipped), in id order.
    """
    claims = all_claims(prefix)
    if not claims:
        raise ValueError(unknown_claim_message(prefix, prefix=True))
    todo = [c for c in claims if c.id not in skip]
    if progress and len(todo) < len(claims):
        print(f"skipping {len(claims) - len(todo)} claim(s) already in the report", flush=True)
    if bar is None:
        bar = progress and sys.stderr.isatty()
    kw = {"use_stored": use_stored, "refine_budget": refine_budget}
    reports = []
    for i, c in enumerate(todo):
        label = f"[{i + 1}/{len(todo)}] {c.id}"
        if progress and not bar:
            print(f"{label} ...", end="", flush=True)
        if bar:
            rep = _run_with_bar(c, examples, seed, label, **kw)
        else:
            rep = run_claim(c, examples=examples, seed=seed, **kw)
        if progress:
            head = f"{label} ..." if bar else ""
            print(f"{head} {progress_line(rep)}", flush=True)
        reports.append(rep)
        if on_report is not None:
            on_report(rep)
    return reports


def _run_with_bar(claim: Claim, examples: int, seed: int, label: str, **kw: Any) -> ClaimReport:
    """:func:`run_claim` under a ``tqdm`` bar (stderr) counting its sampled instances, with an
    ETA; refinement and shrinking are counted in the bar's postfix; the bar is cleared when the
    claim ends (its one-line summary stays)."""
    from tqdm import tqdm

    stored = kw.get("use_stored", True) and claim.counterexample is not None
    total = examples + stored
    extra = {"refine": 0, "shrink": 0}
    names = {"refine": "refining", "shrink": "shrinking"}
    with tqdm(total=total, desc=label, unit="inst", leave=False, file=sys.stderr) as pbar:

        def on_instance(phase: str) -> None:
            if phase == "check":
                pbar.update(1)
            else:
                extra[phase] += 1
                pbar.set_postfix_str(f"{names[phase]} ({extra[phase]} tried)")

        return run_claim(claim, examples=examples, seed=seed, on_instance=on_instance, **kw)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


def format_table(reports: list[ClaimReport]) -> str:
    """A Markdown table: id, source, instances, violations, degenerate instances, tightest
    (over the non-degenerate ones), where the first violation came from, status."""
    lines = [
        "| claim | source | instances | violations | degenerate | tightest | first violation "
        "| status |",
        "|---|---|---:|---:|---:|---:|---|---|",
    ]
    for r in reports:
        status = r.status_text + (" (UNEXPECTED)" if r.unexpected else "")
        lines.append(
            f"| `{r.id}` | {r.source} | {r.n_instances} | {r.n_violations} | {r.n_degenerate} | "
            f"{_fmt(r.max_tightness)} | {r.found_text} | {status} |"
        )
    return "\n".join(lines)


def format_counterexamples(reports: list[ClaimReport]) -> str:
    """Plain-language lines for every claim with a counterexample."""
    out = []
    for r in reports:
        if r.counterexample is None:
            continue
        ce = r.counterexample
        out.append(
            f"- `{r.id}` fails as written: smallest instance {json.dumps(ce['params'])}: "
            f"lhs = {ce['lhs']}, rhs = {ce['rhs']} (relation {ce['relation']}, tol {ce['tol']})."
            + (f" Corrected: {r.corrected}" if r.corrected else "")
        )
    return "\n".join(out)


def write_json(reports: list[ClaimReport], path: str | Path, meta: dict[str, Any]) -> None:
    """Writes the report as a JSON list of claim objects (each also carries ``meta``)."""
    from .records import atomic_write_text

    rows = [{**r.as_dict(), "meta": meta} for r in reports]
    atomic_write_text(Path(path), json.dumps(rows, indent=1))


def load_json(path: str | Path) -> tuple[list[ClaimReport], dict[str, Any]]:
    """Reads a report written by :func:`write_json`: the claim reports and the run's ``meta``
    (a report of an earlier version, without the search fields, loads with their defaults)."""
    rows = json.loads(Path(path).read_text())
    names = set(ClaimReport.__dataclass_fields__)
    reports = []
    for row in rows:
        kw = {k: v for k, v in row.items() if k in names}
        for k in ("max_tightness", "elapsed_s"):  # non-finite floats are stored as "inf"/"nan"
            if isinstance(kw.get(k), str):
                kw[k] = float(kw[k])
        reports.append(ClaimReport(**kw))
    return reports, (rows[0].get("meta", {}) if rows else {})


def resume_reports(
    path: str | Path, examples: int, seed: int, *, use_stored: bool = True
) -> list[ClaimReport]:
    """The claim reports of an interrupted audit saved at ``path``, to be continued.

    An absent file gives ``[]`` (nothing to resume). Raises ``ValueError`` with a message
    naming what differs when the report was made with other ``--examples``, ``--seed`` or
    ``--no-stored`` or by another version of the package (its instances would not be those of
    this run), or when ``path`` does not hold a report written by ``--json``.
    """
    from .records import package_versions

    path = Path(path)
    if not path.exists():
        return []
    try:
        reports, meta = load_json(path)
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise ValueError(f"--resume: {path} is not a report written by --json ({e})") from None
    if not reports:
        return []
    config = meta.get("config", {})
    on_off = {True: "on", False: "off"}
    want = {
        "--examples": examples,
        "--seed": seed,
        "--no-stored": on_off[not use_stored],
        "lowrank_theory version": package_versions()["lowrank_theory"],
    }
    have = {
        "--examples": config.get("examples"),
        "--seed": meta.get("seed"),
        "--no-stored": on_off[bool(config.get("no_stored", False))],
        "lowrank_theory version": meta.get("versions", {}).get("lowrank_theory"),
    }
    diff = [f"{k} {have[k]} there, {want[k]} now" for k in want if have[k] != want[k]]
    if diff:
        raise ValueError(
            f"--resume: {path} was made by another run ({'; '.join(diff)}): rerun with its "
            "settings, or drop --resume to start a new report"
        )
    return reports


def audit_command(examples: int, seed: int, use_stored: bool = True) -> str:
    """The command line that produces an audit with these settings."""
    flag = "" if use_stored else " --no-stored"
    return f"python -m lowrank_theory audit --examples {examples} --seed {seed}{flag}"


def update_docs(
    reports: list[ClaimReport],
    path: str | Path,
    examples: int,
    seed: int,
    *,
    use_stored: bool = True,
) -> None:
    """Writes the audit table and the counterexamples into the ``audit`` block of ``path``.

    ``path`` is a Markdown page (``docs/audit.md``) holding ``<!-- audit:start -->`` and
    ``<!-- audit:end -->``; :func:`lowrank_theory.pipeline.docs.write_block` replaces what lies
    between them. ``examples``, ``seed`` and ``use_stored`` name the command that produced
    ``reports``.
    """
    from .docs import write_block

    body = f"`{audit_command(examples, seed, use_stored)}`:\n\n" + format_table(reports) + "\n"
    ce = format_counterexamples(reports)
    if ce:
        body += "\nStatements false as written (smallest counterexample found):\n\n" + ce + "\n"
    write_block(path, "audit", body)
