r"""lowrank_theory: the theory of parameter-efficient fine-tuning, as numbers anyone can check.

Importing the package enables float64 in JAX (``jax_enable_x64``) before any array exists;
every theorem check relies on it.

The public API is re-exported here explicitly; submodules hold the details:

* :mod:`lowrank_theory.linalg`: shared numerics (σ_k, LR_r, ranks, projectors, roots, angles).
* :mod:`lowrank_theory.expressivity`: the expressive power of LoRA (seed 000).
* :mod:`lowrank_theory.factorization`, :mod:`lowrank_theory.compression`,
  :mod:`lowrank_theory.completion`: deep matrix factorization/completion, invariant subspaces,
  compression (seed 004).
* :mod:`lowrank_theory.claims`, :mod:`lowrank_theory.audit`: the claim registry and the audit.
* :mod:`lowrank_theory.experiments_io`, :mod:`lowrank_theory.plotting`: figure pipeline.
"""

from . import _precision as _precision  # noqa: I001  (first: sets jax_enable_x64)

import importlib.metadata as _metadata

from ._precision import DTYPE as DTYPE, EPS as EPS, tolerance as tolerance
from . import linalg as linalg

# --- seed 000: expressive power of LoRA ---------------------------------------------------
from .expressivity import (
    linear_adapters as linear_adapters,
    linear_min_error as linear_min_error,
    lora_product as lora_product,
    min_lora_rank as min_lora_rank,
)

# --- seed 004: compressible dynamics (deep matrix factorization / completion) -------------
from . import compression as compression, completion as completion, factorization as factorization
from .compression import (
    Compressed as Compressed,
    InvariantSubspaces as InvariantSubspaces,
    compress as compress,
    compress_from_gradient as compress_from_gradient,
    invariant_subspaces as invariant_subspaces,
    run_compressed as run_compressed,
    run_narrow as run_narrow,
    subspaces_from_gradient as subspaces_from_gradient,
)
from .completion import completion_instance as completion_instance, run_gd_batch as run_gd_batch
from .factorization import (
    end_to_end as end_to_end,
    nonlinear_gradient as nonlinear_gradient,
    numerical_rank_fig7 as numerical_rank_fig7,
    orthogonal_init as orthogonal_init,
    rho_sequence as rho_sequence,
    run_completion as run_completion,
    run_factorization as run_factorization,
    run_gd as run_gd,
)

try:
    __version__ = _metadata.version("lowrank_theory")
except _metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
