"""The package's import rules, read from the AST of every module (docs/layout.md).

* ``core`` imports nothing of the package but ``core``;
* a paper package (``lora``, ``s2ft``, ``lin``, ``dmf``) imports ``core`` and itself only;
* ``claims/<paper>`` imports that paper, ``core``, ``claims.base`` and its own siblings;
* nothing imports ``pipeline`` except ``pipeline`` itself and ``__main__``;
* no ``_private`` name crosses a module boundary (``from m import _x``, ``import m._x`` or
  ``m._x`` on an imported module), in the package, ``experiments/``, ``benchmarks/``,
  ``tests/`` and ``notebooks/``; these also use the new module paths only (no deprecated alias);
* no import by name at run time (``importlib.import_module``) outside the two modules whose job
  it is (:data:`DYNAMIC_IMPORTS`), since the rules above cannot see such imports.

The checker is run on the real tree and on a copy with planted violations, so it can fail.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from lowrank_theory.core.deprecation import MOVED

ROOT = Path(__file__).resolve().parents[1]
PKG = "lowrank_theory"
PAPERS = ("lora", "s2ft", "lin", "dmf")


def _module_name(path: Path, pkg_dir: Path) -> str:
    parts = path.relative_to(pkg_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _imports(tree: ast.AST, modname: str, is_pkg: bool):
    """(line, imported module, imported names) for every import of the package in ``tree``."""
    here = modname.split(".") if is_pkg else modname.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == PKG:
                    yield node.lineno, a.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            if mod.split(".")[0] != PKG:
                continue
            names = [a.name for a in node.names]
            # `from pkg import submodule` imports the submodule itself
            yield node.lineno, mod, names


def _layer(mod: str) -> tuple[str, ...]:
    parts = mod.split(".")[1:]
    if not parts:
        return ("top",)
    if parts[0] == "claims" and len(parts) > 1 and parts[1] in PAPERS:
        return ("claims", parts[1])
    if parts[0] == "claims":
        return ("claims", "base") if parts[1:2] == ["base"] else ("claims",)
    return (parts[0],)


def _allowed(src: str, dst: str) -> bool:
    s, d = _layer(src), _layer(dst)
    if s == ("__main__",):
        return True
    if d == ("pipeline",):
        return s == ("pipeline",)
    if s == ("core",):
        return d == ("core",)
    if s[0] in PAPERS:
        return d in {("core",), s}
    if s == ("claims", "base"):
        return d in {("core",), s}
    if s[0] == "claims" and len(s) == 2 and s[1] in PAPERS:
        return d in {("core",), (s[1],), ("claims", "base"), s}
    if s[0] == "claims":
        return d[0] in {"core", "claims"}
    return True  # top level and pipeline sit above everything but each other


def _private_uses(tree: ast.AST, path: str, imports) -> list[str]:
    out = []
    modules = set()  # local names bound to modules of the package
    for line, mod, names in imports:
        if any(_is_private(p) for p in mod.split(".")[1:]):
            out.append(f"{path}:{line}: imports private module {mod}")
        for n in names:
            if _is_private(n):
                out.append(f"{path}:{line}: imports private name {n} from {mod}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == PKG:
                    modules.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and (
            node.level or (node.module or "").startswith(PKG)
        ):
            modules.update(a.asname or a.name for a in node.names)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in modules:
                out.append(f"{path}:{node.lineno}: uses private attribute .{node.attr}")
    return out


#: the modules allowed to import by name at run time, and why: the old flat paths resolve to
#: their new homes on demand; the registry discovers every claims module
DYNAMIC_IMPORTS = {
    "lowrank_theory/core/deprecation.py": "aliases of the old module paths",
    "lowrank_theory/claims/__init__.py": "discovery of claims/<paper>/<module>.py",
    "lowrank_theory/__init__.py": "the public names, imported on first use (PEP 562)",
    "lowrank_theory/core/__init__.py": "core's own submodules, imported on first use",
}


def _is_module(pkg_dir: Path, dotted: str) -> bool:
    path = pkg_dir.parent / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or path.is_dir()


def _dynamic_imports(tree: ast.AST) -> list[int]:
    """Lines that import by name at run time (``importlib.import_module``, ``__import__``),
    which the static rules cannot see."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in {"import_module", "__import__"}:
                out.append(node.lineno)
    return out


