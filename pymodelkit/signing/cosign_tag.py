"""cosign's legacy signature storage: the ``sha256-<hex>.sig`` tag in the signed artifact's repository (spec
``signing.md`` §4, §5).

The tag holds an OCI image manifest with one ``application/vnd.dev.cosign.simplesigning.v1+json`` layer per
signature: the layer blob is the simple-signing payload itself, its ``dev.cosignproject.cosign/signature``
annotation the base64 signature. The config is go-containerregistry's image config of an empty image with one
``diff_id`` and one empty history entry per layer. Appending reads the manifest (404: none yet), adds the layer unless
cosign's de-duplication rule finds it there already, and PUTs the manifest back under the tag — read-append-rewrite
with no lock, racy as cosign's own. The manifest and config JSON use go-containerregistry's key order (a descriptor is
``mediaType``, ``size``, ``digest``, ``annotations``), so the bytes are those cosign writes. This module also holds
the two small-blob exchanges the signing modules share (:func:`push_blob_bytes`, :func:`fetch_blob_bytes`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymodelkit.errors import DigestMismatchError, ModelKitError, RegistryNotFoundError, SignatureError
from pymodelkit.oci.descriptor import Descriptor
from pymodelkit.oci.digest import Digest
from pymodelkit.oci.gojson import Struct, as_struct, go_json_bytes
from pymodelkit.oci.manifest import Manifest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MANIFEST
from pymodelkit.registry.client import RegistryClient
from pymodelkit.registry.remote import fetch_small_blob
from pymodelkit.registry.upload import push_bytes

if TYPE_CHECKING:
    from pymodelkit.signing.keys import VerificationKey

__all__ = [
    "CONFIG_MEDIA_TYPE",
    "MAX_SIGNATURE_BLOB_BYTES",
    "MAX_SIGNATURE_LAYERS",
    "SIGNATURE_ANNOTATION",
    "SIMPLESIGNING_MEDIA_TYPE",
    "ZERO_TIME",
    "LegacySignature",
    "SignatureManifest",
    "append_signature",
    "decode_signature",
    "fetch_blob_bytes",
    "fetch_signature_manifest",
    "push_blob_bytes",
    "signature_config_bytes",
    "signature_manifest_bytes",
    "signature_tag",
]

logger = logging.getLogger(__name__)

SIMPLESIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time.Time, what cosign leaves in the config by default
MAX_SIGNATURE_LAYERS = 1000  # cosign's limit of signatures in one .sig manifest
MAX_SIGNATURE_BLOB_BYTES = 4 << 20  # payloads, configs and bundles are a few hundred bytes to a few KiB


@dataclass(frozen=True, slots=True)
class LegacySignature:
    """One layer of a ``.sig`` manifest: the payload blob's descriptor and the base64 signature it carries."""

    layer: Descriptor
    signature: str

    @property
    def payload_digest(self) -> Digest:
        """The digest of the payload blob (the layer)."""
        return self.layer.digest


@dataclass(frozen=True, slots=True)
class SignatureManifest:
    """A ``.sig`` manifest as the registry holds it: its exact bytes, the parsed manifest and the config bytes
    (``None`` when the config could not be read; it is rebuilt on the next append)."""

    tag: str
    data: bytes
    manifest: Manifest
    config: bytes | None

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        """Every layer, in order."""
        return self.manifest.layers or ()

    def signatures(self) -> list[LegacySignature]:
        """The simple-signing layers that carry a signature annotation, in order (others are skipped)."""
        found: list[LegacySignature] = []
        for layer in self.layers:
            value = (layer.annotations or {}).get(SIGNATURE_ANNOTATION)
            if layer.media_type == SIMPLESIGNING_MEDIA_TYPE and value:
                found.append(LegacySignature(layer, value))
        return found


def signature_tag(digest: Digest) -> str:
    """The tag cosign stores the signatures of ``digest`` under: ``sha256-<hex>.sig``."""
    return f"{digest.algorithm}-{digest.hex}.sig"


