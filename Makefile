# The two set-up commands of README.md: `make demo` (the main job) and `make test` (the tests).
# Each installs what it needs into $(VENV) on first use: the demo the base install only (the
# torch-free runtime and CLI), the tests the development install (training with torch, export, pytest).
# `make cpp` builds the native C library and the C++ examples into build/cpp (README "C and C++").
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
BASE := $(VENV)/.mnm-base
DEV := $(VENV)/.mnm-dev

.PHONY: venv demo test lint cpp cpp-install

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

# The native C library (libmnm/, docs/capi.md) and the C++ examples, into build/cpp. Installs only what
# they need: apt packages (compiler, CMake, pkg-config, OpenCV, nlohmann-json) when missing, ONNX
# Runtime's headers (scripts/onnxruntime_headers.sh) and, unless ONNXRUNTIME_ROOT names a release
# archive, the `onnxruntime` wheel into $(VENV) for its libonnxruntime (no other Python package).
CPP := build/cpp
CPP_APT := g++ cmake pkg-config libopencv-dev nlohmann-json3-dev
ORT_MIN_MINOR := 21
ORT_WHEEL_LIB = ls $(VENV)/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1.* 2>/dev/null | sort -V | tail -n 1
SUDO := $(if $(filter 0,$(shell id -u)),,sudo -n)
PREFIX ?= /usr/local

cpp:
	@missing=""; command -v dpkg-query >/dev/null && for package in $(CPP_APT); do \
	  dpkg-query -W -f='$${Status}' $$package 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing with apt-get"; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing || \
	  { $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; }; \
	fi
	@set -e; \
	if [ -n "$(ONNXRUNTIME_ROOT)" ]; then \
	  ort_lib="$(ONNXRUNTIME_ROOT)/lib/libonnxruntime.so.1"; [ -e "$$ort_lib" ] || ort_lib=""; else \
	  ort_lib=$$($(ORT_WHEEL_LIB)); \
	  if [ -z "$$ort_lib" ] || [ "$$(echo "$$ort_lib" | sed 's/.*\.so\.1\.\([0-9]*\).*/\1/')" -lt $(ORT_MIN_MINOR) ]; then \
	    [ -x $(BIN)/python ] || $(PY) -m venv $(VENV); \
	    echo "installing the onnxruntime wheel into $(VENV) for its libonnxruntime (onnxruntime>=1.$(ORT_MIN_MINOR))"; \
	    $(BIN)/pip install -q 'onnxruntime>=1.$(ORT_MIN_MINOR)'; \
	    ort_lib=$$($(ORT_WHEEL_LIB)); \
	  fi; \
	  ort_lib=$$(cd "$$(dirname "$$ort_lib")" && pwd)/$$(basename "$$ort_lib"); \
	fi; \
	ort_include=$$(ONNXRUNTIME_ROOT="$(ONNXRUNTIME_ROOT)" sh scripts/onnxruntime_headers.sh build/third_party/onnxruntime); \
	cmake -S libmnm -B $(CPP)/libmnm-build -DCMAKE_BUILD_TYPE=Release -DMNM_WERROR=ON \
	  -DMNM_OUTPUT_DIR=$(CURDIR)/$(CPP) -DONNXRUNTIME_INCLUDE_DIR="$$ort_include" -DMNM_ONNXRUNTIME_LIBRARY="$$ort_lib" >/dev/null; \
	cmake --build $(CPP)/libmnm-build --parallel 2; \
	cmake -S examples/cpp -B $(CPP)/examples-build -DCMAKE_BUILD_TYPE=Release -DMNM_WERROR=ON \
	  -Dmnm_DIR=$(CURDIR)/$(CPP)/libmnm-build -DCMAKE_RUNTIME_OUTPUT_DIRECTORY=$(CURDIR)/$(CPP) >/dev/null; \
	cmake --build $(CPP)/examples-build --parallel 2; \
	echo "built $(CPP)/libmnm.so (ONNX Runtime found at build time: $${ort_lib:-none}), $(CPP)/include, $(CPP)/mnm-mix, $(CPP)/mnm-animate"

# The library, its headers, mnm.pc and the CMake package under PREFIX (make cpp-install PREFIX=/opt/mnm).
cpp-install: cpp
	cmake --install $(CPP)/libmnm-build --prefix $(PREFIX)
