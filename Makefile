# `make dev` runs the product, `make test` its tests; both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test test-faults lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

dev: $(STAMP)
	$(PY) scripts/dev.py

test: lint
	$(PY) -m pytest

# Fault injection on real processes: SIGKILLed workers, a restarted Temporal server,
# a mail server down or too slow (several minutes; see tests/faults/).
test-faults: $(STAMP)
	$(PY) -m pytest -m faults tests/faults

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .

clean:
	rm -rf var/*.db var/*.db-* var/mail
