r"""Old import paths, kept for one release: ``lowrank_theory.expressivity`` and friends.

Before the package was split into one subpackage per paper, its modules sat flat under
``lowrank_theory``. :data:`MOVED` maps each old path to its new home; importing an old path
gives a thin alias module that forwards every attribute to the new module (or, for the few
names that moved elsewhere, :data:`RENAMED`, to their new place; :data:`REMOVED` says what
replaces the rest) and warns once with a :class:`DeprecationWarning` naming the new path. The aliases are made on demand by a finder
(:func:`install`), so no file of the package stands at the old place.

Examples:
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     import lowrank_theory.expressivity as old
    >>> import lowrank_theory.lora.linear as new
    >>> old.linear_adapters is new.linear_adapters, caught[0].category.__name__
    (True, 'DeprecationWarning')
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

__all__ = ["MOVED", "REMOVED", "RENAMED", "install"]

#: old module path (relative to ``lowrank_theory``) -> new module path
MOVED = {
    "linalg": "core.linalg",
    "expressivity": "lora.linear",
    "expressivity_relu": "lora.relu",
    "transfer": "lora.transfer",
    "sparse_ft": "s2ft",
    "sparse_ft_bounds": "s2ft.bounds",
    "sparse_ft_ops": "s2ft.dynamics",
    "linearization": "lin.linearization",
    "ntk": "lin.ntk",
    "lipschitz": "lin.lipschitz",
    "models_small": "lin.models",
    "factorization": "dmf.factorization",
    "compression": "dmf.compression",
    "completion": "dmf.completion",
    "deep_lora": "dmf.deep_lora",
    "models": "dmf.models",
    "audit": "pipeline.audit",
    "experiments_io": "pipeline.records",
    "plotting": "pipeline.plotting",
}


#: public names of the old modules that moved elsewhere than their module's new home
RENAMED = {
    "sparse_ft.svd_r": "core.linalg.low_rank_approx_np",
    "factorization.prepare_observed": "dmf.masked_products.prepare_observed",
}

#: public names of the old modules that are gone, with what replaces them
REMOVED = {
    "sparse_ft.psd_root": "lowrank_theory.core.linalg.psd_roots(s, rtol=lowrank_theory.s2ft.PSD_RTOL)",
    "sparse_ft.pinv_rank": "lowrank_theory.core.linalg.pinv_np and rank_from_singular_values "
    "(rtol=lowrank_theory.s2ft.svd_rtol(a.shape))",
    "sparse_ft.col_basis": "lowrank_theory.core.linalg.orth_np(a, rtol=lowrank_theory.s2ft.svd_rtol(a.shape))",
    "plotting.save_figure": "lowrank_theory.pipeline.plotting.png_bytes and an atomic write "
    "(lowrank_theory.pipeline.records.atomic_write_bytes)",
    "audit.update_readme": "lowrank_theory.pipeline.audit.update_docs (the table now lives in docs/audit.md)",
}


class _Alias(types.ModuleType):
    """A module that forwards attribute access to ``self.__target__``."""

    def __getattr__(self, name: str):
        target = self.__dict__.get("__target__")
        if target is None or name.startswith("__"):
            raise AttributeError(name)
        old = f"{self.__name__.partition('.')[2]}.{name}"
        if old in RENAMED:
            module, _, attr = RENAMED[old].rpartition(".")
            package = self.__name__.partition(".")[0]
            return getattr(importlib.import_module(f"{package}.{module}"), attr)
        if old in REMOVED:
            raise AttributeError(f"{self.__name__}.{name} was removed; use {REMOVED[old]}")
        return getattr(target, name)

    def __dir__(self):
        target = self.__dict__.get("__target__")
        return dir(target) if target is not None else []


class _Loader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return _Alias(spec.name)

    def exec_module(self, module) -> None:
        warnings.warn(
            f"{module.__name__} is deprecated and will be removed in the next release; "
            f"import {self.target} instead",
            DeprecationWarning,
            stacklevel=2,
        )
        target = importlib.import_module(self.target)
        module.__dict__["__target__"] = target
        module.__doc__ = f"Deprecated alias of :mod:`{self.target}`."


class _Finder(importlib.abc.MetaPathFinder):
    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        prefix = self.package + "."
        old = fullname[len(prefix) :] if fullname.startswith(prefix) else None
        if old not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader(prefix + MOVED[old]))


def install(package: str) -> None:
    """Make the old module paths under ``package`` importable (idempotent)."""
    if not any(isinstance(f, _Finder) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(_Finder(package))
