r"""Compressible dynamics in deep overparameterized low-rank learning and adaptation (seed 004).

The paper: C. Yaras, P. Wang, L. Balzano, Q. Qu, *Compressible Dynamics in Deep
Overparameterized Low-Rank Learning & Adaptation* (``/work/shared/seeds/004_3b9ccfaf237a9235.txt``
in the source documents). Claims ``dmf.*`` (registered in :mod:`lowrank_theory.claims.dmf`).

Where each result lives:

* :mod:`~lowrank_theory.dmf.factorization`: the deep factorization $W_L\cdots W_1$ (1), its
  losses (2) and (10), orthogonal initialisation (3), gradient descent (4)/(15) with per-layer
  rates and weight decay (:func:`run_gd`, :func:`run_factorization`, :func:`run_completion`),
  and the nonlinear factorization (13) with its gradient (Section 5, Fig. 9).
* :mod:`~lowrank_theory.dmf.spectra`: the invariant singular values $\rho_l(t)$ of
  Theorem 2.1, recursion (6) (:func:`rho_sequence`; Lemma E.2 bounds them), and the numerical
  rank of Fig. 7 (:func:`numerical_rank_fig7`, the one implementation of that definition).
* :mod:`~lowrank_theory.dmf.compression`: the invariant subspaces of Theorem 2.1 and
  Lemma E.1 (:func:`invariant_subspaces`, the Section 2.3 recipe
  :func:`subspaces_from_gradient`), the compressed factorizations (9) and (11)
  (:func:`compress`, :func:`run_compressed`, Proposition 2.2) and the narrow baseline of
  Fig. 10 (:func:`run_narrow`).
* :mod:`~lowrank_theory.dmf.completion`: deep matrix completion instances (Section 3) and
  batched sweeps (Figs. 2, 5, 10), sharded across devices and processes.
* :mod:`~lowrank_theory.dmf.large_completion`: completion at scale ($d = 10^5$ on a laptop):
  packed observed entries only, the compression setup from the sparse gradient at
  initialisation (:func:`compress_sparse`), compressed GD (11) in $O(|\Omega|k + dk^2)$ per
  step (:func:`run_sparse_compressed`), errors from factors; memory $O(|\Omega| + dr)$.
* :mod:`~lowrank_theory.dmf.deep_lora`: Deep LoRA (Section 4, (12), Appendices B and D.2);
  :mod:`~lowrank_theory.dmf.models`: the small pre-trained models and few-shot tasks it is
  measured on (Figs. 7-8).
* :mod:`~lowrank_theory.dmf.masked_products`: the masked low-rank residual products of a
  completion step, and the one place that chooses dense formulation, native kernel or packed
  entries (:func:`~lowrank_theory.dmf.masked_products.step_path`), and on accelerators the
  pure-JAX products on packed entries (:func:`~lowrank_theory.dmf.masked_products.entry_products`);
  :mod:`~lowrank_theory.dmf.native_kernel`: the C++ kernel (``masked_lowrank.cc``) built on
  first use, and its FFI calls.

Chain products are :func:`~lowrank_theory.core.linalg.chain_product`; ranks follow the
package's rank rule (:func:`~lowrank_theory.core.linalg.rank_from_singular_values`).

Figures: ``dmf-svd``, ``dmf-depth-width``, ``dmf-compression``, ``dmc-compression``,
``dmc-narrow``, ``deep-lora`` and the nonlinear-gradient figure (``experiments/fig_dmf_*.py``,
``fig_dmc_*.py``, ``fig_deep_lora.py``, ``fig_nonlinear_gradient.py``).
"""

from . import (  # noqa: I001  (explicit `X as X` re-exports, one statement per module)
    completion as completion,
    compression as compression,
    deep_lora as deep_lora,
    factorization as factorization,
    large_completion as large_completion,
    masked_products as masked_products,
    models as models,
    native_kernel as native_kernel,
    spectra as spectra,
)
from .factorization import (
    GDResult as GDResult,
    end_to_end as end_to_end,
    factorization_loss as factorization_loss,
    gd_step as gd_step,
    loss_and_gradients as loss_and_gradients,
    lr_from_mean_loss as lr_from_mean_loss,
    nonlinear_factorization as nonlinear_factorization,
    nonlinear_gradient as nonlinear_gradient,
    orthogonal_init as orthogonal_init,
    run_completion as run_completion,
    run_factorization as run_factorization,
    run_gd as run_gd,
)
from .spectra import (
    RANK_FLOOR as RANK_FLOOR,
    numerical_rank_fig7 as numerical_rank_fig7,
    rank_fig7_from_singular_values as rank_fig7_from_singular_values,
    rho_divergence as rho_divergence,
    rho_sequence as rho_sequence,
)
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
from .completion import (
    completion_instance as completion_instance,
    first_below as first_below,
    padded_narrow_init as padded_narrow_init,
    run_gd_batch as run_gd_batch,
    run_gd_from_inits as run_gd_from_inits,
)
from .deep_lora import (
    Adapter as Adapter,
    deep_lora_adapters as deep_lora_adapters,
    full_width_adapters as full_width_adapters,
    lora_adapters as lora_adapters,
    merge as merge,
    narrow_adapters as narrow_adapters,
)
from .large_completion import (
    LowRankTruth as LowRankTruth,
    SparseCompletion as SparseCompletion,
    SparseCompressed as SparseCompressed,
    SparseRun as SparseRun,
    compress_sparse as compress_sparse,
    factor_recovery_error as factor_recovery_error,
    low_rank_truth as low_rank_truth,
    lr_for_sampling as lr_for_sampling,
    run_sparse_compressed as run_sparse_compressed,
    sample_observed as sample_observed,
    sparse_completion_instance as sparse_completion_instance,
)
from .masked_products import (
    dense_only as dense_only,
    entry_products as entry_products,
    masked_lowrank_products as masked_lowrank_products,
    native_status as native_status,
    pack_entries as pack_entries,
)
