# synthgate: `make demo` and `make test` work from a fresh clone (they create .venv themselves).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

export PREFECT_SERVER_ANALYTICS_ENABLED := false
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS := 120
export PIP_DISABLE_PIP_VERSION_CHECK := 1

comma := ,

CHROMIUM := /usr/bin/chromium
PG_CTL := $(firstword $(wildcard /usr/lib/postgresql/*/bin/pg_ctl) /usr/lib/postgresql/15/bin/pg_ctl)
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: demo test lint setup bench bench-full clean

setup: $(STAMP)

# Debian's Chromium: the report's browser test opens the page in it (offline, headless).
$(CHROMIUM):
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

# torch first, pinned: the local CPU wheel; an unpinned torch would pull GBs of CUDA packages.
define install
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[$(1)]"
endef

$(STAMP): pyproject.toml
	$(call install,dev)
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/synthgate run

# Debian's PostgreSQL: the SQL source tests start a throwaway server from its binaries (as an unprivileged user).
$(PG_CTL):
	$(SUDO) apt-get update -q
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql

# One torch/OpenMP thread: the tests' tensors are tiny, and a second thread spin-waiting on a busy 2-core
# machine makes them minutes instead of seconds. The browser and PostgreSQL tests must run, not skip, here.
test: $(STAMP) $(CHROMIUM) $(PG_CTL)
	SYNTHGATE_BROWSER=required SYNTHGATE_POSTGRES=required OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

# The peers (SDV, BSL-licensed) live in the `bench` extra only, never in the product.
# One resolution of everything (a fresh clone's `make bench` skips installing the product twice).
$(BENCH_STAMP): pyproject.toml
	$(call install,dev$(comma)bench)
	touch $(STAMP) $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --mode quick

# Full tables, peers at their defaults; BENCH_ARGS="--datasets adult,events" to choose tables.
BENCH_ARGS ?= --datasets adult
bench-full: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --mode full $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check flows generators validation privacy tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) releases .pytest_cache .mypy_cache .ruff_cache *.egg-info
