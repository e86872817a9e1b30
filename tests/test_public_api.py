"""The public surface: explicit re-exports, documented, float64 on import."""

import doctest
import importlib
import json
import pkgutil
from pathlib import Path

import pytest

import lowrank_theory as lt
from lowrank_theory.core.deprecation import MOVED

#: the public names of each flat module in the last release before the split (generated from
#: its sources: functions, classes and constants defined at module level)
OLD_PUBLIC_NAMES = json.loads(
    (Path(__file__).parent / "data" / "old_public_names.json").read_text()
)

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


_X64_OFF = r"""
import warnings; warnings.simplefilter("ignore")
import jax, numpy as np
import lowrank_theory as lt
from lowrank_theory.lin import models as lm
I3, A3 = np.eye(3), np.diag([3.0, 2.0, 1.0])
calls = {
    "lora": lambda: lt.linear_min_error([I3, I3], A3, 1),
    "s2ft": lambda: lt.build_instance(0, (4, 5, 3), 1),
    "lin": lambda: lt.krr_fit(2 * np.eye(3), np.ones(3), 1.0),
    "lin.models": lambda: lm.mlp_init(jax.random.key(0), (3, 4, 1)),
    "dmf": lambda: lt.end_to_end([I3, I3]),
}
jax.config.update("jax_enable_x64", False)
for name, call in calls.items():
    try:
        call()
        print("computed", name)
    except RuntimeError as e:
        assert "jax_enable_x64 was turned off after import" in str(e), e
        print("refused", name)
with jax.enable_x64(True):
    print("context", lt.end_to_end([I3, I3]).dtype)
jax.config.update("jax_enable_x64", True)
for name, call in calls.items():
    call()
print("back on", lt.end_to_end([I3, I3]).dtype)
"""


def test_public_functions_refuse_float32_after_x64_is_turned_off():
    """Issue 17 item 2: after ``jax_enable_x64=False`` the package used to compute in float32
    silently; now every public function refuses with a RuntimeError, and works again once x64
    is back on. In a subprocess, so the global flag cannot leak into other tests."""
    out, _ = _import_env(_X64_OFF, None)
    lines = out.splitlines()
    assert lines[:5] == [f"refused {p}" for p in ("lora", "s2ft", "lin", "lin.models", "dmf")]
    assert lines[5:] == ["context float64", "back on float64"]


def test_import_does_not_load_scipy_stats():
    """Issue 17 item 7: ``scipy.stats`` (0.5 s) is imported lazily, by the one function that
    needs it (``lora.gaussianity_pvalue``), not by ``import lowrank_theory``."""
    out, _ = _import_env(
        "import sys, lowrank_theory; print(sorted(m for m in sys.modules if m == 'scipy.stats'))",
        None,
    )
    assert out == "[]"


_ORDER = r"""
import sys
{first}
print("jax loaded by the import:", "jax" in sys.modules)
import jax, jax.numpy as jnp
print(jax.config.jax_enable_x64, jnp.ones(2).dtype, lt.linear_min_error([jnp.eye(2)], jnp.eye(2), 1))
"""


@pytest.mark.parametrize(
    ("first", "loads_jax"),
    [("import lowrank_theory as lt", False), ("import jax; import lowrank_theory as lt", True)],
)
def test_float64_whichever_is_imported_first(first, loads_jax):
    """``import lowrank_theory`` loads no JAX (its names import on first use), yet float64
    holds from the import on: through ``JAX_ENABLE_X64`` when JAX comes later, through the
    config when JAX is already there (issue 17)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "XLA_FLAGS")}
    proc = subprocess.run(
        [sys.executable, "-c", _ORDER.format(first=first)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    assert lines[0] == f"jax loaded by the import: {loads_jax}"
    assert lines[1].startswith("True float64 ")


def test_public_names_resolve_lazily_and_unknown_names_raise():
    assert set(lt.__all__) <= set(dir(lt))
    for name in lt.__all__:
        assert getattr(lt, name) is not None
    with pytest.raises(AttributeError, match="no_such_name"):
        lt.no_such_name
