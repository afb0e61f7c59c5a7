# The two commands: `make run` and `make test`. Everything else is what they are made of.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# Most tests wait on the broker, the store or a subprocess: more workers than cores pay.
TEST_WORKERS ?= 4
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test lint typecheck unit integration services schemas clean bench bench-smoke bench-scale-out

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

services:
	scripts/ensure-services.sh rabbitmq postgres

run: $(STAMP)
	scripts/ensure-services.sh rabbitmq
	scripts/run.sh

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) services lint typecheck
	$(BIN)/python scripts/clean-test-broker.py
	scripts/ensure-browser.sh
	scripts/ensure-asyncapi-parser.sh
	scripts/ensure-promtool.sh
	$(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile -m "not broker_outage"
	$(BIN)/pytest -q -p no:cacheprovider -m broker_outage

schemas: $(STAMP)
	$(BIN)/gateway export-schemas

# The benchmark (not part of `make test`): every scenario, about 15 minutes on a 2-core VM,
# results into docs/performance.md. CONDITIONS="..." labels how quiet the machine was.
bench: $(STAMP)
	scripts/ensure-services.sh rabbitmq
	$(BIN)/python -m bench --all --conditions "$(CONDITIONS)" \
		--markdown docs/performance.md --notes bench/notes.md --json-out bench/results/latest.json

# The production shape on this machine: PostgreSQL, one API process and two workers;
# rising rate and 50/s, results into docs/performance-scale-out.md (about 7 minutes).
bench-scale-out: $(STAMP)
	scripts/ensure-services.sh rabbitmq postgres
	$(BIN)/python -m bench rising fixed --store postgresql --workers 2 \
		--conditions "$(CONDITIONS)" --markdown docs/performance-scale-out.md \
		--notes bench/notes-scale-out.md \
		--img-dir docs/img/scale-out --json-out bench/results/scale-out.json

bench-smoke: $(STAMP)
	scripts/ensure-services.sh rabbitmq
	$(BIN)/python -m bench smoke

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache tests/asyncapi/node_modules .tools
