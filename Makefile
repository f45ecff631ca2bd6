# Traum-Engine. `make demo` and `make test` each set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench corpus lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,cluster]"
	touch $(STAMP)

demo: $(STAMP)  ## synthesise a kit, ingest it, render outbox/requests/demo.wav
	$(VENV)/bin/traum demo

test: $(STAMP)  ## the test suite (slow soak tests excluded)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)  ## every test, soak tests included
	$(PY) -m pytest -q

bench: $(STAMP)  ## ingest, render, search and latency benchmarks, and the soak
	$(PY) bench/bench_ingest.py
	$(PY) bench/accuracy.py
	$(PY) bench/real_kits.py
	$(PY) bench/bench_render.py
	$(PY) bench/fidelity.py
	$(PY) bench/bench_exports.py
	$(PY) bench/render_lmms.py
	$(PY) bench/bench_search.py
	$(PY) bench/bench_latency.py
	$(PY) bench/soak.py

corpus: $(STAMP)  ## rebuild daemon/ingest/data/base_corpus.npz (needs the packages in its SOURCES.md)
	$(PY) bench/build_corpus.py

lint: $(STAMP)  ## ruff, and the import contract (.importlinter: layers, no circles)
	$(VENV)/bin/ruff check daemon tests bench
	$(VENV)/bin/lint-imports

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
