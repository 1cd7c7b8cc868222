# Flows Console: `make run` (console with demo data) and `make test` (the whole suite) do all the set-up.
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum requirements.lock | cut -c1-12)
HOST ?= 127.0.0.1
PORT ?= 8000
NODE_EXAMPLE := examples/node-backend
NODE_STAMP := $(NODE_EXAMPLE)/node_modules/.installed-$(shell sha256sum $(NODE_EXAMPLE)/package-lock.json | cut -c1-12)

.PHONY: help venv node-example db pgbouncer run test test-browser lint format stop lock bench bench-vault bench-invitations bench-api bench-audit bench-dashboard bench-load

help:  ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)  ## Create the virtualenv with the locked dependencies

# The Node.js example's pinned packages (package-lock.json: integrity hashes), for its test.
$(NODE_STAMP): $(NODE_EXAMPLE)/package.json $(NODE_EXAMPLE)/package-lock.json
	@command -v npm >/dev/null || { echo "Node.js 20+ with npm is needed: the tests run $(NODE_EXAMPLE) (tests/api/test_node_example.py)" >&2; exit 1; }
	cd $(NODE_EXAMPLE) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

node-example: $(NODE_STAMP)  ## Install the Node.js example's pinned packages (npm ci; git-ignored)

db: venv  ## Start the embedded PostgreSQL (only when DATABASE_URL is unset)
	@$(PY) scripts/devdb.py ensure

pgbouncer:  ## Install Debian's pgbouncer when missing (tests/scaling and bench-load run one; docs/scaling.md)
	@$(PYTHON) scripts/devbouncer.py ensure

run: db  ## Migrate, load demo data, print a staff login and serve http://127.0.0.1:8000/admin/
	$(PY) manage.py migrate --no-input
	$(PY) manage.py seed_demo
	$(PY) manage.py ensure_dev_superuser --url http://$(HOST):$(PORT)/admin/
	@$(PY) manage.py shell -v 0 -c "from django.conf import settings as s; print('Invitation e-mails: ' + ('written as .eml files into ' + str(s.FLOWS_MAIL_DIR) + '/ (open them with a mail program; EMAIL_URL sends through SMTP)' if s.EMAIL_BACKEND == 'config.mail.EmlFileBackend' else 'sent through the SMTP server of EMAIL_URL'))"
	@trap 'echo; echo "Console stopped. The database keeps running: make stop stops it."; exit 0' INT; \
		$(PY) manage.py runserver $(HOST):$(PORT)

test: db node-example pgbouncer  ## Run the whole test suite against real PostgreSQL
	$(PY) -m pytest $(PYTEST_ARGS)

# Debian's Chromium and its WebDriver (apt-get install chromium chromium-driver); nothing is downloaded.
CHROMIUM ?= /usr/bin/chromium
CHROMEDRIVER ?= /usr/bin/chromedriver

test-browser: db  ## Staff journeys in a real, headless Chromium (tests_browser/; screenshots in .browser-screenshots/)
	@missing=""; for bin in "$(CHROMIUM)" "$(CHROMEDRIVER)"; do test -x "$$bin" || missing="$$missing $$bin"; done; \
	if [ -n "$$missing" ]; then \
		echo "make test-browser drives Debian's Chromium through its chromedriver; not found:$$missing" >&2; \
		echo "  Install both:  sudo apt-get install chromium chromium-driver" >&2; \
		echo "  (or point CHROMIUM=/path/to/chromium CHROMEDRIVER=/path/to/chromedriver at a matching pair)" >&2; \
		exit 1; \
	fi
	FLOWS_CHROMIUM="$(CHROMIUM)" FLOWS_CHROMEDRIVER="$(CHROMEDRIVER)" $(PY) -m pytest tests_browser $(PYTEST_ARGS)

bench: db  ## RLS benchmark, by hand (bench/rls_overhead.py; BENCH_ARGS="--rounds 3000" passes options)
	$(PY) bench/rls_overhead.py $(BENCH_ARGS)

bench-vault: db  ## Vault benchmark, by hand (bench/vault.py; BENCH_ARGS="--secrets 100000" passes options)
	$(PY) bench/vault.py $(BENCH_ARGS)

bench-invitations: db  ## Invitations benchmark, by hand (bench/invitations.py; BENCH_ARGS passes options)
	$(PY) bench/invitations.py $(BENCH_ARGS)

bench-api: db  ## Tenant API benchmark through gunicorn, by hand (bench/api.py; BENCH_ARGS passes options)
	$(PY) bench/api.py $(BENCH_ARGS)

bench-audit: db  ## Audit verification benchmark, by hand (bench/audit.py; BENCH_ARGS="--events 5000000" passes options)
	$(PY) bench/audit.py $(BENCH_ARGS)

bench-dashboard: db  ## Dashboard at 100k clients / 1M invitations against 1k / 10k, by hand (bench/dashboard.py; BENCH_ARGS passes options)
	$(PY) bench/dashboard.py $(BENCH_ARGS)

bench-load: db pgbouncer  ## Mixed load through pgbouncer and gunicorn, by hand (bench/load.py; BENCH_ARGS="--seconds 90")
	$(PY) bench/load.py $(BENCH_ARGS)

lint: venv  ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv  ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

stop: venv  ## Stop the embedded PostgreSQL
	@$(PY) scripts/devdb.py stop

lock: venv  ## Re-pin requirements.lock from requirements.in (needs pip-tools)
	$(PY) -m pip install --quiet pip-tools
	$(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file requirements.lock requirements.in
