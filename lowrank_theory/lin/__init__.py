r"""Linearization of fine-tuning, the empirical NTK and kernel-ridge risk bounds (seed 003).

The paper: reading notes (slides) on "Linearization Explains Fine-Tuning in Large Language
Models" (NeurIPS 2025), ``/work/shared/seeds/003_04c86723a9734555.txt`` in the source
documents. Claims ``lin.*`` (registered in :mod:`lowrank_theory.claims.lin`).

Where each result lives:

* :mod:`~lowrank_theory.lin.linearization`: the linearised model $\bar f$ (:func:`linearize`),
  regularized fine-tuning with the seed's split update (:func:`regularized_finetune`, Lemma 3's
  discrete scheme, Theorem 1's selective $\lambda_t$) and its gradient flow
  (:func:`gradient_flow`, Lemma 3), the loss derivative of Theorem 1
  (:func:`flow_loss_derivative`), the bounds of Theorem 2 (distance), Theorem 3 (linearisation
  gap, as stated and corrected) and Theorem 4 (threshold $\lambda_o$, guaranteed time, gap).
* :mod:`~lowrank_theory.lin.lipschitz`: $\mathrm{Lip}(f)$ and $\mathrm{Lip}(\nabla f)$ on a
  ball (Lemma 1's assumptions): certified for the linear model and the two-layer tanh MLP,
  sampled lower estimates for any model.
* :mod:`~lowrank_theory.lin.ntk`: the empirical NTK (structured, blocked Jacobian, blocked NTVP
  paths), kernel ridge regression ("Fine-Tuning Meets NTK Regression"), Theorem 5's risk
  sandwich (:func:`risk_bounds`), $\kappa(K+\sigma I)$, $\eta$ and Theorem 6's bracket,
  Theorem 7's risk-ratio interval and layer selection.
* :mod:`~lowrank_theory.lin.models`: small tanh MLPs for this paper (all layers, a layer
  subset, LoRA factors of one layer; each with an exact structured NTK) and the digits /
  synthetic tasks of the figures. Not :mod:`lowrank_theory.dmf.models` (Deep LoRA, seed 004).

Figures: ``lin-lambda``, ``lin-condition``, ``lin-layers`` (``experiments/fig_lin_*.py``).
"""

from .linearization import (  # noqa: I001  (explicit `X as X` re-exports, one statement per module)
    FinetuneTrace as FinetuneTrace,
    flow_loss_derivative as flow_loss_derivative,
    gradient_flow as gradient_flow,
    linearize as linearize,
    regularized_finetune as regularized_finetune,
    theorem2_bound as theorem2_bound,
    theorem3_bound as theorem3_bound,
    theorem3_bound_corrected as theorem3_bound_corrected,
    theorem4_gap_bound as theorem4_gap_bound,
    theorem4_threshold as theorem4_threshold,
    theorem4_time as theorem4_time,
)
from .lipschitz import (
    C2_TANH as C2_TANH,
    LipschitzConstants as LipschitzConstants,
    linear_model_lipschitz as linear_model_lipschitz,
    sampled_lipschitz as sampled_lipschitz,
    two_layer_lipschitz as two_layer_lipschitz,
)
from .models import (
    MLP as MLP,
    TASKS as TASKS,
    LayerSubset as LayerSubset,
    LoRALayer as LoRALayer,
    Params as Params,
    digits_tasks as digits_tasks,
    layer_masked_ntk as layer_masked_ntk,
    mlp_apply as mlp_apply,
    mlp_init as mlp_init,
    pretrain as pretrain,
    pretrained_task as pretrained_task,
    synthetic_tasks as synthetic_tasks,
)
from .ntk import (
    Method as Method,
    check_kernel as check_kernel,
    check_model_inputs as check_model_inputs,
    empirical_ntk as empirical_ntk,
    eta as eta,
    flat_grad_fn as flat_grad_fn,
    jacobian_gram_fn as jacobian_gram_fn,
    krr_fit as krr_fit,
    krr_residual as krr_residual,
    krr_risk as krr_risk,
    layer_selection as layer_selection,
    naive_ntk as naive_ntk,
    ntvp_gram_fn as ntvp_gram_fn,
    pad_blocks as pad_blocks,
    regularized_condition_number as regularized_condition_number,
    risk_bounds as risk_bounds,
    theorem6_bounds as theorem6_bounds,
    theorem7_interval as theorem7_interval,
)
