# The only entry point: `make up` runs everything locally, `make test` is what CI runs.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

.PHONY: up install sandbox lint test test-unit test-integration test-e2e proto proto-check bench chaos clean

up: install sandbox
	$(VENV)/bin/cogwheel up

# Model code runs in a bubblewrap sandbox; as root on Debian/Ubuntu the package is installed when missing,
# elsewhere the runner says at start-up why it refuses to run models (COGWHEEL_SANDBOX=off opts out).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing bubblewrap for the model sandbox"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; \
	  else echo "warning: bwrap (package bubblewrap) is missing: models will not run until it is installed"; fi; }

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the dependency list changes. `dev` brings protoc (make proto) and the linters (make lint).
$(STAMP): pyproject.toml | $(PY)
	$(PIP) install --quiet --disable-pip-version-check -e '.[test,dev]'
	@touch $@

# The house rules (docs/architecture.md, "Layout and conventions"): ruff, mypy, and the import contracts of
# pyproject.toml. lint-imports reads this checkout's packages, whichever checkout the virtualenv was installed from.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy libs services
	PYTHONPATH=$(CURDIR) $(VENV)/bin/lint-imports

# TEST_WORKERS=N runs test modules in N parallel workers (whole modules each, every worker with NATS and
# PostgreSQL of its own); the default runs them one after another, which keeps timing-bound tests honest on 2 cores.
TEST_WORKERS ?= 0

test: install
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) --dist loadfile

test-unit: install
	$(PY) -m pytest tests -q -m 'not integration and not e2e'

test-integration: install
	$(PY) -m pytest tests/integration -q

test-e2e: install
	$(PY) -m pytest tests/e2e -q

proto: install
	$(PY) scripts/gen_proto.py

proto-check: proto
	git diff --exit-code -- libs/pb
	@new="$$(git status --porcelain --untracked-files=all -- libs/pb | grep -v __pycache__ || true)"; \
	  if [ -n "$$new" ]; then echo "$$new"; echo "libs/pb: files from make proto are not committed"; exit 1; fi

bench: install
	@if [ -d benchmarks ]; then $(PY) -m benchmarks; else echo "no benchmarks yet"; fi

# Fault injection: every service, NATS and PostgreSQL SIGKILLed mid-burst in turn (CHAOS_PER_KILL predictions each).
chaos: install
	$(PY) -m cogwheel.chaos

clean:
	rm -rf .cogwheel .pytest_cache .ruff_cache .mypy_cache .import_linter_cache build dist *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +
