r"""The audit: run every registered claim on random instances and report, claim by claim.

``python -m lowrank_theory audit [--claims PREFIX] [--examples N] [--seed S] [--json PATH
[--resume]]``

For each claim, hypothesis draws ``N`` instance structures (seeded by ``S``; the same command
gives the same instances), the claim's check computes both sides on each, and the audit counts
violations. When a claim is violated it asks hypothesis to *shrink* to the smallest violating
instance, which is reported with both sides' values. A claim registered as failing is also
re-checked on its stored counterexample.

Status column: ``holds`` (no violation found), ``fails`` (a violation found: for a claim
registered as failing this reproduces the known counterexample; for one registered as holding
it is flagged ``UNEXPECTED``), ``empirical`` (experiment-type claim; the numbers are in the
JSON ``details``), ``error`` (the check raised).

Progress: one line per finished claim on stdout and, when stderr is a terminal, a ``tqdm`` bar
of the claim's instances with an ETA. With ``--json`` the report is rewritten atomically after
each claim, so an interrupted audit keeps what it finished; ``--resume`` continues it.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import traceback
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
from hypothesis import HealthCheck, Phase

from ..claims import Claim, all_claims, unknown_claim_message
from ..claims.base import CheckResult, to_jsonable


@dataclass
class ClaimReport:
    """The audit's findings for one claim (``as_dict`` is the JSON schema)."""

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

    @property
    def unexpected(self) -> bool:
        return self.status not in (self.expected, "empirical") or self.status == "error"

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


def _smallest_counterexample(claim: Claim, violations, examples: int, seed: int, run):
    """Hypothesis' shrunk violating instance of ``claim`` (the first violation found if the
    search finds none), as a report record; ``run(params, phase)`` checks one instance."""
    try:
        smallest = hypothesis.find(
            claim.params(),
            lambda p: not run(p, "shrink").holds,
            settings=_settings(max(examples, 20), [Phase.generate, Phase.shrink]),
            random=random.Random(seed),
        )
        return _instance_record(smallest, claim.run(smallest, validate=False))
    except hypothesis.errors.NoSuchExample:
        p, r = violations[0]
        return _instance_record(p, r)


