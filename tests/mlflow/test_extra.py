"""MLflow stays an optional extra: the core and the CLI never import it, and without it the import error says how
to install it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_core_and_cli_do_not_import_mlflow() -> None:
    done = _run(
        "import sys, pymodelkit, pymodelkit.cli.main, pymodelkit.cli.mlflow\n"
        "pymodelkit.pack; pymodelkit.unpack; pymodelkit.push; pymodelkit.info\n"
        "print(sorted(m for m in sys.modules if m == 'mlflow' or m.startswith(('mlflow.', 'pymodelkit.mlflow'))))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


def test_import_without_mlflow_says_how_to_install() -> None:
    done = _run("import sys\nsys.modules['mlflow'] = None\nimport pymodelkit.mlflow")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "ImportError: pymodelkit.mlflow needs MLflow: pip install 'pymodelkit[mlflow]'"
    )


def test_docs_show_the_demo_ten_lines() -> None:
    root = Path(__file__).resolve().parents[2]
    script = (root / "scripts" / "demo_mlflow.py").read_text()
    code = script.split('"""', 2)[2].lstrip("\n")  # the script without its docstring
    docs = (root / "docs" / "mlflow.md").read_text()
    section = docs.split("## The ten lines", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert block is not None
    assert block.group(1) == code


def test_public_names() -> None:
    import pymodelkit.mlflow

    assert pymodelkit.mlflow.__all__ == [
        "ANNOTATION_FIELDS", "ANNOTATION_PREFIX", "MODEL_DIR", "PARAMETERS_KEY", "MlflowPackResult", "ModelOrigin",
        "Provenance", "ResolvedModel", "check_tracking_store", "fetch_model", "fetch_provenance", "pack_mlflow_model",
        "read_provenance_annotations", "redact_uri",
    ]
    assert all(getattr(pymodelkit.mlflow, name) is not None for name in pymodelkit.mlflow.__all__)
