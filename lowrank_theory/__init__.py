r"""lowrank_theory: the theory of parameter-efficient fine-tuning, as numbers anyone can check.

Importing the package enables float64 in JAX (``jax_enable_x64``) before any array exists;
every theorem check relies on it.

The public API is re-exported here explicitly; submodules hold the details:

* :mod:`lowrank_theory.linalg`: shared numerics (σ_k, LR_r, ranks, projectors, roots, angles).
* :mod:`lowrank_theory.expressivity`: the expressive power of LoRA (seed 000).
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

# --- seed 003: linearization of fine-tuning, empirical NTK, kernel ridge risk bounds -------
from .linearization import (
    gradient_flow as gradient_flow,
    linearize as linearize,
    regularized_finetune as regularized_finetune,
)
from .ntk import (
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

try:
    __version__ = _metadata.version("lowrank_theory")
except _metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
