r"""Generated blocks of the docs pages: the one way code writes into ``docs/*.md``.

A page keeps its generated part between two marker comments, e.g. in ``docs/audit.md``

```markdown
<!-- audit:start -->
... (written by `python -m lowrank_theory audit --update-docs docs/audit.md`)
<!-- audit:end -->
```

and :func:`write_block` replaces what lies between them, leaving the rest of the page (the
hand-written explanation around the table) untouched. The audit table (``audit``,
:func:`lowrank_theory.pipeline.audit.update_docs`) and the benchmark table (``bench``,
``benchmarks/run.py``) are written this way.
"""

from __future__ import annotations

import re
from pathlib import Path

from .records import atomic_write_text

__all__ = ["markers", "read_block", "write_block"]

_NAME = re.compile(r"[A-Za-z0-9_-]+")


def markers(name: str) -> tuple[str, str]:
    """The start and end marker comments of block ``name``: ``<!-- name:start -->``, ``...end``."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"block name must be letters, digits, '-' or '_', got {name!r}")
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def _split(path: Path, name: str) -> tuple[str, str, str]:
    start, end = markers(name)
    text = path.read_text()
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"{path} must contain {start} and {end} exactly once each")
    if text.index(end) < text.index(start):
        raise ValueError(f"{path}: {end} comes before {start}")
    head, rest = text.split(start, 1)
    body, tail = rest.split(end, 1)
    return head, body, tail


def read_block(path: str | Path, name: str) -> str:
    """The text between the markers of block ``name`` in the file at ``path``."""
    path = Path(path)
    return _split(path, name)[1]


def write_block(path: str | Path, name: str, text: str) -> None:
    r"""Replaces the content of block ``name`` in the file at ``path`` with ``text``.

    The content between ``<!-- name:start -->`` and ``<!-- name:end -->`` becomes ``"\n" +
    text`` (with a final newline added if missing); everything outside the markers, and the
    markers themselves, stay as they are. The file is replaced atomically
    (:func:`lowrank_theory.pipeline.records.atomic_write_text`): a reader sees the old page or
    the new one, never half of it.

    Args:
        path: the Markdown page, e.g. ``docs/audit.md``.
        name: the block's name (letters, digits, ``-``, ``_``).
        text: the new content (Markdown).

    Raises:
        ValueError: the page does not hold each marker exactly once, in order.
        FileNotFoundError: there is no page at ``path``.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> page = Path(tempfile.mkdtemp()) / "page.md"
        >>> _ = page.write_text("intro\n<!-- t:start -->\nold\n<!-- t:end -->\nmore\n")
        >>> write_block(page, "t", "| a |\n|---|")
        >>> print(page.read_text(), end="")
        intro
        <!-- t:start -->
        | a |
        |---|
        <!-- t:end -->
        more
    """
    path = Path(path)
    head, _, tail = _split(path, name)
    start, end = markers(name)
    body = "\n" + text + ("" if text.endswith("\n") else "\n")
    atomic_write_text(path, head + start + body + end + tail)
