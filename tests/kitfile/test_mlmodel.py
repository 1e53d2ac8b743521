"""MLflow-aware ``init``: MLmodel parsing, and MLflow model folders as one model wherever they are in the tree."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pymodelkit.kitfile import Code, Dataset, Docs, Kitfile, Model, ModelPart, Package, dump_kitfile
from pymodelkit.kitfile.generate import generate_kitfile
from pymodelkit.kitfile.mlmodel import MLmodelInfo, parse_mlmodel, read_mlmodel

ENV_FILES = {
    "conda.yaml": "channels:\n- conda-forge\ndependencies:\n- python=3.11.7\n- pip<=24.0\n- pip:\n  - mlflow==3.17.2\n"
    "  - scikit-learn==1.5.2\nname: mlflow-env\n",
    "python_env.yaml": "python: 3.11.7\nbuild_dependencies:\n- pip==24.0\n- setuptools==69.0.3\n- wheel\n"
    "dependencies:\n- -r requirements.txt\n",
    "requirements.txt": "mlflow==3.17.2\nnumpy==1.26.4\nscikit-learn==1.5.2\n",
}

SKLEARN_PICKLE = """artifact_path: file:///tmp/mlruns/1/models/m-0a1b2c3d4e5f60718293a4b5c6d7e8f9/artifacts
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.5.2
is_signature_from_type_hint: false
mlflow_version: 3.17.2
model_id: m-0a1b2c3d4e5f60718293a4b5c6d7e8f9
model_size_bytes: 1834
model_uuid: m-0a1b2c3d4e5f60718293a4b5c6d7e8f9
run_id: 5f0e6c1d2b3a49788796a5b4c3d2e1f0
saved_input_example_info:
  artifact_path: input_example.json
  pandas_orient: split
  serving_input_path: serving_input_example.json
  type: dataframe
signature:
  inputs: '[{"type": "double", "name": "a", "required": true}]'
  outputs: '[{"type": "long", "required": true}]'
  params: null
type_hint_from_example: false
utc_time_created: '2026-12-01 07:46:08.728581'
"""
SKLEARN_SKOPS = (
    SKLEARN_PICKLE.replace("model.pkl", "model.skops")
    .replace("serialization_format: cloudpickle", "serialization_format: skops")
    .replace("sklearn_version: 1.5.2", "sklearn_version: 1.9.1\n    skops_trusted_types: null")
)
PYTORCH = """artifact_path: mlflow-artifacts:/1/models/m-1111/artifacts
flavors:
  python_function:
    data: data
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pytorch
    pickle_module_name: mlflow.pytorch.pickle_module
    python_version: 3.11.7
  pytorch:
    code: null
    model_data: data
    pytorch_version: 2.5.1
mlflow_version: 3.17.2
model_id: m-1111
"""
TRANSFORMERS = """flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.transformers
    python_version: 3.11.7
  transformers:
    code: null
    components:
    - tokenizer
    framework: pt
    instance_type: TextClassificationPipeline
    model_binary: model
    pipeline_model_type: DistilBertForSequenceClassification
    source_model_name: distilbert-base-uncased-finetuned-sst-2-english
    task: text-classification
    tokenizer_type: DistilBertTokenizerFast
    torch_dtype: torch.float32
    transformers_version: 4.46.3
mlflow_version: 3.17.2
"""
MLFLOW2_RUN = """artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
    model_path: model.pkl
  sklearn:
    pickled_model: model.pkl
    serialization_format: cloudpickle
    sklearn_version: 1.3.2
mlflow_version: 2.16.2
model_uuid: 3b1c0d2e4f5a46b7a8c9d0e1f2a3b4c5
run_id: 0d1e2f3a4b5c46d7e8f9a0b1c2d3e4f5
"""
PYFUNC = """flavors:
  python_function:
    artifacts: {}
    cloudpickle_version: 3.1.0
    code: code
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.pyfunc.model
    python_model: python_model.pkl
    python_version: 3.11.7
    streamable: false
