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

.PHONY: demo test lint install clean docs docs-ci

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
	$(VENV)/bin/ruff check sktransfer tests benchmarks examples
	$(VENV)/bin/ruff format --check sktransfer tests benchmarks examples

# CI (.ci/run) runs this target: lint, the tests, then the documentation
# with warnings as errors.
test: lint
	$(PY) -m pytest $(PYTEST_ARGS)
	$(MAKE) docs-ci

# The documentation site in docs/_build/html, running every example of the
# gallery (minutes: some fine-tune or embed thousands of photos).
docs: $(STAMP)
	SKTRANSFER_DOCS_GALLERY=all MPLBACKEND=Agg $(VENV)/bin/sphinx-build -b html docs docs/_build/html

# The same with warnings as errors, running only the gallery's plot_*.py
# examples (seconds); the others are shown without their output.
docs-ci: $(STAMP)
	SKTRANSFER_DOCS_GALLERY=fast MPLBACKEND=Agg $(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

clean:
	rm -rf $(VENV) build *.egg-info docs/_build docs/generated docs/auto_examples docs/api.rst docs/sg_execution_times.rst