def run_claim(
    claim: Claim,
    examples: int = 50,
    seed: int = 0,
    on_instance: Callable[[str], None] | None = None,
) -> ClaimReport:
    """Runs one claim on ``examples`` hypothesis-drawn instances; shrinks any violation.

    ``on_instance(phase)`` is called after each instance checked, with ``phase`` ``"check"``
    (the drawn instances and the stored counterexample) or ``"shrink"`` (the search for the
    smallest violating instance): the progress bar counts them. The instances are run with
    ``claim.run(params, validate=False)``: hypothesis draws them from the claim's strategy.
    """
    t0 = time.perf_counter()
    records: list[tuple[dict[str, Any], CheckResult]] = []

    def run(params: dict[str, Any], phase: str) -> CheckResult:
        r = claim.run(params, validate=False)
        if on_instance is not None:
            on_instance(phase)
        return r

    def probe(params: dict[str, Any]) -> None:
        records.append((params, run(params, "check")))

    error = None
    try:
        test = hypothesis.given(params=claim.params())(probe)
        test = _settings(examples, [Phase.explicit, Phase.generate])(test)
        hypothesis.seed(seed)(test)()
        if claim.counterexample is not None:
            probe(dict(claim.counterexample))
    except Exception as e:  # the check itself broke: report, do not hide
        error = f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"

    violations = [(p, r) for p, r in records if not r.holds]
    counterexample = None
    if violations and error is None:
        counterexample = _smallest_counterexample(claim, violations, examples, seed, run)
    tights = [r.tightness for _, r in records if not math.isnan(r.tightness)]
    tightest = None
    if tights:
        p, r = max(
            ((p, r) for p, r in records if not math.isnan(r.tightness)),
            key=lambda pr: pr[1].tightness,
        )
        tightest = _instance_record(p, r)
    if error is not None:
        status = "error"
    elif claim.expected == "empirical":
        status = "empirical"
    else:
        status = "fails" if violations else "holds"
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
        max_tightness=max(tights) if tights else None,
        tightest=tightest,
        counterexample=counterexample,
        elapsed_s=time.perf_counter() - t0,
        statement=claim.statement,
        convention=claim.convention,
        corrected=claim.corrected,
        error=error,
        details=details,
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
) -> list[ClaimReport]:
    """Runs :func:`run_claim` on every claim whose id starts with ``prefix``.

    Args:
        prefix: claim id prefix; one that no id starts with raises ``ValueError`` naming
            close matches.
        examples, seed: hypothesis instances per claim and the seed.
        progress: one line per claim on stdout (``[i/n] id ... status (k instances, t s)``).
        skip: ids not to run (``--resume``: those already in the report).
        on_report: called with each claim's report as soon as it is finished (the CLI writes
            the JSON report there, so an interrupted audit keeps what it finished).
        bar: a ``tqdm`` bar of each claim's instances with an ETA, on stderr; default: when
            ``progress`` and stderr is a terminal.

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
    reports = []
    for i, c in enumerate(todo):
        label = f"[{i + 1}/{len(todo)}] {c.id}"
        if progress and not bar:
            print(f"{label} ...", end="", flush=True)
        if bar:
            rep = _run_with_bar(c, examples, seed, label)
        else:
            rep = run_claim(c, examples=examples, seed=seed)
        if progress:
            head = f"{label} ..." if bar else ""
            print(
                f"{head} {rep.status} ({rep.n_instances} instances, {rep.elapsed_s:.1f} s)",
                flush=True,
            )
        reports.append(rep)
        if on_report is not None:
            on_report(rep)
    return reports


def _run_with_bar(claim: Claim, examples: int, seed: int, label: str) -> ClaimReport:
    """:func:`run_claim` under a ``tqdm`` bar (stderr) counting its instances, with an ETA;
    the bar is cleared when the claim ends (its one-line summary stays)."""
    from tqdm import tqdm

    total = examples + (claim.counterexample is not None)
    shrink = [0]
    with tqdm(total=total, desc=label, unit="inst", leave=False, file=sys.stderr) as pbar:

        def on_instance(phase: str) -> None:
            if phase == "check":
                pbar.update(1)
            else:
                shrink[0] += 1
                pbar.set_postfix_str(f"shrinking ({shrink[0]} tried)")

        return run_claim(claim, examples=examples, seed=seed, on_instance=on_instance)


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return "inf"
    return f"{x:.3g}"


def format_table(reports: list[ClaimReport]) -> str:
    """A Markdown table: id, source, instances, violations, tightest, status."""
    lines = [
        "| claim | source | instances | violations | tightest | status |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in reports:
        status = r.status + (" (UNEXPECTED)" if r.unexpected else "")
        lines.append(
            f"| `{r.id}` | {r.source} | {r.n_instances} | {r.n_violations} | "
            f"{_fmt(r.max_tightness)} | {status} |"
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
    """Reads a report written by :func:`write_json`: the claim reports and the run's ``meta``."""
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


def resume_reports(path: str | Path, examples: int, seed: int) -> list[ClaimReport]:
    """The claim reports of an interrupted audit saved at ``path``, to be continued.

    An absent file gives ``[]`` (nothing to resume). Raises ``ValueError`` with a message
    naming what differs when the report was made with other ``--examples`` or ``--seed`` or by
    another version of the package (its instances would not be those of this run), or when
    ``path`` does not hold a report written by ``--json``.
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
    want = {
        "--examples": examples,
        "--seed": seed,
        "lowrank_theory version": package_versions()["lowrank_theory"],
    }
    have = {
        "--examples": meta.get("config", {}).get("examples"),
        "--seed": meta.get("seed"),
        "lowrank_theory version": meta.get("versions", {}).get("lowrank_theory"),
    }
    diff = [f"{k} {have[k]} there, {want[k]} now" for k in want if have[k] != want[k]]
    if diff:
        raise ValueError(
            f"--resume: {path} was made by another run ({'; '.join(diff)}): rerun with its "
            "settings, or drop --resume to start a new report"
        )
    return reports


def update_docs(reports: list[ClaimReport], path: str | Path, examples: int, seed: int) -> None:
    """Writes the audit table and the counterexamples into the ``audit`` block of ``path``.

    ``path`` is a Markdown page (``docs/audit.md``) holding ``<!-- audit:start -->`` and
    ``<!-- audit:end -->``; :func:`lowrank_theory.pipeline.docs.write_block` replaces what lies
    between them. ``examples`` and ``seed`` name the command that produced ``reports``.
    """
    from .docs import write_block

    body = (
        f"`python -m lowrank_theory audit --examples {examples} --seed {seed}`:\n\n"
        + format_table(reports)
        + "\n"
    )
    ce = format_counterexamples(reports)
    if ce:
        body += "\nStatements false as written (smallest counterexample found):\n\n" + ce + "\n"
    write_block(path, "audit", body)