def signature_config_bytes(
    diff_ids: Sequence[Digest],
    *,
    created: str = ZERO_TIME,
    history: Sequence[Mapping[str, Any]] | None = None,
    architecture: str = "",
    os_name: str = "",
) -> bytes:
    """The image config of a ``.sig`` manifest, as go-containerregistry marshals it.

    One ``diff_id`` per layer; ``history`` is kept as given and padded with one ``{"created": zero time}`` entry per
    further layer. With one layer and the defaults it is exactly the 233-byte config of spec ``signing.md`` §4.
    """
    entries: list[object] = [as_struct(entry) for entry in history or ()]
    while len(entries) < len(diff_ids):
        entries.append(Struct(created=ZERO_TIME))
    config = Struct(
        architecture=architecture,
        created=created,
        history=entries,
        os=os_name,
        rootfs=Struct(type="layers", diff_ids=[str(d) for d in diff_ids]),
        config={},
    )
    return go_json_bytes(config)


def signature_manifest_bytes(config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    """The ``.sig`` image manifest, in go-containerregistry's key order (what cosign writes)."""
    return go_json_bytes(Struct(
        schemaVersion=2,
        mediaType=MEDIA_TYPE_MANIFEST,
        config=_ggcr_descriptor(config),
        layers=[_ggcr_descriptor(layer) for layer in layers],
    ))


def decode_signature(text: str) -> bytes:
    """The signature bytes of a base64 annotation (standard alphabet, padding optional). Raises SignatureError."""
    cleaned = "".join(text.split())
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"signature annotation is not base64: {text[:20]!r}…") from None


def fetch_signature_manifest(client: RegistryClient, repository: str, digest: Digest) -> SignatureManifest | None:
    """The ``.sig`` manifest of ``digest`` in ``repository``, or ``None`` when the tag does not exist.

    The manifest is checked against the registry's ``Docker-Content-Digest``; a config that cannot be fetched or does
    not match its descriptor is reported as ``config=None``, not raised (verifiers never read it).

    Raises:
        RegistryError, AuthError: the registry refused or could not be reached.
        SignatureError: the tag holds something that is not an image manifest.
    """
    tag = signature_tag(digest)
    try:
        fetched = client.fetch_manifest(repository, tag)
    except RegistryNotFoundError:
        return None
    try:
        manifest = Manifest.parse(fetched.data)
    except ModelKitError as exc:
        raise SignatureError(f"{client.registry}/{repository}:{tag} is not a signature manifest: {exc}") from None
    config: bytes | None
    try:
        config = fetch_blob_bytes(client, repository, manifest.config)
    except (ModelKitError, DigestMismatchError) as exc:
        logger.info("config of %s/%s:%s unreadable (%s): it will be rebuilt", client.registry, repository, tag, exc)
        config = None
    return SignatureManifest(tag=tag, data=fetched.data, manifest=manifest, config=config)


def append_signature(
    client: RegistryClient,
    repository: str,
    digest: Digest,
    payload: bytes,
    signature: bytes,
    *,
    public_key: VerificationKey,
    annotations: Mapping[str, str] | None = None,
) -> bool:
    """Add one signature of ``digest`` to its ``.sig`` tag; ``False`` when cosign's rule finds it there already.

    The rule (spec ``signing.md`` §5): an existing layer with the same payload digest and media type, carrying every
    extra annotation of the new one with the same value, whose stored signature verifies over ``payload`` with
    ``public_key``. Otherwise the payload blob and a new config are uploaded and the manifest is PUT under the tag with
    the new layer last.

    Raises:
        SignatureError: the tag already holds 1000 signatures. RegistryError, AuthError: the registry refused.
    """
    extra = dict(annotations or {})
    payload_digest = Digest.from_bytes(payload)
    existing = fetch_signature_manifest(client, repository, digest)
    layers = list(existing.layers) if existing is not None else []
    for layer in layers:
        if _is_duplicate(layer, payload_digest, extra, payload, public_key):
            logger.info("%s/%s is already signed with this key and payload: nothing added", repository, digest)
            return False
    if len(layers) >= MAX_SIGNATURE_LAYERS:
        raise SignatureError(
            f"{client.registry}/{repository}:{signature_tag(digest)} already holds {len(layers)} signatures "
            f"(cosign's limit is {MAX_SIGNATURE_LAYERS})", reference=f"{client.registry}/{repository}@{digest}",
        )
    layer_annotations = {**extra, SIGNATURE_ANNOTATION: base64.b64encode(signature).decode("ascii")}
    new_layer = Descriptor(SIMPLESIGNING_MEDIA_TYPE, payload_digest, len(payload), annotations=layer_annotations)
    layers.append(new_layer)
    config_bytes = _next_config(existing, layers)
    push_blob_bytes(client, repository, payload)
    config_digest = push_blob_bytes(client, repository, config_bytes)
    config = Descriptor(CONFIG_MEDIA_TYPE, config_digest, len(config_bytes))
    client.put_manifest(repository, signature_tag(digest), signature_manifest_bytes(config, layers),
                        MEDIA_TYPE_MANIFEST)
    logger.info("added signature %d to %s/%s:%s", len(layers), client.registry, repository, signature_tag(digest))
    return True


