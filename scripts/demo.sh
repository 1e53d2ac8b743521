#!/usr/bin/env bash
# The main job, end to end: train a small scikit-learn model, log it with MLflow to a sqlite store in a temp dir,
# turn it into a ModelKit with the ten lines of scripts/demo_mlflow.py, push it to a local registry (Debian's
# docker-registry on a free loopback port, when installed; else the local store only), pull it into a clean store,
# unpack it into a clean folder, load it with mlflow.pyfunc.load_model and check its predictions equal the
# original's (scripts/demo_model.py). Everything lives in one temp dir, removed at the end with the registry.
# Usage: scripts/demo.sh   (PYMODELKIT_VENV: the venv to use or create, default .venv; PYTHON: the interpreter;
#                          PYMODELKIT_DEMO_REGISTRY: the registry binary, default /usr/bin/docker-registry)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${PYMODELKIT_VENV:-$root/.venv}
python=${PYTHON:-python3}

# A venv with pymodelkit[mlflow] and scikit-learn, (re)installed when missing or when pyproject.toml changed.
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
stamp="$venv/.pymodelkit-demo-stamp"
want=$(cksum < "$root/pyproject.toml")
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! "$venv/bin/python" -c 'import pymodelkit.mlflow, sklearn' 2>/dev/null; then
  echo "== installing pymodelkit[mlflow] and scikit-learn into $venv (takes a minute the first time)"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[mlflow]" scikit-learn
  echo "$want" > "$stamp"
fi
py="$venv/bin/python"
pmk="$venv/bin/pymodelkit"

work=$(mktemp -d)
registry_pid=""
cleanup() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
export KITOPS_HOME="$work/kitops-home"
export MLFLOW_TRACKING_URI="sqlite:///$work/mlflow.db"
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR=false
unset MLFLOW_REGISTRY_URI
cd "$work"  # MLflow's default experiment keeps its artifacts in ./mlruns: here, in the temp dir

registry=${PYMODELKIT_DEMO_REGISTRY:-/usr/bin/docker-registry}  # the registry binary; a missing one: local store only
if [ -x "$registry" ]; then
  port=$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$work/registry/data"
  cat > "$work/registry/config.yml" <<YAML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: "$work/registry/data"}}
http: {addr: "127.0.0.1:$port", secret: pymodelkit-demo}
YAML
  # The registry reads REGISTRY_* variables as config overrides: start it without any.
  env $(env | sed -n 's/^\(REGISTRY_[^=]*\)=.*/-u \1/p') "$registry" serve "$work/registry/config.yml" \
    >"$work/registry/log" 2>&1 &
  registry_pid=$!
  "$py" - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/v2/"
for _ in range(150):
    try:
        urllib.request.urlopen(url, timeout=1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(f"the registry at {url} did not come up")
PY
  tag="127.0.0.1:$port/demo/iris:v1"
  echo "== started $registry on 127.0.0.1:$port (pid $registry_pid)"
  export MODELKIT_PUSH=1
  pull_flag=--pull
  step="pull into a clean store, unpack into a clean folder"
else
  tag="demo/iris:v1"
  echo "== $registry is not installed (apt-get install docker-registry): using the local store only, no push or pull"
  pull_flag=""
  step="unpack into a clean folder"
fi

echo "== the ten lines: train, log with MLflow, pack${MODELKIT_PUSH:+ and push} as $tag (scripts/demo_mlflow.py)"
MODELKIT_TAG="$tag" "$py" "$root/scripts/demo_mlflow.py"
echo "== pymodelkit info $tag"
"$pmk" info "$tag"
echo "== $step, load with MLflow, compare with the original (scripts/demo_model.py)"
"$py" "$root/scripts/demo_model.py" "$tag" "$work" $pull_flag
echo "demo OK: the ModelKit made from the MLflow run loads in MLflow and predicts exactly as the original model"
