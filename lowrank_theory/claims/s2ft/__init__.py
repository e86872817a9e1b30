r"""Claims of seed 002 (S²FT vs LoRA, Sections 3-4 and Appendix F): ``s2ft.*``.

Each module mirrors the package module that holds the maths (:mod:`lowrank_theory.s2ft`);
shared instance builders, tolerance scales and registration helpers are in
:mod:`~lowrank_theory.claims.s2ft.instances`. Claim id -> registering module:

* :mod:`~lowrank_theory.claims.s2ft.solutions`: ``s2ft.lemmaF9.solution``,
  ``s2ft.lemmaF9.risk``, ``s2ft.lemmaF12.solution``, ``s2ft.lemmaF12.risk``,
  ``s2ft.lemmaF17.risk``, ``s2ft.corollaryF18``, ``s2ft.corollaryF18[squared]``.
* :mod:`~lowrank_theory.claims.s2ft.bounds`: ``s2ft.lemmaF14.lower``, ``s2ft.lemmaF14.order``,
  ``s2ft.lemmaF14.order[corrected]``, ``s2ft.lemmaF14.upper``, ``s2ft.theoremF7.bias``,
  ``s2ft.theoremF7.bias[corrected]``, ``s2ft.theoremF7.decomposition``,
  ``s2ft.theoremF7.variance_rate``, ``s2ft.theoremF10.bias``, ``s2ft.theoremF10.bias[proof]``,
  ``s2ft.theoremF10.bias[identity]``, ``s2ft.theoremF13.bias``, ``s2ft.theoremF13.bias[identity]``,
  ``s2ft.theoremF11.upper``, ``s2ft.theoremF11.upper[corrected]``, ``s2ft.theoremF11.lower``,
  ``s2ft.theoremF11.lower[corrected]``, ``s2ft.theoremF15.upper``, ``s2ft.remarkF16``,
  ``s2ft.theorem42.s2ft``, ``s2ft.theorem42.s2ft[sharp]``, ``s2ft.theorem42.lora``,
  ``s2ft.theorem42.lora[corrected]``.
* :mod:`~lowrank_theory.claims.s2ft.dynamics`: ``s2ft.sec42.gradient``,
  ``s2ft.sec42.gradient[update_as_written]``, ``s2ft.sec42.gradient[update_corrected]``,
  ``s2ft.implicit_bias``, ``s2ft.implicit_bias[lora]``, ``s2ft.permutation_invariance``.
"""
