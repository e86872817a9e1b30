r"""Claims of seed 003 (linearization of fine-tuning, NTK regression): ``lin.*``.

Each module is named like the maths it checks (in :mod:`lowrank_theory.lin`) and is discovered
by :mod:`lowrank_theory.claims`; :mod:`.instances` holds the shared instance builders
(certified-Lipschitz models, kernels with a prescribed spectrum) and registers nothing.

Claim id -> the module that registers it:

* :mod:`.linearization` (maths in :mod:`lowrank_theory.lin.linearization`):
  ``lin.lemma3.flow``, ``lin.theorem1.monotone``,
  ``lin.theorem2.distance``, ``lin.theorem2.distance[corrected]``,
  ``lin.theorem3.gap``, ``lin.theorem3.gap[corrected]``,
  ``lin.theorem4.threshold``, ``lin.theorem4.threshold[gap-as_written]``,
  ``lin.theorem4.threshold[gap-norm]``.
* :mod:`.lipschitz` (maths in :mod:`lowrank_theory.lin.lipschitz`):
  ``lin.lemma1.lipschitz_kernel``.
* :mod:`.ntk` (maths in :mod:`lowrank_theory.lin.ntk`):
  ``lin.krr.equivalence``, ``lin.krr.equivalence[mean]``, ``lin.krr.equivalence[corrected]``,
  ``lin.theorem5.lower``, ``lin.theorem5.upper`` and their readings ``[mean]``,
  ``[mean-proof]``, ``[lambda-as-sigma]``,
  ``lin.theorem6.eigs``, ``lin.theorem7.ratio``, ``lin.theorem7.ratio[corrected]``.
* :mod:`.experiments` (the two experiments, status ``empirical``):
  ``lin.exp.lambda_sweep`` (figure ``lin-lambda``), ``lin.exp.condition_number`` (figure
  ``lin-condition``).
"""
