# Two commands: `make run` starts the app, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE := webchat.settings

.PHONY: run test quick bench messages audit lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-run: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e ".[production]"
	touch $@

$(VENV)/.installed-bench: $(VENV)/.installed-run
	$(BIN)/pip install --quiet -c constraints.txt -e ".[production,bench]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed-run tests/oidc_provider/node_modules/.package-lock.json
	$(BIN)/pip install --quiet -c constraints.txt -e ".[production,test]"
	touch $@

# The single sign-on tests' OpenID provider (panva's oidc-provider), as its lock file pins it.
tests/oidc_provider/node_modules/.package-lock.json: tests/oidc_provider/package-lock.json
	npm ci --prefix tests/oidc_provider --no-audit --no-fund

# A secret key made once per checkout, so sessions survive restarts.
var/secret_key:
	mkdir -p var
	$(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > $@
	chmod 600 $@

run: $(VENV)/.installed-run var/secret_key
	export SECRET_KEY="$${SECRET_KEY:-$$(cat var/secret_key)}" && \
	exec $(BIN)/python manage.py serve --prepare --host $(HOST) --port $(PORT)

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	SECRET_KEY=unused $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest -n auto -q -m "not browser"
	# One browser and one server at a time: on a small machine they race otherwise.
	$(BIN)/pytest -q -m browser

# Every test but the browser and scale ones, for a quick check while working.
quick: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/pytest -n auto -q -m "not browser and not slow"

# What Webchat adds to the model's latency and what it costs to run (benchmarks/RESULTS.md).
# With DATABASE_URL (PostgreSQL) and REDIS_URL set, also two processes on them.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks.run $(BENCH_ARGS)

# Translations (README, "Languages"): gather every marked string into each language's
# catalog under locale/, then compile the catalogs. Needs GNU gettext.
NOT_TRANSLATED := --ignore=tests --ignore=benchmarks --ignore=docs --ignore=deploy --ignore=var
messages: $(VENV)/.installed-run
	DEBUG=1 $(BIN)/python manage.py makemessages --all --no-obsolete --add-location=file $(NOT_TRANSLATED)
	DEBUG=1 $(BIN)/python manage.py compilemessages --ignore=.venv $(NOT_TRANSLATED)

# Known vulnerabilities in the pinned dependencies (needs PyPI's JSON API or OSV).
audit: $(VENV)/.installed-test
	$(BIN)/pip-audit -r constraints.txt --strict --progress-spinner off

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var tests/oidc_provider/node_modules
