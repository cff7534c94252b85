#!/usr/bin/env bash
# Prints the path of a CPython 3.10 interpreter: openfhe's PyPI wheels exist for 3.10 only.
# Search order: $PYTHON310, python3.10 on PATH, pyenv's newest 3.10.x.
set -euo pipefail

is_py310() {
  "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' >/dev/null 2>&1
}

for candidate in "${PYTHON310:-}" "$(command -v python3.10 || true)"; do
  if [ -n "$candidate" ] && is_py310 "$candidate"; then
    echo "$candidate"
    exit 0
  fi
done

if command -v pyenv >/dev/null 2>&1; then
  for version in $(pyenv versions --bare 2>/dev/null | grep -E '^3\.10(\.[0-9]+)?$' | sort -t. -k3 -n -r); do
    candidate="$(pyenv prefix "$version")/bin/python3.10"
    if is_py310 "$candidate"; then
      echo "$candidate"
      exit 0
    fi
  done
fi

cat >&2 <<'MSG'
error: CPython 3.10 not found. The openfhe wheels on PyPI (1.6.1) are built for CPython 3.10 only.
Install it (for example `pyenv install 3.10.13`, or your distribution's python3.10 package with venv),
or point PYTHON310 at a 3.10 interpreter, then run the command again.
MSG
exit 1