def violations(root: Path) -> list[str]:
    """Every breach of the import rules under ``root`` (the repository's top folder)."""
    pkg_dir = root / PKG
    out = []
    for f in sorted(pkg_dir.rglob("*.py")):
        mod = _module_name(f, pkg_dir)
        tree = ast.parse(f.read_text(), str(f))
        imps = list(_imports(tree, mod, f.name == "__init__.py"))
        rel = str(f.relative_to(root))
        for line, dst, names in imps:
            subs = [f"{dst}.{n}" for n in names if _is_module(pkg_dir, f"{dst}.{n}")]
            # `from pkg import a, b` of submodules imports those; any other name comes from pkg
            targets = subs if names and len(subs) == len(names) else [dst, *subs]
            for t in targets:
                if not _allowed(mod, t):
                    out.append(f"{rel}:{line}: {'.'.join(_layer(mod))} may not import {t}")
        out += _private_uses(tree, rel, imps)
        if rel not in DYNAMIC_IMPORTS:
            out += [f"{rel}:{line}: dynamic import" for line in _dynamic_imports(tree)]
    for folder in ("experiments", "benchmarks", "tests", "notebooks"):
        for f in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(f.read_text(), str(f))
            imps = list(_imports(tree, f"{folder}.{f.stem}", False))
            rel = str(f.relative_to(root))
            out += _private_uses(tree, rel, imps)
            for line, dst, names in imps:
                for t in [dst] + [f"{dst}.{n}" for n in names]:
                    if t.startswith(f"{PKG}.") and t[len(PKG) + 1 :] in MOVED:
                        out.append(f"{rel}:{line}: uses the deprecated path {t}")
    return out


def test_the_tree_follows_the_import_rules():
    assert violations(ROOT) == []


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("tree")
    shutil.copytree(ROOT / PKG, dst / PKG, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    for folder in ("experiments", "benchmarks", "tests", "notebooks"):
        (dst / folder).mkdir()
    return dst


PLANTED = [
    ("lowrank_theory/core/planted.py", "from ..dmf import factorization\n", "core may not import"),
    (
        "lowrank_theory/lora/planted.py",
        "from ..s2ft.solutions import min_norm_lora\n",
        "lora may not",
    ),
    ("lowrank_theory/dmf/planted.py", "from ..pipeline import records\n", "may not import"),
    (
        "lowrank_theory/claims/lin/planted.py",
        "from ...dmf.factorization import run_gd\n",
        "claims.lin may not import",
    ),
    ("lowrank_theory/lin/planted.py", "from .ntk import _check_inputs\n", "private name"),
    (
        "experiments/fig_planted.py",
        "from lowrank_theory.dmf import factorization\nfactorization._thin_grads\n",
        "private attribute",
    ),
    ("tests/test_planted.py", "import lowrank_theory.expressivity\n", "deprecated path"),
    ("lowrank_theory/claims/lora/planted.py", "from ... import claims\n", "may not import"),
    (
        "lowrank_theory/lin/planted.py",
        "import importlib\nimportlib.import_module('lowrank_theory.pipeline.audit')\n",
        "dynamic import",
    ),
]


@pytest.mark.parametrize(("path", "code", "message"), PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_violations_are_caught(tree_copy, path, code, message):
    f = tree_copy / path
    f.write_text(code)
    try:
        found = violations(tree_copy)
    finally:
        f.unlink()
    assert any(path in v and message in v for v in found), found
