r"""Claims of seed 004 (compressible dynamics; deep matrix factorization and Deep LoRA): ``dmf.*``.

Each module is named like the maths it checks (in :mod:`lowrank_theory.dmf`) and is discovered
by :mod:`lowrank_theory.claims`. A ``[reading]`` suffix is another reading of the seed's
statement, ``[corrected]`` the corrected statement of a claim that fails as written.

Claim id -> the module that registers it:

* :mod:`.factorization` (maths in :mod:`lowrank_theory.dmf.factorization`,
  :mod:`lowrank_theory.dmf.spectra` and the subspaces of :mod:`lowrank_theory.dmf.compression`;
  Theorem 2.1, Lemmas E.1-E.2, Section 2.2):
  ``dmf.theorem21.block_form``, ``dmf.theorem21.rho``, ``dmf.lemmaE1.identities``,
  ``dmf.lowrank_bias``, ``dmf.lemmaE2.sandwich``, ``dmf.lemmaE2.sandwich[corrected]``,
  ``dmf.lemmaE2.sandwich[L>=2]``.
* :mod:`.compression` (maths in :mod:`lowrank_theory.dmf.compression`; Section 2.3,
  Proposition 2.2): ``dmf.construction``, ``dmf.prop22.compression_error``.
* :mod:`.completion` (maths in :mod:`lowrank_theory.dmf.compression` and
  :mod:`lowrank_theory.dmf.completion`; Section 3, (11), Fig. 5): ``dmf.completion.tracking``.
* :mod:`.nonlinear` (maths in :mod:`lowrank_theory.dmf.factorization`, (13); Section 5,
  Fig. 9): ``dmf.nonlinear.gradient_gap``, ``dmf.nonlinear.gradient_gap[corrected]``.
* :mod:`.deep_lora` (maths in :mod:`lowrank_theory.dmf.deep_lora` and
  :mod:`lowrank_theory.dmf.models`; Section 4, Figs. 7-8): ``dmf.deeplora.lower_rank``,
  ``dmf.deeplora.rank_robustness``.

:mod:`.compression` checks Theorem 2.1's instances
(:func:`.factorization.theorem_params`, :func:`.factorization.build_theorem`).
"""
