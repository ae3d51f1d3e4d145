# The two commands a new user runs (see README.md): `make demo` and `make test`.
# Each first brings the machine up to what it needs, idempotently: apt packages, a venv in .venv, the
# project installed into it. A second run finds everything in place and takes a second or two.

SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := .make
# Tools the tests, the demo and the builds run on this machine (the sandbox hosts get theirs from the recipe);
# tmux: the --watch test reads a real terminal.
APT_PACKAGES := packer openssh-server openssh-client debootstrap git rsync iproute2 util-linux python3-venv ca-certificates tmux
PYTEST_ARGS ?=
# Two workers (pytest-xdist; the machine has 2 cores): tests that boot sandbox hosts share one (tests/conftest.py).
PYTEST_WORKERS ?= 2

.PHONY: help setup apt venv test lint docs docs-check unit demo bench clean

help:
	@echo "make demo   run the whole flow against a local AWS emulator and a sandbox host"
	@echo "make test   lint, type-check, build the docs (strict) and run the test suite"
	@echo "make lint   ruff + mypy only;  make bench  the benchmarks;  make clean  remove build products"
	@echo "make docs   build the documentation site into site/ (offline)"

setup: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "missing packages: $$missing (run as root, or: sudo apt-get install -y $$missing)"; exit 1; fi; \
	  echo "installing: $$missing"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP)/venv: pyproject.toml
	@mkdir -p $(STAMP)
	@py=$$(for c in python3.13 python3.12 python3.11 python3; do \
	  $$c -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$c; break; }; done); \
	  [ -n "$$py" ] || { echo "Python 3.11+ is needed (apt-get install python3.11)"; exit 1; }; \
	  [ -x $(PY) ] || $$py -m venv $(VENV)
	@echo "installing the project and its tools into $(VENV) (pip; log in $(STAMP)/pip.log)"
	@$(PY) -m pip install -q -e '.[dev]' > $(STAMP)/pip.log 2>&1 || { tail -20 $(STAMP)/pip.log; exit 1; }
	@# The editable install maps only the shipped packages (agent, bootstrap). The test stand-ins (rig/) and
	@# bench/ are development-only, never in the wheel: this .pth puts the checkout on the venv's sys.path, so
	@# `import rig` works in tests, bench scripts (python bench/x.py) and `invoke demo` without sys.path edits.
	@$(PY) -c 'import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()["purelib"], "dcp_control_node_dev.pth").write_text("$(CURDIR)\n")'
	@touch $@

venv: $(STAMP)/venv

lint: setup
	$(VENV)/bin/ruff check agent bootstrap rig tests bench tasks.py
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

# The documentation site (mkdocs.yml, docs/): strict, so a broken link or a page missing from the nav fails.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

docs-check: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir $(STAMP)/site

test: lint docs-check unit

demo: setup
	$(VENV)/bin/invoke demo

bench: setup
	$(PY) bench/agent_check.py
	$(PY) bench/fix_apply.py
	$(PY) bench/login.py
	$(PY) bench/bootstrap.py
	$(PY) bench/build_ami.py

clean:
	rm -rf build dist *.egg-info $(STAMP) .mypy_cache .ruff_cache .pytest_cache packer/build site
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
