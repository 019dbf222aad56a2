# `make dev` runs the product, `make test` its tests; both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: dev test test-faults system-packages lint docs clean bench bench-scale bench-profile bench-sandbox bench-queues seed messages

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The pages' message catalogues: each .po is the source, its .mo what the app reads
# (build output, not committed). Recompiled whenever its .po changes.
CATALOGUES := $(wildcard locales/*/LC_MESSAGES/messages.po)
COMPILED := $(CATALOGUES:.po=.mo)

locales/%/LC_MESSAGES/messages.mo: locales/%/LC_MESSAGES/messages.po | $(STAMP)
	$(VENV)/bin/pybabel compile -d locales -l $*

# After changing a page's text: extract the messages again and merge them into every
# catalogue, for translating.
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -o locales/messages.pot -c Translators: \
		--project "B2B partner onboarding" --copyright-holder "the project's authors" --no-wrap .
	$(VENV)/bin/pybabel update -i locales/messages.pot -d locales --ignore-obsolete --no-wrap

dev: $(STAMP) $(COMPILED)
	$(PY) scripts/dev.py

# In parallel: a pytest-xdist worker process per core, each with its own Temporal dev
# server, mail sink and stores (tests/conftest.py's session fixtures); a worker that runs
# out of tests takes some of another's (worksteal), so no long file holds up the end.
test: lint $(COMPILED) system-packages
	$(PY) -m pytest -n auto --dist worksteal

# The fault cases on real processes (tests/faults/): workers SIGKILLed, the server
# restarted, the mail server and the stores down, the storms of 200 and of 100 requests
# in network namespaces (needs root), and the deploys of two versioned releases; and the
# slow tests that rarely break (marked `slow`: the wheel, the TLS frontend, the API
# fuzzer, the bench's own run, `python -m web` served). About ten minutes; kept out of
# `make test`, which stays under ten.
test-faults: $(STAMP) $(COMPILED) system-packages
	$(PY) -m pytest -m 'storm or slow'

# What the tests drive besides Python, from Debian (Playwright never downloads a browser
# here): Chromium for the browser tests, nginx (grpc_pass, TLS) in front of the dev server
# for the remote-Temporal test. Each is looked for where the tests look; only what is
# missing is installed, with apt-get as root (or through sudo), so a fresh machine needs
# nothing by hand and a prepared one is left alone.
SYSTEM_PACKAGES := /usr/bin/chromium=chromium /usr/sbin/nginx=nginx
system-packages:
	@missing=""; for entry in $(SYSTEM_PACKAGES); do \
		test -x "$${entry%%=*}" || missing="$$missing $${entry#*=}"; \
	done; \
	if [ -n "$$missing" ]; then \
		as_root=""; [ "$$(id -u)" -eq 0 ] || as_root=sudo; \
		echo "installing$$missing (apt-get) for the tests"; \
		$$as_root apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $$as_root apt-get install -y -qq $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy .

# The README and the guides in docs/ as one site, in site/ (open site/index.html): MkDocs
# with the Material theme, offline (mkdocs.yml), failing on any warning. The notice
# silenced is Material's about its own end of life (May 2027), not one about our pages.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

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

# Where the product worker's CPU goes: the quick profile with py-spy on the worker
# (needs ptrace: root), written as bench/results/profile-$(LABEL).*; about 5 minutes.
# `python -m bench.report --compare bench/results/profile-before.json bench/results/profile-after.json`
# puts two of them side by side.
LABEL ?= latest
bench-profile: $(BENCH_STAMP)
	$(PY) -m bench.run --profile quick --py-spy $(LABEL)

# What the workflow sandbox costs the worker (issue 22): the product's worker with the
# SDK's sandbox as before, with our modules passed through, and unsandboxed, taking turns
# in one run, then each under py-spy; bench/results/sandbox.{json,md}, about 10 minutes.
bench-sandbox: $(BENCH_STAMP)
	$(PY) -m bench.sandbox --count 400 --rounds 3

# The queues at size (issue 16): 110,000 requests seeded into fresh stores, on SQLite and
# PostgreSQL, each queue's first page and searches timed through the web app; a few minutes.
bench-queues: $(STAMP)
	$(PY) -m bench.queues

# Many requests at every stage in the stores the settings name (var/*.db under make dev),
# to try the reps' and admins' pages at size: `make seed REQUESTS=110000`.
REQUESTS ?= 110000
seed: $(STAMP)
	$(PY) -m bench.seed --requests $(REQUESTS)
