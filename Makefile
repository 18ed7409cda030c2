# Two commands: `make run` (set up and start) and `make test` (set up and run the whole suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
ADDRESS ?= 127.0.0.1:8000

.PHONY: install run test test-fast lint format bench chaos smart-sim browser clean help

help:
	@echo "make run    - set up (venv, migrate, demo data, admin login) and serve on http://$(ADDRESS)/admin/"
	@echo "make test   - set up and run the whole test suite"
	@echo "make lint   - ruff check and format check"
	@echo "make bench  - benchmarks against same-run baselines (needs PostgreSQL)"
	@echo "make chaos  - the engine under gateway faults, parallel ticks and a kill, checked (PostgreSQL)"
	@echo "make smart-sim - smart retry timing vs the fixed Default in a simulated world (PostgreSQL)"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

# A git-ignored .env switches on debug mode for local use (generated secret key, console email).
.env:
	cp .env.example .env

run: install .env
	$(BIN)/python manage.py bootstrap_local --address $(ADDRESS)
	$(BIN)/python manage.py serve $(ADDRESS)

# Debian's Chromium for the browser tests (Playwright cannot download browsers here).
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			echo "Installing Chromium for the browser tests..."; \
			apt-get install -y -q chromium >/dev/null || (apt-get update -q && apt-get install -y -q chromium >/dev/null); \
		else \
			echo "Chromium is missing: install it with 'sudo apt-get install -y chromium' to run the browser tests."; \
		fi; \
	fi

test: install browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python -m bench

chaos: install
	$(BIN)/python -m bench chaos

smart-sim: install
	$(BIN)/python -m bench smart_sim

clean:
	rm -rf $(VENV) staticfiles .pytest_cache .ruff_cache
