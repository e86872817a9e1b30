r"""Claims of seed 000 (the expressive power of LoRA; low-rank transfer): ``lora.*``.

Each module is named like the maths it checks (in :mod:`lowrank_theory.lora`) and is discovered
by :mod:`lowrank_theory.claims`. A ``[reading]`` suffix is another reading of the seed's
statement, ``[corrected]`` the corrected statement of a claim that fails as written.

Claim id -> the module that registers it:

* :mod:`.linear` (maths in :mod:`lowrank_theory.lora.linear`, Lemma 1):
  ``lora.lemma1.min_error``, ``lora.lemma1.exact``, ``lora.lemma1.construction``,
  ``lora.lemma1.construction[literal-index]``.
* :mod:`.relu` (maths in :mod:`lowrank_theory.lora.relu`, Lemma 9 and Theorem 5):
  ``lora.lemma9.identity``, ``lora.lemma9.identity[corrected]``, ``lora.lemma9.exact``,
  ``lora.lemma9.mse_bound``, ``lora.lemma9.mse_bound[corrected]``,
  ``lora.theorem5.bound``, ``lora.theorem5.bound[corrected]``.
* :mod:`.transfer` (maths in :mod:`lowrank_theory.lora.transfer`, the Stein formula (10) and
  the constrained optimisation for $Z$):
  ``lora.stein.identity``, ``lora.stein.identity[hessian-in-x]``, ``lora.stein.rowspace``,
  ``lora.stein.rowspace[corrected]``, ``lora.stein.rowspace[orthogonal-R]``,
  ``lora.transfer.closed_form``, ``lora.transfer.closed_form[identifies-Z]``,
  ``lora.transfer.closed_form[identifies-Z][corrected]``.

:mod:`.relu` draws its frozen weights and error matrices with
:func:`.linear.frozen_and_error`, so Lemma 9's instances are Lemma 1's.
"""
