#!/usr/bin/env bash
# Install advtransfer and its pinned dependencies into the Python environment of $1 (a python executable).
# The one definition of "how to install", used by `make venv`, the nox sessions and the Dockerfiles.
#
# torchattacks 3.5.1 pins requests~=2.25.1 (an old release with known CVEs) but never imports requests, so it is
# installed with --no-deps; its real runtime needs (scipy, tqdm, numpy, torch) come from pyproject.toml.
set -euo pipefail
python="${1:-python3}"
extras="${2:-test}"
here="$(cd "$(dirname "$0")/.." && pwd)"
pip=("$python" -m pip install --disable-pip-version-check -q)
"${pip[@]}" "torch==2.14.1" "torchvision==0.29.1"
"${pip[@]}" --no-deps "torchattacks==3.5.1"
"${pip[@]}" -e "${here}[$extras]"
