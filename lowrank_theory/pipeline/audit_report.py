"""The audit's report: :class:`ClaimReport` (one claim's findings; the JSON schema), the
Markdown table and counterexample lines, the JSON report (write, load, resume) and the
generated block of ``docs/audit.md``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..claims.base import to_jsonable


@dataclass
class ClaimReport:
    """The audit's findings for one claim (``as_dict`` is the JSON schema, described in
    :mod:`lowrank_theory.pipeline.audit`)."""

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
    #: the search budget used: instances checked per step (:mod:`lowrank_theory.pipeline.audit`)
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


def progress_line(rep: ClaimReport) -> str:
    """The summary printed for a finished claim: status, instances, time, where the first
    violation came from."""
    where = f", first violation: {rep.found_text}" if rep.status == "fails" else ""
    return f"{rep.status_text} ({rep.n_instances} instances, {rep.elapsed_s:.1f} s{where})"


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
