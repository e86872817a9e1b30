r"""lowrank_theory: the theory of parameter-efficient fine-tuning, as numbers anyone can check.

Importing the package enables float64 in JAX (``jax_enable_x64``) before any array exists;
every theorem check relies on it.

The public API is re-exported here explicitly. The package has one subpackage per paper, named
like the claim prefixes, over a shared core and under the pipeline:

* :mod:`lowrank_theory.core`: precision (``tolerance``), validation, linear algebra (the one
  copy of chain products, truncated SVD, the rank rule, roots, angles, random spectra),
  small statistics.
* :mod:`lowrank_theory.lora` (seed 000, claims ``lora.*``): linear (Lemma 1), relu (Lemma 9,
  Theorem 5), transfer (Stein estimator, reduced-rank fit).
* :mod:`lowrank_theory.s2ft` (seed 002, claims ``s2ft.*``): deep linear instances, min-norm
  solutions, Appendix F notation and bounds, gradient dynamics.
* :mod:`lowrank_theory.lin` (seed 003, claims ``lin.*``): linearization, empirical NTK, KRR risk
  bounds, Lipschitz constants, small models.
* :mod:`lowrank_theory.dmf` (seed 004, claims ``dmf.*``): deep matrix factorization and
  completion, invariant subspaces, compression, Deep LoRA, masked products (dense / packed /
  native kernel).
* :mod:`lowrank_theory.claims`: the claim registry, one subpackage per paper.
* :mod:`lowrank_theory.pipeline`: the audit, experiment records, plotting, generated docs.

The flat module paths of earlier releases (``lowrank_theory.expressivity``, ...) still import,
with a :class:`DeprecationWarning` (:mod:`lowrank_theory.core.deprecation`).
"""

# The package imports lazily (PEP 562): ``import lowrank_theory`` loads no JAX, so that
# ``python -m lowrank_theory --help`` answers at once; each public name below is imported from
# its module on first use. Float64 still holds from the import on: when JAX is not yet imported
# the package sets ``JAX_ENABLE_X64=1`` (JAX's own switch, read when JAX is imported) and its
# XLA flags in the environment; when JAX is already imported it sets the config now.
import importlib as _importlib
import sys as _sys

from .core import deprecation as _deprecation
from .core import environment as _environment

if "jax" in _sys.modules:
    from .core import precision as _precision  # noqa: F401  (sets jax_enable_x64 now)
else:
    _environment.set_environment()

