# bayes_nlme: `make demo` (a Bayesian fit of the bundled Theophylline model and its report)
# and `make test` (the default test suite). Both set up .venv themselves.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_out

.PHONY: demo test test-slow venv clean bench lint format

$(STAMP): pyproject.toml
	@bash .ci/find_python.sh $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m bayes_nlme check models/theophylline.toml --data theophylline
	$(PY) -m bayes_nlme fit models/theophylline.toml --data theophylline --out $(DEMO_OUT)/nuts
	$(PY) -m bayes_nlme report $(DEMO_OUT)/nuts
	@echo "Report: $(DEMO_OUT)/nuts/report.html"

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check bayes_nlme tests benchmarks
	$(VENV)/bin/ruff format --check bayes_nlme tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix bayes_nlme tests benchmarks
	$(VENV)/bin/ruff format bayes_nlme tests benchmarks

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) benchmarks/engine.py
	$(PY) benchmarks/scale.py
	$(PY) benchmarks/focei_theophylline.py
	$(PY) benchmarks/nuts_vs_stan.py
	$(PY) benchmarks/sensitivity_pool.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
