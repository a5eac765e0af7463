# The two commands a newcomer runs: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint install browser php xapi-client bench-import clean-var

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-install only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/adaptrec serve --demo-if-empty

# The browser the dashboard's tests drive: found, else installed (Debian's chromium through apt when
# this user may, else Playwright's own), else one line saying what to run (harness/browser.py).
browser: $(STAMP)
	$(BIN)/python -m harness.browser

# PHP with curl, for the Totara client the slow tests run (harness/totara_client.php): found, else
# Debian's php-cli and php-curl through apt when this user may, else one line saying what to run.
php: $(STAMP)
	$(BIN)/python -m harness.php

# The xAPI clients the integration tier drives (@xapi/xapi and TinCanJS under Node): `npm ci` from
# harness/xapi_client/package-lock.json when missing, else one line saying what to install (harness/xapi_client.py).
xapi-client: $(STAMP)
	$(BIN)/python -m harness.xapi_client

# The whole suite, every tier of tests/ (unit; service: real Postgres and Redis; browser: the
# dashboard in chromium; slow: gunicorn, training, fuzzing, benches, real Totara (PHP) and xAPI
# (Node) clients): about 11 minutes. Each prerequisite finds or installs what its tests drive.
test: browser php xapi-client
	$(BIN)/python -m pytest

# The unit and service tiers (no gunicorn, no whole processes, no training on real data): under
# 2 minutes. The few slow tests kept beside their fast ones in these folders are marked `slow`.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit tests/service -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

bench-import: $(STAMP)
	$(BIN)/python -m bench.import_speed --data ../shared/data/assist2009/attempts.csv.gz

clean-var:
	rm -rf var
