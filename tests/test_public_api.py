"""The public surface: explicit re-exports, documented, float64 on import."""

import doctest
import importlib
import pkgutil

import pytest

import lowrank_theory as lt

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
