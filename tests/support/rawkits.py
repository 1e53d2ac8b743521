"""ModelKits of raw byte layers, built in a store and pushed with pymodelkit's own library: for tests that need a
given number or size of layers in a real registry without packing a directory."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from pymodelkit.oci import Descriptor, Manifest
from pymodelkit.oci.mediatypes import MEDIA_TYPE_MODELKIT_CONFIG
from pymodelkit.oci.reference import parse_reference
from pymodelkit.registry.credentials import ChainCredentials
from pymodelkit.registry.transfer import DEFAULT_CONCURRENCY, push
from pymodelkit.store import LocalStore

__all__ = ["MODEL_LAYER", "push_raw_layers"]

MODEL_LAYER = "application/vnd.kitops.modelkit.model.v1.tar"


def push_raw_layers(
    host: str, source: LocalStore, payloads: Sequence[bytes], *, name: str, concurrency: int = DEFAULT_CONCURRENCY
) -> tuple[str, str, Manifest]:
    """Store one model layer per payload (as its bytes) in ``source``, tag the ModelKit ``<host>/<name>-<random>:v1``
    and push it there over plain HTTP; returns the reference, the repository and the manifest."""
    layers = []
    for data in payloads:
        with source.ingest(size_hint=len(data)) as writer:
            writer.write(data)
            digest, size = writer.commit(mode=0o600)
        layers.append(Descriptor(MODEL_LAYER, digest, size))
    config = b'{"manifestVersion":"1.0.0","package":{"name":"%s"}}' % name.rsplit("/", 1)[-1].encode()
    manifest = Manifest(
        config=Descriptor(MEDIA_TYPE_MODELKIT_CONFIG, source.write_blob(config), len(config)), layers=tuple(layers)
    )
    repository = f"{name}-{secrets.token_hex(4)}"
    reference = f"{host}/{repository}:v1"
    source.add_manifest(parse_reference(reference)[0].repo_key, manifest.to_json_bytes(), tags=("v1",))
    push(reference, store=source, plain_http=True, credentials=ChainCredentials(()), concurrency=concurrency)
    return reference, repository, manifest
