# `make demo` and `make test` are the whole quick start: each creates .venv on
# first use and (re)installs the project when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint screenshot clean bench bench-rss bench-volume

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

# Throughput against a do-nothing aiosmtpd handler in the same run, then peak RSS at
# 10^4 and 10^5 messages. Options: make bench BENCH_ARGS="--pg URL --messages 5000"
bench: $(STAMP)
	$(BIN)/python scripts/bench.py $(BENCH_ARGS)
	$(BIN)/python scripts/bench.py rss $(BENCH_RSS_ARGS)

bench-rss: $(STAMP)
	$(BIN)/python scripts/bench.py rss $(BENCH_RSS_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check simulator tests benchmarks scripts
	$(BIN)/ruff format --check simulator tests benchmarks scripts

clean:
	rm -rf $(VENV) build *.egg-info
