# Two commands on a fresh Debian/Ubuntu VM: `make demo` and `make test`.
# Both run `make setup` first; a second `make setup` only checks stamps and takes seconds.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
APT_PACKAGES := $(shell cat packages.apt | grep -v '^\#')

.PHONY: setup demo test test-vm unit integration bench clean-net lint

setup: $(STAMP)

# The stamp depends on every file that decides what gets installed.
$(STAMP): packages.apt requirements.txt pyproject.toml
	@scripts/install-system-packages $(APT_PACKAGES)
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)
	@echo "setup: done ($(VENV)/bin/testbed)"

demo: setup
	$(VENV)/bin/testbed demo

test: setup lint
	$(PY) -m pytest -q tests

# Inside a micro-VM booting Debian's kernel (real IPVS, OVS kernel datapath, netem): tests/vm and the
# ipvs-mode live suite. Skips with the reason where qemu cannot run.
test-vm: setup
	scripts/test-vm

lint: setup
	$(VENV)/bin/ruff check .

unit: setup
	$(PY) -m pytest -q -m "not integration" tests

integration: setup
	$(PY) -m pytest -q -m integration tests

bench: setup
	$(PY) benchmarks/controlplane_apply.py

clean-net: setup
	$(VENV)/bin/testbed clean
