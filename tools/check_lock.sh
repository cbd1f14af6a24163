#!/usr/bin/env bash
# Check the lock (`make check-lock`): a fresh venv, requirements/lock.txt installed with --require-hashes, the
# project with --no-deps, the test tools from requirements/test-lock.txt (hashed too), then `pip check` and the
# fast test suite. The venv is removed afterwards (a torch venv is ~5.5 GB); KEEP_VENV=1 keeps it.
#
# Usage: tools/check_lock.sh [PYTHON] [-- PYTEST ARGS]   (default pytest args: -q -m "not slow" -x)
set -euo pipefail
python="${1:-python3}"
shift || true
[ "${1:-}" = "--" ] && shift
pytest_args=("$@")
[ ${#pytest_args[@]} -eq 0 ] && pytest_args=(-q -m "not slow" -x)
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/advtransfer-check-lock.XXXXXX")"
cleanup() { if [ "${KEEP_VENV:-0}" = 1 ]; then echo "venv kept: $tmp/venv"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT
venv="$tmp/venv"
pip=("$venv/bin/python" -m pip install --disable-pip-version-check -q --no-deps)

start=$SECONDS
set -x
"$python" -m venv "$venv"
"${pip[@]}" --require-hashes -r requirements/lock.txt
"${pip[@]}" --require-hashes -r requirements/test-lock.txt
# Editable, like tools/install.sh: the configs under experiments/ are found beside the package's source. The
# build uses the locked setuptools (no build isolation), so nothing unhashed is installed.
"${pip[@]}" --no-build-isolation -e .
{ set +x; } 2>/dev/null
echo "install: $((SECONDS - start)) s"

# pip check must only report the dependency dropped on purpose (torchattacks -> requests, never imported).
problems="$("$venv/bin/python" -m pip check 2>&1 | grep -v -E '^torchattacks [0-9.]+ requires requests,' || true)"
if [ -n "$problems" ] && [ "$problems" != "No broken requirements found." ]; then
  echo "pip check: $problems" >&2
  exit 1
fi
"$venv/bin/python" -c 'import advtransfer, art, torch, torchattacks, torchvision; print("torch", torch.__version__)'

start=$SECONDS
PATH="$venv/bin:$PATH" "$venv/bin/python" -m pytest "${pytest_args[@]}"
echo "tests: $((SECONDS - start)) s"