#: public name -> ``"module:attribute"`` or ``"module"`` (relative to the package)
_PUBLIC = {
    "DTYPE": "core.precision:DTYPE",
    "EPS": "core.precision:EPS",
    "tolerance": "core.precision:tolerance",
    "linalg": "core.linalg",
    # --- seed 000: expressive power of LoRA (Lemma 1, Lemma 9, Theorem 5), low-rank transfer --
    "estimate_shift": "lora:estimate_shift",
    "finetune_first_layer": "lora:finetune_first_layer",
    "linear_adapters": "lora:linear_adapters",
    "linear_min_error": "lora:linear_min_error",
    "lora_product": "lora:lora_product",
    "min_lora_rank": "lora:min_lora_rank",
    "reduced_rank_fit": "lora:reduced_rank_fit",
    "relu_adapters": "lora:relu_adapters",
    "relu_fnn": "lora:relu_fnn",
    "rowspace_from_stein": "lora:rowspace_from_stein",
    "shift_from_rowspace": "lora:shift_from_rowspace",
    "stein_matrix": "lora:stein_matrix",
    "theorem5_bound": "lora:theorem5_bound",
    "theorem5_construction": "lora:theorem5_construction",
    "train_lora": "lora:train_lora",
    "transfer_forward": "lora:transfer_forward",
    "uniform_partition": "lora:uniform_partition",
    # --- seed 002: S²FT vs LoRA in deep linear networks ------------------------------------------
    "build_instance": "s2ft.builders:build_instance",
    "DeepLinearInstance": "s2ft.instance:DeepLinearInstance",
    "sample": "s2ft.instance:sample",
    "sparsity_level": "s2ft.instance:sparsity_level",
    "FineTuned": "s2ft.solutions:FineTuned",
    "channel_selector": "s2ft.solutions:channel_selector",
    "excess_risk": "s2ft.solutions:excess_risk",
    "full_ft": "s2ft.solutions:full_ft",
    "min_norm_lora": "s2ft.solutions:min_norm_lora",
    "min_norm_s2ft": "s2ft.solutions:min_norm_s2ft",
    "sparse_ft_bounds": "s2ft.bounds",
    "gd_lora": "s2ft.dynamics:gd_lora",
    "gd_s2ft": "s2ft.dynamics:gd_s2ft",
    # --- seed 004: compressible dynamics (deep matrix factorization / completion) -------------
    "completion": "dmf.completion",
    "compression": "dmf.compression",
    "factorization": "dmf.factorization",
    "Compressed": "dmf.compression:Compressed",
    "InvariantSubspaces": "dmf.compression:InvariantSubspaces",
    "compress": "dmf.compression:compress",
    "compress_from_gradient": "dmf.compression:compress_from_gradient",
    "invariant_subspaces": "dmf.compression:invariant_subspaces",
    "run_compressed": "dmf.compression:run_compressed",
    "run_narrow": "dmf.compression:run_narrow",
    "subspaces_from_gradient": "dmf.compression:subspaces_from_gradient",
    "completion_instance": "dmf.completion:completion_instance",
    "run_gd_batch": "dmf.completion:run_gd_batch",
    "masked_lowrank_products": "dmf.masked_products:masked_lowrank_products",
    "native_status": "dmf.masked_products:native_status",
    "end_to_end": "dmf.factorization:end_to_end",
    "nonlinear_gradient": "dmf.factorization:nonlinear_gradient",
    "orthogonal_init": "dmf.factorization:orthogonal_init",
    "run_completion": "dmf.factorization:run_completion",
    "run_factorization": "dmf.factorization:run_factorization",
    "run_gd": "dmf.factorization:run_gd",
    "numerical_rank_fig7": "dmf.spectra:numerical_rank_fig7",
    "rho_sequence": "dmf.spectra:rho_sequence",
    # --- seed 004, Section 4: Deep LoRA --------------------------------------------------------
    "deep_lora": "dmf.deep_lora",
    "Adapter": "dmf.deep_lora:Adapter",
    "deep_lora_adapters": "dmf.deep_lora:deep_lora_adapters",
    "full_width_adapters": "dmf.deep_lora:full_width_adapters",
    "lora_adapters": "dmf.deep_lora:lora_adapters",
    "merge": "dmf.deep_lora:merge",
    "narrow_adapters": "dmf.deep_lora:narrow_adapters",
    # --- seed 003: linearization of fine-tuning, empirical NTK, kernel ridge risk bounds -------
    "gradient_flow": "lin.linearization:gradient_flow",
    "linearize": "lin.linearization:linearize",
    "regularized_finetune": "lin.linearization:regularized_finetune",
    "empirical_ntk": "lin.ntk:empirical_ntk",
    "eta": "lin.ntk:eta",
    "krr_fit": "lin.ntk:krr_fit",
    "krr_residual": "lin.ntk:krr_residual",
    "krr_risk": "lin.ntk:krr_risk",
    "layer_selection": "lin.ntk:layer_selection",
    "regularized_condition_number": "lin.ntk:regularized_condition_number",
    "risk_bounds": "lin.ntk:risk_bounds",
    "theorem7_interval": "lin.ntk:theorem7_interval",
    "core": "core",
    "dmf": "dmf",
    "lin": "lin",
    "lora": "lora",
    "s2ft": "s2ft",
}

__all__ = sorted([*_PUBLIC, "__version__"])


def __getattr__(name: str):
    """Imports a public name (or a subpackage) of the package on first use (PEP 562)."""
    if name == "__version__":
        return _version()
    target = _PUBLIC.get(name)
    if target is None:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            value = _importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        _importlib.import_module(f"{__name__}.core.precision")  # float64 before any array
        mod, _, attr = target.partition(":")
        value = _importlib.import_module(f"{__name__}.{mod}")
        if attr:
            value = getattr(value, attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC, "__version__"})


def _version() -> str:
    import importlib.metadata as metadata

    try:
        version = metadata.version("lowrank_theory")
    except metadata.PackageNotFoundError:  # running from a source tree without installation
        version = "0.0.0+unknown"
    globals()["__version__"] = version
    return version


_deprecation.install(__name__)
