# `make dev` runs the product, `make test` its tests; both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test test-faults lint clean bench bench-scale

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(PY) scripts/dev.py

test: lint
	$(PY) -m pytest

# The storm: 200 onboardings with random decisions while workers are SIGKILLed and
# restarted (about a minute). The other fault cases run in `make test`; see tests/faults/.
test-faults: $(STAMP)
	$(PY) -m pytest -m storm tests/faults

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .

clean:
	rm -rf var/*.db var/*.db-* var/mail

# The benchmark (issue 5), not part of `make test`: `make bench` in under 10 minutes
# on 2 cores; `make bench-scale` (10,000 requests open at once) takes longer.
BENCH_STAMP := $(VENV)/.installed-bench

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench.run

bench-scale: $(BENCH_STAMP)
	$(PY) -m bench.run --profile scale
