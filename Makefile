# Pinhole: `make run` serves the app with a worker; `make test` runs every test and ruff.
# Both do their own set-up (virtual environment, install, migrations) on a fresh machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format migrate worker bench clean lock

# Every dependency pinned, for make, CI and the images; pyproject.toml keeps ranges for people who
# install the package. `make lock` pins them anew (the newest each range allows).
CONSTRAINTS := constraints.txt

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch and torchvision come from the registry as one matching pair (never a local CPU wheel).
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[train,dev,export]'
	touch $(STAMP)

# onnxruntime-web from the npm registry (package-lock.json pins it, with its hash), served by the app
# itself: a share page's "run on this device" loads it from here, never from a CDN.
VENDOR := webui/static/vendor/onnxruntime-web
$(VENDOR)/.stamp: package.json package-lock.json scripts/vendor-browser-assets.sh
	npm ci --no-audit --no-fund --ignore-scripts --silent
	sh scripts/vendor-browser-assets.sh $(VENDOR)
	touch $@

lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip
	.lock-venv/bin/python -m pip install --quiet '.[train,dev,bench,gpu,export]'
	{ echo "# Every dependency of make run, make test, make bench and the images, pinned by make lock."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | grep -iv '^pinhole'; } > $(CONSTRAINTS)
	rm -rf .lock-venv

migrate: $(STAMP) $(VENDOR)/.stamp
	$(BIN)/python manage.py migrate --no-input

run: migrate
	$(BIN)/python manage.py collectstatic --no-input -v0
	$(BIN)/python manage.py ensure_admin --url http://$(HOST):$(PORT)/
	$(BIN)/python -m webui.devserver --host $(HOST) --port $(PORT)

worker: migrate
	$(BIN)/celery -A webui worker -Q default,training -c 1 --loglevel INFO

test: $(STAMP) $(VENDOR)/.stamp
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	# The data sets and baselines of bench.quality (not needed by the app or its tests).
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[train,dev,bench,export]'
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache node_modules webui/static/vendor
