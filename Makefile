# Two commands: `make demo` and `make test` (both create .venv and install on first use).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The demo needs only the core dependencies; the suite adds the test extras (Ray, submitit, the data tools,
# linters) on top. uv (bootstrapped into the venv by pip) downloads and unpacks in parallel and compiles the
# bytecode on both cores: the core install takes about 50 s where pip took about 2 min (docs/demo.md).
# constraints.txt holds torch at the release the documented figures were measured with. uv reads no pip
# configuration: where it cannot install (no uv wheel, an index only pip is configured for), pip does.
UV := $(VENV)/bin/uv
UV_INSTALL := $(UV) pip install --quiet --python $(PY) --compile-bytecode --constraint constraints.txt
PIP_INSTALL := $(PY) -m pip install --quiet --constraint constraints.txt
# $(call pkg_install,ARGS): uv first, pip where uv fails
pkg_install = $(UV_INSTALL) $(1) || { echo "uv could not install; installing with pip instead"; $(PIP_INSTALL) $(1); }
CORE := $(VENV)/.installed-core
FULL := $(VENV)/.installed-test

.PHONY: demo test install

install: $(FULL)

$(CORE): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	test -x $(UV) || $(PY) -m pip install --quiet uv || true
	$(call pkg_install,-e .)
	touch $@

$(FULL): $(CORE)
	$(call pkg_install,-e '.[test]')
	touch $@

# The demo's cells: UniMatch and supervised at 1/16 over two seeds (the seed spread); the full grid
# (FixMatch, 1/4 too) is `launch/run_grid.py --exp demo --max-parallel 2`.
DEMO_CELLS := --splits 1_16 --methods unimatch,supervised --seed-list 0,1

demo: $(CORE)
	PYTHONUNBUFFERED=1 $(PY) -m semiseg.pretext
	PYTHONUNBUFFERED=1 $(PY) launch/run_grid.py --exp demo $(DEMO_CELLS) --max-parallel 2
	$(PY) reports/make_tables.py --exp demo
	@echo "demo done: the table is reports/out/demo.md, the plots reports/out/demo_*.png; browse the runs with" \
		"$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db (then http://127.0.0.1:5000)"

test: $(FULL)
	$(PY) -m pytest -q
