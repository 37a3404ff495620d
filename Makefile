# lorentz-live developer entry points.  Everything a fresh machine needs is
# installed from here; nothing is assumed to be installed by hand.
#
#   make demo    create .venv, install, run the end-to-end demo
#   make test    create/update .venv with dev extras, lint, check layers, run the suite
#
# TORCH_SPEC pins the torch build installed before the project.  The default is
# the CPU wheel present on the development machines.  A GPU user overrides it,
# e.g.  make demo TORCH_SPEC="torch==2.5.1" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu124"

PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
DEMO_OUT ?= out/demo

.PHONY: demo test lint reliability bench bench-physics bench-accuracy bench-ensemble bench-transport bench-live bench-amortised bench-record bench-tomo bench-gui bench-census clean

$(VENV)/.base: pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(PIP) install -e ".[gui,formats]"
	touch $@

$(VENV)/.dev: $(VENV)/.base
	$(PIP) install -e ".[gui,formats,dev]"
	touch $@

demo: $(VENV)/.base
	$(PY) -m lorentz_live.demo --out $(DEMO_OUT)

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy lorentz_live acquisition_bridge gui

test: lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest

# the fault-injection suite, writing its table of case / expected / observed
reliability: $(VENV)/.dev
	RELIABILITY_REPORT=docs/reliability.md QT_QPA_PLATFORM=offscreen $(PY) -m pytest tests/faults -q

bench: bench-physics bench-accuracy bench-ensemble bench-transport bench-live bench-amortised bench-record bench-tomo bench-gui bench-census

bench-physics: $(VENV)/.dev
	$(PY) benchmarks/physics.py

bench-transport: $(VENV)/.dev
	$(PY) benchmarks/transport.py

bench-accuracy: $(VENV)/.dev
	$(PY) benchmarks/accuracy.py

bench-ensemble: $(VENV)/.dev
	$(PY) benchmarks/ensemble.py

bench-live: $(VENV)/.dev
	$(PY) benchmarks/live.py

bench-amortised: $(VENV)/.dev
	$(PY) benchmarks/live_amortised.py

bench-record: $(VENV)/.dev
	$(PY) benchmarks/record.py

bench-tomo: $(VENV)/.dev
	$(PY) benchmarks/tomo.py $(ARGS)

# viewer display rate, GUI-thread time, 10-minute memory soak (about 12 min)
bench-gui: $(VENV)/.dev
	QT_QPA_PLATFORM=offscreen $(PY) benchmarks/viewer.py

bench-census: $(VENV)/.dev
	$(PY) benchmarks/census.py

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .mypy_cache
