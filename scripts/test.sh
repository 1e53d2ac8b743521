#!/usr/bin/env bash
# Install pymodelkit with its test tools into a fresh virtual environment, then lint, type-check and run every test.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=${PYMODELKIT_TEST_VENV:-$root/.venv-test}

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
  echo "scripts/test.sh: needs Python 3.10 or newer as '$python' (set PYTHON=...)" >&2
  exit 1
fi
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    ver=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "python${ver}-venv" || \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
  else
    echo "scripts/test.sh: Python's venv module is missing: sudo apt-get install python3-venv" >&2
    exit 1
  fi
fi

rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e ".[test]"

echo "== ruff"
"$venv/bin/ruff" check .
echo "== mypy"
"$venv/bin/mypy"
echo "== modelkit:// plugin tests on the lowest MLflow pyproject.toml allows (scripts/test_mlflow_lowest.sh)"
bash scripts/test_mlflow_lowest.sh -q
echo "== pytest"
"$venv/bin/pytest" "$@"
