#!/usr/bin/env bash
# Prints 1 when `make test` can build the native extension here, else 0 with the reason on stderr:
# CMake and a C++ compiler, and OpenFHE's sources (the tarball given as $1, an install already built into
# the cache, or GitHub within reach).
set -u
tarball="${1:-}"
if ! command -v cmake >/dev/null || ! command -v c++ >/dev/null; then
  echo "native path skipped: no cmake or C++ compiler" >&2; echo 0; exit 0
fi
if [ -n "$tarball" ] && [ -f "$tarball" ]; then echo 1; exit 0; fi
cache="${RESNET_FHE_NATIVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/resnet-fhe/native}"
if compgen -G "$cache/openfhe-v1.5.1-*/.resnet-fhe-complete" >/dev/null; then echo 1; exit 0; fi
if timeout 15 git ls-remote https://github.com/openfheorg/openfhe-development.git HEAD >/dev/null 2>&1; then
  echo 1; exit 0
fi
echo "native path skipped: no OpenFHE sources (set OPENFHE_TARBALL to the vendored tarball, or go online)" >&2
echo 0
