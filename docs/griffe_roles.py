"""Griffe extension of ``make docs``: Sphinx roles in the docstrings become Markdown.

The docstrings cross-reference with Sphinx roles (``:func:`~lowrank_theory.dmf.factorization.run_gd```).
A role whose target is a full path into a subpackage (``lowrank_theory.<package>...``) becomes a
cross-reference to that object's entry in the API reference, so ``mkdocs build --strict`` fails on
a stale target; any other target (a builtin, a relative name, a name re-exported at the top level
such as ``lowrank_theory.tolerance``, ``__main__``) becomes inline code. A leading ``~`` shows the last
component only, as in Sphinx.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|data|attr|obj|exc|const):`(~?)([^`<>]+)`")


SUBPACKAGES = ("core", "lora", "s2ft", "lin", "dmf", "claims", "pipeline")


def _documented(target: str) -> bool:
    parts = target.split(".")
    return len(parts) >= 2 and parts[0] == "lowrank_theory" and parts[1] in SUBPACKAGES


def convert(text: str) -> str:
    """``text`` with every Sphinx role replaced by a Markdown cross-reference or code."""

    def one(m: re.Match[str]) -> str:
        short, target = m.group(1) == "~", m.group(2).strip()
        shown = target.rsplit(".", 1)[-1] if short else target
        if _documented(target):
            return f"[`{shown}`][{target}]"
        return f"`{shown}`"

    return ROLE.sub(one, text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
