# Two commands: `make run` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench bench-api browser clean
CHROMIUM := /usr/bin/chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/cronjob serve

# The dashboard's tests drive Debian's Chromium (no browser download): installed here when it is
# missing and this may install it (root with apt-get); otherwise the tests say how to point at one.
# Never fatal: the other tests run either way.
browser:
	@if [ -n "$$CRONJOB_TEST_CHROMIUM" ] || [ -x $(CHROMIUM) ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for the dashboard tests"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get install -y -q --no-install-recommends chromium >/dev/null \
	  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
	  || echo "could not install chromium: the dashboard tests will fail" >&2; \
	else echo "no Chromium at $(CHROMIUM): install one (Debian: apt-get install chromium) or set CRONJOB_TEST_CHROMIUM" >&2; fi

test: $(STAMP) browser
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/engine_bench.py

bench-api: $(STAMP)
	$(BIN)/python bench/api_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
