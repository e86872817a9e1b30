r"""The pipeline: what turns the packages into audits, figures and docs. Nothing imports it
except :mod:`lowrank_theory.__main__` (``tests/test_layers.py`` checks this).

* :mod:`~lowrank_theory.pipeline.audit`: the claim-by-claim audit (``python -m lowrank_theory
  audit``), its table and JSON report.
* :mod:`~lowrank_theory.pipeline.records`: experiment records for the figure scripts (atomic
  writes, config/seed/versions/wall time, per-point cache and resume, the ``fig_*.py`` CLI).
* :mod:`~lowrank_theory.pipeline.plotting`: one figure style for every plot.
* :mod:`~lowrank_theory.pipeline.docs`: generated blocks of the docs pages (audit and
  benchmark tables).
"""
