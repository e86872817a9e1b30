"""Command line: ``python -m lowrank_theory audit|list``."""

import argparse
import sys

DOCS_AUDIT = "docs/audit.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lowrank_theory")
    sub = parser.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("audit", help="check every registered claim on random instances")
    a.add_argument("--claims", default="", help="claim id prefix, e.g. lora.lemma1")
    a.add_argument("--examples", type=int, default=50, help="instances per claim (default 50)")
    a.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    a.add_argument("--json", default=None, help="write the report as JSON to this path")
    a.add_argument("--quiet", action="store_true", help="no per-claim progress lines")
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
    ls.add_argument("--claims", default="")
    args = parser.parse_args(argv)
    if args.cmd == "audit" and args.update_readme:
        print("--update-readme is deprecated: use --update-docs PATH", file=sys.stderr)
        args.update_docs = args.update_docs or args.update_readme

    from .claims import all_claims
    from .pipeline import audit

    if args.cmd == "list":
        for c in all_claims(args.claims):
            print(f"{c.id:45s} {c.expected:10s} {c.source}")
        return 0
    if args.examples < 1:
        parser.error("--examples must be at least 1")
    if args.from_json:
        reports, meta = audit.load_json(args.from_json)
        reports = [r for r in reports if r.id.startswith(args.claims)]
        args.examples = meta.get("config", {}).get("examples", args.examples)
        args.seed = meta.get("seed", args.seed)
        args.json = None
    else:
        reports = audit.run_audit(args.claims, args.examples, args.seed, progress=not args.quiet)
    print()
    print(audit.format_table(reports))
    ce = audit.format_counterexamples(reports)
    if ce:
        print("\nCounterexamples (statements false as written):\n" + ce)
    if args.json:
        from .pipeline.records import run_metadata

        meta = run_metadata({"claims": args.claims, "examples": args.examples}, args.seed)
        audit.write_json(reports, args.json, meta)
        print(f"\nwrote {args.json}")
    if args.update_docs:
        audit.update_docs(reports, args.update_docs, args.examples, args.seed)
        print(f"updated the audit table in {args.update_docs}")
    bad = [r.id for r in reports if r.unexpected]
    if bad:
        print(f"\nUNEXPECTED status for: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
