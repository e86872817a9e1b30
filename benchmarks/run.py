"""``make bench``: run every ``benchmarks/bench_*.py`` and write ``benchmarks/results.json``.

Each module exposes ``run() -> list[dict]`` of rows ``{name, value, unit, target, better,
notes}``. Ratios are measured within one run of this script (baseline and subject together),
times exclude compilation and are taken after ``block_until_ready``. ``--only PREFIX`` runs the
modules whose file name contains PREFIX and merges their rows into the existing file;
``--skip A,B`` leaves out the modules containing A or B and keeps their old rows
(``bench_dmc_large``, the $d=10^5$ completion of issue 15, takes about 10 minutes on 2 cores:
``--only dmc_large`` runs it alone). The table
of all rows is written into the ``bench`` block of ``docs/benchmarks.md`` (``--docs PATH``;
``--docs ''`` writes none).
"""

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lowrank_theory.dmf.native_kernel import host_signature  # noqa: E402
from lowrank_theory.pipeline.docs import write_block  # noqa: E402
from lowrank_theory.pipeline.records import atomic_write_text, machine_info, package_versions  # noqa: E402

DOCS = HERE.parent / "docs" / "benchmarks.md"


def host(row: dict) -> str:
    """The row's CPU in a few words, with its widest vector extension (rows measured on
    different hosts must never be compared silently)."""
    m = row.get("machine") or {}
    ext = m.get("vector_extensions", "").split()
    widest = next((e for e in ("avx512f", "avx2") if e in ext), "flags not recorded")
    return f"{m.get('cpu_model', '?')}, {widest}"


def table(rows: list[dict]) -> str:
    """Markdown table of the results, with the machine they were measured on."""
    lines = ["| benchmark | value | target | host | notes |", "|---|---:|---:|---|---|"]
    for r in sorted(rows, key=lambda r: r["name"]):
        tgt = (
            "-"
            if r["target"] is None
            else ("≥ " if r["better"] == "higher" else "≤ ") + f"{r['target']:g}"
        )
        notes = r["notes"].replace("|", "\\|")  # norms written ||x|| must not split the cell
        lines.append(
            f"| `{r['name']}` | {r['value']:.4g} {r['unit']} | {tgt} | {host(r)} | {notes} |"
        )
    machines = {
        (
            r["machine"]["cpu_model"],
            r["machine"]["cores"],
            r["machine"].get("vector_extensions", "vector extensions not recorded"),
            r["machine"].get("compiler", "compiler not recorded"),
        )
        for r in rows
        if "machine" in r
    }
    where = "; ".join(f"{m} ({c} cores; {v}; {cc})" for m, c, v, cc in sorted(machines))
    return "\n".join(lines) + f"\n\nMeasured on: {where}.\n"


def machine_record() -> dict:
    """The machine block of every row: cores, CPU model, platform and JAX devices, plus the
    CPU's vector extensions (avx2 / avx512f ...), the C++ compiler and the -march the native
    kernel is built with, so that rows from different hosts are never compared silently."""
    sig = host_signature()
    return {
        **machine_info(),
        "vector_extensions": sig["vector_extensions"],
        "compiler": sig["compiler"],
        "kernel_march": sig["march"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="run only bench_<...> modules containing this")
    ap.add_argument(
        "--skip",
        default="",
        help="comma-separated: skip bench_<...> modules containing any of these (e.g. dmc_large, "
        "the ~10 min d = 1e5 completion run); their rows in --out are kept",
    )
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument(
        "--docs",
        default=str(DOCS),
        help="page whose <!-- bench:start/end --> block gets the table ('' = none)",
    )
    args = ap.parse_args(argv)
    out = Path(args.out)
    skip = [x for x in args.skip.split(",") if x]
    keep_old = bool(args.only or skip)
    rows = json.loads(out.read_text()) if (keep_old and out.exists()) else []
    machine = machine_record()
    versions = package_versions()
    for path in sorted(HERE.glob("bench_*.py")):
        if (args.only and args.only not in path.stem) or any(x in path.stem for x in skip):
            continue
        print(f"{path.stem} ...", flush=True)
        t0 = time.perf_counter()
        mod = importlib.import_module(path.stem)
        new = mod.run()
        names = {r["name"] for r in new}
        rows = [r for r in rows if r["name"] not in names]
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        for r in new:
            r.update({"machine": machine, "versions": versions, "measured_at": stamp})
            t = (
                f" (target {r['target']}, {r['better']} is better)"
                if r["target"] is not None
                else ""
            )
            print(f"  {r['name']}: {r['value']:.4g} {r['unit']}{t}", flush=True)
        rows.extend(new)
        print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)
    atomic_write_text(out, json.dumps(rows, indent=1))
    print(f"wrote {out}")
    if args.docs:
        write_block(args.docs, "bench", table(rows))
        print(f"updated the benchmark table in {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
