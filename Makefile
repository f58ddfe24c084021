# Fresh-machine entry points. `make demo` and `make test` both set up .venv first (idempotent).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
PLUGINS := $(sort $(dir $(wildcard plugins/*/pyproject.toml)))
PLUGIN_META := $(wildcard plugins/*/pyproject.toml)
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# Test and optional runtimes (ONNX Runtime, Grad-CAM, Ray, MedMNIST, DICOM, kornia) are only needed by `make test`.
DEV_EXTRAS := test,edge,report,ray,medmnist,dicom,gpu

.PHONY: install install-dev demo test bench clean-results gpu-wheels

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Re-install only when the package metadata or the plugin list changes.
$(STAMP): $(PY) pyproject.toml constraints.txt $(PLUGIN_META)
	$(PIP) install --quiet -c constraints.txt -e . $(foreach p,$(PLUGINS),-e $(p))
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(PIP) install --quiet -c constraints.txt -e '.[$(DEV_EXTRAS)]'
	touch $(DEV_STAMP)

install: $(STAMP)

install-dev: $(DEV_STAMP)

demo: install
	HF_HUB_OFFLINE=1 $(VENV)/bin/cxrbench run suites/quickstart.yaml

test: install-dev
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

bench: install-dev
	HF_HUB_OFFLINE=1 $(PY) -m pytest benchmarks --benchmark-only -m "" -q -s

clean-results:
	find results -mindepth 1 -maxdepth 1 ! -name README.md -exec rm -rf {} +

# Wheels the lent GPU machine lacks (its Python 3.12 has torch, torchvision, timm, ...; no registry):
# carried with the repository copy and installed there by benchmarks/gpu_check.sh. Not committed.
GPU_WHEELS := pydantic pydantic-core annotated-types typing-inspection typing-extensions ptflops kornia kornia_rs
gpu-wheels:
	$(PIP) download --no-deps --python-version 3.12 --only-binary=:all: -d wheels $(GPU_WHEELS)
