# The two commands a newcomer runs: `make run` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test install bench-import clean-var lint

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

test: $(STAMP)
	$(BIN)/python -m pytest

bench-import: $(STAMP)
	$(BIN)/python -m bench.import_speed --data ../shared/data/assist2009/attempts.csv.gz

clean-var:
	rm -rf var
