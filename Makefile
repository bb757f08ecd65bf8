# Two commands from a fresh clone: `make demo` and `make test` (each creates .venv on first use).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: demo test test-slow lint docs bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@ $(VENV)/.installed $(VENV)/.installed-docs

$(VENV)/.installed-docs: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[docs]"
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/genae fit --config configs/quickstart.yaml
	@echo "grids written to $$(ls -td outputs/quickstart/injflow_ln_digits/version_* | head -1)/ (recon.png, samples_gmm.png, ...)"

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n auto

# The end-to-end runs of minutes (bench/ scripts, a pip install, a whole tiny study); CI runs them.
test-slow: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n auto -m "slow and not gpu"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

# The documentation site (mkdocs-material + mkdocstrings, API pages from the docstrings) into
# site/; --strict: every warning (a broken link, an unresolved reference) is an error.
docs: $(VENV)/.installed-docs
	$(BIN)/mkdocs build --strict

bench: $(VENV)/.installed
	$(BIN)/python bench/step_time.py

clean:
	rm -rf outputs lightning_logs .pytest_cache site
