# asr: make install | demo | smoke | test | lock | lint
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
INSTALLER ?= uv
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: install check-lock lock sysdeps demo smoke test lint clean

# the locked tree (requirements-lock.txt) into .venv, then a smoke check of torch, torchaudio, soundfile,
# flashlight-text and onnxruntime; INSTALLER=pip uses pip instead of uv
$(STAMP): pyproject.toml requirements-lock.txt tools/deps.py
	$(PYTHON) tools/deps.py install --venv $(VENV) --installer $(INSTALLER)
	touch $(STAMP)

install: $(STAMP)

# fails when requirements-lock.txt no longer matches pyproject.toml
check-lock:
	@$(PYTHON) tools/deps.py check-lock

# re-resolve the whole tree on purpose (after editing pyproject.toml's dependencies)
lock:
	$(PYTHON) tools/deps.py lock

demo: check-lock $(STAMP)
	bash recipes/demo/run.sh

# espeak-ng and flite speak the synthetic corpus (asr synth) and the tests' own speech fixtures; chromium is the
# browser the web page's test drives (through Playwright, pointed at the system's chromium); festival and three
# of its English voices are the outside voices of bench/cross_voice.py (never trained on)
FESTIVAL := festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
sysdeps:
	@command -v espeak-ng >/dev/null && command -v flite >/dev/null && command -v chromium >/dev/null && \
	  command -v text2wave >/dev/null && [ -d /usr/share/festival/voices/english/kal_diphone ] || \
	  { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng flite \
	    chromium $(FESTIVAL) >/dev/null; }

# the fast tests, for the edit loop (about a minute)
smoke: check-lock $(STAMP) sysdeps
	$(PY) -m pytest -q -m "not slow" tests

# everything (what CI runs)
test: check-lock $(STAMP) sysdeps
	$(PY) -m pytest -q --durations=15 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check asr tests bench tools

clean:
	rm -rf exp .pytest_cache .ruff_cache
