"""The ten lines (docs/mlflow.md): train a model, log it with MLflow, turn it into a ModelKit and push it.

Run by scripts/demo.sh with MLFLOW_TRACKING_URI set, MODELKIT_TAG naming the ModelKit and MODELKIT_PUSH=1 to push.
"""

import os

import mlflow
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from pymodelkit.mlflow import pack_mlflow_model

X, y = load_iris(return_X_y=True, as_frame=True)
with mlflow.start_run(run_name="iris-demo"):
    mlflow.log_params({"C": 0.5, "max_iter": 500})
    model = LogisticRegression(C=0.5, max_iter=500).fit(X, y)
    mlflow.log_metric("accuracy", model.score(X, y))
    mlflow.sklearn.log_model(model, name="model", registered_model_name="iris", input_example=X.head(3))

result = pack_mlflow_model("models:/iris/latest", tag=os.environ["MODELKIT_TAG"], push="MODELKIT_PUSH" in os.environ)
print(f"ModelKit {result.reference} {result.digest}, pushed: {result.push is not None}")
