# The two commands of the README. Both create .venv and install the project with every extra (.[dev,all]) when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DATA_ROOT ?= $(if $(OMNISSL_DATA_DIR),$(OMNISSL_DATA_DIR),../shared/datasets)

.PHONY: demo test install clean manifests

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e '.[dev,all]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	rm -rf runs/demo-digits
	$(BIN)/omnissl train recipes/image/simclr_digits.yaml --run-dir runs/demo-digits

test: $(STAMP)
	OMNISSL_DATA_DIR=$(DATA_ROOT) $(BIN)/python -m pytest tests

# After adding or changing a registered component: rewrite the per-plugin manifests `omnissl list` reads.
manifests: $(STAMP)
	$(BIN)/python -m omnissl.workflows.manifests --write

clean:
	rm -rf runs .pytest_cache
