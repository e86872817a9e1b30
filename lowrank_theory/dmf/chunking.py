r"""Chunked GD runs: progress, Ctrl-C between chunks, checkpoints and resume.

A GD driver (:func:`~lowrank_theory.dmf.factorization.run_gd`,
:func:`~lowrank_theory.dmf.compression.run_compressed`,
:func:`~lowrank_theory.dmf.completion.run_gd_batch`) compiles its loop as a record loop
``advance(carry, n)`` (``n`` records, the first at the start) and, optionally, a step loop
``advance_steps(carry, m)``. :func:`run_chunked` runs such a loop a chunk at a time
(:class:`Chunking`), handing a :class:`RunState` to ``on_chunk`` after every chunk and starting
from a saved one on request; the iterates and records are bitwise those of the one-scan run.
Re-exported by :mod:`lowrank_theory.dmf.factorization` (their earlier path).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..core.validation import check_int

__all__ = ["Chunking", "RunState", "run_chunked"]


@dataclass(frozen=True)
class RunState:
    r"""Where a chunked run stands: ``step`` of ``total`` steps done.

    ``carry``: what the loop carries (the factors), arrays; ``records``: the records so far, a
    pytree of NumPy arrays with leading axis ``step // stride + 1`` (the first at step 0), as
    the one-scan run returns them; ``signature``: a JSON-able description of the run (driver,
    steps, stride, record names, shapes) that a state handed back to resume must match. A state
    with ``step == total`` is a finished run: resuming from it returns at once.
    """

    step: int
    total: int
    carry: Any
    records: Any
    signature: dict[str, Any]


@dataclass(frozen=True)
class Chunking:
    r"""How a GD driver (``run_gd``, ``run_compressed``, ``run_gd_batch``) runs in chunks.

    The compiled loop runs a chunk at a time (each chunk length jitted once): several whole
    records, or, when one record (``record_every`` steps) takes longer than ``seconds``, pieces
    of a record. Between chunks Python regains control: Ctrl-C lands there (within about
    ``seconds``, not after the whole run), ``on_chunk`` reports progress and may save a
    checkpoint, and a run can resume from a saved :class:`RunState`. The iterates and records
    are bitwise those of the one-scan run, whatever the chunk lengths (tested).

    Attributes:
        records: whole records per chunk (fixed). steps: steps per piece (fixed; a piece never
            crosses a record). Both None (default): adaptive, from the time of one step
            (measured on two throw-away steps after compiling them): chunks of about
            ``seconds`` of wall time, two or three chunk lengths compiled in all.
        seconds: target wall time of an adaptive chunk, about the longest wait for Ctrl-C.
        on_chunk: called with the :class:`RunState` after every chunk.
        resume: a :class:`RunState` to continue from (ValueError unless it matches the run's
            signature), or a callable ``template -> RunState | None`` (e.g. a checkpoint
            loader); the template holds the run's ``signature``, ``total``, initial ``carry``
            and the structure of its ``records`` (``jax.ShapeDtypeStruct`` leaves with leading
            axis 1).
    """

    records: int | None = None
    steps: int | None = None
    seconds: float = 1.0
    on_chunk: Callable[[RunState], None] | None = None
    resume: RunState | Callable[[RunState], RunState | None] | None = None


def _canonical(x) -> str:
    return json.dumps(x, sort_keys=True, default=str)


def _resume_state(advance, carry, total: int, signature: dict, resume) -> RunState | None:
    """The state a chunked run continues from (None: from the start); checked against the run."""
    if resume is None:
        return None
    if callable(resume):
        shapes = jax.eval_shape(lambda c: advance(c, 0)[1], carry)
        state = resume(RunState(0, total, carry, shapes, signature))
        if state is None:
            return None
    else:
        state = resume
    if _canonical(state.signature) != _canonical(signature) or state.total != total:
        raise ValueError(
            f"the resume state is from another run: {state.signature} (total {state.total}), "
            f"this run is {signature} (total {total})"
        )
    if jax.tree_util.tree_structure(state.carry) != jax.tree_util.tree_structure(carry):
        raise ValueError("the resume state's carry does not have this run's structure")
    if not 0 <= state.step <= total:
        raise ValueError(f"the resume state's step {state.step} is not in [0, {total}]")
    return state


def _plan(chunking: Chunking, advance_steps, carry, stride: int, n_records: int) -> dict:
    """Chunk lengths: ``k`` records per chunk, or pieces of ``m`` steps (``k`` None; a resumed
    run between records goes on to the next record in one piece)."""
    if chunking.steps is not None:
        return {"k": None, "m": check_int(chunking.steps, "chunking.steps", lo=1)}
    if chunking.records is not None:
        return {"k": check_int(chunking.records, "chunking.records", lo=1), "m": stride}
    if advance_steps is None:  # no pieces: records one at a time
        return {"k": 1, "m": stride}
    jax.block_until_ready(advance_steps(carry, 1))  # compile, then time a step (thrown away)
    t0 = time.perf_counter()
    jax.block_until_ready(advance_steps(carry, 1))
    per_step = max(time.perf_counter() - t0, 1e-9)
    target = int(chunking.seconds / (per_step * stride))
    if target >= 1:  # whole records; the length in [target/2, target] with the least remainder
        if target >= n_records:
            return {"k": max(n_records, 1), "m": stride}
        k = min(range((target + 1) // 2, target + 1), key=lambda k: (n_records % k, -k))
        return {"k": k, "m": stride}
    cap = max(1, int(chunking.seconds / per_step))  # pieces: a divisor of the stride
    return {"k": None, "m": max(m for m in range(1, min(cap, stride) + 1) if stride % m == 0)}


def _append(records, recs, first: int = 1):
    """The records so far and ``recs[first:]`` (a chunk's first record is its start, held)."""
    if records is None:
        return recs
    return jax.tree_util.tree_map(lambda a, b: np.concatenate([a, b[first:]]), records, recs)


def run_chunked(
    advance: Callable[[Any, int], tuple[Any, Any]],
    carry: Any,
    *,
    n_records: int,
    stride: int,
    signature: dict[str, Any],
    chunking: Chunking,
    advance_steps: Callable[[Any, int], Any] | None = None,
) -> tuple[Any, Any]:
    r"""Runs a compiled record loop in chunks (see :class:`Chunking`).

    ``advance(carry, n)`` runs ``n`` records (``n * stride`` steps) from ``carry`` and returns
    ``(carry, records)`` with a leading record axis of ``n + 1``, the first at the start (as
    :func:`~lowrank_theory.dmf.factorization.gd_scan` does); ``advance_steps(carry, m)``
    (optional) runs ``m`` steps and returns the carry, for chunks shorter than a record. Returns ``(carry, records)`` of the whole run,
    records as JAX arrays with leading axis ``n_records + 1``: bitwise what
    ``advance(carry, n_records)`` returns.
    """
    total = n_records * stride
    state = _resume_state(advance, carry, total, signature, chunking.resume)
    step, records = 0, None
    if state is not None:
        carry = jax.tree_util.tree_map(jnp.asarray, state.carry)
        step, records = state.step, state.records
    if step < total or records is None:
        plan = _plan(chunking, advance_steps, carry, stride, n_records)
    to_host = partial(jax.tree_util.tree_map, np.asarray)
    while step < total or records is None:
        if plan["k"] is not None and step % stride == 0:
            n = min(plan["k"], (total - step) // stride)
            carry, recs = advance(carry, n)
            records, step = _append(records, to_host(recs)), step + n * stride
        else:  # a piece of a record; records taken at its start and end
            if records is None:
                records = to_host(advance(carry, 0)[1])
            if advance_steps is None:
                raise ValueError("this driver runs whole records only (chunking.steps unset)")
            m = min(plan["m"], stride - step % stride)
            # wait for the piece: JAX dispatches asynchronously, so without this Python runs
            # ahead and queues pieces (32 of 0.67 s each measured on the paper-scale narrow
            # batch of dmc-narrow), and Ctrl-C or a checkpoint then waits for the whole queue
            carry, step = jax.block_until_ready(advance_steps(carry, m)), step + m
            if step % stride == 0:
                records = _append(records, to_host(advance(carry, 0)[1]), first=0)
        if chunking.on_chunk is not None:
            chunking.on_chunk(RunState(step, total, carry, records, signature))
    return carry, jax.tree_util.tree_map(jnp.asarray, records)
