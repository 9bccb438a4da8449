# Two entry points, both safe to run on a fresh Debian machine with Python 3.11+.
.PHONY: build test lint format

build:  ## set up, then check records/ and build everything under out/
	scripts/setup.sh png,preview
	.venv/bin/dossier build

test:  ## set up with the test extras, then lint and run every test
	scripts/setup.sh test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/python -m pytest -n 2 --dist loadfile  # two processes: CI has two cores

format:
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .
