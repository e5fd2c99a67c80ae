# Two commands do all the set-up on a fresh machine:
#   make demo   -> the main job on the embedded synthetic dataset, to a scored submission
#   make test   -> the test suite (CI)
#   make test-fast -> unit and config tests only (tests marked slow deselected), under a minute
# Both create .venv and install the pinned stack on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean-runs

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m ndar run --config configs/main/synthetic.yaml

test: $(STAMP)
	$(PY) -m pytest -q -x --durations=15

test-fast: $(STAMP)
	$(PY) -m pytest -q -x -m "not slow" --durations=10

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests bench

clean-runs:
	rm -rf runs
