.PHONY: test lint bench demo mutation

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

# The mutation run (tests/README.md): MUTATION_SAMPLE=N takes N seeded mutants per module
# (0: every mutant; about an hour on 2 cores), MUTATION_SEED picks them, MUTATION_ARGS adds
# more (--module isotime.py, --ci, --write-summary). Needs pip install -e ".[test,mutation]".
MUTATION_SAMPLE ?= 0
MUTATION_SEED ?= 1
mutation:
	python tests/mutation/run.py --sample $(MUTATION_SAMPLE) --seed $(MUTATION_SEED) $(MUTATION_ARGS)