def push_blob_bytes(client: RegistryClient, repository: str, data: bytes) -> Digest:
    """Upload a small blob in one PUT unless the repository has it already
    (:func:`pymodelkit.registry.upload.push_bytes`); returns its digest.

    Raises:
        RegistryError, AuthError: the registry refused (e.g. 400 DIGEST_INVALID) or could not be reached.
    """
    push_bytes(client, repository, data)
    return Digest.from_bytes(data)


def fetch_blob_bytes(
    client: RegistryClient, repository: str, descriptor: Descriptor, *, max_bytes: int = MAX_SIGNATURE_BLOB_BYTES
) -> bytes:
    """GET a small blob into memory, checked against the descriptor's size and digest before it is returned
    (:func:`pymodelkit.registry.remote.fetch_small_blob` with the signature blob limit).

    Raises:
        ModelKitError: the descriptor says more than ``max_bytes``.
        DigestMismatchError: the bytes received differ in size or digest.
        RegistryError, AuthError: not found, refused or unreachable.
    """
    return fetch_small_blob(client, repository, descriptor, max_bytes=max_bytes, kind="signature blobs")


# ----- internals ---------------------------------------------------------------------------------------------------


def _is_duplicate(
    layer: Descriptor, payload_digest: Digest, extra: Mapping[str, str], payload: bytes, key: VerificationKey
) -> bool:
    if layer.media_type != SIMPLESIGNING_MEDIA_TYPE or layer.digest != payload_digest:
        return False
    stored = dict(layer.annotations or {})
    if any(stored.get(name) != value for name, value in extra.items()):
        return False
    text = stored.get(SIGNATURE_ANNOTATION)
    if not text:
        return False
    try:
        signature = decode_signature(text)
    except SignatureError:
        return False
    return key.verify(payload, signature)


def _next_config(existing: SignatureManifest | None, layers: Sequence[Descriptor]) -> bytes:
    """The config after an append: the existing one's ``created``, architecture, os and history kept, one
    ``diff_id`` per layer (a simple-signing layer is uncompressed: its diff_id is its digest)."""
    created, architecture, os_name = ZERO_TIME, "", ""
    history: list[Mapping[str, Any]] = []
    doc: object = None
    if existing is not None and existing.config is not None:
        try:
            doc = json.loads(existing.config)
        except ValueError:
            doc = None
    if isinstance(doc, dict):
        created = doc["created"] if isinstance(doc.get("created"), str) else ZERO_TIME
        architecture = doc["architecture"] if isinstance(doc.get("architecture"), str) else ""
        os_name = doc["os"] if isinstance(doc.get("os"), str) else ""
        old = doc.get("history")
        if isinstance(old, list) and all(isinstance(h, dict) for h in old) and len(old) < len(layers):
            history = old
    return signature_config_bytes([layer.digest for layer in layers], created=created, history=history,
                                  architecture=architecture, os_name=os_name)


def _ggcr_descriptor(descriptor: Descriptor) -> Struct:
    out = Struct(mediaType=descriptor.media_type, size=descriptor.size, digest=str(descriptor.digest))
    if descriptor.annotations:
        out["annotations"] = dict(descriptor.annotations)
    return out
