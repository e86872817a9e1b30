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

# --- seed 004, Section 4: Deep LoRA --------------------------------------------------------
from . import deep_lora as deep_lora
from .deep_lora import (
    Adapter as Adapter,
    deep_lora_adapters as deep_lora_adapters,
    full_width_adapters as full_width_adapters,
    lora_adapters as lora_adapters,
    merge as merge,
    narrow_adapters as narrow_adapters,
)

try:
    __version__ = _metadata.version("lowrank_theory")
except _metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"
