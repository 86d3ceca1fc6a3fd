# `make demo` and `make test` each set up .venv from scratch on a fresh machine, then run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision are pinned to a matching pair; pip takes them from the local wheel
# cache where one is configured, else from PyPI.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test clean

$(BIN)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/python -m shortrun.demo --out runs/demo

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs
