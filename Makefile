# `make demo` and `make test` are the whole quick start: each creates .venv on
# first use and (re)installs the project when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint screenshot clean bench-volume

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/intake-sim demo

test: $(STAMP)
	$(BIN)/python -m pytest

# docs/dashboard.png, taken by the browser test in headless Chromium.
screenshot: $(STAMP)
	INTAKE_SIM_SCREENSHOT=docs/dashboard.png $(BIN)/python -m pytest -q tests/test_browser.py
# Median of 3 sweeps over 10^2..10^6, then 10^5 messages through the real pipeline.
bench-volume: $(STAMP)
	$(BIN)/python benchmarks/volume.py --direct 100000

lint: $(STAMP)
	$(BIN)/ruff check simulator tests benchmarks
	$(BIN)/ruff format --check simulator tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info
