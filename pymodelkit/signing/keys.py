"""Signing and verification keys, in the file formats cosign reads and writes (spec signing.md §3, §7).

A :class:`SigningKey` signs as cosign does: ECDSA (P-256 by default, also P-384/P-521) with SHA-256 and an ASN.1 DER
signature, RSA PKCS#1 v1.5 with SHA-256, or pure Ed25519. A :class:`VerificationKey` checks such signatures and never
raises for a bad one. Private keys load from PKCS#8 PEM (encrypted or not), SEC1 ``EC PRIVATE KEY``, PKCS#1
``RSA PRIVATE KEY`` and cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY`` / ``ENCRYPTED COSIGN PRIVATE KEY`` (scrypt +
NaCl secretbox around a PKCS#8 key, §7.1); public keys from PEM ``PUBLIC KEY`` or ``RSA PUBLIC KEY`` (§7.2). Every
problem with a key file is a :class:`~pymodelkit.errors.SigningKeyError` with a one-line message naming the file;
a key file that cannot be written is the ``OSError`` of the failure, naming the key file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from pymodelkit import settings
from pymodelkit._atomic import fsync_dir, write_all
from pymodelkit.errors import SigningKeyError
from pymodelkit.oci.gojson import Struct, go_json_bytes
from pymodelkit.signing._secretbox import NONCE_SIZE, SecretBoxError, open_box, seal

__all__ = [
    "COSIGN_PEM_TYPE",
    "LEGACY_COSIGN_PEM_TYPE",
    "SigningKey",
    "VerificationKey",
    "generate_signing_key",
    "key_password_from_env",
    "load_signing_key",
    "load_verification_key",
    "write_key_pair",
]

COSIGN_PEM_TYPE = "ENCRYPTED SIGSTORE PRIVATE KEY"
LEGACY_COSIGN_PEM_TYPE = "ENCRYPTED COSIGN PRIVATE KEY"
COSIGN_SCRYPT_N = 32768  # what `cosign generate-key-pair` writes
MIN_RSA_BITS = 2048

PrivateKey: TypeAlias = "ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey"
PublicKey: TypeAlias = "ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey"
Password: TypeAlias = "bytes | Callable[[], bytes] | None"

_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_PRIVATE_EXPECTED = "expected a PEM private key (PKCS#8, SEC1 EC, PKCS#1 RSA or cosign's encrypted key)"
_PUBLIC_EXPECTED = "expected a PEM public key (PUBLIC KEY or RSA PUBLIC KEY)"
_SUPPORTED = f"ECDSA P-256/P-384/P-521, RSA ({MIN_RSA_BITS} bits or more) or Ed25519"
_PEM_RE = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_MAX_SCRYPT_N = 1 << 20  # 1 GiB of scrypt memory with r=8: refuse anything larger before deriving
_PRIVATE_PEM_TYPES = frozenset({"PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"}) | {
    COSIGN_PEM_TYPE,
    LEGACY_COSIGN_PEM_TYPE,
}
_PUBLIC_PEM_TYPES = frozenset({"PUBLIC KEY", "RSA PUBLIC KEY"})


def _describe(key: object) -> str:
    """A short human name for a key type: ``ECDSA P-256``, ``RSA 2048``, ``Ed25519``, ``DSA``..."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"ECDSA {_CURVES.get(key.curve.name, key.curve.name)}"
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"RSA {key.key_size}"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "Ed25519"
    if isinstance(key, (dsa.DSAPrivateKey, dsa.DSAPublicKey)):
        return "DSA"
    if isinstance(key, (x25519.X25519PrivateKey, x25519.X25519PublicKey)):
        return "X25519"
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "Ed448"
    if isinstance(key, (x448.X448PrivateKey, x448.X448PublicKey)):
        return "X448"
    return type(key).__name__


def _supported(key: object) -> bool:
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return key.curve.name in _CURVES
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return key.key_size >= MIN_RSA_BITS
    return isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey))


