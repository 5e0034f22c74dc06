# emovlm — set-up and everyday commands. `make demo` runs the offline main job; `make test` the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
SRC := src tests benchmarks

.PHONY: install demo test test-fast lint format fetch bench clean browser

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "creating $(VENV) and installing emovlm with all extras (about 2 minutes the first time)…"
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[all,dev]' >$(VENV)/install.log 2>&1 \
		|| (grep -v '^WARNING: Location' $(VENV)/install.log | tail -40; exit 1)
	touch $@

demo: install
	$(BIN)/emovlm demo --out demo-out

fetch: install
	$(BIN)/emovlm fetch

test: install fetch lint browser
	$(PY) -m pytest -q

# Headless chromium and its driver for the explorer's browser tests (Debian packages; as root in CI).
browser:
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null \
		|| (apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver)

test-fast: install
	$(PY) -m pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check $(SRC)
	$(BIN)/ruff format --check $(SRC)

format: install
	$(BIN)/ruff format $(SRC)
	$(BIN)/ruff check --fix $(SRC)

bench: install
	$(PY) benchmarks/bench_pipeline.py

clean:
	rm -rf $(VENV) demo-out runs .pytest_cache .ruff_cache
