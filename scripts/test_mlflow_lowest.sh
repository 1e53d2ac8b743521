#!/usr/bin/env bash
# Run the modelkit:// MLflow plugin's tests (tests/mlflow/test_artifact_repo.py) against the lowest MLflow that
# pyproject.toml allows, in its own virtual environment (the dev venv holds the highest).
# Usage: scripts/test_mlflow_lowest.sh [pytest args...]
# Environment: MLFLOW_LOWEST (default 2.16.2, the floor of the mlflow extra), MLFLOW_LOWEST_VENV (default
# .venv-mlflow-lowest; reused while it holds that MLflow), PYTHON (default python3, 3.10 or newer).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
lowest=${MLFLOW_LOWEST:-2.16.2}
venv=${MLFLOW_LOWEST_VENV:-$root/.venv-mlflow-lowest}
python=${PYTHON:-python3}

have() {
  [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$lowest" <<'EOF' 2>/dev/null
import sys, warnings
warnings.simplefilter("ignore")
import mlflow, pytest, sklearn  # noqa: F401
sys.exit(0 if mlflow.__version__ == sys.argv[1] else 1)
EOF
}

if ! have; then
  echo "== creating $venv with mlflow==$lowest"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # MLflow 2.16's sqlite store imports sqlalchemy.pool.FallbackAsyncAdaptedQueuePool, gone in SQLAlchemy 2.1 (its own
  # pin, sqlalchemy<3, lets 2.1 in): hold SQLAlchemy below 2.1 for MLflow 2.
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "mlflow==$lowest" scikit-learn pytest \
    $(case "$lowest" in 2.*) echo "sqlalchemy<2.1" ;; esac) 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e . 2>&1 \
  | { grep -v "is ignored: it is neither a file nor a directory" || true; }
"$venv/bin/python" -c 'import mlflow; print("== pytest with mlflow", mlflow.__version__)'
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/mlflow/test_artifact_repo.py "$@"
