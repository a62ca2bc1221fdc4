# The project's two front doors: `make run` (train if needed, publish, serve) and `make test`.
PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
DIGITS   := $(VENV)/bin/digits
REGISTRY ?= models
PORT     ?= 50051
METRICS_PORT ?= 9100
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: install test lint typecheck unit run proto bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[pipeline,dev]'
	touch $@

install: $(VENV)/.installed

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: install
	$(PY) -m mypy

# THE test command (README and CI): lint, types, then every test, integration included.
test: lint typecheck
	$(PY) -m pytest

# Fast inner loop for developers: unit tests only.
unit: install
	$(PY) -m pytest -m 'not integration'

proto: install
	bash scripts/gen_proto.sh

# The main job: train and publish a model when the registry has none, then serve it.
run: install
	$(DIGITS) serve --registry $(REGISTRY) --port $(PORT) --metrics-port $(METRICS_PORT) --check-ports
	$(DIGITS) train --registry $(REGISTRY) --if-empty
	$(DIGITS) serve --registry $(REGISTRY) --port $(PORT) --metrics-port $(METRICS_PORT)

bench: install
	$(PY) bench/train.py
	$(PY) bench/serve.py
	$(PY) bench/pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
