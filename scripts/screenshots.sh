#!/usr/bin/env bash
# Regenerates docs/img/*.png: the tiny pipeline against a real Prefect server and MLflow server on
# 127.0.0.1, photographed by headless Chromium (tests/test_ui_browser.py keeps its screenshots here).
set -euo pipefail
cd "$(dirname "$0")/.."
EHNAS_SCREENSHOTS="$PWD/docs/img" "${VENV:-.venv}/bin/python" -m pytest -q -p no:cacheprovider tests/test_ui_browser.py "$@"
