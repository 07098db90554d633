# Two commands: `make demo` runs the main job on the embedded default, `make test` runs the tests.
# Both (re)create .venv when pyproject.toml changed and are quick when nothing did.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/vid2vid demo

test: install
	$(VENV)/bin/python -m pytest -q

bench: install
	$(VENV)/bin/python benchmarks/storage.py

clean:
	rm -rf $(VENV) .prefect data runs
