# Two commands: `make demo` and `make test` (both create .venv and install on first use).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

# The demo's cells: UniMatch and supervised at 1/16 over two seeds (the seed spread); the full grid
# (FixMatch, 1/4 too) is `launch/run_grid.py --exp demo --max-parallel 2`.
DEMO_CELLS := --splits 1_16 --methods unimatch,supervised --seed-list 0,1

demo: $(STAMP)
	PYTHONUNBUFFERED=1 $(PY) -m semiseg.pretext
	PYTHONUNBUFFERED=1 $(PY) launch/run_grid.py --exp demo $(DEMO_CELLS) --max-parallel 2
	$(PY) reports/make_tables.py --exp demo
	@echo "demo done: the table is reports/out/demo.md, the plots reports/out/demo_*.png; browse the runs with" \
		"$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db (then http://127.0.0.1:5000)"

test: $(STAMP)
	$(PY) -m pytest -q
