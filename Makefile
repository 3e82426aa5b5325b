# The two commands README.md opens with: `make demo` (the main job) and `make test`.
# Both create .venv and install geoop with the pinned torch on first use.
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/demo

.PHONY: demo test install meshes clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/geoop demo --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest

meshes: $(STAMP)
	$(BIN)/python meshes/make_meshes.py

clean:
	rm -rf out .pytest_cache
