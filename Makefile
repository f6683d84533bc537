# Two commands:  `make demo` runs the examples on the embedded default, `make test` runs the tests.
# Both create .venv and install allotment with every extra on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export AIRFLOW_HOME ?= $(CURDIR)/.airflow

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)  ## explain and render the examples
	$(BIN)/allotment explain tests/data/flows --with kubernetes:cpu=8
	$(BIN)/allotment render tests/data/flows --target kubernetes --with kubernetes

test: $(STAMP)  ## the test suite (CI runs exactly this, then `make lint`)
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff, and mypy (strict on plugin/)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check plugin
	$(BIN)/mypy plugin

bench: $(STAMP)  ## benchmarks: ratios against a baseline measured in the same run
	$(BIN)/python bench/import_time.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .airflow
