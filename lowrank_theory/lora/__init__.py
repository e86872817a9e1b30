r"""The expressive power of LoRA, and low-rank transfer by a second-order Stein estimator (seed 000).

The paper: reading notes on Y. Zeng and K. Lee, "The Expressive Power of Low-Rank Adaptation"
(ICLR 2024), with a closing section on transfer learning, ``/work/shared/seeds/
000_2c09e710a2aeae0d.txt`` in the source documents. Claims ``lora.*`` (registered in
:mod:`lowrank_theory.claims.lora`).

Where each result lives:

* :mod:`~lowrank_theory.lora.linear`: Case 1, linear models. Lemma 1: the least spectral error
  $\sigma_{RL+1}(E)$ of rank-$R$ adapters (:func:`linear_min_error`), the constructive adapters
  of its proof, eq. (7)-(11) (:func:`lemma1_construction`, :func:`linear_adapters`), the
  exactness threshold $\lceil R_E/L\rceil$ (:func:`min_lora_rank`), the adapted product
  (:func:`lora_product`) and an Adam-trained LoRA baseline (:func:`train_linear_lora`).
* :mod:`~lowrank_theory.lora.relu`: Cases 2 and 3, ReLU networks. Lemma 9 (detailed Lemma 2):
  a one-layer target from an $L$-layer network (:func:`relu_adapters`); Theorem 5 with the
  uniform partition of Example 1 (:func:`uniform_partition`, :func:`theorem5_bound`,
  :func:`theorem5_construction`); the network itself (:func:`relu_fnn`) and a trained
  baseline (:func:`train_lora`).
* :mod:`~lowrank_theory.lora.transfer`: "Transfer Learning". The second-order Stein identity,
  eq. (10), estimated (:func:`stein_matrix`) and exact by quadrature
  (:func:`stein_matrix_exact`, :func:`stein_hessian_exact`); the row space of $W_1$
  (:func:`rowspace_from_stein`); the closed-form reduced-rank fit for the shift $Z$
  (:func:`reduced_rank_fit`, :func:`shift_from_rowspace`, :func:`estimate_shift`) and the
  gradient baselines (:func:`finetune_first_layer`).

Products of layers are $\prod_{l=1}^L W_l := W_L\cdots W_1$ of lists ``[W_1, ..., W_L]`` in the
seed's order (:func:`~lowrank_theory.core.linalg.chain_product`); numerical ranks follow the
package's one rank rule (:func:`~lowrank_theory.core.linalg.rank_from_singular_values`), on the
scale of the problem a matrix came from: $R_E$ on $\|\bar W\|_2+\prod_l\|W_l\|_2$
(:func:`~lowrank_theory.lora.linear.problem_scale`), an adapter on its layer's
(:func:`~lowrank_theory.lora.linear.adapter_rank`), never on a computed matrix's own
$\sigma_1$.

Figures: ``lora-linear``, ``lora-fnn``, ``lora-transfer`` (``experiments/fig_lora_*.py``).
"""

from .linear import (  # noqa: I001  (explicit `X as X` re-exports, one statement per module)
    RANK_RTOL as RANK_RTOL,
    LinearLemma1 as LinearLemma1,
    adapter_rank as adapter_rank,
    lemma1_construction as lemma1_construction,
    linear_adapters as linear_adapters,
    linear_min_error as linear_min_error,
    lora_product as lora_product,
    min_lora_rank as min_lora_rank,
    problem_scale as problem_scale,
    train_linear_lora as train_linear_lora,
)
from .relu import (
    ReluAdapters as ReluAdapters,
    Theorem5 as Theorem5,
    Theorem5Construction as Theorem5Construction,
    relu_adapters as relu_adapters,
    relu_fnn as relu_fnn,
    theorem5_bound as theorem5_bound,
    theorem5_construction as theorem5_construction,
    train_lora as train_lora,
    uniform_partition as uniform_partition,
)
from .transfer import (
    GAUSSIAN_TEST_LEVEL as GAUSSIAN_TEST_LEVEL,
    estimate_shift as estimate_shift,
    finetune_first_layer as finetune_first_layer,
    gaussianity_pvalue as gaussianity_pvalue,
    reduced_rank_fit as reduced_rank_fit,
    rowspace_from_stein as rowspace_from_stein,
    second_order_score as second_order_score,
    shift_from_rowspace as shift_from_rowspace,
    stein_hessian_exact as stein_hessian_exact,
    stein_matrix as stein_matrix,
    stein_matrix_exact as stein_matrix_exact,
    stein_moments_exact as stein_moments_exact,
    transfer_forward as transfer_forward,
)
