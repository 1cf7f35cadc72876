# Two entry points: `make demo` (set up + run the main job) and
# `make test` (set up + run the whole test suite). Both create .venv first.

VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.sktransfer-installed

# The real image data sets live beside the project when this is one of our
# machines; elsewhere fetch_hymenoptera() downloads them (or says how).
ifneq ($(wildcard ../shared/data/hymenoptera),)
export SKTRANSFER_DATA ?= $(abspath ../shared/data)
endif

# torch/torchvision: on x86_64 our machines hold 2.14.1 / 0.29.1 on local
# disk, so ask for exactly those; elsewhere let pip pick within the ranges
# of pyproject.toml.
ifeq ($(shell uname -m),x86_64)
TORCH_PINS = torch==2.14.1 torchvision==0.29.1
else
TORCH_PINS = "torch>=2.2,<=2.14.1" "torchvision>=0.17,<=0.29.1"
endif

.PHONY: demo test lint install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart.py $(ARGS)

# Lint and format are checked before the tests, as CI runs this target.
lint: $(STAMP)
	$(VENV)/bin/ruff check sktransfer tests
	$(VENV)/bin/ruff format --check sktransfer tests

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info