class VerificationKey:
    """A public key that checks signatures as ``cosign verify --key`` does (SHA-256 for ECDSA and RSA)."""

    def __init__(self, public_key: PublicKey, source: str = "<bytes>") -> None:
        if not _supported(public_key):
            raise SigningKeyError(f"unsupported key type {_describe(public_key)} in {source}: expected {_SUPPORTED}")
        self._key = public_key
        self.source = source

    @property
    def public_key(self) -> PublicKey:
        """The underlying ``cryptography`` public key."""
        return self._key

    @property
    def algorithm(self) -> str:
        """The key type, e.g. ``ECDSA P-256``, ``RSA 3072``, ``Ed25519``."""
        return _describe(self._key)

    def der(self) -> bytes:
        """The DER SubjectPublicKeyInfo."""
        return self._key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    def pem(self) -> bytes:
        """The PEM ``PUBLIC KEY`` (PKIX SubjectPublicKeyInfo), as in ``cosign.pub``."""
        return self._key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def hint(self) -> str:
        """Standard base64 of SHA-256 over the DER SubjectPublicKeyInfo: the sigstore bundle's ``publicKey.hint``."""
        return base64.b64encode(hashlib.sha256(self.der()).digest()).decode("ascii")

    def verify(self, data: bytes, signature: bytes) -> bool:
        """Tell whether ``signature`` signs ``data``. Never raises for a bad or malformed signature.

        ECDSA takes an ASN.1 DER signature and, as sigstore's verifier does, an IEEE P1363 ``r||s`` one.
        """
        key = self._key
        try:
            if isinstance(key, ec.EllipticCurvePublicKey):
                return _verify_ecdsa(key, data, bytes(signature))
            if isinstance(key, rsa.RSAPublicKey):
                key.verify(bytes(signature), data, padding.PKCS1v15(), hashes.SHA256())
            else:
                key.verify(bytes(signature), data)
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerificationKey) and other.der() == self.der()

    def __hash__(self) -> int:
        return hash(self.der())

    def __repr__(self) -> str:
        return f"VerificationKey({self.algorithm}, source={self.source!r})"


def _verify_ecdsa(key: ec.EllipticCurvePublicKey, data: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        return True
    except (InvalidSignature, ValueError):
        pass
    size = (key.curve.key_size + 7) // 8
    if len(signature) != 2 * size:
        return False
    r = int.from_bytes(signature[:size], "big")
    s = int.from_bytes(signature[size:], "big")
    if r == 0 or s == 0:
        return False
    try:
        key.verify(encode_dss_signature(r, s), data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


class SigningKey:
    """A private key that signs as cosign does (ECDSA/RSA over SHA-256, DER signatures; pure Ed25519)."""

    def __init__(self, private_key: PrivateKey, source: str = "<generated>") -> None:
        if not _supported(private_key):
            raise SigningKeyError(f"unsupported key type {_describe(private_key)} in {source}: expected {_SUPPORTED}")
        self._key = private_key
        self.source = source

    @property
    def private_key(self) -> PrivateKey:
        """The underlying ``cryptography`` private key."""
        return self._key

    @property
    def algorithm(self) -> str:
        """The key type, e.g. ``ECDSA P-256``."""
        return _describe(self._key)

    def sign(self, data: bytes) -> bytes:
        """Sign ``data``: ECDSA → ASN.1 DER over SHA-256; RSA → PKCS#1 v1.5 SHA-256; Ed25519 → pure Ed25519."""
        key = self._key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(hashes.SHA256()))
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return key.sign(data)

    def public_key(self) -> VerificationKey:
        """The matching :class:`VerificationKey`."""
        return VerificationKey(self._key.public_key(), self.source)

    def private_pem(self, password: bytes | None) -> bytes:
        """PKCS#8 PEM: encrypted with ``password`` (``BestAvailableEncryption``), unencrypted when ``None`` or empty."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self._key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)

    def cosign_pem(self, password: bytes, *, scrypt_n: int = COSIGN_SCRYPT_N) -> bytes:
        """cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY``: PKCS#8 DER sealed with NaCl secretbox under scrypt(password).

        The empty password is allowed, as in cosign. ``scrypt_n`` (a power of two) is the scrypt cost (cosign: 32768).
        """
        if scrypt_n < 2 or scrypt_n & (scrypt_n - 1) or scrypt_n > _MAX_SCRYPT_N:
            raise ValueError(f"scrypt N must be a power of two between 2 and {_MAX_SCRYPT_N}, not {scrypt_n}")
        der = self._key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        salt = secrets.token_bytes(32)
        nonce = secrets.token_bytes(NONCE_SIZE)
        box = seal(der, nonce, _scrypt(password, salt, scrypt_n, 8, 1))
        body = go_json_bytes(
            Struct(
                kdf=Struct(name="scrypt", params=Struct(N=scrypt_n, r=8, p=1), salt=_b64(salt)),
                cipher=Struct(name="nacl/secretbox", nonce=_b64(nonce)),
                ciphertext=_b64(box),
            )
        )
        return _pem_encode(COSIGN_PEM_TYPE, body)

    def __repr__(self) -> str:
        return f"SigningKey({self.algorithm}, source={self.source!r})"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pem_encode(pem_type: str, der: bytes) -> bytes:
    """PEM with 64-character lines, as Go's ``pem.Encode`` writes it."""
    text = base64.b64encode(der).decode("ascii")
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    body = "".join(line + "\n" for line in lines)
    return f"-----BEGIN {pem_type}-----\n{body}-----END {pem_type}-----\n".encode("ascii")


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    maxmem = 128 * r * (n + 2) + 128 * r * p + (1 << 16)
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=maxmem)


