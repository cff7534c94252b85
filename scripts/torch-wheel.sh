#!/usr/bin/env bash
# Prints a local CPU build of torch (a wheel file) that pip can install offline, or nothing.
# With --python: the interpreter that wheel is built for (python3.11, ...), found on PATH or in pyenv.
# TORCH_WHEEL in the environment wins; otherwise /opt/wheels and ~/wheels are searched.
set -euo pipefail
wheel="${TORCH_WHEEL:-}"
if [ -z "$wheel" ]; then
  wheel="$(ls -1 /opt/wheels/torch-*+cpu-*.whl ~/wheels/torch-*+cpu-*.whl 2>/dev/null | sort -V | tail -n 1 || true)"
fi
if [ "${1:-}" != "--python" ]; then
  echo "$wheel"
  exit 0
fi
tag="$(basename "$wheel" | sed -n 's/.*-cp\([0-9]\)\([0-9]*\)-.*/\1.\2/p')"
[ -n "$tag" ] || { echo "error: cannot tell the Python version of torch wheel '$wheel'" >&2; exit 1; }
for candidate in "$(command -v "python$tag" || true)" \
                 $(pyenv versions --bare 2>/dev/null | grep -E "^${tag//./\\.}(\.[0-9]+)?$" | sed "s|^|$(pyenv root 2>/dev/null)/versions/|;s|$|/bin/python$tag|"); do
  if [ -n "$candidate" ] && [ -x "$candidate" ]; then
    echo "$candidate"
    exit 0
  fi
done
echo "error: torch wheel $wheel needs Python $tag, which was not found" >&2
exit 1
