"""MkDocs hooks of ``make docs`` (``mkdocs.yml``: ``hooks: [docs/hooks.py]``).

* The README is the site's home page (``index.md``), so the two never drift apart; its links
  into ``docs/`` are made relative to the site.
* The committed figures (``figures/*.png``) are served under ``figures/``; the pages link them
  as ``../figures/<name>.png`` (right on GitHub too) and are pointed at the served copy.
* The API reference is generated: one page per subpackage, ``api/<package>.md``, with a
  ``::: module`` block for each public module found in ``lowrank_theory/<package>/`` at build
  time, so a module added or split is documented without editing anything.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "lowrank_theory"
#: subpackages in the order of the API reference (layout.md), with a one-line title
API = {
    "core": "core: precision, validation, linear algebra",
    "lora": "lora: expressive power of LoRA (seed 000)",
    "s2ft": "s2ft: S²FT vs LoRA (seed 002)",
    "lin": "lin: linearization and NTK (seed 003)",
    "dmf": "dmf: compressible dynamics and Deep LoRA (seed 004)",
    "claims": "claims: the registry",
    "pipeline": "pipeline: audit, records, plotting, docs",
}


def public_modules(package: str) -> list[str]:
    """Dotted names of the public modules of ``lowrank_theory.<package>``, recursively."""
    base = PKG / package
    out = []
    for f in sorted(base.rglob("*.py")):
        rel = f.relative_to(PKG.parent).with_suffix("").parts
        if f.name == "__init__.py":
            rel = rel[:-1]
            if f.parent == base:
                continue  # the package itself heads the page
        if any(p.startswith("_") for p in rel):
            continue
        out.append(".".join(rel))
    return out


def api_page(package: str) -> str:
    """Markdown of ``api/<package>.md``: the package docstring, then every public module."""
    lines = [
        f"# {API[package]}",
        "",
        "Generated from the docstrings (`docs/hooks.py`).",
        "",
        f"::: lowrank_theory.{package}",
        "    options:",
        "      members: false",
        "      show_root_toc_entry: false",
        "",
    ]
    for mod in public_modules(package):
        lines += [f"::: {mod}", ""]
    return "\n".join(lines)


def on_files(files: Files, config) -> Files:
    files.append(File.generated(config, "index.md", abs_src_path=str(ROOT / "README.md")))
    for png in sorted((ROOT / "figures").glob("*.png")):
        files.append(File.generated(config, f"figures/{png.name}", abs_src_path=str(png)))
    for package in API:
        files.append(File.generated(config, f"api/{package}.md", content=api_page(package)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    if page.file.src_uri == "index.md":
        return markdown.replace("](docs/", "](")
    return markdown.replace("](../figures/", "](figures/")
