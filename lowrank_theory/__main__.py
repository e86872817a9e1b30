"""Command line: ``python -m lowrank_theory audit|list``.

Every argument is checked before any work starts: numbers by their argparse types, output
paths writable, input paths readable, the claim prefix known; a bad one ends the command with a
one-line message and exit status 2. This module imports nothing of the package until the
arguments are parsed and the cheap checks pass, so ``--help`` and an argument error never import
JAX. An audit with ``--json PATH`` rewrites the report after each claim (atomically);
``--resume`` continues an interrupted one (made with the same ``--examples``, ``--seed`` and
``--no-stored``); Ctrl-C saves what is finished and exits with 130 (SIGTERM, e.g. a job
scheduler's ``kill``: the same, exit 143). ``--no-stored`` ignores the stored
counterexamples, so that every false claim must be found by the search (:mod:`lowrank_theory.pipeline.audit`).
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

DOCS_AUDIT = "docs/audit.md"
#: exit status of an audit ended by Ctrl-C (128 + SIGINT, as shells report it)
EXIT_INTERRUPTED = 130


def _int_at_least(low: int):
    """An argparse type: an integer ``>= low`` (the message names the bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The ``audit`` and ``list`` subcommands and their arguments."""
    parser = argparse.ArgumentParser(prog="python -m lowrank_theory")
    sub = parser.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("audit", help="check every registered claim on random instances")
    a.add_argument("--claims", default="", help="claim id prefix, e.g. lora.lemma1")
    a.add_argument(
        "--examples", type=_int_at_least(1), default=50, help="instances per claim (default 50)"
    )
    a.add_argument("--seed", type=_int_at_least(0), default=0, help="hypothesis seed (default 0)")
    a.add_argument(
        "--json",
        default=None,
        metavar="PATH",
        help="write the report as JSON to this path, rewritten after each claim",
    )
    a.add_argument(
        "--resume",
        action="store_true",
        help="with --json PATH: skip the claims already in PATH (made with the same "
        "--examples, --seed, --no-stored and package version) and continue",
    )
    a.add_argument(
        "--no-stored",
        action="store_true",
        help="ignore the stored counterexamples: a claim registered as failing must be "
        "rediscovered by the search alone",
    )
    a.add_argument("--quiet", action="store_true", help="no per-claim progress lines or bar")
    a.add_argument(
        "--update-docs",
        nargs="?",
        const=DOCS_AUDIT,
        default=None,
        metavar="PATH",
        help="write the table between <!-- audit:start --> and <!-- audit:end --> of PATH "
        f"(default {DOCS_AUDIT})",
    )
    a.add_argument(
        "--update-readme",
        default=None,
        metavar="PATH",
        help="deprecated alias of --update-docs PATH",
    )
    a.add_argument(
        "--from-json",
        default=None,
        metavar="PATH",
        help="do not run: print (and with --update-docs write) a report saved with --json",
    )
    ls = sub.add_parser("list", help="list registered claims")
    ls.add_argument("--claims", default="", help="claim id prefix, e.g. lora.lemma1")
    parser.set_defaults(subparsers={"audit": a, "list": ls})
    return parser


def _writable_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be written atomically, or ``None``: the path is not a directory and
    its directory exists and takes a new file (the atomic write puts a temporary file beside
    the target and renames it; probed by creating and removing one, which also catches
    read-only file systems and runs as root, where permission bits say nothing)."""
    p = Path(path)
    parent = p.parent
    if p.is_dir():
        return f"{path} is a directory"
    if not parent.exists():
        return f"directory {str(parent)!r} does not exist"
    if not parent.is_dir():
        return f"{str(parent)!r} is not a directory"
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{p.name}.", suffix=".probe")
    except OSError as e:
        return f"directory {str(parent)!r} is not writable ({e.strerror or e})"
    os.close(fd)
    os.unlink(probe)
    return None


def _readable_file_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as a file, or ``None``."""
    p = Path(path)
    if not p.is_file():
        return f"{path} does not exist" if not p.exists() else f"{path} is not a file"
    if not os.access(p, os.R_OK):
        return f"{path} is not readable"
    return None


def _check_cheap(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The checks that need nothing of the package: paths and flag combinations."""
    if args.cmd != "audit":
        return
    if args.resume and not args.json:
        parser.error("--resume needs --json PATH (the report to continue)")
    if args.resume and args.from_json:
        parser.error("--resume runs claims; --from-json does not: use one of them")
    if args.no_stored and args.from_json:
        parser.error(
            "--no-stored changes how claims are run; --from-json runs none (the report "
            "records its mode): use one of them"
        )
    if args.from_json:
        why = _readable_file_problem(args.from_json)
        if why:
            parser.error(f"--from-json: {why}")
    if args.json:
        why = _writable_file_problem(args.json)
        if why:
            parser.error(f"--json: {why}")
    if args.update_docs:
        why = _readable_file_problem(args.update_docs)
        why = why or _writable_file_problem(args.update_docs)
        if why:
            parser.error(f"--update-docs: {why}")
        text = Path(args.update_docs).read_text(errors="replace")
        for marker in ("<!-- audit:start -->", "<!-- audit:end -->"):
            if marker not in text:
                parser.error(f"--update-docs: {args.update_docs} has no {marker} marker")


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status (``parser.error`` exits with 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    parser = args.subparsers[args.cmd]  # errors name the subcommand, as argparse's own do
    if args.cmd == "audit" and args.update_readme:
        print("--update-readme is deprecated: use --update-docs PATH", file=sys.stderr)
        args.update_docs = args.update_docs or args.update_readme
    _check_cheap(parser, args)
    try:
        return _run(parser, args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The work, once the cheap checks passed: the package is imported here, the float64
    policy first (``python -m`` may have imported the package without its eager imports)."""
    from .core import precision  # noqa: F401, I001  (first: jax_enable_x64, XLA flags)
    from .claims import all_claims, unknown_claim_message

    claims = all_claims(args.claims)
    if not claims:
        parser.error(f"--claims: {unknown_claim_message(args.claims, prefix=True)}")
    if args.cmd == "list":
        for c in claims:
            print(f"{c.id:45s} {c.expected:10s} {c.source}")
        return 0

    from .pipeline import audit

    if args.from_json:
        try:
            reports, meta = audit.load_json(args.from_json)
        except (OSError, ValueError, TypeError, AttributeError) as e:
            parser.error(f"--from-json: {args.from_json} is not a report written by --json ({e})")
        reports = [r for r in reports if r.id.startswith(args.claims)]
        args.examples = meta.get("config", {}).get("examples", args.examples)
        args.seed = meta.get("seed", args.seed)
        args.no_stored = bool(meta.get("config", {}).get("no_stored", False))
        args.json = None
    else:
        reports = _run_audit(parser, args, audit)
        if reports is None:
            return EXIT_INTERRUPTED
    print()
    print(audit.format_table(reports))
    ce = audit.format_counterexamples(reports)
    if ce:
        print("\nCounterexamples (statements false as written):\n" + ce)
    if args.json:
        print(f"\nwrote {args.json}")
    if args.update_docs:
        audit.update_docs(
            reports, args.update_docs, args.examples, args.seed, use_stored=not args.no_stored
        )
        print(f"updated the audit table in {args.update_docs}")
    bad = [r.id for r in reports if r.unexpected]
    if bad:
        print(f"\nUNEXPECTED status for: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def _run_audit(parser: argparse.ArgumentParser, args: argparse.Namespace, audit):
    """Runs the audit, writing ``--json`` after each claim; the reports of the selected claims
    (those resumed and those run), or ``None`` after Ctrl-C (a one-line message says what was
    saved where)."""
    previous = []
    if args.resume:
        try:
            previous = audit.resume_reports(
                args.json, args.examples, args.seed, use_stored=not args.no_stored
            )
        except ValueError as e:
            parser.error(str(e))
    saved = list(previous)
    meta = None
    if args.json:
        from .pipeline.records import run_metadata

        config = {"claims": args.claims, "examples": args.examples, "no_stored": args.no_stored}
        meta = run_metadata(config, args.seed)

    def save(rep) -> None:
        saved.append(rep)
        if args.json:
            audit.write_json(saved, args.json, meta)

    try:
        new = audit.run_audit(
            args.claims,
            args.examples,
            args.seed,
            progress=not args.quiet,
            skip={r.id for r in previous},
            on_report=save,
            use_stored=not args.no_stored,
        )
    except KeyboardInterrupt:
        done = len(saved) - len(previous)
        if args.json:
            where = f"{done} finished claim(s) saved to {args.json} ({len(saved)} in all)"
            hint = "; continue with --resume"
        else:
            where, hint = f"{done} finished claim(s) not saved", " (use --json PATH to keep them)"
        print(f"\ninterrupted: {where}{hint}", file=sys.stderr)
        return None
    resumed = [r for r in previous if r.id.startswith(args.claims)]
    return sorted(resumed + new, key=lambda r: r.id)


if __name__ == "__main__":
    from .pipeline.interrupts import interruptible  # SIGTERM ends it as Ctrl-C does, exit 143

    sys.exit(interruptible(main)())
