# Fresh-machine entry points: `make demo` and `make test` create .venv and install what they need.
VENV ?= .venv
BIN := $(VENV)/bin
# The project runs on Python 3.11 (the image's): python3.11, else python3 when it is 3.11; or PYTHON=….
PYTHON ?= $(shell command -v python3.11 2>/dev/null || \
	(python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null && command -v python3))
NEED_PYTHON := finops-dagster needs Python 3.11: no python3.11 was found, nor a python3 (or PYTHON) that is 3.11.\
 Install it (Debian/Ubuntu: apt-get install python3.11 python3.11-venv; macOS: brew install python@3.11;\
 or pyenv install 3.11), or name one: make PYTHON=/path/to/python3.11 …
define check_python
	@test -n "$(PYTHON)" && "$(PYTHON)" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
		|| { echo "$(NEED_PYTHON)" >&2; exit 1; }
endef

# helm-sdkpy (Helm's Go library, for the chart tests) declares Python >= 3.12 but works on 3.11, so it
# cannot be an extra of the project: it is installed on its own, ignoring that declaration.
$(BIN)/.installed: pyproject.toml
	$(check_python)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/pip install --quiet --ignore-requires-python 'helm-sdkpy==0.1.32'
	touch $@

# checkov pins a dependency stack of its own that conflicts with the project's: its own venv.
TOOLS_VENV ?= .venv-tools
$(TOOLS_VENV)/.installed:
	$(check_python)
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet 'checkov==3.3.30'
	touch $@

# The Backstage Cost Insights plugin and the README's client (clients/backstage): the API's tests
# compile the client against the plugin's types and validate the routes against schemas of them.
BACKSTAGE_CLIENT := clients/backstage
$(BACKSTAGE_CLIENT)/node_modules/.installed: $(BACKSTAGE_CLIENT)/package-lock.json
	@if command -v npm >/dev/null; then cd $(BACKSTAGE_CLIENT) && npm ci --no-audit --no-fund --loglevel=error \
		&& touch node_modules/.installed; else echo "npm not found: the Backstage client tests will be skipped"; fi

# The client compiled strictly against the plugin's types (the tests do it too, with the schemas).
.PHONY: check-backstage-client
check-backstage-client: $(BACKSTAGE_CLIENT)/node_modules/.installed
	cd $(BACKSTAGE_CLIENT) && npm run --silent typecheck

.PHONY: install demo dev test lint lock check-lock-install benchmark benchmark-public-cloud benchmark-api benchmark-allocation
install: $(BIN)/.installed $(TOOLS_VENV)/.installed $(BACKSTAGE_CLIENT)/node_modules/.installed

demo: $(BIN)/.installed
	$(BIN)/finops-dagster demo

PORT ?= 3000
dev: $(BIN)/.installed
	$(BIN)/finops-dagster dev --port $(PORT)

test: $(BIN)/.installed $(TOOLS_VENV)/.installed $(BACKSTAGE_CLIENT)/node_modules/.installed
	$(BIN)/pytest -q

lint: $(BIN)/.installed
	$(BIN)/ruff check finops_dagster finops_dagster_tests benchmarks
	$(BIN)/mypy

# The image's dependencies, pinned with hashes for Linux x86-64 / Python 3.11 (deploy/Dockerfile).
LOCK_PLATFORM := --python-version 3.11 --python-platform x86_64-unknown-linux-gnu
lock: $(BIN)/.installed
	$(BIN)/uv pip compile pyproject.toml --generate-hashes $(LOCK_PLATFORM) --quiet -o deploy/requirements.lock
	$(BIN)/uv pip compile deploy/build-requirements.in --generate-hashes $(LOCK_PLATFORM) --quiet \
		-o deploy/build-requirements.lock

# What the image's builder does, in a scratch venv (downloads every locked package: about a minute).
LOCK_CHECK_DIR ?= /tmp/finops-lock-check
check-lock-install: $(BIN)/.installed
	rm -rf $(LOCK_CHECK_DIR)
	$(PYTHON) -m venv $(LOCK_CHECK_DIR)/venv
	$(LOCK_CHECK_DIR)/venv/bin/pip install --quiet --require-hashes --no-deps -r deploy/requirements.lock
	$(BIN)/pip wheel --quiet --no-deps --no-build-isolation --wheel-dir $(LOCK_CHECK_DIR)/wheels .
	$(LOCK_CHECK_DIR)/venv/bin/pip install --quiet --no-deps $(LOCK_CHECK_DIR)/wheels/finops_dagster-*.whl
	$(LOCK_CHECK_DIR)/venv/bin/pip check
	cd $(LOCK_CHECK_DIR) && venv/bin/finops-dagster --help >/dev/null && venv/bin/dagster code-server start --help >/dev/null
	@echo "deploy/requirements.lock installs with hashes; finops-dagster runs from the wheel"

# The nightly run end to end at the reference scale (SCALE=0.1 for a tenth of the source volumes).
.PHONY: benchmark-nightly
SCALE ?= 1
benchmark-nightly: $(BIN)/.installed
	$(BIN)/python -m benchmarks.nightly --scale $(SCALE)

benchmark: $(BIN)/.installed
	$(BIN)/python -m benchmarks.open_legacy

benchmark-public-cloud: $(BIN)/.installed
	$(BIN)/python -m benchmarks.public_cloud

benchmark-api: $(BIN)/.installed
	$(BIN)/python -m benchmarks.api

benchmark-allocation: $(BIN)/.installed
	$(BIN)/python -m benchmarks.allocation