mlflow_version: 3.17.2
"""


@pytest.fixture
def warnings_log() -> Iterator[list[str]]:
    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("pymodelkit.kitfile")
    handler = _Collect(logging.WARNING)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _mlflow_folder(folder: Path, mlmodel: str, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "MLmodel").write_text(mlmodel)
    for rel, text in {**ENV_FILES, **files}.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def _sklearn_folder(folder: Path, mlmodel: str = SKLEARN_PICKLE, model_file: str = "model.pkl") -> Path:
    return _mlflow_folder(
        folder,
        mlmodel,
        {
            model_file: "\x80\x04pickled" * 50,
            "input_example.json": '{"columns": ["a"], "data": [[1.0]]}',
            "serving_input_example.json": '{"dataframe_split": {"columns": ["a"], "data": [[1.0]]}}',
            "registered_model_meta": "model_name: iris\nmodel_version: '3'\n",
        },
    )


# --- parse_mlmodel --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "info"),
    [
        (SKLEARN_PICKLE, MLmodelInfo("sklearn", "scikit-learn", "1.5.2", "cloudpickle", "")),
        (SKLEARN_SKOPS, MLmodelInfo("sklearn", "scikit-learn", "1.9.1", "skops", "")),
        (PYTORCH, MLmodelInfo("pytorch", "pytorch", "2.5.1", "", "")),
        (TRANSFORMERS, MLmodelInfo("transformers", "transformers", "4.46.3", "", "")),
        (MLFLOW2_RUN, MLmodelInfo("sklearn", "scikit-learn", "1.3.2", "cloudpickle", "model")),
        (PYFUNC, MLmodelInfo("python_function", "pyfunc", "3.1.0", "cloudpickle", "")),
        (
            "flavors:\n  python_function: {loader_module: my_pkg.loader}\n",
            MLmodelInfo("python_function", "my_pkg.loader", "", "", ""),
        ),
        (
            "flavors:\n  python_function: {}\n  xgboost: {xgb_version: 2.1.3, model_format: ubj, data: model.ubj}\n",
            MLmodelInfo("xgboost", "xgboost", "2.1.3", "ubj", ""),
        ),
        (
            "flavors:\n  python_function: {}\n  tensorflow: {keras_version: 2.17.0, save_format: tf}\n",
            MLmodelInfo("tensorflow", "tensorflow", "2.17.0", "tf", ""),
        ),
        (
            "flavors:\n  lightgbm: {lgb_version: 4.5.0}\n  python_function: {}\n",
            MLmodelInfo("lightgbm", "lightgbm", "4.5.0", "", ""),
        ),
        (
            "flavors:\n  catboost: {catboost_version: 1.2.7, save_format: cbm}\n",
            MLmodelInfo("catboost", "catboost", "1.2.7", "cbm", ""),
        ),
        (
            "flavors:\n  sentence_transformers: {sentence_transformers_version: 3.3.1}\n",
            MLmodelInfo("sentence_transformers", "sentence-transformers", "3.3.1", "", ""),
        ),
        ("flavors:\n  spark: {pyspark_version: 3.5.3}\n", MLmodelInfo("spark", "spark-ml", "3.5.3", "", "")),
        ("flavors:\n  spacy: {spacy_version: 3.8.2}\n", MLmodelInfo("spacy", "spacy", "3.8.2", "", "")),
        (
            "flavors:\n  statsmodels: {statsmodels_version: 0.14.4}\n",
            MLmodelInfo("statsmodels", "statsmodels", "0.14.4", "", ""),
        ),
        ("flavors:\n  prophet: {prophet_version: 1.1.6}\n", MLmodelInfo("prophet", "prophet", "1.1.6", "", "")),
        ("flavors:\n  onnx: {onnx_version: 1.17.0}\n", MLmodelInfo("onnx", "onnx", "1.17.0", "", "")),
        ("flavors:\n  keras: {keras_version: 3.7.0}\n", MLmodelInfo("keras", "keras", "3.7.0", "", "")),
        ("flavors:\n  pytorch: {pytorch_version: 2.5}\n", MLmodelInfo("pytorch", "pytorch", "2.5", "", "")),
        ("name: iris-classifier\nflavors: {}\n", MLmodelInfo(name="iris-classifier")),
        ("artifact_path: runs/model/\n", MLmodelInfo(name="model")),
        ("flavors: [sklearn]\n", MLmodelInfo()),
    ],
)
def test_parse_mlmodel(text: str, info: MLmodelInfo) -> None:
    assert parse_mlmodel(text) == info


@pytest.mark.parametrize(
    ("text", "warning"),
    [("flavors: [unclosed\n", "Cannot read MLmodel: "), ("- a list\n", "Cannot read MLmodel: not a YAML mapping")],
)
def test_parse_mlmodel_that_is_not_a_mapping(text: str, warning: str, warnings_log: list[str]) -> None:
    assert parse_mlmodel(text) == MLmodelInfo()
    assert len(warnings_log) == 1 and warnings_log[0].startswith(warning)


def test_read_mlmodel_of_a_missing_file(tmp_path: Path, warnings_log: list[str]) -> None:
    assert read_mlmodel(tmp_path / "MLmodel") == MLmodelInfo()
    assert warnings_log == [f"Cannot read {tmp_path / 'MLmodel'}: No such file or directory"]


# --- MLflow folders in init -----------------------------------------------------------------------------------------


def test_mlflow3_logged_model_folder_is_one_model(tmp_path: Path) -> None:
    _sklearn_folder(tmp_path / "iris-model")
    (tmp_path / "README.md").write_text("# iris\n")
    (tmp_path / "train.csv").write_text("a,b\n1,2\n")
    kitfile = generate_kitfile(tmp_path, name="iris")
    assert kitfile == Kitfile(
        manifest_version="1.0.0",
        package=Package(name="iris"),
        model=Model(
            name="iris-model", path="iris-model/", framework="scikit-learn", format="cloudpickle", version="1.5.2"
        ),
        datasets=[Dataset(path="train.csv")],
        docs=[Docs(path="README.md", description="Readme file")],
    )
    assert dump_kitfile(kitfile) == (
        "manifestVersion: 1.0.0\n"
        "package:\n  name: iris\n"
        "model:\n  name: iris-model\n  path: iris-model/\n  framework: scikit-learn\n  format: cloudpickle\n"
        "  version: 1.5.2\n"
        "datasets:\n  - path: train.csv\n"
        "docs:\n  - path: README.md\n    description: Readme file\n"
    )


def test_skops_model_format(tmp_path: Path) -> None:
    _sklearn_folder(tmp_path / "m", SKLEARN_SKOPS, "model.skops")
    assert generate_kitfile(tmp_path).model == Model(
        name="m", path="m/", framework="scikit-learn", format="skops", version="1.9.1"
    )


def test_pytorch_folder_with_its_data_directory(tmp_path: Path) -> None:
    _mlflow_folder(
        tmp_path / "net",
        PYTORCH,
        {"data/model.pth": "weights" * 100, "data/pickle_module_info.txt": "mlflow.pytorch.pickle_module"},
    )
    assert generate_kitfile(tmp_path) == Kitfile(
        manifest_version="1.0.0", model=Model(name="net", path="net/", framework="pytorch", version="2.5.1")
    )


def test_transformers_folder_is_not_split_into_weights_and_parts(tmp_path: Path) -> None:
    _mlflow_folder(
        tmp_path / "sentiment",
        TRANSFORMERS,
        {
            "model/config.json": "{}",
            "model/model.safetensors": "w" * 1000,
            "components/tokenizer/tokenizer.json": "{}",
            "components/tokenizer/vocab.txt": "a\nb\n",
        },
    )
    for depth in (0, 1, -1):
        assert generate_kitfile(tmp_path, depth=depth) == Kitfile(
            manifest_version="1.0.0",
            model=Model(name="sentiment", path="sentiment/", framework="transformers", version="4.46.3"),
        )


def test_mlmodel_at_the_root_makes_the_whole_directory_the_model(tmp_path: Path) -> None:
    root = _sklearn_folder(tmp_path / "exported")
    (root / "README.md").write_text("# model\n")
    (root / "LICENSE").write_text(
        "Permission is hereby granted, free of charge, to any person obtaining a copy of this software. "
        "The above copyright notice and this permission notice shall be included in all copies."
    )
    assert generate_kitfile(root, description="d") == Kitfile(
        manifest_version="1.0.0",
        package=Package(description="d"),
        model=Model(
            name="exported", path=".", license="MIT", framework="scikit-learn", format="cloudpickle", version="1.5.2"
        ),
    )


def test_nested_mlflow2_run_artifact_beside_data(tmp_path: Path) -> None:
    _mlflow_folder(tmp_path / "artifacts" / "model", MLFLOW2_RUN, {"model.pkl": "p" * 500})
    (tmp_path / "artifacts" / "notes.md").write_text("run notes\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("a,b\n1,2\n")
    assert generate_kitfile(tmp_path) == Kitfile(
        manifest_version="1.0.0",
        model=Model(
            name="model", path="artifacts/model/", framework="scikit-learn", format="cloudpickle", version="1.3.2"
        ),
        datasets=[Dataset(path="data/")],
        docs=[Docs(path="artifacts/notes.md")],
    )


def test_a_code_directory_holding_a_model_is_opened_up(tmp_path: Path) -> None:
    _sklearn_folder(tmp_path / "src" / "model")
    (tmp_path / "src" / "train.py").write_text("print('train')\n")
    (tmp_path / "src" / "utils").mkdir()
    (tmp_path / "src" / "utils" / "io.py").write_text("\n")
    assert generate_kitfile(tmp_path) == Kitfile(
        manifest_version="1.0.0",
        model=Model(name="model", path="src/model/", framework="scikit-learn", format="cloudpickle", version="1.5.2"),
        code=[Code(path="src/utils/"), Code(path="src/train.py")],
    )


def test_other_weights_and_top_level_metadata_become_parts(tmp_path: Path, warnings_log: list[str]) -> None:
    _mlflow_folder(tmp_path / "a-model", PYTORCH, {"data/model.pth": "w"})
    _mlflow_folder(tmp_path / "b-model", TRANSFORMERS, {})
    (tmp_path / "extra.onnx").write_text("x" * 10_000)
    (tmp_path / "config.json").write_text("{}")
    assert generate_kitfile(tmp_path).model == Model(
        name="a-model",
        path="a-model/",
        framework="pytorch",
        version="2.5.1",
        parts=[ModelPart(path="extra.onnx"), ModelPart(path="b-model/"), ModelPart(path="config.json")],
    )
    assert warnings_log == ["Several MLflow models found; a-model/ is the model, the others are parts"]


def test_unreadable_mlmodel_still_makes_one_model(tmp_path: Path, warnings_log: list[str]) -> None:
    _mlflow_folder(tmp_path / "m", "flavors: [unclosed\n", {"model.pkl": "p"})
    assert generate_kitfile(tmp_path).model == Model(name="m", path="m/")
    assert len(warnings_log) == 1 and warnings_log[0].startswith("Cannot read MLmodel: ")


def test_only_the_exact_name_mlmodel_counts(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "mlmodel").write_text(SKLEARN_PICKLE)
    (tmp_path / "m" / "model.pkl").write_text("p")
    # kit's rules: an unknown file beside weights makes the directory mixed (code), its weights still the model
    assert generate_kitfile(tmp_path) == Kitfile(
        manifest_version="1.0.0", model=Model(name="m/model", path="m/model.pkl"), code=[Code(path="m/")]
    )
