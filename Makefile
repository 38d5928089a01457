# The two commands of the README. Each creates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-slow study study-reports lint format bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,cloud,tpu,ray,dev]'
	touch $(STAMP)

## demo: the main job, a real IsoFLOP sweep on the embedded stdlib corpus and its analysis (CPU)
demo: $(STAMP)
	$(BIN)/scaling-lab demo --out runs/demo

## test: lint, format check, and the default test suite (slow tests excluded)
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

test-slow: $(STAMP)
	$(BIN)/pytest -q -m slow

## study: the CPU studies of docs/study (about 3.5 h on 2 cores; resumable), their data
## folders docs/study/<study>/data (sweep export), then their reports from those folders
study: $(STAMP)
	$(BIN)/scaling-lab sweep run cpu_study --out runs/cpu_study
	$(BIN)/scaling-lab sweep samples runs/cpu_study --prompt "def "
	$(BIN)/scaling-lab sweep export runs/cpu_study --out docs/study/stdlib/data
	$(BIN)/scaling-lab sweep run cpu_study_branching --out runs/cpu_study_branching
	$(BIN)/scaling-lab sweep export runs/cpu_study_branching --out docs/study/branching/data
	$(BIN)/scaling-lab sweep run cpu_dense --out runs/cpu_dense
	$(BIN)/scaling-lab sweep export runs/cpu_dense --out docs/study/dense/cosine/data
	$(BIN)/scaling-lab sweep run cpu_dense_branching --out runs/cpu_dense_branching
	$(BIN)/scaling-lab sweep export runs/cpu_dense_branching --out docs/study/dense/branching/data
	$(BIN)/scaling-lab sweep run cpu_study_synthetic --out runs/cpu_study_synthetic
	$(BIN)/scaling-lab sweep export runs/cpu_study_synthetic --out docs/study/synthetic/data
	$(MAKE) study-reports

## study-reports: rewrite docs/study/*/report.md and figures from the committed data folders
## (a study without a data folder yet keeps its report)
## (no training; tests/test_study_data.py runs these same lines and compares every number)
study-reports: $(STAMP)
	test ! -d docs/study/stdlib/data || $(BIN)/scaling-lab report docs/study/stdlib/data/results.csv --out docs/study/stdlib --holdout-largest --markdown-only
	test ! -d docs/study/synthetic/data || $(BIN)/scaling-lab report docs/study/synthetic/data/results.csv --out docs/study/synthetic --holdout-largest --markdown-only
	test ! -d docs/study/branching/data || $(BIN)/scaling-lab report docs/study/branching/data/results.csv --out docs/study/branching/fit --holdout-largest --markdown-only
	test ! -d docs/study/branching/data || $(BIN)/python -m analysis.branching_study docs/study/stdlib/data docs/study/branching/data --out docs/study/branching
	test ! -d docs/study/dense/cosine/data || $(BIN)/scaling-lab report docs/study/dense/cosine/data/results.csv --out docs/study/dense/cosine --holdout-largest --markdown-only
	test ! -d docs/study/dense/branching/data || $(BIN)/scaling-lab report docs/study/dense/branching/data/results.csv --out docs/study/dense/branching --holdout-largest --markdown-only
	test ! -d docs/study/dense/branching/data || $(BIN)/python -m analysis.branching_study docs/study/dense/cosine/data docs/study/dense/branching/data --out docs/study/dense

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
