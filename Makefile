# The two commands a new machine needs: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo_data
WORKDIR ?= workdir
# python3.10 from PATH; under pyenv the shim may not select 3.10, so fall back to its install.
PYTHON310 ?= $(shell for p in python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10 \
	/usr/local/bin/python3.10 /usr/bin/python3.10; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 10)' 2>/dev/null && { echo $$p; break; }; \
	done)
INSTALLED := $(VENV)/.installed

.PHONY: install demo demo-bad-input test test-fast lint bench lock clean image image-cpu kfp-venv kfp-local

$(INSTALLED): setup.py pyproject.toml constraints.txt
	@if [ -z "$(PYTHON310)" ]; then echo "error: python3.10 not found; install Python 3.10 (the TFX 1.16 stack needs it)" >&2; exit 1; fi
	@test -x $(BIN)/python || $(PYTHON310) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==24.2"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $@

install: $(INSTALLED)

$(DEMO_DIR)/.complete: | $(INSTALLED)
	$(BIN)/spoofdetect make-demo-data $(DEMO_DIR)
	@touch $@

demo: $(INSTALLED) $(DEMO_DIR)/.complete
	$(BIN)/spoofdetect run --data-root $(DEMO_DIR) --workdir $(WORKDIR) --config pipeline/demo.yaml

# The bad-input demo: the demo dataset plus its broken files, through the feature stage alone.
demo-bad-input: $(INSTALLED) $(DEMO_DIR)/.complete
	rm -rf $(WORKDIR)/bad_input && mkdir -p $(WORKDIR)/bad_input
	cp -r $(DEMO_DIR)/train $(DEMO_DIR)/dev $(DEMO_DIR)/eval $(WORKDIR)/bad_input/
	cp -r $(DEMO_DIR)/broken/. $(WORKDIR)/bad_input/
	$(BIN)/spoofdetect features --data-root $(WORKDIR)/bad_input --output $(WORKDIR)/bad_input_features

lint: $(INSTALLED)
	$(BIN)/ruff check .

# Everything, as CI runs it.
test: lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The edit-test loop: every test not marked slow (whole pipelines, containers, fuzz).
test-fast: lint
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: $(INSTALLED)
	$(BIN)/python benchmarks/feature_extraction.py
	$(BIN)/python benchmarks/data_stages.py
	$(BIN)/python benchmarks/training.py
	$(BIN)/python benchmarks/inference.py

# Container images for Kubeflow (docker/): need a running Docker engine. BASE=IMAGE overrides
# the Dockerfile's base; without a registry the CPU image is built on a local stand-in.
IMAGE ?= spoof-detection
BASE ?=
image:
	docker/build-image.sh gpu $(IMAGE):gpu $(BASE)
image-cpu:
	PYTHON310=$(PYTHON310) docker/build-image.sh cpu $(IMAGE):cpu $(BASE)

# The compiled pipeline run by Kubeflow Pipelines' own local runner (kfp.local, Docker): every
# task in the CPU image, on the demo data. kfp >= 2.7 needs protobuf >= 4, which the TFX
# stack forbids, so it has its own small venv; it only orchestrates.
KFP_VENV := .venv-kfp
$(KFP_VENV)/.installed: kubeflow/requirements-local.txt
	@test -x $(KFP_VENV)/bin/python || $(PYTHON310) -m venv $(KFP_VENV)
	$(KFP_VENV)/bin/pip install --quiet --upgrade "pip==24.2"
	$(KFP_VENV)/bin/pip install --quiet --no-deps -r kubeflow/requirements-local.txt
	@touch $@

kfp-venv: $(KFP_VENV)/.installed

kfp-local: $(INSTALLED) $(KFP_VENV)/.installed
	$(BIN)/spoofdetect kfp-local --kfp-python $(KFP_VENV)/bin/python --image $(IMAGE):cpu \
		--workdir $(WORKDIR)/kfp_local --config pipeline/demo.yaml

# Re-resolve the pinned set from setup.py in a scratch venv and rewrite constraints.txt.
lock:
	rm -rf .lock-venv && $(PYTHON310) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet "pip==24.2" && .lock-venv/bin/pip install --quiet ".[dev]"
	{ head -2 constraints.txt; .lock-venv/bin/pip freeze --exclude-editable | grep -v '^spoof-detection'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt && rm -rf .lock-venv

clean:
	rm -rf $(WORKDIR) $(DEMO_DIR) build *.egg-info
