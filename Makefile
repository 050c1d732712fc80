# `make demo` and `make test` are the whole quick start: each creates .venv on
# first use and (re)installs the project when its packaging changes. The demo gets
# the runtime dependencies only; the tests add the extras (PostgreSQL, plots, tools).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_STAMP := $(VENV)/.installed-demo
TEST_STAMP := $(VENV)/.installed-test
# setuptools prints an informational note on every editable install whose packages
# are mapped (fixtures/ ships as simulator.samples); it is not a problem to act on.
PIP := PYTHONWARNINGS="ignore:Editable installation" $(BIN)/python -m pip \
	--quiet --disable-pip-version-check

.PHONY: demo test lint screenshot clean bench bench-rss bench-volume bench-report

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEMO_STAMP): pyproject.toml setup.py | $(BIN)/python
	$(PIP) install -e .
	touch $(DEMO_STAMP)

$(TEST_STAMP): pyproject.toml setup.py | $(BIN)/python
	$(PIP) install -e '.[test]'
	touch $(TEST_STAMP) $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/intake-sim demo

test: $(TEST_STAMP)
	$(BIN)/python -m pytest

lint: $(TEST_STAMP)
	$(BIN)/ruff check simulator tests benchmarks fixtures setup.py
	$(BIN)/ruff format --check simulator tests benchmarks fixtures setup.py

# docs/dashboard.png, taken by the browser test in headless Chromium.
screenshot: $(TEST_STAMP)
	INTAKE_SIM_SCREENSHOT=docs/dashboard.png $(BIN)/python -m pytest -q tests/web/test_browser.py

# Throughput against a do-nothing aiosmtpd handler in the same run, every target with
# its ratio (processed end to end, simulate direct against the processor, report over
# 10^6 ledger rows), then peak RSS at 10^4 and 10^5 messages. Options: make bench BENCH_ARGS="--pg URL --messages 5000"
bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/bench.py rss $(BENCH_RSS_ARGS)

# report, report --by month and users over 10^5 and 10^6 ledger rows, beyond start-up.
bench-report: $(TEST_STAMP)
	$(BIN)/python benchmarks/report.py $(BENCH_REPORT_ARGS)

bench-rss: $(TEST_STAMP)
	$(BIN)/python benchmarks/bench.py rss $(BENCH_RSS_ARGS)

# Median of 3 sweeps over 10^2..10^6, then 10^5 messages through the real pipeline.
bench-volume: $(TEST_STAMP)
	$(BIN)/python benchmarks/volume.py --direct 100000

clean:
	rm -rf $(VENV) build *.egg-info
