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

# The torch extra (importing torch models, training the MNIST CNNs): torch's CPU build in its own venv,
# .venv-torch, on the newest Python it has a wheel for (the engine's .venv is 3.10 for openfhe's wheels,
# and PyPI's torch for 3.10 is a 4.7 GB CUDA build). TORCH_WHEEL names a local CPU wheel; `make test`
# runs the torch tests where one is found (scripts/torch-wheel.sh), TORCH=0 skips them.
TORCH_VENV := .venv-torch
TORCH_WHEEL ?= $(shell scripts/torch-wheel.sh)
ifneq ($(filter test,$(MAKECMDGOALS)),)
TORCH ?= $(if $(TORCH_WHEEL),1,0)
endif
TORCH ?= 0

.PHONY: setup bench test lint clean native torch test-torch train-mnist train-privacy

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

test: setup $(if $(filter 1,$(NATIVE)),native) $(if $(filter 1,$(TORCH)),torch)
	$(VENV)/bin/ruff check .
	OMP_NUM_THREADS=$(THREADS) RESNET_FHE_REQUIRE_NATIVE=$(NATIVE) $(PY) -m pytest -q --durations=15 $(ARGS)
	$(if $(filter 1,$(TORCH)),$(MAKE) --no-print-directory test-torch)

torch: $(TORCH_VENV)/.installed

$(TORCH_VENV)/.installed:
	@test -n "$(TORCH_WHEEL)" || { echo "no torch CPU wheel found: set TORCH_WHEEL=path/to/torch-...+cpu-...whl" >&2; exit 1; }
	"$$(scripts/torch-wheel.sh --python)" -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip install --quiet "$(TORCH_WHEEL)" 'numpy>=1.24' 'psutil>=5.9' 'pytest>=7'
	@touch $@

# The tracer's tests with torch (the engine's modules they use need only numpy).
test-torch: torch
	PYTHONPATH=. OMP_NUM_THREADS=$(THREADS) $(TORCH_VENV)/bin/python -m pytest -q tests/test_torch_import.py \
	  tests/test_reference.py -k "torch"

# The shipped CryptonDL-shaped CNNs (weights/cryptondl-*.npz): bench/train_mnist.py, minutes on 2 cores.
train-mnist: torch
	PYTHONPATH=. $(TORCH_VENV)/bin/python bench/train_mnist.py --dataset mnist --out weights/cryptondl-mnist.npz
	PYTHONPATH=. $(TORCH_VENV)/bin/python bench/train_mnist.py --dataset fashion-mnist \
	  --out weights/cryptondl-fashion-mnist.npz

# Issue 14's models (weights/pixel-*.npz, chunk-cnn-neu*.npz), then their figures (bench/privacy.py).
# The ResNet20 fine-tune (two runs, the second continuing the first) takes about 2 h 45 min, the rest a few
# minutes each.
train-privacy: torch
	PYTHONPATH=. $(TORCH_VENV)/bin/python bench/train_mnist.py --dataset mnist --model even-cryptondl --pixel-encrypt \
	  --out weights/pixel-cryptondl-mnist.npz
	PYTHONPATH=. $(TORCH_VENV)/bin/python bench/train_mnist.py --dataset fashion-mnist --model even-cryptondl \
	  --pixel-encrypt --out weights/pixel-cryptondl-fashion-mnist.npz
	PYTHONPATH=. $(TORCH_VENV)/bin/python bench/train_neu.py --threads 1 --out weights/chunk-cnn-neu.npz
	PYTHONPATH=. $(TORCH_VENV)/bin/python bench/train_neu.py --shape paper --out weights/chunk-cnn-neu-paper.npz
	PYTHONPATH=. $(TORCH_VENV)/bin/python bench/train_neu.py --threads 1 --server-view \
	  --out weights/chunk-cnn-neu-server-view.npz
	PYTHONPATH=. $(TORCH_VENV)/bin/python bench/train_cifar_pixel.py --invariant --augment --distill --epochs 30 --threads 2 \
	  --out build/pixel-resnet20-stage1.npz
	PYTHONPATH=. $(TORCH_VENV)/bin/python bench/train_cifar_pixel.py --invariant --augment --distill --cutmix 0.5 \
	  --init build/pixel-resnet20-stage1.npz --epochs 32 --lr 0.02 --threads 2 --out weights/pixel-resnet20.npz

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) $(TORCH_VENV) results $(NATIVE_BUILD) resnet_fhe/_native*.so
