r"""Interruptions: Ctrl-C (SIGINT) and SIGTERM end a long command the same clean way.

Python turns SIGINT into :class:`KeyboardInterrupt`; the figure scripts
(:func:`lowrank_theory.pipeline.records.run_experiment`) and the audit CLI catch it, save what is
finished and print one line saying so. A job scheduler (or ``kill <pid>``) stops a process with
SIGTERM instead, whose default action ends it at once, without that line. Within
:func:`sigterm_as_interrupt`, SIGTERM raises :class:`Terminated`, a :class:`KeyboardInterrupt`,
at the same places Ctrl-C would (in the main thread, between chunks of a chunked GD run), so
every ``except KeyboardInterrupt`` saves and reports as for Ctrl-C; the exit status is then
143 (128 + SIGTERM) instead of 130 (128 + SIGINT), as shells report them (:func:`exit_status`).

For a command-line ``main()`` that already turns Ctrl-C into the status 130,
:func:`interruptible` wraps it so that SIGTERM gives the same ending with 143.
"""

from __future__ import annotations

import contextlib
import functools
import signal
import threading
from collections.abc import Callable, Iterator

__all__ = [
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "Terminated",
    "exit_status",
    "interruptible",
    "signal_name",
    "sigterm_as_interrupt",
]

#: exit status after Ctrl-C (128 + SIGINT)
EXIT_SIGINT = 128 + signal.SIGINT
#: exit status after SIGTERM (128 + SIGTERM)
EXIT_SIGTERM = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM received inside :func:`sigterm_as_interrupt` (handled like Ctrl-C)."""


class Caught:
    """What :func:`sigterm_as_interrupt` yields: ``signum`` is ``signal.SIGTERM`` once one
    arrived (None before)."""

    signum: int | None = None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[Caught]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (as Ctrl-C raises
    :class:`KeyboardInterrupt`); the previous handler is restored on leaving. Outside the main
    thread (where Python cannot install handlers) the block runs with SIGTERM as it was."""
    caught = Caught()
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return

    def handler(signum, frame) -> None:
        caught.signum = signum
        raise Terminated(f"terminated by signal {signum} (SIGTERM)")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield caught
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def exit_status(exc: BaseException | None = None) -> int:
    """143 for :class:`Terminated`, else 130 (the status of an interrupted command)."""
    return EXIT_SIGTERM if isinstance(exc, Terminated) else EXIT_SIGINT


def signal_name(exc: BaseException | None) -> str:
    """``"SIGTERM"`` for :class:`Terminated`, else ``"SIGINT"`` (Ctrl-C)."""
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


def interruptible(main: Callable[..., int]) -> Callable[..., int]:
    """``main`` (a CLI entry point returning an exit status, 130 after Ctrl-C, which it handles
    itself) run within :func:`sigterm_as_interrupt`: SIGTERM ends it as Ctrl-C does, and its
    status 130 becomes 143."""

    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        with sigterm_as_interrupt() as caught:
            status = main(*args, **kwargs)
        if caught.signum is not None and status == EXIT_SIGINT:
            return EXIT_SIGTERM
        return status

    return run
