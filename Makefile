# Two entry points (see README): `make bench` and `make test`. Both set up .venv first.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
THREADS ?= 2

.PHONY: setup bench test lint clean

setup: $(STAMP)

# Re-installs only when pyproject.toml changes, so a second `make` is fast.
$(STAMP): pyproject.toml
	@test -x $(PY) || "$$(scripts/find-python310.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

bench: setup
	OMP_NUM_THREADS=$(THREADS) $(PY) bench/resnet20.py $(ARGS)

test: setup
	$(VENV)/bin/ruff check .
	OMP_NUM_THREADS=$(THREADS) $(PY) -m pytest -q $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) results
