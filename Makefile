# The project's two entry points: `make demo` runs the main job, `make test` the tests.
# Both create their own virtual environment (.venv) and install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/luminaguard validate examples/ policies/ workloads/
	$(BIN)/luminaguard plan examples/ policies/

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest --cov --cov-report=term --cov-fail-under=85

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python bench/compile_bench.py

schemas: $(STAMP)
	$(BIN)/luminaguard schema --out schemas

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
