r"""Seed 002: S²FT vs LoRA in deep linear networks (claims ``s2ft.*``).

Yang et al., *S²FT: Efficient, Scalable and Generalizable LLM Fine-tuning by Structured Sparsity*
(NeurIPS 2024), seed file ``002_6b1767d2fe2301ea.txt``: Section 3 (coupled structures), Section 4
and Appendix F. Modules, from the bottom up:

* :mod:`~lowrank_theory.s2ft.instance`: the deep linear network and its in/out tasks (eq. (3)-(7)),
  data and moments, channels, the rank tolerances.
* :mod:`~lowrank_theory.s2ft.builders`: random instances that realise Assumptions 4.1, F.3-F.5
  on purpose.
* :mod:`~lowrank_theory.s2ft.notation`: the Appendix F.2 objects ($D$, $A$, $\Pi$, $P'$, $P''_S$,
  $M$, $G$, $\Sigma_f$, ...) as one frozen dataclass, computed once per instance and layer.
* :mod:`~lowrank_theory.s2ft.solutions`: minimum-norm LoRA (Lemma F.9), S²FT (Lemma F.12), full
  fine-tuning (Section F.7), excess risks, S²FT channel selection (Section 3.2 / Appendix D).
* :mod:`~lowrank_theory.s2ft.bounds`: Theorems 4.2/F.8, F.7, F.10, F.11, F.13, F.15, Lemmas F.14,
  F.17, Remark F.16, Corollary F.18.
* :mod:`~lowrank_theory.s2ft.dynamics`: gradient descent on LoRA/S²FT (implicit bias), the
  Section 4.2 gradient identities, Section 3.1 co-permutation of coupled layers.

Ranks, $\Phi_*$ and pseudo-inverses follow the package's one rank rule
(:func:`~lowrank_theory.core.linalg.rank_from_singular_values`) with the tolerances
:data:`~lowrank_theory.s2ft.instance.PSD_RTOL` and :func:`~lowrank_theory.s2ft.instance.svd_rtol`.
``lowrank_theory.s2ft.notation`` is the module; the function is
:func:`lowrank_theory.s2ft.notation.notation` (also ``lowrank_theory.s2ft.bounds.notation``).

Claims ``s2ft.*`` are registered in :mod:`lowrank_theory.claims.s2ft`: ``claims/s2ft/solutions.py``
(Lemmas F.9, F.12, F.17, Corollary F.18), ``claims/s2ft/bounds.py`` (Theorems 4.2, F.7, F.10,
F.11, F.13, F.15, Lemma F.14, Remark F.16), ``claims/s2ft/dynamics.py`` (Section 4.2, implicit
bias, permutation invariance). Figures: ``s2ft-ood``, ``s2ft-id`` (``experiments/fig_s2ft_*.py``).
"""

from .instance import (  # noqa: I001  (explicit `X as X` re-exports, one statement per module)
    PSD_RTOL as PSD_RTOL,
    DeepLinearInstance as DeepLinearInstance,
    Moments as Moments,
    Sample as Sample,
    Task as Task,
    check_channels as check_channels,
    check_task as check_task,
    moments as moments,
    sample as sample,
    selection_matrix as selection_matrix,
    sparsity_level as sparsity_level,
    svd_rtol as svd_rtol,
)
from .builders import (
    build_instance as build_instance,
    with_label_shift_epsilon as with_label_shift_epsilon,
)
from . import notation as notation  # the module; its function is notation.notation
from .notation import Notation as Notation
from .solutions import (
    FineTuned as FineTuned,
    channel_selector as channel_selector,
    excess_risk as excess_risk,
    excess_risk_mc as excess_risk_mc,
    full_ft as full_ft,
    lora_eigengap as lora_eigengap,
    min_norm_lora as min_norm_lora,
    min_norm_s2ft as min_norm_s2ft,
    pretrained as pretrained,
    risk as risk,
)
from .bounds import (
    Terms as Terms,
    bias_lora as bias_lora,
    bias_s2ft as bias_s2ft,
    channel_sparsity_delta as channel_sparsity_delta,
    corollary_f18 as corollary_f18,
    e_full as e_full,
    label_shift_epsilon as label_shift_epsilon,
    lemma_f14 as lemma_f14,
    lemma_f17 as lemma_f17,
    remark_f16 as remark_f16,
    theorem_42 as theorem_42,
    theorem_f10_bias as theorem_f10_bias,
    theorem_f11_lower as theorem_f11_lower,
    theorem_f11_upper as theorem_f11_upper,
    theorem_f13_bias as theorem_f13_bias,
    theorem_f15 as theorem_f15,
    variance_bounds as variance_bounds,
    variance_terms as variance_terms,
)
from .dynamics import (
    GDResult as GDResult,
    channel_permutation as channel_permutation,
    gd_lora as gd_lora,
    gd_s2ft as gd_s2ft,
    permute_coupled as permute_coupled,
    s2ft_dense_update as s2ft_dense_update,
    s2ft_sparse_update as s2ft_sparse_update,
    sec42_gradients as sec42_gradients,
)
from . import bounds as bounds, builders as builders, dynamics as dynamics
from . import instance as instance, solutions as solutions
