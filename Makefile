.PHONY: test lint bench demo

test:
	pytest -q

lint:
	ruff check .
	ruff format --check .
	mypy

bench:
	python bench/run.py --markdown

demo:
	lite2pg demo
