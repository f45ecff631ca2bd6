# Traum-Engine. `make demo` and `make test` each set up .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)  ## synthesise a kit, ingest it, render outbox/requests/demo.wav
	$(VENV)/bin/traum demo

test: $(STAMP)  ## the test suite (slow soak tests excluded)
	$(PY) -m pytest -m "not slow" -q

test-all: $(STAMP)  ## every test, soak tests included
	$(PY) -m pytest -q

bench: $(STAMP)  ## ingest, render, search and latency benchmarks
	$(PY) bench/bench_ingest.py
	$(PY) bench/accuracy.py
	$(PY) bench/bench_render.py
	$(PY) bench/render_lmms.py
	$(PY) bench/bench_search.py
	$(PY) bench/bench_latency.py

lint: $(STAMP)
	$(VENV)/bin/ruff check daemon tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