def generate_signing_key() -> SigningKey:
    """A fresh ECDSA P-256 key, cosign's default."""
    return SigningKey(ec.generate_private_key(ec.SECP256R1()))


def key_password_from_env() -> bytes | None:
    """The key password from ``PYMODELKIT_KEY_PASSWORD``, else ``COSIGN_PASSWORD``, else ``None``."""
    return settings.key_password()


# --- loading ------------------------------------------------------------------------------------------------------


def _read_source(source: str | os.PathLike[str] | bytes) -> tuple[bytes, str, str | None]:
    """The key bytes, a name for messages, and the path (``None`` for in-memory bytes)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>", None
    path = os.fspath(source)
    try:
        with open(path, "rb") as handle:
            return handle.read(), path, path
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SigningKeyError(f"cannot read key file {path}: {reason}", path=path) from None


def _first_pem(data: bytes, name: str, path: str | None, expected: str) -> tuple[str, bytes]:
    """The type and the whole text of the first PEM block; a clear error for empty, JSON, DER or other input."""
    match = _PEM_RE.search(data)
    if match is not None:
        return match.group(1).decode("ascii"), match.group(0)
    stripped = data.strip()
    if not stripped:
        what = "is empty"
    elif stripped.startswith(b"{"):
        what = "holds JSON (a JWK?), not PEM"
    elif stripped.startswith((b"ssh-", b"ecdsa-sha2-")):
        what = "holds an OpenSSH key, not PEM"
    elif stripped[:1] == b"\x30":
        what = "holds raw DER, not PEM"
    else:
        what = "is not a PEM file"
    raise SigningKeyError(f"key {name} {what}: {expected}", path=path)


def _pem_body(block: bytes) -> bytes:
    """The base64 body of a PEM block (header lines such as ``Proc-Type:`` dropped), decoded."""
    lines = block.splitlines()[1:-1]
    text = b"".join(line.strip() for line in lines if b":" not in line)
    return base64.b64decode(text, validate=True)


def _resolve_password(password: Password) -> bytes | None:
    value = password() if callable(password) else password
    if value is not None and not isinstance(value, (bytes, bytearray)):
        raise TypeError("the key password must be bytes")
    return None if value is None else bytes(value)


def load_signing_key(source: str | os.PathLike[str] | bytes, *, password: Password = None) -> SigningKey:
    """Load a private key from a file path or PEM bytes.

    Accepts PKCS#8 PEM (encrypted or not), SEC1 ``EC PRIVATE KEY``, PKCS#1 ``RSA PRIVATE KEY`` (both possibly
    OpenSSL-encrypted) and cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY`` / ``ENCRYPTED COSIGN PRIVATE KEY``.
    ``password`` may be a callable: it is called only when the key is encrypted.

    Raises:
        SigningKeyError: unreadable, malformed, unsupported or public-only key; missing or wrong password.
    """
    data, name, path = _read_source(source)
    pem_type, block = _first_pem(data, name, path, _PRIVATE_EXPECTED)
    if pem_type in _PUBLIC_PEM_TYPES:
        raise SigningKeyError(f"key {name} holds a public key ({pem_type}): {_PRIVATE_EXPECTED}", path=path)
    if pem_type not in _PRIVATE_PEM_TYPES:
        raise SigningKeyError(f"key {name} is a PEM {pem_type!r}: {_PRIVATE_EXPECTED}", path=path)
    if pem_type in (COSIGN_PEM_TYPE, LEGACY_COSIGN_PEM_TYPE):
        key = _load_cosign(block, name, path, password)
    else:
        key = _load_pem_private(pem_type, block, name, path, password)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)) or not (
        _supported(key)
    ):
        raise SigningKeyError(f"unsupported key type {_describe(key)} in {name}: expected {_SUPPORTED}", path=path)
    return SigningKey(key, name)


def _wrong_password(name: str) -> str:
    return f"cannot decrypt key {name}: wrong password (or a corrupted file)"


def _load_pem_private(pem_type: str, block: bytes, name: str, path: str | None, password: Password) -> object:
    encrypted = pem_type == "ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in block
    secret: bytes | None = None
    if encrypted:
        secret = _resolve_password(password)
        if secret is None:
            raise SigningKeyError(f"key {name} is encrypted: a password is needed", path=path)
    try:
        return serialization.load_pem_private_key(block, secret)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        if encrypted and not isinstance(exc, UnsupportedAlgorithm):
            raise SigningKeyError(_wrong_password(name), path=path) from None
        message = f"key {name} is a malformed or unsupported {pem_type}: {_PRIVATE_EXPECTED}"
        raise SigningKeyError(message, path=path) from None


def _load_cosign(block: bytes, name: str, path: str | None, password: Password) -> object:
    malformed = f"key {name} is a malformed encrypted cosign key"
    try:
        envelope = json.loads(_pem_body(block))
        kdf, cipher = envelope["kdf"], envelope["cipher"]
        params = kdf["params"]
        n, r, p = params["N"], params["r"], params["p"]
        salt = base64.b64decode(kdf["salt"], validate=True)
        nonce = base64.b64decode(cipher["nonce"], validate=True)
        box = base64.b64decode(envelope["ciphertext"], validate=True)
        names = (kdf["name"], cipher["name"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise SigningKeyError(malformed, path=path) from None
    if names != ("scrypt", "nacl/secretbox"):
        raise SigningKeyError(f"{malformed}: unsupported kdf/cipher {names[0]!r}/{names[1]!r}", path=path)
    if not all(type(v) is int for v in (n, r, p)) or len(nonce) != NONCE_SIZE:
        raise SigningKeyError(malformed, path=path)
    if n < 2 or n & (n - 1) or n > _MAX_SCRYPT_N or not 0 < r <= 32 or not 0 < p <= 16:
        raise SigningKeyError(f"{malformed}: scrypt parameters N={n} r={r} p={p} out of range", path=path)
    secret = _resolve_password(password)
    if secret is None:
        raise SigningKeyError(f"key {name} is encrypted: a password is needed", path=path)
    try:
        der = open_box(box, nonce, _scrypt(secret, salt, n, r, p))
    except SecretBoxError:
        raise SigningKeyError(_wrong_password(name), path=path) from None
    if not _is_pkcs8(der):
        raise SigningKeyError(
            f"key {name} decrypts to a key that is not PKCS#8 (e.g. SEC1 EC), which cosign refuses: "
            "re-import it with `cosign import-key-pair`",
            path=path,
        )
    try:
        return serialization.load_der_private_key(der, None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise SigningKeyError(f"key {name} decrypts to a malformed or unsupported PKCS#8 key", path=path) from None


def _der_header(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content offset, content length) of the DER element at ``offset``; ValueError when truncated."""
    tag = data[offset]
    first = data[offset + 1]
    if first < 0x80:
        return tag, offset + 2, first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise ValueError("unsupported DER length")
    length = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
    return tag, offset + 2 + count, length


