"""check_response: registry answers become RegistryError/AuthError carrying the OCI diagnostics, URLs redacted."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator

import httpx
import pytest

from pymodelkit.errors import AuthError, NotFoundError, RegistryError, RegistryNotFoundError
from pymodelkit.registry.responses import (
    MAX_ERROR_BODY_BYTES,
    check_response,
    is_temporary,
    parse_retry_after,
    redact_url,
    transport_failure,
)

URL = "http://127.0.0.1:5000/v2/team/model/manifests/v9"


def _oci(status: int, *errors: tuple[str, str], method: str = "GET", url: str = URL) -> httpx.Response:
    body = json.dumps({"errors": [{"code": c, "message": m, "detail": {"Tag": "v9"}} for c, m in errors]})
    return httpx.Response(status, headers={"Content-Type": "application/json; charset=utf-8"}, content=body.encode(),
                          request=httpx.Request(method, url))


def test_check_response_returns_the_response_on_an_expected_status() -> None:
    response = httpx.Response(202, request=httpx.Request("POST", URL))
    assert check_response(response, 201, 202) is response


def test_not_found_names_the_subject_and_keeps_the_oci_code() -> None:
    with pytest.raises(RegistryError) as info:
        check_response(_oci(404, ("MANIFEST_UNKNOWN", "manifest unknown")), 200,
                       subject="manifest 127.0.0.1:5000/team/model:v9")
    error = info.value
    assert type(error) is RegistryNotFoundError
    assert isinstance(error, NotFoundError) and isinstance(error, FileNotFoundError)
    assert str(error) == (
        "manifest 127.0.0.1:5000/team/model:v9 not found (registry answered 404 MANIFEST_UNKNOWN: manifest unknown) "
        "[GET http://127.0.0.1:5000/v2/team/model/manifests/v9]"
    )
    assert (error.status, error.code, error.oci_message, error.method) == (404, "MANIFEST_UNKNOWN", "manifest unknown",
                                                                          "GET")
    assert error.errors == (("MANIFEST_UNKNOWN", "manifest unknown"),)
    assert error.detail == {"Tag": "v9"}
    assert error.is_temporary is False


@pytest.mark.parametrize("status", [401, 403])
def test_unauthorized_and_denied_are_auth_errors(status: int) -> None:
    with pytest.raises(AuthError) as info:
        check_response(_oci(status, ("UNAUTHORIZED" if status == 401 else "DENIED", "no")), 200)
    assert isinstance(info.value, PermissionError)
    assert info.value.status == status


def test_unauthorized_message_says_to_check_credentials() -> None:
    with pytest.raises(AuthError, match=r"authentication required or refused \(401 UNAUTHORIZED: authentication "
                                        r"required\); check the credentials"):
        check_response(_oci(401, ("UNAUTHORIZED", "authentication required")), 200)


@pytest.mark.parametrize(
    ("status", "code", "temporary"),
    [(503, "UNAVAILABLE", True), (500, "UNKNOWN", True), (429, "TOOMANYREQUESTS", True), (408, "X", True),
     (400, "DIGEST_INVALID", False), (404, "BLOB_UPLOAD_INVALID", False), (400, "TOOMANYREQUESTS", True)],
)
def test_temporary_is_derived_from_status_and_code(status: int, code: str, temporary: bool) -> None:
    with pytest.raises(RegistryError) as info:
        check_response(_oci(status, (code, "m")), 200)
    assert info.value.is_temporary is temporary


def test_is_temporary_without_an_answer() -> None:
    assert is_temporary(None) is True
    assert is_temporary(404, ["NAME_UNKNOWN"]) is False


def test_plain_text_body_is_not_parsed_but_quoted() -> None:
    response = httpx.Response(404, headers={"Content-Type": "text/plain; charset=utf-8"},
                              content=b"404 page not found\n",
                              request=httpx.Request("GET", "http://127.0.0.1:5000/v2/Team/x/manifests/v1"))
    with pytest.raises(RegistryError) as info:
        check_response(response, 200)
    assert info.value.code is None
    assert str(info.value) == (
        "GET http://127.0.0.1:5000/v2/Team/x/manifests/v1: registry answered 404 404 page not found"
    )


def test_json_body_with_other_shape_gives_no_code() -> None:
    response = httpx.Response(500, json={"error": "boom"}, request=httpx.Request("GET", URL))
    with pytest.raises(RegistryError) as info:
        check_response(response, 200)
    assert info.value.code is None
    assert info.value.status == 500


def test_only_64_kib_of_an_error_body_is_read() -> None:
    sent: list[int] = []

    def body() -> Iterator[bytes]:
        for _ in range(64):
            sent.append(16 << 10)
            yield b"x" * (16 << 10)

    response = httpx.Response(500, headers={"Content-Type": "text/plain"}, stream=_IterStream(body()),
                              request=httpx.Request("GET", URL))
    with pytest.raises(RegistryError) as info:
        check_response(response, 200)
    assert sum(sent) == MAX_ERROR_BODY_BYTES
    assert response.is_closed
    assert str(info.value).endswith("…")


class _IterStream(httpx.SyncByteStream):
    def __init__(self, parts: Iterator[bytes]) -> None:
        self._parts = parts

    def __iter__(self) -> Iterator[bytes]:
        yield from self._parts


def test_head_error_reads_no_body() -> None:
    response = httpx.Response(404, request=httpx.Request("HEAD", URL))
    with pytest.raises(RegistryError, match=r"^blob sha256:ab not found \(registry answered 404 Not Found\)"):
        check_response(response, 200, subject="blob sha256:ab")


def test_errors_survive_pickling() -> None:
    with pytest.raises(RegistryError) as info:
        check_response(_oci(503, ("UNAVAILABLE", "later")), 200)
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is RegistryError
    assert (str(copy), copy.status, copy.code, copy.errors) == (str(info.value), 503, "UNAVAILABLE",
                                                              (("UNAVAILABLE", "later"),))


def test_redact_url_drops_user_info_and_signed_values() -> None:
    url = ("https://user:secret@s3.example.com:8443/bucket/blob?X-Amz-Credential=AKIA&X-Amz-Signature=abc"
           "&response-content-type=x&_state=c2lnbmVk&digest=sha256:12")
    assert redact_url(url) == (
        "https://s3.example.com:8443/bucket/blob?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED"
        "&response-content-type=x&_state=REDACTED&digest=sha256:12"
    )
    assert redact_url("http://[::1]:5000/v2/") == "http://[::1]:5000/v2/"


def test_error_url_attribute_is_redacted() -> None:
    response = _oci(404, ("BLOB_UPLOAD_INVALID", "blob upload invalid"), method="PATCH",
                    url="http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=SECRETSTATE")
    with pytest.raises(RegistryError) as info:
        check_response(response, 202)
    assert info.value.url == "http://127.0.0.1:5000/v2/a/blobs/uploads/u?_state=REDACTED"
    assert "SECRETSTATE" not in str(info.value)


def test_parse_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    # 2015-10-21 07:28:00 GMT is 1445412480; ten seconds earlier the wait is ten seconds.
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


def test_transport_failure_for_an_unknown_host_is_not_temporary() -> None:
    request = httpx.Request("GET", "https://nonexistent.invalid/v2/")
    error = transport_failure(httpx.ConnectError("[Errno -2] Name or service not known", request=request),
                              registry="nonexistent.invalid")
    assert str(error) == ("cannot reach registry nonexistent.invalid: [Errno -2] Name or service not known "
                          "[GET https://nonexistent.invalid/v2/]")
    assert (error.status, error.is_temporary) == (None, False)


def test_transport_failure_for_a_reset_is_temporary() -> None:
    request = httpx.Request("PATCH", "http://127.0.0.1:5000/v2/a/blobs/uploads/u")
    error = transport_failure(httpx.ReadError("connection reset by peer", request=request))
    assert error.is_temporary is True
    assert error.method == "PATCH"
