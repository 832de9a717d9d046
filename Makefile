.PHONY: install test lint bench demo

install:
	python3 -m pip install -e ".[test]"

test:
	python3 -m pytest

lint:
	ruff check src tests
	mypy

bench:
	python3 benchmarks/generate.py --events 10_000_000 --leads 1_000_000
	python3 benchmarks/bench_batch.py
	python3 benchmarks/bench_incremental.py

demo:
	leadscore demo
