# Two entry points (see README): `make bench` and `make test`. Both set up .venv first.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
THREADS ?= 2

# The native extension (CMakeLists.txt): OpenFHE is built once per machine into ~/.cache/resnet-fhe/native.
# Offline, OPENFHE_TARBALL (or the environment's RESNET_FHE_OPENFHE_TARBALL) names the vendored sources.
OPENFHE_TARBALL ?= $(or $(RESNET_FHE_OPENFHE_TARBALL),$(firstword $(wildcard ../shared/vendor/openfhe-development-v1.5.1.tar.gz)))
NATIVE_BUILD := build/native
# NATIVEOPT=ON: OpenFHE and the extension built for this machine's CPU (-march=native; its own cache entry).
NATIVEOPT ?= OFF
# `make test` builds and tests the native path where CMake, a C++ compiler and OpenFHE's sources are at
# hand (scripts/native-available.sh says why not); NATIVE=0 skips it, NATIVE=1 insists.
ifneq ($(filter test,$(MAKECMDGOALS)),)
NATIVE ?= $(shell scripts/native-available.sh "$(OPENFHE_TARBALL)")
endif
NATIVE ?= 0

.PHONY: setup bench test lint clean native

setup: $(STAMP)

# Re-installs only when pyproject.toml changes, so a second `make` is fast.
$(STAMP): pyproject.toml
	@test -x $(PY) || "$$(scripts/find-python310.sh)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

bench: setup
	OMP_NUM_THREADS=$(THREADS) $(PY) bench/resnet20.py $(ARGS)

native: setup
	CMAKE_BUILD_PARALLEL_LEVEL=$(THREADS) cmake -S . -B $(NATIVE_BUILD) -DPython_EXECUTABLE=$(abspath $(PY)) \
	  -DWITH_NATIVEOPT=$(NATIVEOPT) \
	  $(if $(OPENFHE_TARBALL),-DOPENFHE_SOURCE_TARBALL=$(abspath $(OPENFHE_TARBALL)))
	cmake --build $(NATIVE_BUILD) --parallel $(THREADS)

test: setup $(if $(filter 1,$(NATIVE)),native)
	$(VENV)/bin/ruff check .
	OMP_NUM_THREADS=$(THREADS) RESNET_FHE_REQUIRE_NATIVE=$(NATIVE) $(PY) -m pytest -q $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) results $(NATIVE_BUILD) resnet_fhe/_native*.so
