# asr: make install | demo | test | lint
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: install sysdeps demo test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev,lm,export]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	bash recipes/demo/run.sh

# espeak-ng and flite speak the synthetic corpus (asr synth); its tests need them
sysdeps:
	@command -v espeak-ng >/dev/null && command -v flite >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng flite >/dev/null; }

test: $(STAMP) sysdeps
	$(PY) -m pytest -q tests

lint: $(STAMP)
	$(VENV)/bin/ruff check asr tests bench

clean:
	rm -rf exp .pytest_cache .ruff_cache
