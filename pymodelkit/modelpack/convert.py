"""Kitfile ↔ ModelPack: the manifest and config kit's ``pack --use-model-pack`` writes for the layers pack built, and
the Kitfile read back from a ModelPack artifact (spec ``modelpack.md`` §1, §4, §7, §8).

Writing keeps pack's layers as they are (same bytes, digests and layer annotations: ``org.cncf.model.filepath``,
``ml.kitops.modelkit.layer-subtype``, and ``org.cncf.model.file.metadata+json`` on raw layers); only each layer's media
type changes, to the ModelPack type of its kind. The manifest gets the ModelPack ``artifactType`` and config type, and
the whole Kitfile (with every element's digest and diffId, the bytes a KitOps config would have) in the
``ml.kitops.modelkit.kitfile`` annotation, so reading it back loses nothing.

Reading takes the Kitfile from that annotation when present; otherwise (an artifact made by another tool) it builds a
minimal one as kit does: the first ``weight`` layer is ``model.path``, later ``weight`` and all ``weight.config`` layers
are parts, ``doc``/``code``/``dataset`` layers are docs/code/datasets, paths from ``org.cncf.model.filepath``, digests
from the layers and diffIds from the config's ``modelfs.diffIds``.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Mapping, Sequence

from pymodelkit.errors import ModelKitError, PackError
from pymodelkit.kitfile import Code, Dataset, Docs, Kitfile, Model, ModelPart, kitfile_from_json_bytes
from pymodelkit.kitfile.configjson import kitfile_to_json_bytes
from pymodelkit.kitfile.model import LayerKind
from pymodelkit.modelpack.config import modelpack_config_bytes, read_config_diff_ids
from pymodelkit.modelpack.mediatypes import ModelPackLayerType, modelpack_layer_type
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.manifest import MAX_MANIFEST_BYTES, Manifest
from pymodelkit.oci.mediatypes import (
    ANNOTATION_CREATED,
    ANNOTATION_FILEPATH,
    ANNOTATION_KITFILE,
    ARTIFACT_TYPE_MODELPACK,
    MEDIA_TYPE_MODELPACK_CONFIG,
    LayerMediaType,
)

__all__ = [
    "check_modelpack_options",
    "has_kitfile_annotation",
    "kitfile_for_manifest",
    "kitfile_from_modelpack",
    "modelpack_from_modelkit",
    "modelpack_layer_descriptor",
    "modelpack_manifest",
]

logger = logging.getLogger(__name__)

# KitOps layer base → the Kitfile element kind it was built from (prompts are ``code`` layers with a subtype).
_KIND_FOR_BASE: dict[str, LayerKind] = {
    "model": "model",
    "modelpart": "modelpart",
    "code": "code",
    "dataset": "dataset",
    "docs": "docs",
    "mcpb": "mcpserver",
}


def check_modelpack_options(kitfile: Kitfile, layer_format: str, compression: str) -> None:
    """Fail before any layer is built when ``kitfile`` cannot be packed as a ModelPack with these options.

    kit only fails after writing the earlier layers; checking first leaves the store untouched.

    Raises:
        PackError: the Kitfile has mcpServers, or ``layer_format`` is ``raw`` with a compression.
    """
    if kitfile.mcp_servers:
        raise PackError("mcpServers are not supported when packing in modelpack format")
    modelpack_layer_type("model", layer_format, compression)


def modelpack_layer_descriptor(descriptor: Descriptor) -> Descriptor:
    """The ModelPack form of a layer descriptor pack built in the KitOps format: same digest, size and annotations,
    the ModelPack media type of its kind, format and compression.

    Raises:
        PackError: an ``mcpb`` layer, or a compressed raw layer. ModelKitError: not a KitOps layer media type.
    """
    kitops = LayerMediaType.parse(descriptor.media_type)
    mapped = modelpack_layer_type(_KIND_FOR_BASE[kitops.base], kitops.format, kitops.compression)
    return Descriptor(str(mapped), descriptor.digest, descriptor.size, descriptor.annotations)


def modelpack_manifest(
    kitfile: Kitfile,
    layers: Sequence[tuple[Descriptor, Digest]],
    *,
    annotations: Mapping[str, str] | None = None,
    created: _dt.datetime | None = None,
) -> tuple[bytes, bytes]:
    """The ModelPack manifest and config bytes for the layers pack built, in pack's (= kit's) order.

    Args:
        kitfile: the Kitfile with every packed element's ``digest`` and ``diff_id`` filled in (what pack would store
            as the KitOps config); it goes into the ``ml.kitops.modelkit.kitfile`` annotation.
        layers: each layer's KitOps-format descriptor, as pack built it, and its diffId, in manifest order.
        annotations: the other manifest annotations pack writes (tool version, created, provenance…).
        created: the config's ``descriptor.createdAt``; default ``SOURCE_DATE_EPOCH`` or now.

    Returns:
        ``(manifest_bytes, config_bytes)``: both Go-encoded; the config blob's descriptor is in the manifest, so the
        caller stores the config blob, then adds the manifest.

    Raises:
        PackError: no layers, an mcpServer layer, a compressed raw layer, ``annotations`` setting the Kitfile key,
            or a manifest over the 4 MiB limit (a very large Kitfile in the annotation).
    """
    if annotations and ANNOTATION_KITFILE in annotations:
        raise PackError(f"annotation {ANNOTATION_KITFILE} is set by pack and cannot be given")
    descriptors = tuple(modelpack_layer_descriptor(descriptor) for descriptor, _ in layers)
    config_bytes = modelpack_config_bytes(kitfile, [diff_id for _, diff_id in layers], created=created)
    manifest = Manifest(
        config=Descriptor(MEDIA_TYPE_MODELPACK_CONFIG, Digest.from_bytes(config_bytes), len(config_bytes)),
        layers=descriptors,
        annotations={**(annotations or {}), ANNOTATION_KITFILE: kitfile_to_json_bytes(kitfile).decode("utf-8")},
        artifact_type=ARTIFACT_TYPE_MODELPACK,
    )
    manifest_bytes = manifest.to_json_bytes()
    if len(manifest_bytes) > MAX_MANIFEST_BYTES:
        raise PackError(
            f"ModelPack manifest would be {len(manifest_bytes)} bytes, over the 4 MiB limit "
            f"(the Kitfile in its {ANNOTATION_KITFILE} annotation is too large)"
        )
    return manifest_bytes, config_bytes


def modelpack_from_modelkit(
    manifest: Manifest, config_bytes: bytes, *, created: _dt.datetime | None = None
) -> tuple[bytes, bytes]:
    """Convert a KitOps-format ModelKit (its manifest and config) to ModelPack manifest and config bytes.

    The layer blobs are shared: nothing but the new config and manifest needs storing. The manifest keeps the
    ModelKit's annotations; ``createdAt`` defaults to its ``org.opencontainers.image.created`` time (else
    ``SOURCE_DATE_EPOCH`` or now), so converting a reproducible pack is reproducible.

    Raises:
        ModelKitError: ``manifest`` is not a KitOps ModelKit, or its config does not give every layer a diffId.
        PackError: as :func:`modelpack_manifest`.
    """
    if manifest.format != "kitops":
        raise ModelKitError("cannot convert to ModelPack: the manifest is not a KitOps ModelKit")
    kitfile = kitfile_from_json_bytes(config_bytes)
    by_digest = {element.digest: element.diff_id for _, element in kitfile.elements() if element.digest}
    layers: list[tuple[Descriptor, Digest]] = []
    for layer in manifest.layers or ():
        diff_id = by_digest.get(str(layer.digest))
        if not diff_id:
            raise ModelKitError(f"cannot convert to ModelPack: layer {layer.digest} has no diffId in the Kitfile")
        layers.append((layer, Digest.parse(diff_id)))
    annotations = dict(manifest.annotations or {})
    if created is None and ANNOTATION_CREATED in annotations:
        created = _parse_created(annotations[ANNOTATION_CREATED])
    return modelpack_manifest(kitfile, layers, annotations=annotations, created=created)


def has_kitfile_annotation(manifest: Manifest) -> bool:
    """Whether a ModelPack manifest carries its Kitfile (``ml.kitops.modelkit.kitfile``), as kit writes one."""
    return bool((manifest.annotations or {}).get(ANNOTATION_KITFILE))


def kitfile_from_modelpack(manifest: Manifest, config_bytes: bytes | None) -> Kitfile:
    """The Kitfile of a ModelPack artifact: from its Kitfile annotation, else rebuilt from its layers (§8).

    Args:
        manifest: a ModelPack manifest (by ``artifactType`` or config media type).
        config_bytes: its config blob, for the diffIds of a rebuilt Kitfile; ``None`` rebuilds without diffIds.

    Raises:
        ModelKitError: not a ModelPack manifest; a layer whose media type is not a ModelPack layer type (the message
            names it); a rebuilt Kitfile's layer without ``org.cncf.model.filepath``; a config whose diffIds do not
            match the layers (``invalid ModelPack config``).
        KitfileError: the Kitfile annotation does not decode.
    """
    if manifest.format != "modelpack":
        raise ModelKitError(
            f"not a ModelPack manifest: artifactType is {manifest.artifact_type or ''}, "
            f"config mediaType is {manifest.config.media_type}"
        )
    layers = manifest.layers or ()
    kinds = [_layer_type(index, layer).kind for index, layer in enumerate(layers)]
    annotation = (manifest.annotations or {}).get(ANNOTATION_KITFILE)
    if annotation:
        return kitfile_from_json_bytes(annotation.encode("utf-8", "surrogatepass"))
    diff_ids: list[str] = []
    if config_bytes is not None:
        diff_ids = read_config_diff_ids(config_bytes)
        if len(diff_ids) != len(layers):
            raise ModelKitError(
                f"invalid ModelPack config: it lists {len(diff_ids)} diffIds for {len(layers)} layers"
            )
    kitfile = Kitfile(manifest_version="1.0.0")
    for index, (layer, kind) in enumerate(zip(layers, kinds, strict=True)):
        path = (layer.annotations or {}).get(ANNOTATION_FILEPATH)
        if not path:
            raise ModelKitError(
                f"ModelPack layer {index} ({layer.digest}) has no {ANNOTATION_FILEPATH} annotation: "
                "cannot tell where its files go"
            )
        digest, diff_id = str(layer.digest), diff_ids[index] if diff_ids else ""
        if kind == "weight" and kitfile.model is None:
            kitfile.model = Model(path=path, digest=digest, diff_id=diff_id)
        elif kind in ("weight", "weight.config"):
            if kitfile.model is None:
                kitfile.model = Model()
            kitfile.model.parts.append(ModelPart(path=path, digest=digest, diff_id=diff_id))
        elif kind == "doc":
            kitfile.docs.append(Docs(path=path, digest=digest, diff_id=diff_id))
        elif kind == "code":
            kitfile.code.append(Code(path=path, digest=digest, diff_id=diff_id))
        else:
            kitfile.datasets.append(Dataset(path=path, digest=digest, diff_id=diff_id))
    return kitfile


def kitfile_for_manifest(manifest: Manifest, config_bytes: bytes | None) -> Kitfile:
    """The Kitfile of any model manifest: the config of a KitOps ModelKit, or :func:`kitfile_from_modelpack`.

    Raises:
        ModelKitError: not a model manifest, or as :func:`kitfile_from_modelpack`. KitfileError: a bad config.
    """
    if manifest.format == "kitops":
        if config_bytes is None:
            raise ModelKitError("a KitOps ModelKit's Kitfile is its config, which is missing")
        return kitfile_from_json_bytes(config_bytes)
    return kitfile_from_modelpack(manifest, config_bytes)


def _layer_type(index: int, layer: Descriptor) -> ModelPackLayerType:
    try:
        return ModelPackLayerType.parse(layer.media_type)
    except ModelKitError as exc:
        raise ModelKitError(f"ModelPack layer {index} ({layer.digest}): {exc}") from None


def _parse_created(text: str) -> _dt.datetime | None:
    try:
        return _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        logger.debug("ignoring unparsable %s annotation %r", ANNOTATION_CREATED, text)
        return None
