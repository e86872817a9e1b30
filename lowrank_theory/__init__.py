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

from .core import precision as _precision  # noqa: F401, I001  (first: sets jax_enable_x64)
from .core import deprecation as _deprecation

import importlib.metadata as _metadata

from .core.precision import DTYPE as DTYPE, EPS as EPS, tolerance as tolerance
from .core import linalg as linalg

# --- seed 000: expressive power of LoRA (Lemma 1, Lemma 9, Theorem 5), low-rank transfer --
from .lora import (
    estimate_shift as estimate_shift,
    finetune_first_layer as finetune_first_layer,
    linear_adapters as linear_adapters,
    linear_min_error as linear_min_error,
    lora_product as lora_product,
    min_lora_rank as min_lora_rank,
    reduced_rank_fit as reduced_rank_fit,
    relu_adapters as relu_adapters,
    relu_fnn as relu_fnn,
    rowspace_from_stein as rowspace_from_stein,
    shift_from_rowspace as shift_from_rowspace,
    stein_matrix as stein_matrix,
    theorem5_bound as theorem5_bound,
    theorem5_construction as theorem5_construction,
    train_lora as train_lora,
    transfer_forward as transfer_forward,
    uniform_partition as uniform_partition,
)

# --- seed 002: S²FT vs LoRA in deep linear networks ------------------------------------------
from .s2ft.builders import build_instance as build_instance
from .s2ft.instance import (
    DeepLinearInstance as DeepLinearInstance,
    sample as sample,
    sparsity_level as sparsity_level,
)
from .s2ft.solutions import (
    FineTuned as FineTuned,
    channel_selector as channel_selector,
    excess_risk as excess_risk,
    full_ft as full_ft,
    min_norm_lora as min_norm_lora,
    min_norm_s2ft as min_norm_s2ft,
)
from .s2ft import bounds as sparse_ft_bounds  # noqa: F401  (public name of earlier releases)
from .s2ft.dynamics import gd_lora as gd_lora, gd_s2ft as gd_s2ft

# --- seed 004: compressible dynamics (deep matrix factorization / completion) -------------
from .dmf import (
    completion as completion,
    compression as compression,
    factorization as factorization,
)
from .dmf.compression import (
    Compressed as Compressed,
    InvariantSubspaces as InvariantSubspaces,
    compress as compress,
    compress_from_gradient as compress_from_gradient,
    invariant_subspaces as invariant_subspaces,
    run_compressed as run_compressed,
    run_narrow as run_narrow,
    subspaces_from_gradient as subspaces_from_gradient,
)
from .dmf.completion import completion_instance as completion_instance, run_gd_batch as run_gd_batch
from .dmf.masked_products import (
    masked_lowrank_products as masked_lowrank_products,
    native_status as native_status,
)
from .dmf.factorization import (
    end_to_end as end_to_end,
    nonlinear_gradient as nonlinear_gradient,
    orthogonal_init as orthogonal_init,
    run_completion as run_completion,
    run_factorization as run_factorization,
    run_gd as run_gd,
)
from .dmf.spectra import numerical_rank_fig7 as numerical_rank_fig7, rho_sequence as rho_sequence

# --- seed 004, Section 4: Deep LoRA --------------------------------------------------------
from .dmf import deep_lora as deep_lora
from .dmf.deep_lora import (
    Adapter as Adapter,
    deep_lora_adapters as deep_lora_adapters,
    full_width_adapters as full_width_adapters,
    lora_adapters as lora_adapters,
    merge as merge,
    narrow_adapters as narrow_adapters,
)

# --- seed 003: linearization of fine-tuning, empirical NTK, kernel ridge risk bounds -------
from .lin.linearization import (
    gradient_flow as gradient_flow,
    linearize as linearize,
    regularized_finetune as regularized_finetune,
)
from .lin.ntk import (
    empirical_ntk as empirical_ntk,
    eta as eta,
    krr_fit as krr_fit,
    krr_residual as krr_residual,
    krr_risk as krr_risk,
    layer_selection as layer_selection,
    regularized_condition_number as regularized_condition_number,
    risk_bounds as risk_bounds,
    theorem7_interval as theorem7_interval,
)

from . import core as core, dmf as dmf, lin as lin, lora as lora, s2ft as s2ft

_deprecation.install(__name__)

try:
    __version__ = _metadata.version("lowrank_theory")
except _metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
