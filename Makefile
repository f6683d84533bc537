# Two commands:  `make demo` runs the example pipeline on the embedded default (and renders every example), `make test` runs the tests.
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

# `make demo`: the example training pipeline runs here (each step in a child process under its cpu and
# memory), as an Airflow DAG through `airflow dags test` on SQLite and as a Hera workflow through
# `allotment run`, with the table of what each step used; then the same pipeline is rendered for
# Kubernetes, Argo and AWS Batch, and every other example is explained and rendered.
DEMO_AIRFLOW := AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags AIRFLOW__CORE__LOAD_EXAMPLES=False AIRFLOW__CORE__EXECUTOR=LocalExecutor
# The local backend's table rows, out of Airflow's log lines (`<time> [info ] allotment: <row> [<logger>] loc=...`).
table_rows = sed -n 's/^.*\] allotment: \(step  .*\|[a-z_]* .* cpu, .*\) \[airflow\.task\..*$$/\1/p' < $(1) | sed 's/ *$$//' | awk '!seen[$$0]++'

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	@mkdir -p $(AIRFLOW_HOME)
	@echo "== airflow db migrate (SQLite in $(AIRFLOW_HOME), once)"
	@$(DEMO_AIRFLOW) $(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || { tail -30 $(AIRFLOW_HOME)/db-migrate.log; exit 1; }

demo: $(STAMP) $(AIRFLOW_HOME)/airflow.db  ## the main job: run the example pipeline here (Airflow and Hera), then render it and every example
	@echo "== 1. dags/training_pipeline.py on the local backend: airflow dags test training_pipeline"
	@$(DEMO_AIRFLOW) $(BIN)/airflow dags test training_pipeline > $(AIRFLOW_HOME)/dags-test.log 2>&1 \
		|| { tail -40 $(AIRFLOW_HOME)/dags-test.log; echo "airflow dags test failed; the whole log: $(AIRFLOW_HOME)/dags-test.log"; exit 1; }
	@$(call table_rows,$(AIRFLOW_HOME)/dags-test.log)
	@grep -o 'DagRun Finished: dag_id=training_pipeline.*state=[a-z]*' $(AIRFLOW_HOME)/dags-test.log | sed 's/, logical_date=.*, state=/: /'
	@echo "== 2. workflows/training_pipeline.py on the local backend: allotment run"
	@mkdir -p build
	$(BIN)/allotment run workflows/training_pipeline.py --report build/training_pipeline.report.json
	@echo "== 3. the same pipeline for Kubernetes (ALLOTMENT_WITH=kubernetes), Argo and AWS Batch"
	ALLOTMENT_WITH=kubernetes $(BIN)/allotment render dags/training_pipeline.py --target airflow
	$(BIN)/allotment render workflows/training_pipeline.py --target argo
	$(BIN)/allotment render workflows/training_pipeline.py --target batch
	@echo "== 4. every example, explained and rendered"
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