def _is_pkcs8(der: bytes) -> bool:
    """PrivateKeyInfo is SEQUENCE { INTEGER version, SEQUENCE algorithm, OCTET STRING }; SEC1 and PKCS#1 differ."""
    try:
        tag, start, _ = _der_header(der, 0)
        if tag != 0x30:
            return False
        tag, start, length = _der_header(der, start)
        if tag != 0x02:
            return False
        tag, _, _ = _der_header(der, start + length)
        return tag == 0x30
    except (IndexError, ValueError):
        return False


def load_verification_key(source: str | os.PathLike[str] | bytes) -> VerificationKey:
    """Load a public key from a file path or PEM bytes: PEM ``PUBLIC KEY`` (PKIX) or ``RSA PUBLIC KEY`` (PKCS#1).

    Raises:
        SigningKeyError: unreadable, malformed or unsupported key; a private key, certificate, JWK, DER or garbage.
    """
    data, name, path = _read_source(source)
    pem_type, block = _first_pem(data, name, path, _PUBLIC_EXPECTED)
    if pem_type in _PRIVATE_PEM_TYPES:
        raise SigningKeyError(
            f"key {name} holds a private key ({pem_type}): {_PUBLIC_EXPECTED}; give the .pub file", path=path
        )
    if pem_type not in _PUBLIC_PEM_TYPES:
        raise SigningKeyError(f"key {name} is a PEM {pem_type!r}: {_PUBLIC_EXPECTED}", path=path)
    try:
        key: Any = serialization.load_pem_public_key(block)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        message = f"key {name} is a malformed or unsupported {pem_type}: {_PUBLIC_EXPECTED}"
        raise SigningKeyError(message, path=path) from None
    if not isinstance(key, (ec.EllipticCurvePublicKey, rsa.RSAPublicKey, ed25519.Ed25519PublicKey)) or not _supported(
        key
    ):
        raise SigningKeyError(f"unsupported key type {_describe(key)} in {name}: expected {_SUPPORTED}", path=path)
    return VerificationKey(key, name)


