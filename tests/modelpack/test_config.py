"""The ModelPack config blob: kit's ``ToModelPackConfig`` bytes, SOURCE_DATE_EPOCH, and validity against model-spec's
JSON schema (vendored in ``data/``, see its README)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import jsonschema
import pytest

from pymodelkit.errors import ModelKitError, PackError
from pymodelkit.kitfile import Code, Dataset, Docs, Kitfile, Model, ModelPart, Package
from pymodelkit.modelpack.config import (
    collect_licenses,
    modelpack_config_bytes,
    read_config_diff_ids,
)

DATA = Path(__file__).parent / "data"
DIFF_A = "sha256:62e1cb3d236c6ee44130c54bf720f87b2ba1b0d58965634af9a3c3e541a462ef"
DIFF_B = "sha256:" + "ab" * 32
_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")
_FORMATS = jsonschema.FormatChecker(formats=())


def _is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise ValueError(f"not RFC 3339: {value!r}")
    date, time, fraction, offset = match.groups()
    offset = "+00:00" if offset in "Zz" else offset
    dt.datetime.fromisoformat(f"{date}T{time}{'.' + fraction[:6].ljust(6, '0') if fraction else ''}{offset}")
    return True


_FORMATS.checks("date-time", raises=ValueError)(_is_rfc3339)


def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((DATA / "config-schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=_FORMATS)


def _kitfile() -> Kitfile:
    return Kitfile(
        manifest_version="1.0.0",
        package=Package(name="n", version="1", description="d", license="MIT", authors=["a"]),
        model=Model(name="m", path="model", format="safetensors", license="MIT", parameters={"x": 1.0}),
    )


def test_config_bytes_are_kits_with_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")
    data = modelpack_config_bytes(_kitfile(), [DIFF_A])
    assert data == (
        b'{"descriptor":{"createdAt":"1970-01-01T00:00:00Z","authors":["a"],"name":"n","version":"1",'
        b'"licenses":["MIT"],"title":"n","description":"d"},"modelfs":{"type":"layers","diffIds":["'
        + DIFF_A.encode()
        + b'"]},"config":{"format":"safetensors"}}'
    )
    assert hashlib.sha256(data).hexdigest() == hashlib.sha256(modelpack_config_bytes(_kitfile(), [DIFF_A])).hexdigest()


def test_created_at_is_now_in_utc_without_source_date_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    created = json.loads(modelpack_config_bytes(_kitfile(), [DIFF_A]))["descriptor"]["createdAt"]
    assert created.endswith("Z")
    assert before <= dt.datetime.fromisoformat(created.replace("Z", "+00:00")) <= dt.datetime.now(dt.timezone.utc)


def test_explicit_created_time_and_empty_fields_are_omitted() -> None:
    when = dt.datetime(2026, 9, 20, 12, 11, 12, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    data = modelpack_config_bytes(Kitfile(manifest_version="1.0.0"), [DIFF_A, DIFF_B], created=when)
    assert data == (
        b'{"descriptor":{"createdAt":"2026-09-20T10:11:12.123456Z"},"modelfs":{"type":"layers","diffIds":["'
        + DIFF_A.encode() + b'","' + DIFF_B.encode() + b'"]},"config":{}}'
    )


def test_licenses_are_collected_sorted_and_unique_as_kit_does() -> None:
    kitfile = Kitfile(
        package=Package(license="MIT"),
        model=Model(path="m", license="Apache-2.0", parts=[ModelPart(path="p", license="BSD-3-Clause")]),
        datasets=[Dataset(path="d", license="CC-BY-4.0"), Dataset(path="e", license="MIT")],
        code=[Code(path="c", license="Apache-2.0")],
        docs=[Docs(path="README.md")],
    )
    assert collect_licenses(kitfile) == ["Apache-2.0", "BSD-3-Clause", "CC-BY-4.0", "MIT"]


def test_strings_are_escaped_as_go_does() -> None:
    kitfile = Kitfile(package=Package(name="a<b>&c", description="line\nnext"))
    data = modelpack_config_bytes(kitfile, [DIFF_A], created=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    assert b'"name":"a\\u003cb\\u003e\\u0026c"' in data
    assert b'"description":"line\\nnext"' in data


def test_a_layerless_modelpack_is_refused() -> None:
    with pytest.raises(PackError, match="at least one layer"):
        modelpack_config_bytes(_kitfile(), [])


def test_our_configs_validate_against_the_modelpack_schema(monkeypatch: pytest.MonkeyPatch) -> None:
    validator = _validator()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    for kitfile in (_kitfile(), Kitfile(manifest_version="1.0.0")):
        document = json.loads(modelpack_config_bytes(kitfile, [DIFF_A, DIFF_B]))
        assert list(validator.iter_errors(document)) == []
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert list(validator.iter_errors(json.loads(modelpack_config_bytes(_kitfile(), [DIFF_A])))) == []


def test_spec_minimal_config_vector_is_valid_and_its_digest_matches() -> None:
    vector = (
        b'{"descriptor":{"name":"tiny-model"},"config":{"format":"safetensors"},"modelfs":{"type":"layers",'
        b'"diffIds":["sha256:62e1cb3d236c6ee44130c54bf720f87b2ba1b0d58965634af9a3c3e541a462ef"]}}'
    )
    assert len(vector) == 184
    assert hashlib.sha256(vector).hexdigest() == "5f2b3621f0b977826a6d4e8042d9eee3c60d88fd039301868120234f33cab521"
    assert list(_validator().iter_errors(json.loads(vector))) == []


_MODELFS = {"type": "layers", "diffIds": [DIFF_A]}


@pytest.mark.parametrize(
    "document",
    [
        {"descriptor": {"name": "x"}, "modelfs": _MODELFS},  # config is missing
        {"descriptor": {"version": 3.1}, "config": {}, "modelfs": _MODELFS},
        {"descriptor": {"createdAt": "2025/01/01T00:00:00Z"}, "config": {}, "modelfs": _MODELFS},
        {"descriptor": {"authors": "John Doe"}, "config": {}, "modelfs": _MODELFS},
        {"descriptor": {"licenses": "Apache-2.0"}, "config": {}, "modelfs": _MODELFS},
        {"descriptor": {}, "config": {"paramSize": 8000000}, "modelfs": _MODELFS},
        {"descriptor": {}, "config": {}, "modelfs": {"type": "layer", "diffIds": [DIFF_A]}},
        {"descriptor": {}, "config": {}, "modelfs": {"type": "layers", "diffIds": []}},
        {"descriptor": {}, "config": {"capabilities": {"knowledgeCutoff": "2025-01-01"}}, "modelfs": _MODELFS},
        {"descriptor": {}, "config": {"capabilities": {"languages": ["fra"]}}, "modelfs": _MODELFS},
        {"descriptor": {"name": ""}, "config": {}, "modelfs": _MODELFS},
        {"descriptor": {}, "config": {}, "modelfs": _MODELFS, "extra": 1},
    ],
)
def test_schema_rejects_upstreams_must_fail_cases(document: dict[str, object]) -> None:
    assert list(_validator().iter_errors(document)) != []


def test_diff_ids_are_read_back_in_order() -> None:
    assert read_config_diff_ids(modelpack_config_bytes(_kitfile(), [DIFF_B, DIFF_A])) == [DIFF_B, DIFF_A]
    assert read_config_diff_ids(b'{"modelfs":{"type":"layers","diffIds":null}}') == []
    assert read_config_diff_ids(b"{}") == []
    with pytest.raises(ModelKitError, match=r"^invalid ModelPack config: modelfs\.diffIds is not a list of digests$"):
        read_config_diff_ids(b'{"modelfs":{"diffIds":"sha256:x"}}')
    with pytest.raises(ModelKitError, match=r"^invalid ModelPack config: not JSON"):
        read_config_diff_ids(b"{")
