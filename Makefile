# The whole interface for a newcomer: `make demo` and `make test` (each runs `make setup`).
SHELL := /bin/bash
PY := .venv/bin/python
export QT_QPA_PLATFORM ?= offscreen

.PHONY: setup test demo bench package clean

setup:
	@bash scripts/setup.sh

test: setup
	$(PY) -m pytest

demo: setup
	$(PY) scripts/demo.py

bench: setup
	$(PY) benchmarks/bench_rasterize.py
	$(PY) benchmarks/bench_download.py
	$(PY) benchmarks/bench_export.py
	$(PY) benchmarks/bench_superres.py
	$(PY) benchmarks/bench_cluster.py

package: setup
	$(PY) scripts/package.py

clean:
	rm -rf dist .pytest_cache .hypothesis build-demo
	find . -name __pycache__ -prune -exec rm -rf {} +
