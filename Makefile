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

demo: $(STAMP)
	$(PY) -m semiseg.pretext
	$(PY) launch/run_grid.py --exp demo --max-parallel 2
	$(PY) reports/make_tables.py --exp demo

test: $(STAMP)
	$(PY) -m pytest -q
