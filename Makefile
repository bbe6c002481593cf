# synthgate: `make demo` and `make test` work from a fresh clone (they create .venv themselves).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint setup clean

setup: $(STAMP)

# torch first, pinned: the local CPU wheel; an unpinned torch would pull GBs of CUDA packages.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/synthgate run

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check flows generators validation privacy tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) releases .pytest_cache .mypy_cache .ruff_cache *.egg-info
