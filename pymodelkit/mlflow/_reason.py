"""MLflow's reason for a failure, as the one line our errors and warnings quote (spec ``mlflow.md`` §1, §9).

MLflow's messages can run to many lines: a traceback from the tracking server, or the whole HTML page a web server
that is no MLflow answered with. :func:`mlflow_reason` keeps the first line, says "not as an MLflow tracking server
does" instead of quoting HTML, cuts a long line at a sentence, and keeps MLflow's way out of the file store's
maintenance mode. :mod:`pymodelkit.mlflow.resolve` puts it in its errors, :mod:`pymodelkit.mlflow.provenance` in its
warnings.
"""

from __future__ import annotations

import re

from mlflow.exceptions import MlflowException

__all__ = ["MAX_REASON_CHARS", "mlflow_reason"]

MAX_REASON_CHARS = 300
"""A longer reason is cut at the last sentence that fits (or at this many characters, with ``…``)."""
_HTTP_ANSWER = re.compile(r"API request to endpoint (\S+) failed with error code (\d+) != 200\. Response body: '?(.*)")


def mlflow_reason(err: BaseException) -> str:
    """MLflow's own reason, on one line: the message's first line, no HTML a non-MLflow server answered with, and a
    long line cut at a sentence; the file store's refusal keeps MLflow's way out (spec ``mlflow.md`` §1). An
    ``ImportError`` names the missing module, an ``OSError`` its reason and file."""
    if isinstance(err, ImportError):
        return f"the Python module {err.name or '?'} is not installed"
    if isinstance(err, OSError):
        return f"{err.strerror or err}" + (f" ({err.filename})" if err.filename else "")
    message = err.message if isinstance(err, MlflowException) else str(err)
    text = " ".join((message.strip().splitlines() or [""])[0].split())
    answer = _HTTP_ANSWER.match(text)
    if answer is not None:
        endpoint, status, body = answer.groups()
        if not body.strip() or body.lstrip().startswith("<"):
            return f"the server answered HTTP {status} to {endpoint}, not as an MLflow tracking server does"
        text = f"the server answered HTTP {status} to {endpoint}: {body.rstrip(chr(39))}"
    if "MLFLOW_ALLOW_FILE_STORE" in message:
        first = text.split(". ", 1)[0].rstrip(".")
        return f"{first} (set MLFLOW_ALLOW_FILE_STORE=true to read it anyway, or migrate it: mlflow migrate-filestore)"
    if len(text) > MAX_REASON_CHARS:
        cut = text.rfind(". ", 0, MAX_REASON_CHARS)
        text = text[: cut + 1] if cut > 0 else text[: MAX_REASON_CHARS - 1] + "…"
    return text
