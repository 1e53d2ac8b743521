#!/usr/bin/env bash
# The main job, end to end: make a small model directory, pack it as a ModelKit, list, inspect and unpack it,
# and check the unpacked files are byte-identical. Everything happens under a temporary directory.
# Usage: scripts/demo.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${PYMODELKIT_VENV:-$root/.venv}
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/pymodelkit" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export KITOPS_HOME="$work/kitops-home"
pmk="$venv/bin/pymodelkit"

"$venv/bin/python" "$root/scripts/demo_model.py" "$work/model"
echo "== Kitfile"; cat "$work/model/Kitfile"
echo "== pack"; "$pmk" pack "$work/model" -t demo/churn:v1
echo "== list"; "$pmk" list
echo "== info"; "$pmk" info demo/churn:v1
echo "== inspect"; "$pmk" inspect demo/churn:v1
echo "== unpack"; "$pmk" unpack demo/churn:v1 -d "$work/out"
echo "== fsck"; "$pmk" fsck
diff -r --exclude=Kitfile "$work/model" "$work/out"
echo "demo OK: the unpacked files are identical to the packed ones"
