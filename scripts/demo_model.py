"""The main job's check: get the ModelKit the ten lines made into a clean store (pulled from the registry, or the
local store when there is none), unpack it into a clean folder, load the model with ``mlflow.pyfunc.load_model``
and compare its predictions with the original logged model's; then follow its provenance back to the MLflow run.

Usage: demo_model.py REFERENCE WORKDIR [--pull] [--original MODEL_URI]   (MLFLOW_TRACKING_URI: the demo's store)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mlflow
import numpy as np
from sklearn.datasets import load_iris

import pymodelkit
from pymodelkit.mlflow import read_provenance_annotations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("reference")
    parser.add_argument("workdir", type=Path)
    parser.add_argument("--pull", action="store_true", help="pull REFERENCE into a clean store first")
    parser.add_argument("--original", default="models:/iris/latest", help="the logged model to compare with")
    args = parser.parse_args(argv)

    store = pymodelkit.LocalStore(args.workdir / "clean-kitops-home") if args.pull else pymodelkit.LocalStore()
    if args.pull:
        pulled = pymodelkit.pull(args.reference, store=store)
        print(f"pulled {pulled.reference} ({pulled.digest}, {pulled.bytes_fetched} bytes) into {store.home}")
    target = args.workdir / "deployed"
    unpacked = pymodelkit.unpack(args.reference, target, store=store)
    files = sorted(p.relative_to(target).as_posix() for p in unpacked.files)
    print(f"unpacked into {target}: {', '.join(files)}")

    features, _ = load_iris(return_X_y=True, as_frame=True)
    deployed = np.asarray(mlflow.pyfunc.load_model(str(target / "model")).predict(features))
    original = np.asarray(mlflow.pyfunc.load_model(args.original).predict(features))
    if not np.array_equal(deployed, original):
        print(f"FAILED: {int((deployed != original).sum())} of {len(features)} predictions differ", file=sys.stderr)
        return 1
    print(f"the unpacked model's predictions equal the original's on all {len(features)} rows")

    annotations = json.loads(pymodelkit.inspect(args.reference, store=store))["manifest"]["annotations"]
    provenance = read_provenance_annotations(annotations)
    run = mlflow.get_run(provenance["run-id"])
    print(f"traced back to MLflow run {run.info.run_id} ({run.info.run_name}) of experiment "
          f"{provenance['experiment-name']!r} at {provenance['tracking-uri']}: params {run.data.params}, "
          f"metrics {run.data.metrics}; registered as {provenance['registered-model-name']} "
          f"version {provenance['registered-model-version']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
