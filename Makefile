# Fresh-machine entry points: `make demo` and `make test` create .venv and install what they need.
VENV ?= .venv
BIN := $(VENV)/bin
PYTHON ?= python3

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: install demo dev test lint benchmark benchmark-public-cloud benchmark-api
install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/finops-dagster demo

dev: $(BIN)/.installed
	$(BIN)/finops-dagster dev

test: $(BIN)/.installed
	$(BIN)/pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check finops_dagster finops_dagster_tests benchmarks
	$(BIN)/mypy

# The nightly run end to end at the reference scale (SCALE=0.1 for a tenth of the source volumes).
.PHONY: benchmark-nightly
SCALE ?= 1
benchmark-nightly: $(BIN)/.installed
	$(BIN)/python -m benchmarks.nightly --scale $(SCALE)

benchmark: $(BIN)/.installed
	$(BIN)/python -m benchmarks.open_legacy

benchmark-public-cloud: $(BIN)/.installed
	$(BIN)/python -m benchmarks.public_cloud

benchmark-api: $(BIN)/.installed
	$(BIN)/python -m benchmarks.api
