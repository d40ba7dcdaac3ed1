# The two set-up commands of README.md: `make demo` (the main job) and `make test` (the tests).
# Each installs what it needs into $(VENV) on first use: the demo the base install only (the
# torch-free runtime and CLI), the tests the development install (training with torch, export, pytest).
# `make cpp` builds the C API and the C++ examples into build/cpp (README "C and C++").
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.mnm-base
DEV := $(VENV)/.mnm-dev

.PHONY: venv demo test lint cpp

$(BIN)/python:
	@echo "creating the virtual environment $(VENV) ($(PY) -m venv)"
	$(PY) -m venv $(VENV)

$(BASE): pyproject.toml | $(BIN)/python
	@echo "installing mnm's base install into $(VENV): numpy, onnxruntime, OpenCV (headless), Pillow, typer, tqdm (no torch)"
	$(BIN)/pip install -q -e .
	touch $@

$(DEV): pyproject.toml | $(BIN)/python
	@echo "installing mnm's development install into $(VENV): the base, torch (CPU), onnx, pytest, ruff, ..."
	$(BIN)/pip install -q -e '.[dev]'
	touch $@ $(BASE)

venv: $(DEV)

demo: $(BASE)
	@echo "running the bundled demo model: mnm demo --out mnm-demo"
	$(BIN)/mnm demo --out mnm-demo

test: venv
	$(BIN)/ruff check .
	MNM_NO_PROGRESS=1 $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .

cpp: venv
	$(BIN)/python -m mnm.runtime.capi.build --out build/cpp
