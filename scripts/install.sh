#!/usr/bin/env bash
# Create .venv (Python 3.11) with Sluice, its dashboard and its development tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
# A venv from an older checkout holds opencv-python-headless, whose cv2/ folder opencv-python
# (what Sluice now depends on) shares: remove it before the install, never after.
if .venv/bin/python -m pip show --quiet opencv-python-headless >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall --quiet --yes opencv-python-headless
  reinstall_cv2=1
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
# The uninstall above may have deleted files an already installed opencv-python owned.
if [ -n "${reinstall_cv2:-}" ] || ! .venv/bin/python -c "import cv2; cv2.imdecode" >/dev/null 2>&1; then
  version=$(.venv/bin/python -m pip show opencv-python | sed -n 's/^Version: //p')
  .venv/bin/python -m pip install --quiet --force-reinstall --no-deps "opencv-python==$version"
fi
.venv/bin/python -m pip check
