# The two commands: `make run` (the connector locally, on its embedded defaults) and
# `make test` (the whole test suite). Both install what they need first.

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP_PY := $(VENV)/.installed
STAMP_NPM := node_modules/.installed

.PHONY: run test lint bench setup publish package gallery console-gallery reset clean

setup: $(STAMP_PY) $(STAMP_NPM)

# What each tool needs, said before it is used (a missing one names itself and how to get it).
NEED_PYTHON = command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found): install it (python.org, pyenv, or your package manager), or set PYTHON=/path/to/python3.11"; exit 1; }
NEED_NODE = command -v npm >/dev/null && command -v node >/dev/null || { echo "Node.js 20 or later with npm is needed (npm not found): install Node.js 20 LTS (nodejs.org, nvm, or your package manager)"; exit 1; }; node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' || { echo "Node.js 20 or later is needed, not $$(node --version): install Node.js 20 LTS (nodejs.org, nvm)"; exit 1; }

$(STAMP_PY): requirements.txt requirements-dev.txt tools/requirements-azd.txt
	@$(NEED_PYTHON)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(STAMP_NPM): package.json package-lock.json
	@$(NEED_NODE)
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## Run the connector locally: Azurite + the local Functions host + Agents Playground + Microsoft 365 (simulated).
## A fresh local state each run; KEEP=1 keeps the last run's. PORT, PLAYGROUND_PORT, AZURITE_PORT choose the ports;
## WITH_ALERTMANAGER=1 also starts Prometheus and Alertmanager on loopback, sending to the connected tenant.
RUN_ARGS = $(if $(KEEP),--keep) $(if $(PORT),--port $(PORT)) $(if $(PLAYGROUND_PORT),--playground-port $(PLAYGROUND_PORT)) $(if $(AZURITE_PORT),--azurite-port $(AZURITE_PORT))
run: setup
	$(if $(WITH_ALERTMANAGER),bash tools/install_alertmanager.sh)
	$(PY) -m tools.run_local $(RUN_ARGS) $(if $(WITH_ALERTMANAGER),--with-alertmanager)

## Forget what local runs stored (.local/: alerts, conversations, keys).
reset:
	@$(NEED_PYTHON)
	$(PYTHON) -m tools.run_local --reset

## ruff's formatter and linter over the tree, mypy --strict over the app (pyproject.toml).
lint: setup
	$(PY) -m ruff format --check .
	$(PY) -m ruff check .
	$(PY) -m mypy

## Run every test (unit, integration on Azurite and the Teams simulator, e2e, infra checks), after make lint.
test: setup lint
	bash tools/install_checkov.sh
	bash tools/install_chromium.sh
	bash tools/install_alertmanager.sh
	$(PY) -m pytest $(PYTEST_ARGS)

## The delivery benchmark (Azurite, the Teams simulator with Teams' limits enforced, two app processes); prints figures.
bench: setup
	$(PY) -m tools.bench $(BENCH_ARGS)

## Render every card kind and state to docs/cards/ (PNG, Teams' light, dark and high-contrast themes) and check them.
gallery: setup
	bash tools/install_chromium.sh
	$(PY) -m tools.gallery

## Screenshot every page of the console to docs/console/ (light and dark, 1280 px), from its browser test's data.
console-gallery: setup
	bash tools/install_chromium.sh
	CONSOLE_GALLERY_DIR=$(CURDIR)/docs/console $(PY) -m pytest -q tests/e2e/test_console.py -k Gallery

## Post an example to the running connector's ingest route, or save an example workflow:
## make publish FILE=examples/alert-created.json (QUEUE=1: to the inbound queue as it is)
publish: setup
	$(PY) -m tools.publish $(FILE) $(if $(QUEUE),--queue)

## Build the Teams app package (appPackage.zip): make package BOT_APP_ID=<bot app id> APP_HOST=<function app host name> (azd up builds it for you)
package: setup
	$(PY) -m tools.build_app_package

clean:
	rm -rf $(VENV) node_modules .tools .local build .pytest_cache
