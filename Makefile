# Fresh-machine entry points. `make demo` and `make test` both set up .venv first (idempotent).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
STAMP := $(VENV)/.installed

.PHONY: install demo test bench clean-results

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Re-install only when the package metadata or the plugin list changes.
$(STAMP): $(PY) pyproject.toml constraints.txt $(wildcard plugins/*/pyproject.toml)
	$(PIP) install --quiet -c constraints.txt -e '.[test]' $(foreach p,$(PLUGINS),-e $(p))
	touch $(STAMP)

install: $(STAMP)

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/cxrbench run suites/quickstart.yaml
	$(VENV)/bin/cxrbench leaderboard --suite quickstart --latest

test: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

bench: install
	HF_HUB_OFFLINE=1 $(PY) -m pytest benchmarks --benchmark-enable --benchmark-only -m "" -q -s

clean-results:
	find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +
