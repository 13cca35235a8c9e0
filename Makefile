# AgentWatch: `make up` starts the local stack, `make test` runs the whole suite.
# Both install what is missing first (apt packages, Maven jars, the .venv).

SHELL := /bin/bash
PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
KAFKA_LIBS := .cache/kafka-libs
KAFKA_STAMP := $(KAFKA_LIBS)/.resolved
PYTEST_ARGS ?=
MVN_FLAGS ?=
STACK_STATE ?= .cache/stack

.PHONY: up down status test lint typecheck unit integration e2e deps venv system-deps kafka-jars bench clean

up: deps
	@AGENTWATCH_KAFKA_LIBS=$(abspath $(KAFKA_LIBS)) $(VPY) docker/localstack.py --state $(STACK_STATE) up

down:
	@if [ -x $(VPY) ]; then $(VPY) docker/localstack.py --state $(STACK_STATE) down; else python3 docker/localstack.py --state $(STACK_STATE) down; fi

status:
	@$(VPY) docker/localstack.py --state $(STACK_STATE) status

deps: system-deps kafka-jars venv

system-deps:
	@bash docker/install-system-deps.sh

kafka-jars: $(KAFKA_STAMP)
$(KAFKA_STAMP): docker/kafka/pom.xml
	@command -v mvn >/dev/null || { echo "error: Maven (mvn) not found: apt-get install maven" >&2; exit 1; }
	@echo "resolving Kafka jars with Maven (docker/kafka/pom.xml)…"
	@rm -rf $(KAFKA_LIBS)
	@mkdir -p .cache && mvn -q -B $(MVN_FLAGS) -f docker/kafka/pom.xml dependency:copy-dependencies -DincludeScope=runtime \
		-DoutputDirectory=$(abspath $(KAFKA_LIBS)) >.cache/mvn.log 2>&1 \
		|| { echo "error: downloading the Kafka jars failed (see .cache/mvn.log: $$(grep -m1 ERROR .cache/mvn.log))" >&2; exit 1; }
	@touch $@

venv: $(STAMP)
$(STAMP): pyproject.toml sdk/pyproject.toml
	@test -x $(VPY) || $(PY) -m venv $(VENV)
	@echo "installing Python packages into $(VENV)…"
	@$(VPY) -m pip install -q --upgrade pip >/dev/null
	@$(VPY) -m pip install -q -e '.[dev]' -e 'sdk[anthropic]' \
		|| { echo "error: installing Python packages failed (pip output above)" >&2; exit 1; }
	@touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check services sdk tests docker bench

typecheck: venv
	$(VENV)/bin/mypy services tests docker/localstack.py
	cd sdk && ../$(VENV)/bin/mypy --strict agentwatch examples

test: deps lint typecheck
	$(VPY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

unit: venv
	$(VPY) -m pytest -m unit $(PYTEST_ARGS)

integration: deps
	$(VPY) -m pytest -m integration $(PYTEST_ARGS)

e2e: deps
	$(VPY) -m pytest -m e2e $(PYTEST_ARGS)

clean: down
	rm -rf .cache/stack
