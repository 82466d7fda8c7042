# NBA Phase 4 → Phase 5 DAG package. `make run` and `make test` are the two set-up commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BQEMU_VENV := .local/bqemu-venv
PY := $(VENV)/bin/python
# The package's console script (pyproject.toml), installed editable by `make venv`: it runs the working tree.
NBA := $(VENV)/bin/nba-phase5
DATE ?= $(shell date -u +%F)
PLAYERS ?= 450
# Where the stack keeps its state, logs and BigQuery data (tests point it at a temp dir).
LOCAL_DIR ?= $(CURDIR)/.local
export NBA_PHASE5_LOCAL_DIR := $(LOCAL_DIR)
STACK_ENV := source $(LOCAL_DIR)/stack.env

.PHONY: help report venv system-deps-run system-deps-up system-deps-test up down stack-up stack-down stack-status provision seed publish run test test-unit system-test bench lint format constraints clean deploy bundle

help:
	@echo "make run        a whole game day on the local stack (DATE=YYYY-MM-DD PLAYERS=N)"
	@echo "make test       unit + integration tests (starts its own emulators on free ports)"
	@echo "make system-test   opt-in, real GCP: NBA_PHASE5_SYSTEM_TEST_PROJECT=<project> + Application Default Credentials"
	@echo "make lint       ruff + mypy"
	@echo "make bundle     build/composer/: exactly what goes into a Composer 3 bucket"
	@echo "make deploy ENV=<composer env> LOCATION=<region> PROJECT=<id> [DRY_RUN=1]   Composer deployment"
	@echo "make report     the week as an HTML page: .local/report.html (FROM=YYYY-MM-DD TO=YYYY-MM-DD, local stack)"
	@echo "make bench      benchmarks on a stack of their own -> bench/results.{json,md}, bench/ratios.png"
	@echo "make up / down  the stack plus a real local Airflow (api-server, scheduler, dag-processor, triggerer) and the worker"
	@echo "make stack-up / stack-down   the local Pub/Sub + BigQuery emulators (.local/stack.env)"
	@echo "make provision / seed / publish   against the running stack"

venv: $(VENV)/.installed $(BQEMU_VENV)/.installed

# The package itself goes in editable (-e .): .venv/bin/nba-phase5 and `python -m nba_phase5_local` then work from
# any shell and directory, without PYTHONPATH, and follow the working tree.
$(VENV)/.installed: pyproject.toml requirements.txt requirements-composer-image.txt requirements-dev.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt -e . -c constraints.txt
	touch $@

$(BQEMU_VENV)/.installed: requirements-bqemulator.txt
	test -x $(BQEMU_VENV)/bin/python || $(PYTHON) -m venv $(BQEMU_VENV)
	$(BQEMU_VENV)/bin/python -m pip install --quiet -r requirements-bqemulator.txt
	touch $@

# Java, the Cloud CLI's Pub/Sub emulator, PostgreSQL, Chromium: from Debian's packages when absent.
system-deps-run system-deps-up system-deps-test:
	tools/system_deps.sh $(@:system-deps-%=%)

up: system-deps-up stack-up
	$(STACK_ENV) && $(NBA) provision
	$(PY) tools/local_airflow.py up $(if $(AIRFLOW_PORT),--port $(AIRFLOW_PORT),)

down:
	$(PYTHON) tools/local_airflow.py down
	$(PYTHON) tools/localstack.py down

stack-up: venv
	$(PYTHON) tools/localstack.py up

stack-down:
	$(PYTHON) tools/localstack.py down

stack-status:
	$(PYTHON) tools/localstack.py status

provision: venv
	$(STACK_ENV) && $(NBA) provision

seed: venv
	$(STACK_ENV) && $(NBA) seed --date $(DATE) --players $(PLAYERS)

publish: venv
	$(STACK_ENV) && $(NBA) publish-phase4 --date $(DATE)

run: venv system-deps-run
	$(PY) tools/run_day.py --date $(DATE) --players $(PLAYERS) $(if $(KEEP_STACK),--keep-stack,)

# Parallel workers (pytest-xdist), each with its own emulators, ports and Airflow home; the e2e tests share
# one worker and its one real Airflow (tests/conftest.py). TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 3
TEST_ARGS := $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS))

test: venv system-deps-test
	$(PY) -m pytest $(TEST_ARGS)

bench: venv
	$(PY) bench/run.py

# The week (or FROM..TO) as one self-contained HTML page, from the local stack's kept BigQuery data.
FROM ?= $(shell date -u -d '6 days ago' +%F)
TO ?= $(DATE)
report: stack-up
	$(STACK_ENV) && $(NBA) status --from $(FROM) --to $(TO) --html $(LOCAL_DIR)/report.html

test-unit: venv
	$(PY) -m pytest -m "not integration" $(if $(filter 0,$(TEST_WORKERS)),,-n 2)

# Opt-in, against real Google Cloud (tools/system_test.py): without NBA_PHASE5_SYSTEM_TEST_PROJECT and
# Application Default Credentials it prints what it needs and exits 0. `make test` runs the same DAG on the emulators.
system-test: venv
	@$(PY) tools/system_test.py

# lint-imports: the import contracts in pyproject.toml (core and config import neither Airflow nor Google,
# nothing shipped imports nba_phase5_local, no import cycle at any depth).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	PYTHONPATH=plugins $(VENV)/bin/lint-imports

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

constraints: $(VENV)/.installed
	{ echo "# Frozen from the verified environment (Python 3.11, apache-airflow 3.3.2): the official Airflow constraints"; \
	  echo "# cannot be downloaded here. Regenerate with: make constraints"; \
	  $(VENV)/bin/pip freeze --exclude-editable; } > constraints.txt

# What goes into a Composer 3 environment's bucket, under build/composer/ (tools/bundle.py).
bundle: venv
	$(PY) tools/bundle.py

# Composer: make deploy ENV=<environment> LOCATION=<region> PROJECT=<id> [DRY_RUN=1]  (docs/deploy.md)
deploy: venv
	$(PY) tools/deploy.py --env "$(ENV)" --location "$(LOCATION)" --project "$(PROJECT)" $(if $(DRY_RUN),--dry-run,)

# Keeps .local/deploy-backups/: the rollback point docs/deploy.md names (tools/clean.py).
clean: down
	$(PYTHON) tools/local_airflow.py purge
	$(PYTHON) tools/clean.py
