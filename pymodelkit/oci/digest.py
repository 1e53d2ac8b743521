"""Content digests (``sha256:<64 hex>``): parsing, validation and computing them over bytes and files.

Only the forms go-digest accepts are valid: ``algorithm:encoded`` with sha256 needing 64 lowercase hex digits (spec
``format.md``, "Digests"). Computing digests over big files streams through a reused buffer.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from pymodelkit.errors import InvalidReferenceError

__all__ = ["SHA256", "Digest", "compute_file_digest", "is_digest"]

SHA256 = "sha256"
_READ_BYTES = 4 << 20
_DIGEST_RE = re.compile(r"^([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)$")
_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True, slots=True)
class Digest:
    """A content digest such as ``sha256:e3b0…``. ``str(d)`` is the canonical text form."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``algorithm:hex``. Raises :class:`InvalidReferenceError` for anything go-digest rejects."""
        match = _DIGEST_RE.match(text)
        if match is None:
            raise InvalidReferenceError(f"invalid digest {text!r}: must be algorithm:hex", reference=text)
        algorithm, encoded = match.groups()
        expected = _HEX_LENGTHS.get(algorithm)
        if expected is None:
            raise InvalidReferenceError(f"unsupported digest algorithm in {text!r}", reference=text)
        if len(encoded) != expected or not re.fullmatch(r"[0-9a-f]+", encoded):
            raise InvalidReferenceError(
                f"invalid digest {text!r}: {algorithm} needs {expected} lowercase hex digits", reference=text
            )
        return cls(algorithm, encoded)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Digest:
        """Return the sha256 digest of ``data``."""
        return cls(SHA256, hashlib.sha256(data).hexdigest())

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    def short(self) -> str:
        """The display form kit's tables use: ``sha256:`` plus the first 10 hex digits."""
        return f"{self.algorithm}:{self.hex[:10]}"


def is_digest(text: str) -> bool:
    """Tell whether ``text`` is a valid digest string."""
    try:
        Digest.parse(text)
    except InvalidReferenceError:
        return False
    return True


def compute_file_digest(
    path: str | os.PathLike[str], *, on_bytes: Callable[[int], None] | None = None
) -> tuple[Digest, int]:
    """Hash a file with sha256 in one streaming pass (4 MiB reads into one reused buffer). Returns the digest and the
    number of bytes read; ``on_bytes(n)`` is told the bytes hashed so far after each read."""
    hasher = hashlib.sha256()
    buffer = bytearray(_READ_BYTES)
    view = memoryview(buffer)
    size = 0
    with open(path, "rb", buffering=0) as handle:
        while count := handle.readinto(buffer):
            hasher.update(view[:count])
            size += count
            if on_bytes is not None:
                on_bytes(size)
    return Digest(SHA256, hasher.hexdigest()), size
