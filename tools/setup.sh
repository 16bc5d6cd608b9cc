#!/usr/bin/env bash
# Set up (or reuse) the project environment on a fresh Debian/Ubuntu machine:
#   - Debian's libsndfile1 (fairseq2n refuses to import without it),
#   - a virtual environment in .venv with the pinned stack (pyproject.toml) and this project.
# Safe to run again: it skips what is already there. Prints where each step stands.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)'; then
  echo "setup: need Python 3.10-3.12 (fairseq2n ships wheels for those only); set PYTHON=..." >&2
  exit 1
fi

if ! ldconfig -p 2>/dev/null | grep -q libsndfile.so.1; then
  echo "setup: installing libsndfile1 (Debian package)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq libsndfile1 >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi

# Reinstall only when the pins changed (a stamp of pyproject.toml's hash).
stamp=.venv/.cocomix-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing the pinned stack into .venv (first time: ~4 GB download, ~5 minutes)"
  .venv/bin/pip install --quiet -e ".[test]"
  echo "$want" > "$stamp"
fi
.venv/bin/python -c "import fairseq2, hydra, sentencepiece; print('setup: ok (fairseq2', fairseq2.__version__ + ')')"
