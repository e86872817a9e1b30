# lowrank_theory: every target bootstraps its own virtual environment from pyproject.toml.
#   make test          theorem checks (default, deterministic hypothesis profile) + doctests
#   make figures       regenerate every figure (FULL=1 for paper scale)
#   make fig-<name>    one figure, e.g. make fig-lora-linear
#   make audit         claim-by-claim audit -> audit.json
#   make bench         speed ratios -> benchmarks/results.json and docs/benchmarks.md
#   make docs          the documentation site -> site/ (mkdocs build --strict; installs the docs extra)
#   make lint          ruff check + format check
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# the docs tools are installed only for `make docs` (keeps `make test` quick to set up)
DOCS_STAMP := $(VENV)/.docs-stamp
FULL ?= 0
export FULL
EXAMPLES ?= 50
JOBS ?= auto

FIG_SCRIPTS := $(sort $(wildcard experiments/fig_*.py))
FIG_NAMES := $(subst _,-,$(patsubst experiments/fig_%.py,%,$(FIG_SCRIPTS)))

.PHONY: all venv test test-slow test-thorough figures audit bench docs lint typecheck format clean $(addprefix fig-,$(FIG_NAMES))

all: test

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,docs]'
	@touch $(DOCS_STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q

test-slow: $(STAMP)
	RUN_SLOW=1 $(PY) -m pytest -n $(JOBS) -q

test-thorough: $(STAMP)
	HYPOTHESIS_PROFILE=thorough RUN_SLOW=1 $(PY) -m pytest -n $(JOBS) -q

figures: $(addprefix fig-,$(FIG_NAMES))

# one explicit rule per experiments/fig_<name>.py (pattern rules do not apply to .PHONY targets)
define FIG_RULE
fig-$(1): $$(STAMP)
	$$(PY) experiments/fig_$(subst -,_,$(1)).py
endef
$(foreach f,$(FIG_NAMES),$(eval $(call FIG_RULE,$(f))))

audit: $(STAMP)
	$(PY) -m lowrank_theory audit --examples $(EXAMPLES) --json audit.json

bench: $(STAMP)
	$(PY) benchmarks/run.py

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict

# advisory: pyright does not parse jaxtyping shape strings, so its report is not a CI gate
typecheck: $(STAMP)
	$(PY) -m pip install --quiet pyright
	-$(PY) -m pyright lowrank_theory

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis figures/.cache benchmarks/.cache *.egg-info site
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
