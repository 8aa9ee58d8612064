# Impasto: the two commands people need are `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
ifeq ($(OS),Windows_NT)
BIN := $(VENV)/Scripts
else
BIN := $(VENV)/bin
endif
PY := $(BIN)/python
PIP := $(PY) -m pip

.PHONY: run test lint unit bench package clean convert

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml $(VENV)/.installed $(wildcard plugins/*/pyproject.toml)
	$(PIP) install -q -e '.[dev]'
# The tests' reference samplers (k_diffusion/sampling.py); its other deps are for training.
	$(PIP) install -q --no-deps k-diffusion==0.1.1.post1
	$(PIP) install -q --no-build-isolation --no-deps -e plugins/impasto-upscale \
		-e plugins/impasto-styles -e plugins/impasto-watermark
	touch $@

## run: create .venv, install, start the daemon on the bundled impasto-shapes model and print its URL
run: $(VENV)/.installed
	$(PY) -m impasto serve

## convert: add the converter (torch, diffusers, optimum: the `convert` extra) to .venv, so
## `impasto pull` can install diffusers repos and checkpoints, which it converts to ONNX
convert: $(VENV)/.installed
	$(PIP) install -q -e '.[convert]'

## lint: ruff, formatting and mypy
lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy daemon/impasto

## test: install the dev extras and (as root, with apt) the system packages the tests use, lint,
## then run the whole suite; tests whose tool is missing skip with a reason (fail under CI)
test: lint
	@sh .ci/test-packages
	@# PyGObject (the tray's menu backends) builds only where its headers are installed.
	@if pkg-config --exists gobject-introspection-1.0 cairo 2>/dev/null; then \
		$(PIP) install -q -e '.[tray-gtk]'; fi
	@# The slowest tests are listed at the end, to keep CI's time in view.
	$(BIN)/pytest -q --durations=25

## bench: engine and API benchmarks (ratios against references measured in the same run)
bench: $(VENV)/.dev-installed
	$(PY) bench/engine.py
	$(PY) bench/families.py
	$(PY) bench/api.py
	$(PY) bench/queue_load.py

FLAVOUR ?= cpu
## package: build the single `impasto` binary for this OS with Nuitka (FLAVOUR=cpu|cuda|directml), then Linux packages
package: $(VENV)/.dev-installed
	$(PIP) install -q nuitka==4.3.3 zstandard
	$(PY) packaging/build.py --flavour $(FLAVOUR)
	@if [ "$$(uname)" = Linux ]; then $(PY) packaging/linux/build_linux.py; fi

clean:
	rm -rf $(VENV) build dist *.egg-info
