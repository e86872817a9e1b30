"""The public surface: explicit re-exports, documented, float64 on import."""

import doctest
import importlib
import pkgutil

import pytest

import lowrank_theory as lt
from lowrank_theory.core.deprecation import MOVED

PUBLIC = [n for n in dir(lt) if not n.startswith("_")]


def test_public_names_are_documented():
    for name in PUBLIC:
        obj = getattr(lt, name)
        if callable(obj):
            assert obj.__doc__ and obj.__doc__.strip(), f"lowrank_theory.{name} has no docstring"


def test_version_is_a_string():
    assert isinstance(lt.__version__, str) and lt.__version__


def test_x64_enabled_on_import():
    import jax

    assert jax.config.jax_enable_x64


MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(lt.__path__, "lowrank_theory.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("modname", MODULES)
def test_module_doctests(modname):
    mod = importlib.import_module(modname)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0, f"{modname}: {res.failed} doctest failures"


def _import_env(code: str, xla_flags: str | None) -> tuple[str, str]:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    if xla_flags is not None:
        env["XLA_FLAGS"] = xla_flags
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip(), proc.stderr


_SHOW = "import os, lowrank_theory; print(os.environ['XLA_FLAGS'])"


def test_import_turns_off_the_deadlocking_xla_scheduler():
    """The CPU deadlock fix (see lowrank_theory.core.precision) is applied on import, keeps the
    user's own flags and respects an explicit choice of the same flag."""
    flag = "--xla_cpu_enable_concurrency_optimized_scheduler"
    out, _ = _import_env(_SHOW, None)
    assert out == f"{flag}=false"
    out, _ = _import_env(_SHOW, "--xla_force_host_platform_device_count=2")
    assert out == f"--xla_force_host_platform_device_count=2 {flag}=false"
    out, _ = _import_env(_SHOW, f"{flag}=true")
    assert out == f"{flag}=true"
    # too late: the backend already started, so the user is told the setting did not apply
    _, err = _import_env("import jax; jax.numpy.zeros(1); import lowrank_theory", None)
    assert "could not take effect" in err


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_paths_warn_and_forward(old):
    """Each flat module path of earlier releases imports with a DeprecationWarning naming the
    new path, and forwards every public name to the new module."""
    import sys
    import warnings

    sys.modules.pop(f"lowrank_theory.{old}", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        alias = importlib.import_module(f"lowrank_theory.{old}")
    new = importlib.import_module(f"lowrank_theory.{MOVED[old]}")
    assert [w.category for w in caught] == [DeprecationWarning]
    assert f"lowrank_theory.{MOVED[old]}" in str(caught[0].message)
    names = getattr(new, "__all__", [n for n in dir(new) if not n.startswith("_")])
    assert names and all(getattr(alias, n) is getattr(new, n) for n in names)
    with pytest.raises(AttributeError):
        alias.no_such_name
