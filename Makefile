# Loft: `make run` to start everything, `make test` to run the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := wsgi
# Where the processes of `make run` keep their Prometheus values (app/metrics); the environment may name another.
METRICS_DIR := $(or $(PROMETHEUS_MULTIPROC_DIR),$(CURDIR)/var/metrics)

.PHONY: run test test-pg bench migrate browser spamassassin clean

# Install (or refresh) the virtualenv when a requirements file changes.
$(BIN)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# A private .env with a random secret key, made once from .env.example.
.env:
	sed "s|^LOFT_SECRET_KEY=.*|LOFT_SECRET_KEY=$$($(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(48))')|" .env.example > .env
	@echo "Wrote .env with a new LOFT_SECRET_KEY"

migrate: $(BIN)/.installed .env
	mkdir -p var
	$(BIN)/flask db upgrade

# LOFT_SENDING_PROCESSES consumers in all (default: one per core): `worker` (it also runs the periodic
# tasks) and that many minus one `sender`s, so one campaign is sent on every core. honcho reads no .env
# itself (-e /dev/null): its values would override the environment; the app reads .env under it instead.
run: migrate
	@echo ""
	@echo "  Loft is starting on http://127.0.0.1:8000"
	@echo "  First visit: create the admin account in the browser (or: $(BIN)/flask users create-admin --email you@example.com --password '...')"
	@echo "  Every email Loft sends is caught locally: see Outbox in the navigation (SMTP 127.0.0.1:1025)."
	@echo "  Apps that speak only SMTP send transactional mail to $$($(BIN)/python -c 'from app.config import Config; print(Config.SUBMISSION_BIND, Config.SUBMISSION_PORT, sep=chr(58))') (STARTTLS, any username, an API key as the password)."
	@echo "  Stop with Ctrl-C."
	@echo ""
	@# Every process writes its Prometheus values into one folder that GET /metrics sums (app/metrics): emptied
	@# here, before any of them starts, so a previous run's "tasks running" cannot count for ever.
	mkdir -p "$(METRICS_DIR)" && rm -f "$(METRICS_DIR)"/*.db
	PROMETHEUS_MULTIPROC_DIR="$(METRICS_DIR)" $(BIN)/honcho start -e /dev/null -f Procfile -c sender=$$($(BIN)/python -c 'from app.config import Config; print(Config.SENDING_PROCESSES - 1)')

# Debian's Chromium for the browser tests (never a downloaded browser build).
# Where it cannot be installed, the browser tests skip with the reason.
browser:
	@test -x /usr/bin/chromium || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "Could not install chromium: browser tests will be skipped"; \
	  else echo "chromium is not installed and cannot be installed here: browser tests will be skipped"; fi; }

# Debian's SpamAssassin for the SpamAssassin score tests (tests/spamd_support.py starts spamd -L on loopback).
# Only the packages' own rules are used: no sa-update, nothing downloaded when the tests run.
spamassassin:
	@test -x /usr/sbin/spamd || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends spamassassin spamc spamd >/dev/null \
	      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	           spamassassin spamc spamd >/dev/null; }; } \
	      || echo "Could not install SpamAssassin: the SpamAssassin score tests will be skipped"; \
	  else echo "spamd is not installed and cannot be installed here: the SpamAssassin score tests will be skipped"; fi; }

# The suite runs on every core (pytest-xdist): each test has its own database file, ports and folders.
test: $(BIN)/.installed-dev browser spamassassin
	$(BIN)/python -m pytest -q -rs -n auto tests --ignore=tests/bench

# The same suite on PostgreSQL + Redis: .ci/services.sh installs them (apt) if missing, starts throwaway ones
# on loopback, and stops them when pytest ends, passed or not. Here the several-workers test sends the full
# 20,000-recipient campaign (3,000 on SQLite, where it checks the same things).
test-pg: $(BIN)/.installed-dev browser spamassassin
	@services=$$(mktemp -d /tmp/loft-services.XXXXXX) && rmdir $$services && export LOFT_SERVICES_DIR=$$services; \
	trap '.ci/services.sh stop' EXIT INT TERM; \
	.ci/services.sh start >/dev/null || exit 1; \
	set -a; . $$services/env; set +a; \
	echo "PostgreSQL $$LOFT_TEST_DATABASE_URL, Redis $$LOFT_TEST_QUEUE_URL"; \
	export LOFT_SEVERAL_WORKERS_RECIPIENTS=$${LOFT_SEVERAL_WORKERS_RECIPIENTS:-20000}; \
	$(BIN)/python -m pytest -q -rs -n auto tests --ignore=tests/bench

# postfix ships smtp-sink and smtp-source for the sending benchmark (its mail service need not run).
bench: $(BIN)/.installed-dev browser
	@test -x /usr/sbin/smtp-sink || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null \
	      || echo "Could not install postfix: the sending benchmark will be skipped"; \
	  else echo "postfix is not installed: the sending benchmark will be skipped"; fi; }
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; } || echo "wrk is not installed: the tracking benchmark will be skipped"
	$(BIN)/python -m pytest -q -s -rs tests/bench

clean:
	rm -rf $(VENV) .pytest_cache
