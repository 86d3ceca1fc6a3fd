# `make demo` and `make test` each set up .venv from scratch on a fresh machine, then run.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch and torchvision are pinned to a matching pair; pip takes them from the local wheel
# cache where one is configured, else from PyPI.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install browser demo test clean

$(BIN)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/python -m shortrun.demo --out runs/demo

# the report test renders RUN/report.html in Debian's headless Chromium
browser:
	@command -v chromium >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); } || \
	  echo "note: chromium could not be installed; the browser test of the report will be skipped"

test: install browser
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) runs
