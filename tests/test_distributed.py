"""Sweeps across processes: two local CPU processes joined by jax.distributed give the numbers of
one process (lowrank_theory.dmf.completion.run_gd_batch shards the batch over every process's
devices and gathers the records)."""

import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import lowrank_theory as lt
from lowrank_theory.dmf.completion import padded_narrow_init, run_gd_from_inits

SWEEP = textwrap.dedent(
    """
    def sweep(lt, padded_narrow_init, run_gd_from_inits, devices=None):
        import jax

        k = jax.random.split(jax.random.key(0), 4)
        phi, mask = lt.completion_instance(k[0], 12, 2, 0.5)
        widths = (2, 4, 8)
        inits = [padded_narrow_init(k[1 + i], 12, w, 3, 0.1, 8) for i, w in enumerate(widths)]
        return run_gd_from_inits(inits, jax.numpy.where(mask, phi, 0.0), mask, phi, lr=0.5,
                                 steps=60, record_every=20, record=("recovery", "loss"),
                                 devices=devices)
    """
)
WORKER = SWEEP + textwrap.dedent(
    """
    import sys
    import jax

    n_proc, pid, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    if n_proc > 1:  # before any computation: the CPU backend joins the others (gloo collectives)
        jax.distributed.initialize(coordinator_address=f"localhost:{port}",
                                   num_processes=n_proc, process_id=pid)
    import numpy as np
    import lowrank_theory as lt
    from lowrank_theory.dmf.completion import padded_narrow_init, run_gd_from_inits

    assert jax.process_count() == n_proc and len(jax.devices()) == n_proc
    np.savez(out, **sweep(lt, padded_narrow_init, run_gd_from_inits))
    if n_proc > 1:
        jax.distributed.shutdown()
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _launch(n_proc: int, port: int, tmp_path, script) -> list[subprocess.Popen]:
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONHASHSEED="0")
    return [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                str(n_proc),
                str(i),
                str(port),
                str(tmp_path / f"{n_proc}-{i}.npz"),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(n_proc)
    ]


def _wait(procs, timeout=240):
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]


@pytest.mark.slow
def test_two_processes_give_the_one_process_numbers(tmp_path):
    """A width sweep (3 initialisations, sharded 2 + 1 over two processes, one CPU device each)
    equals the single-process run to rounding, and both processes see all records."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    _wait(_launch(2, _free_port(), tmp_path, script))
    scope: dict = {}
    exec(SWEEP, scope)  # the same sweep in this process, on one device
    one = scope["sweep"](lt, padded_narrow_init, run_gd_from_inits, devices=jax.devices()[:1])
    for pid in (0, 1):
        two = np.load(tmp_path / f"2-{pid}.npz")
        assert set(two.files) == set(one) == {"recovery", "loss"}
        for name in one:
            assert two[name].shape == one[name].shape == (3, 4)
            np.testing.assert_allclose(two[name], one[name], rtol=1e-12, atol=0)
