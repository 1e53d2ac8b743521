"""The ModelPack config blob (``application/vnd.cncf.model.config.v1+json``) as kit's ``ToModelPackConfig`` writes it,
and the ``modelfs.diffIds`` read back from one (spec ``modelpack.md`` §2, §7.2).

Bytes are Go's ``json.Marshal`` of model-spec's ``Model``: ``descriptor``, ``modelfs``, ``config`` in that order;
descriptor fields in struct order, all omitted when empty. Mapped from the Kitfile: ``createdAt``; ``authors``,
``name``, ``version``, ``title`` (= the package name), ``description`` from ``package``; ``licenses`` = every package,
model, part, dataset and code license, sorted and de-duplicated; ``config.format`` = ``model.format``. Nothing else.

Deviation from kit: ``createdAt`` is ``SOURCE_DATE_EPOCH`` when it is set (the same time as the manifest's
``org.opencontainers.image.created``), in UTC, so a ModelPack config is reproducible; kit always writes the local time
of packing with nanoseconds. Both are valid RFC 3339.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence

from pymodelkit.errors import ModelKitError, PackError
from pymodelkit.kitfile.model import Kitfile
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, format_rfc3339nano, go_json_bytes
from pymodelkit.settings import created_time

__all__ = ["collect_licenses", "modelpack_config", "modelpack_config_bytes", "read_config_diff_ids"]


def collect_licenses(kitfile: Kitfile) -> list[str]:
    """kit's ``collectLicenses``: package, model, part, dataset and code licenses, sorted (bytewise), unique."""
    found = [kitfile.package.license]
    if kitfile.model is not None:
        found.append(kitfile.model.license)
        found += [part.license for part in kitfile.model.parts]
    found += [dataset.license for dataset in kitfile.datasets]
    found += [code.license for code in kitfile.code]
    return sorted({text for text in found if text}, key=lambda text: text.encode("utf-8", "surrogatepass"))


def modelpack_config(
    kitfile: Kitfile, diff_ids: Sequence[Digest | str], *, created: _dt.datetime | None = None
) -> Struct:
    """The ModelPack config of ``kitfile`` as a Go-ordered JSON object.

    Args:
        kitfile: the Kitfile being packed.
        diff_ids: one uncompressed-content digest per manifest layer, in layer order.
        created: ``descriptor.createdAt``; default :func:`pymodelkit.settings.created_time` (``SOURCE_DATE_EPOCH``
            or now), written in UTC.

    Raises:
        PackError: no layers (``modelfs.diffIds`` must not be empty: kit would write ``null``, which the schema
            rejects). ModelKitError: ``SOURCE_DATE_EPOCH`` is not integer seconds.
    """
    if not diff_ids:
        raise PackError("a ModelPack needs at least one layer: the Kitfile packs no files (modelfs.diffIds is empty)")
    when = created if created is not None else created_time()
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    package = kitfile.package
    descriptor = Struct(createdAt=format_rfc3339nano(when.astimezone(_dt.timezone.utc)))
    if package.authors:
        descriptor["authors"] = list(package.authors)
    if package.name:
        descriptor["name"] = package.name
    if package.version:
        descriptor["version"] = package.version
    licenses = collect_licenses(kitfile)
    if licenses:
        descriptor["licenses"] = licenses
    if package.name:
        descriptor["title"] = package.name
    if package.description:
        descriptor["description"] = package.description
    config = Struct()
    if kitfile.model is not None and kitfile.model.format:
        config["format"] = kitfile.model.format
    return Struct(
        descriptor=descriptor,
        modelfs=Struct(type="layers", diffIds=[str(d) for d in diff_ids]),
        config=config,
    )


def modelpack_config_bytes(
    kitfile: Kitfile, diff_ids: Sequence[Digest | str], *, created: _dt.datetime | None = None
) -> bytes:
    """The exact config blob bytes (Go ``json.Marshal``) of :func:`modelpack_config`. Raises as that does."""
    return go_json_bytes(modelpack_config(kitfile, diff_ids, created=created))


def read_config_diff_ids(config_bytes: bytes) -> list[str]:
    """The ``modelfs.diffIds`` of a ModelPack config blob, in layer order.

    Raises:
        ModelKitError: ``invalid ModelPack config: …`` when the bytes are not a JSON object, or ``modelfs.diffIds``
            is not a list of strings (a missing or ``null`` one reads as empty, as Go decodes it).
    """
    try:
        document = json.loads(bytes(config_bytes).decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelKitError(f"invalid ModelPack config: not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ModelKitError("invalid ModelPack config: not a JSON object")
    modelfs = document.get("modelfs")
    if modelfs is None:  # Go leaves a missing modelfs (or diffIds) empty; the layer count check catches it
        return []
    diff_ids = modelfs.get("diffIds") if isinstance(modelfs, dict) else ()
    if diff_ids is None:
        return []
    if not isinstance(diff_ids, list) or not all(isinstance(item, str) for item in diff_ids):
        raise ModelKitError("invalid ModelPack config: modelfs.diffIds is not a list of digests")
    return list(diff_ids)