# --- writing ------------------------------------------------------------------------------------------------------


def _write_new(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
    """Write ``data`` to ``path`` with exactly ``mode``: a temp file created 0600/O_EXCL (fchmod, so umask-proof),
    fsynced, then linked into place (refusing an existing file) or renamed over it when ``overwrite``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, mode)
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic, and fails if the file appeared meanwhile
            except FileExistsError:
                raise
            except OSError:  # a filesystem without hard links
                if path.exists():
                    raise FileExistsError(path) from None
                os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def write_key_pair(
    key: SigningKey,
    prefix: str | os.PathLike[str],
    *,
    password: bytes | None,
    overwrite: bool = False,
    cosign_format: bool = False,
) -> tuple[Path, Path]:
    """Write ``PREFIX.key`` (mode 0600) and ``PREFIX.pub`` (mode 0644); return their paths.

    The private key is PKCS#8 PEM, encrypted with ``password`` (unencrypted when ``None``), or with
    ``cosign_format`` cosign's ``ENCRYPTED SIGSTORE PRIVATE KEY`` (``None`` then means the empty password, as an
    empty ``COSIGN_PASSWORD`` does in cosign). Each file is written to a temp file, fsynced, then moved into place.

    Raises:
        SigningKeyError: a file exists already (unless ``overwrite``); nothing is written then.
        OSError: a file cannot be written (a missing or unwritable directory, a full disk): the builtin subclass of
            the failure (``FileNotFoundError``, ``PermissionError``, …) whose ``filename`` is the key file
            (``PREFIX.key`` or ``PREFIX.pub``), never the temp file; a half-written pair is removed.
    """
    base = os.fspath(prefix)
    key_path, pub_path = Path(base + ".key"), Path(base + ".pub")
    if not overwrite:
        for existing in (key_path, pub_path):
            if existing.exists() or existing.is_symlink():
                raise SigningKeyError(_exists(existing), path=str(existing))
    private = key.cosign_pem(password or b"") if cosign_format else key.private_pem(password)
    written: list[Path] = []
    target = key_path
    try:
        _write_new(key_path, private, 0o600, overwrite=overwrite)
        written.append(key_path)
        target = pub_path
        _write_new(pub_path, key.public_key().pem(), 0o644, overwrite=overwrite)
    except FileExistsError:
        _remove_new(written, overwrite)
        raise SigningKeyError(_exists(target), path=str(target)) from None
    except OSError as exc:
        _remove_new(written, overwrite)
        raise OSError(exc.errno, exc.strerror or type(exc).__name__, str(target)) from None  # errno picks the class
    fsync_dir(key_path.parent)
    return key_path, pub_path


def _exists(path: Path) -> str:
    return f"key file {path} exists already: refusing to overwrite it"


def _remove_new(paths: list[Path], overwrite: bool) -> None:
    """Undo a half-written pair: remove the files this call created (never a file it replaced)."""
    if overwrite:
        return
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
