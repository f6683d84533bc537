# Two commands:  `make demo` runs the examples on the embedded default, `make test` runs the tests.
# Both create .venv and install allotment with every extra on first use.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
export AIRFLOW_HOME ?= $(CURDIR)/.airflow

.PHONY: demo test lint golden bench bench-quick clean constraints

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)  ## the main job: explain and render every example (no cluster, no AWS needed)
	$(BIN)/allotment explain tests/data/flows dags workflows
	$(BIN)/allotment render tests/data/flows --target kubernetes --with kubernetes
	$(BIN)/allotment render dags --target airflow --policy dags/policy.yaml
	ALLOTMENT_WITH='batch' $(BIN)/allotment render dags/portable_training.py --target airflow
	$(BIN)/allotment render workflows --target argo
	$(BIN)/allotment render tests/data/flows --target batch --platform fargate
	$(BIN)/allotment render --target limitrange --policy dags/policy.yaml --namespace ml

test: $(STAMP)  ## the test suite (CI runs exactly this, then `make lint`)
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff (lint and format), strict mypy and the import-linter layers, on the core and both faces
	$(BIN)/ruff check .
	$(BIN)/ruff format --check plugin airflow argo
	$(BIN)/python .ci/package_tree.py >/dev/null
	cd build/tree && ../../$(BIN)/mypy --config-file ../../pyproject.toml allotment
	cd build/tree && PYTHONPATH=$$PWD ../../$(BIN)/lint-imports ../../pyproject.toml

golden: $(STAMP)  ## rewrite every golden file from the current output (refused under CI); review the diff before committing
	@if [ -n "$$CI" ]; then echo "make golden: refused under CI (golden files change only by a deliberate local run)" >&2; exit 2; fi
	ALLOTMENT_REGEN=1 $(BIN)/python -m pytest -q -m golden

bench: $(STAMP)  ## benchmarks (about 40 min on 2 cores): ratios against baselines of the same run, into bench/RESULTS.md
	$(BIN)/python bench/run.py $(BENCH_ARGS)
# The Metaflow peer runs when ALLOTMENT_BENCH_METAFLOW (or BENCH_ARGS='--metaflow-venv DIR') names a venv with
# metaflow; profiles appear when pyinstrument is in .venv (pip install pyinstrument; no dependency of allotment).

bench-quick: $(STAMP)  ## the benchmark harness in quick mode (small N, one repetition): proves it runs, judges nothing
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

constraints: $(STAMP)  ## re-pin constraints.txt to what .venv holds now
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --all --exclude-editable | grep -v '^allotment\|^pip=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis .airflow
