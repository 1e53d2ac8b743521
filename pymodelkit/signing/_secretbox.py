"""NaCl ``crypto_secretbox`` (XSalsa20-Poly1305), the cipher of cosign's encrypted private keys (spec signing.md §7.1).

cosign's ``cosign.key`` is sealed with NaCl secretbox. The data is a few hundred bytes, so XSalsa20 (HSalsa20 plus
the Salsa20/20 core) is written here in pure Python; the one-time MAC is ``cryptography``'s Poly1305. Layout as NaCl:
the first 32 bytes of the XSalsa20 keystream are the Poly1305 key, the rest encrypt the message, and the 16-byte tag
over the ciphertext comes first in the sealed box.
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.poly1305 import Poly1305

__all__ = ["KEY_SIZE", "NONCE_SIZE", "TAG_SIZE", "SecretBoxError", "open_box", "seal", "xsalsa20_stream"]

KEY_SIZE = 32
NONCE_SIZE = 24
TAG_SIZE = 16

_MASK = 0xFFFFFFFF
_SIGMA = struct.unpack("<4I", b"expand 32-byte k")


class SecretBoxError(ValueError):
    """The box does not open: wrong key, altered ciphertext, or a box too short to hold a tag."""


def _rotl(value: int, shift: int) -> int:
    return ((value << shift) | (value >> (32 - shift))) & _MASK


def _rounds(state: list[int]) -> list[int]:
    """Salsa20/20's 10 double rounds over a copy of ``state`` (no final addition)."""
    x = list(state)
    for _ in range(10):
        # column round, then row round: quarter-rounds (a, b, c, d) as in the Salsa20 specification
        for a, b, c, d in (
            (0, 4, 8, 12),
            (5, 9, 13, 1),
            (10, 14, 2, 6),
            (15, 3, 7, 11),
            (0, 1, 2, 3),
            (5, 6, 7, 4),
            (10, 11, 8, 9),
            (15, 12, 13, 14),
        ):
            x[b] ^= _rotl((x[a] + x[d]) & _MASK, 7)
            x[c] ^= _rotl((x[b] + x[a]) & _MASK, 9)
            x[d] ^= _rotl((x[c] + x[b]) & _MASK, 13)
            x[a] ^= _rotl((x[d] + x[c]) & _MASK, 18)
    return x


def _state(key_words: tuple[int, ...], middle: tuple[int, ...]) -> list[int]:
    k = key_words
    return [_SIGMA[0], *k[:4], _SIGMA[1], *middle, _SIGMA[2], *k[4:], _SIGMA[3]]


def hsalsa20(key: bytes, nonce16: bytes) -> bytes:
    """HSalsa20: derive XSalsa20's subkey from a 32-byte key and the first 16 nonce bytes."""
    x = _rounds(_state(struct.unpack("<8I", key), struct.unpack("<4I", nonce16)))
    return struct.pack("<8I", x[0], x[5], x[10], x[15], x[6], x[7], x[8], x[9])


def xsalsa20_stream(key: bytes, nonce: bytes, length: int) -> bytes:
    """``length`` bytes of XSalsa20 keystream for a 32-byte key and a 24-byte nonce (block counter from 0)."""
    if len(key) != KEY_SIZE or len(nonce) != NONCE_SIZE:
        raise ValueError("xsalsa20 needs a 32-byte key and a 24-byte nonce")
    subkey = struct.unpack("<8I", hsalsa20(key, nonce[:16]))
    n0, n1 = struct.unpack("<2I", nonce[16:])
    blocks = []
    for counter in range((length + 63) // 64):
        state = _state(subkey, (n0, n1, counter & _MASK, counter >> 32))
        mixed = _rounds(state)
        blocks.append(struct.pack("<16I", *((m + s) & _MASK for m, s in zip(mixed, state, strict=True))))
    return b"".join(blocks)[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return (int.from_bytes(data, "little") ^ int.from_bytes(stream[: len(data)], "little")).to_bytes(
        len(data), "little"
    )


def seal(message: bytes, nonce: bytes, key: bytes) -> bytes:
    """NaCl ``secretbox.Seal``: the 16-byte Poly1305 tag followed by the XSalsa20 ciphertext."""
    stream = xsalsa20_stream(key, nonce, 32 + len(message))
    ciphertext = _xor(message, stream[32:])
    return Poly1305.generate_tag(stream[:32], ciphertext) + ciphertext


def open_box(box: bytes, nonce: bytes, key: bytes) -> bytes:
    """NaCl ``secretbox.Open``: check the tag (in constant time), then decrypt. Raises :class:`SecretBoxError`."""
    if len(box) < TAG_SIZE:
        raise SecretBoxError("secretbox: ciphertext shorter than its tag")
    tag, ciphertext = box[:TAG_SIZE], box[TAG_SIZE:]
    stream = xsalsa20_stream(key, nonce, 32 + len(ciphertext))
    try:
        Poly1305.verify_tag(stream[:32], ciphertext, tag)
    except InvalidSignature:
        raise SecretBoxError("secretbox: authentication failed") from None
    return _xor(ciphertext, stream[32:])
