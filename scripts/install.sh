#!/usr/bin/env bash
# Create .venv (Python 3.11) with Sluice and its development tools. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python -m pip install --quiet -e ".[dev]"
# The PP-OCR models ship in this wheel; its own dependencies (a second OpenCV build among them)
# are not needed, since Sluice only loads the ONNX files.
.venv/bin/python -m pip install --quiet --no-deps "rapidocr-onnxruntime==1.4.4"
