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
   bound met exactly) are targeted under a label of their own
   (:func:`~lowrank_theory.pipeline.audit_search.margin_label`), so that a family of them (a
   bound attained on a plateau of instances) does not hold the optimiser.
2. **Local refinement** (:func:`~lowrank_theory.pipeline.audit_refine.refine`). If no
   violation was found, a third of its budget (:data:`MODEL_SHARE`) goes to a *model-guided*
   step: a Bayesian linear model of the log margin on the parameters' values, refitted after
   each evaluation, picks among :data:`SPACE_DRAWS` deterministic draws of the strategy the
   untried one of largest upper confidence bound, so that values which each go with large
   margins are combined even where no sampled instance has them all (the strategy drew every
   candidate, so each meets the claim's assumptions). The rest goes to a first-improvement
   hill climb on the margin from each of the
   best instances in turn (at most :data:`REFINE_STARTS`, equality cases last, no two with the
   same discrete parameters or margin), the seed fixed. A move changes one parameter: a float
   by half, then a quarter, of the range the strategy draws it in; a discrete parameter to
   another value the strategy draws (an integer to the nearest drawn value below or above),
   only where that value was drawn together with the others (:class:`_Space`: a rank never
   moves without the sparsity the strategy derives from it). Moves to another family of
   instances (a distribution, a regime, a shape) come first. The ranges and combinations are
   learned from the sampled instances and the same deterministic draws of the
   strategy (nothing is built for those). An instance the claim refuses (a failed ``assert``
   in ``build`` or a ``ValueError`` of the package's validation, in ``build`` or in the check)
   is infeasible and skipped, never a finding. It stops at the first violation, or after
   ``refine_budget`` evaluations in all, refused ones included (default
   :func:`default_refine_budget`: half of ``N``), the hill climb's shared evenly by the
   starts.
3. **Stored counterexample.** A claim registered as failing is also re-checked on its stored
   counterexample, unless ``--no-stored`` (``use_stored=False``): then a false claim must be
   rediscovered by the search alone, as for a new claim that has none.

When a claim is violated hypothesis *shrinks* to the smallest violating instance it can find
(targeting the margin too), reported with both sides' values; a violation only the
refinement found is reported as found (drawing the strategy again would not find one).

Each claim's report (JSON schema: :class:`ClaimReport`) records the search budget used
(``search``: instances checked per step, ``generate``, ``target``, ``refine`` (with
``refine_infeasible`` of them refused and ``refine_model_guided`` of them chosen by the
model-guided step), ``stored``, and ``shrink``), the number of instances
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

This module runs the audit (:func:`run_claim`, :func:`run_audit`); its parts live beside it and
every name is also importable from here: :mod:`~lowrank_theory.pipeline.audit_search` (the
sampling, ``hypothesis.target`` and shrinking), :mod:`~lowrank_theory.pipeline.audit_refine`
(the local refinement) and :mod:`~lowrank_theory.pipeline.audit_report` (:class:`ClaimReport`,
the table, the JSON report, the docs block).
"""

from __future__ import annotations

import math
import sys
import time
import traceback
from collections.abc import Callable, Collection
from typing import Any

from ..claims import Claim, all_claims, unknown_claim_message
from .audit_refine import (
    FEW_VALUES,
    MARGIN_RTOL,
    MODEL_SHARE,
    REFINE_HALVINGS,
    REFINE_STARTS,
    SPACE_DRAWS,
    default_refine_budget,
    refine,
)
from .audit_report import (
    ClaimReport,
    audit_command,
    format_counterexamples,
    format_table,
    load_json,
    progress_line,
    resume_reports,
    update_docs,
    write_json,
)
from .audit_search import (
    EQUALITY_RTOL,
    MARGIN_LABEL,
    SEARCH_STEPS,
    Search,
    instance_record,
    smallest_counterexample,
)

# the audit's public names, with those of its parts it re-exports (their old import path)
__all__ = [
    "EQUALITY_RTOL",
    "FEW_VALUES",
    "MARGIN_LABEL",
    "MARGIN_RTOL",
    "MODEL_SHARE",
    "REFINE_HALVINGS",
    "REFINE_STARTS",
    "SEARCH_STEPS",
    "SPACE_DRAWS",
    "ClaimReport",
    "audit_command",
    "default_refine_budget",
    "format_counterexamples",
    "format_table",
    "load_json",
    "progress_line",
    "refine",
    "resume_reports",
    "run_audit",
    "run_claim",
    "update_docs",
    "write_json",
]


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
    search = Search(claim, on_instance, target=claim.expected != "empirical")
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
        counterexample = smallest_counterexample(claim, search, examples, seed)
    elif search.violated and error is None:
        counterexample = instance_record(*next(pr for pr in search.records if not pr[1].holds))
    return _report(claim, search, error, counterexample, time.perf_counter() - t0)


def _report(claim: Claim, search: Search, error, counterexample, elapsed: float) -> ClaimReport:
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
        details = {"instances": [instance_record(p, r) for p, r in records]}
    return ClaimReport(
        id=claim.id,
        source=claim.source,
        expected=claim.expected,
        status=status,
        n_instances=len(records),
        n_violations=len(violations),
        max_tightness=tightest[1].tightness if tightest else None,
        tightest=instance_record(*tightest) if tightest else None,
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
