"""The audit's search for one claim: sampling with ``hypothesis.target`` on the violation margin
(step 1 of :mod:`lowrank_theory.pipeline.audit`) and shrinking a violation to the smallest
instance hypothesis finds.

:class:`Search` records every instance checked, in order, with the step that checked it
(``generate``, ``target``, ``refine``, ``stored``); the local refinement (step 2) is in
:mod:`lowrank_theory.pipeline.audit_refine`, the report built from a search in
:mod:`lowrank_theory.pipeline.audit`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase

from ..claims import Claim
from ..claims.base import AssumptionError, CheckResult, to_jsonable

#: the label of the violation margin passed to ``hypothesis.target``
MARGIN_LABEL = "violation margin"
#: a holding bound with margin within this of 1 is an equality case (:func:`margin_label`)
EQUALITY_RTOL = 1e-6
#: the search steps, in the order they run (the keys of ``ClaimReport.search``)
SEARCH_STEPS = ("generate", "target", "refine", "stored")


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


def instance_record(params: dict[str, Any], r: CheckResult) -> dict[str, Any]:
    """An instance as the report stores it: its ``params`` and its check's result."""
    return {"params": to_jsonable(dict(params)), **r.as_dict()}


def is_equality_case(r: CheckResult) -> bool:
    """An equality case: a bound met with equality (margin 1 up to :data:`EQUALITY_RTOL`)."""
    return r.relation != "==" and r.holds and abs(r.margin - 1.0) <= EQUALITY_RTOL


def margin_label(r: CheckResult) -> str:
    """The ``hypothesis.target`` label of an instance's margin: equality cases apart, so that
    a plateau of them (a bound attained on a whole family of instances) does not hold the
    optimiser, which climbs from the best instance of each label."""
    return MARGIN_LABEL + (" (equality cases)" if is_equality_case(r) else "")


def is_finite(x: float) -> bool:
    """Whether ``x`` is a finite number (a margin ``hypothesis.target`` can take)."""
    return isinstance(x, float | int) and math.isfinite(x)


def params_key(params: dict[str, Any]) -> str:
    """A hashable key of an instance's parameters (or of one value): its sorted JSON."""
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
class Search:
    """The instances checked for one claim, in order, with the step that checked each."""

    claim: Claim
    on_instance: Callable[[str], None] | None = None
    target: bool = True
    records: list[tuple[dict[str, Any], CheckResult]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)
    #: ``len(records)`` at each refinement candidate ``build`` refused
    infeasible_at: list[int] = field(default_factory=list)
    shrink: int = 0
    #: refinement evaluations of the model-guided step (refused ones included)
    model_guided: int = 0

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
            if self.target and is_finite(r.margin):
                hypothesis.target(float(r.margin), label=margin_label(r))

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
        return {
            **used,
            "refine_infeasible": len(self.infeasible_at),
            "refine_model_guided": self.model_guided,
            "shrink": self.shrink,
        }


def smallest_counterexample(claim: Claim, search: Search, examples: int, seed: int):
    """Hypothesis' shrunk violating instance of ``claim`` (targeting the margin, as the
    search does), as a report record; the first violation found if it finds none. A
    violation only the refinement found is reported as found: drawing the strategy again
    would not find one (the search's own draws did not)."""
    first = next(i for i, (_, r) in enumerate(search.records) if not r.holds)
    if search.steps[first] == "refine":
        return instance_record(*search.records[first])

    def violates(p: dict[str, Any]) -> bool:
        r = claim.run(p, validate=False)
        search.shrink += 1
        if search.on_instance is not None:
            search.on_instance("shrink")
        if is_finite(r.margin):
            hypothesis.target(float(r.margin), label=margin_label(r))
        return not r.holds

    try:
        smallest = hypothesis.find(
            claim.params(),
            violates,
            settings=_settings(max(examples, 20), [Phase.generate, Phase.target, Phase.shrink]),
            random=random.Random(seed),
        )
        return instance_record(smallest, claim.run(smallest, validate=False))
    except hypothesis.errors.NoSuchExample:
        p, r = next((p, r) for p, r in search.records if not r.holds)
        return instance_record(p, r)
