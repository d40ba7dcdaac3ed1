# The two set-up commands of README.md: `make demo` (the main job) and `make test` (the tests);
# `make cpp` builds the C API and the C++ examples into build/cpp (README "C and C++").
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv demo test lint cpp

$(BIN)/mnm: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BIN)/mnm

venv: $(BIN)/mnm

demo: venv
	$(BIN)/mnm demo --out mnm-demo

test: venv
	$(BIN)/ruff check .
	MNM_NO_PROGRESS=1 $(BIN)/python -m pytest -q

lint: venv
	$(BIN)/ruff check .

cpp: venv
	$(BIN)/python -m mnm.runtime.capi.build --out build/cpp
