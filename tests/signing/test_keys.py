"""Keys: upstream vectors (cosign's encrypted keys, sigstore's ECDSA signature, NaCl secretbox), formats, errors."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa, x25519

from pymodelkit.errors import ModelKitError, SigningKeyError
from pymodelkit.signing import keys as keys_module
from pymodelkit.signing._secretbox import SecretBoxError, open_box, seal
from pymodelkit.signing.keys import (
    COSIGN_PEM_TYPE,
    SigningKey,
    VerificationKey,
    generate_signing_key,
    key_password_from_env,
    load_signing_key,
    load_verification_key,
    write_key_pair,
)

DATA = Path(__file__).parent / "data"
HELLO = b"hello"  # the password of cosign's test keys


def _pem_private(key: object, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())  # type: ignore[attr-defined,no-any-return]


def _pem_public(
    key: object, fmt: serialization.PublicFormat = serialization.PublicFormat.SubjectPublicKeyInfo
) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, fmt)  # type: ignore[attr-defined,no-any-return]


def _assert_one_line(err: pytest.ExceptionInfo[SigningKeyError], *needles: str) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    for needle in needles:
        assert needle in message, message
    return message


# --- NaCl secretbox -----------------------------------------------------------------------------------------------

NACL_KEY = bytes.fromhex("1b27556473e985d462cd51197a9a46c76009549eac6474f206c4ee0844f68389")
NACL_NONCE = bytes.fromhex("69696ee955b62b73cd62bda875fc73d68219e0036b7a0b37")
NACL_MESSAGE = bytes.fromhex(
    "be075fc53c81f2d5cf141316ebeb0c7b5228c52a4c62cbd44b66849b64244ffce5ecbaaf33bd751a1ac728d45e6c61296cdc3c01233561f4"
    "1db66cce314adb310e3be8250c46f06dceea3a7fa1348057e2f6556ad6b1318a024a838f21af1fde048977eb48f59ffd4924ca1c60902e52"
    "f0a089bc76897040e082f937763848645e0705"
)
NACL_BOX = bytes.fromhex(
    "f3ffc7703f9400e52a7dfb4b3d3305d98e993b9f48681273c29650ba32fc76ce48332ea7164d96a4476fb8c531a1186ac0dfc17c98dce87b"
    "4da7f011ec48c97271d2c20f9b928fe2270d6fb863d51738b48eeee314a7cc8ab932164548e526ae90224368517acfeabd6bb3732bc0e9da"
    "99832b61ca01b6de56244a9e88d5f9b37973f622a43d14a6599b1f654cb45a74e355a5"
)


def test_secretbox_matches_the_nacl_vector() -> None:
    assert len(NACL_MESSAGE) == 131
    assert seal(NACL_MESSAGE, NACL_NONCE, NACL_KEY) == NACL_BOX
    assert open_box(NACL_BOX, NACL_NONCE, NACL_KEY) == NACL_MESSAGE


@pytest.mark.parametrize("index", [0, 15, 16, 146])
def test_secretbox_rejects_any_flipped_byte(index: int) -> None:
    box = bytearray(NACL_BOX)
    box[index] ^= 1
    with pytest.raises(SecretBoxError):
        open_box(bytes(box), NACL_NONCE, NACL_KEY)
    with pytest.raises(SecretBoxError):
        open_box(NACL_BOX[:15], NACL_NONCE, NACL_KEY)


def test_secretbox_empty_message_and_multi_block_round_trip() -> None:
    for message in (b"", os.urandom(64 * 5 + 7)):
        box = seal(message, NACL_NONCE, NACL_KEY)
        assert len(box) == 16 + len(message)
        assert open_box(box, NACL_NONCE, NACL_KEY) == message


# --- cosign's encrypted keys (sigstore/cosign pkg/cosign/keys_test.go) --------------------------------------------


@pytest.mark.parametrize("name", ["cosign_pemcosignkey.key", "cosign_pemsigstorekey.key"])
def test_cosign_encrypted_keys_decrypt_with_hello(name: str) -> None:
    key = load_signing_key(DATA / name, password=HELLO)
    assert key.algorithm == "ECDSA P-256"
    assert key.source == str(DATA / name)
    signature = key.sign(b"payload")
    assert key.public_key().verify(b"payload", signature)


def test_cosign_key_holding_sec1_plaintext_is_refused_as_cosign_does() -> None:
    path = DATA / "cosign_pemcosigneckey.key"
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(path, password=HELLO)
    _assert_one_line(err, str(path), "not PKCS#8", "SEC1")
    assert err.value.path == str(path)


def test_cosign_key_wrong_password_names_the_file_and_not_the_password(tmp_path: Path) -> None:
    path = DATA / "cosign_pemsigstorekey.key"
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(path, password=b"hunter2-secret")
    message = _assert_one_line(err, str(path), "wrong password")
    assert "hunter2" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_cosign_key_without_password_says_one_is_needed() -> None:
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(DATA / "cosign_pemsigstorekey.key")
    _assert_one_line(err, "password is needed")


def test_our_cosign_pem_round_trips_and_refuses_a_wrong_password(tmp_path: Path) -> None:
    key = generate_signing_key()
    pem = key.cosign_pem(b"s3cret")
    lines = pem.decode().splitlines()
    assert lines[0] == f"-----BEGIN {COSIGN_PEM_TYPE}-----" and lines[-1] == f"-----END {COSIGN_PEM_TYPE}-----"
    assert all(len(line) == 64 for line in lines[1:-2]) and 0 < len(lines[-2]) <= 64
    body = json.loads(base64.b64decode("".join(lines[1:-1])))
    assert list(body) == ["kdf", "cipher", "ciphertext"]
    assert body["kdf"]["name"] == "scrypt" and body["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(body["kdf"]["salt"])) == 32
    assert body["cipher"]["name"] == "nacl/secretbox" and len(base64.b64decode(body["cipher"]["nonce"])) == 24
    path = tmp_path / "cosign.key"
    path.write_bytes(pem)
    loaded = load_signing_key(path, password=b"s3cret")
    assert loaded.public_key() == key.public_key()
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(path, password=b"s3cret!")
    message = _assert_one_line(err, str(path), "wrong password")
    assert "s3cret" not in message


def test_cosign_pem_with_the_empty_password_and_small_n() -> None:
    key = generate_signing_key()
    loaded = load_signing_key(key.cosign_pem(b"", scrypt_n=1024), password=b"")
    assert loaded.public_key() == key.public_key()
    with pytest.raises(ValueError):
        key.cosign_pem(b"x", scrypt_n=1000)


def _cosign_envelope(**changes: object) -> bytes:
    body = {
        "kdf": {"name": "scrypt", "params": {"N": 1024, "r": 8, "p": 1}, "salt": base64.b64encode(b"s" * 32).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(b"n" * 24).decode()},
        "ciphertext": base64.b64encode(b"c" * 40).decode(),
    }
    body.update(changes)
    text = base64.b64encode(json.dumps(body).encode()).decode()
    return f"-----BEGIN {COSIGN_PEM_TYPE}-----\n{text}\n-----END {COSIGN_PEM_TYPE}-----\n".encode()


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"kdf": {"name": "argon2", "params": {"N": 2, "r": 8, "p": 1}, "salt": ""}}, "unsupported kdf"),
        ({"kdf": {"name": "scrypt", "params": {"N": 1 << 30, "r": 8, "p": 1}, "salt": ""}}, "out of range"),
        ({"kdf": {"name": "scrypt", "params": {"N": 1000, "r": 8, "p": 1}, "salt": ""}}, "out of range"),
        ({"cipher": {"name": "nacl/secretbox", "nonce": "short"}}, "malformed"),
        ({"ciphertext": 12}, "malformed"),
        ({"kdf": "x"}, "malformed"),
    ],
)
def test_malformed_cosign_keys(changes: dict[str, object], needle: str) -> None:
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(_cosign_envelope(**changes), password=b"pw")
    _assert_one_line(err, "<bytes>", needle)


def test_cosign_key_with_bad_ciphertext_is_a_wrong_password_error() -> None:
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(_cosign_envelope(), password=b"pw")
    _assert_one_line(err, "wrong password")


# --- other private key formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "algorithm"),
    [
        ("cosign_validecp256.key", "ECDSA P-256"),
        ("cosign_validecp384.key", "ECDSA P-384"),
        ("cosign_validrsapkcs1.key", "RSA 2048"),
        ("cosign_ed25519.key", "Ed25519"),
        ("sigstore_ecdsa_priv.pem", "ECDSA P-256"),
    ],
)
def test_plain_private_keys_load_and_sign(name: str, algorithm: str) -> None:
    key = load_signing_key((DATA / name).read_bytes())
    assert key.algorithm == algorithm and key.source == "<bytes>"
    assert key.public_key().verify(b"data", key.sign(b"data"))
    assert not key.public_key().verify(b"other", key.sign(b"data"))


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("cosign_invalidecp224.key", "unsupported key type ECDSA secp224r1"),
        ("cosign_invalidecunsupported.key", "unsupported key type ECDSA secp256k1"),
        ("cosign_invalidrsasmallkey.key", "unsupported key type RSA 1024"),
        ("cosign_invalidrsawithpubkey.key", "holds a public key"),
        ("sigstore_ecdsa_pub.pem", "holds a public key"),
    ],
)
def test_refused_private_keys(name: str, needle: str) -> None:
    path = DATA / name
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(path)
    _assert_one_line(err, str(path), needle, "expected")
    assert err.value.path == str(path)


def test_p521_signing_key_and_pkcs8_encrypted_private_pem(tmp_path: Path) -> None:
    key = SigningKey(ec.generate_private_key(ec.SECP521R1()))
    pem = key.private_pem(b"pw")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    path = tmp_path / "k.key"
    path.write_bytes(pem)
    assert load_signing_key(path, password=b"pw").public_key() == key.public_key()
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(path, password=b"wrong-pass-XYZ")
    message = _assert_one_line(err, str(path), "wrong password")
    assert "XYZ" not in message
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(path)
    _assert_one_line(err, str(path), "password is needed")


def test_private_pem_unencrypted_for_none_or_empty() -> None:
    key = generate_signing_key()
    for password in (None, b""):
        assert key.private_pem(password).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_legacy_openssl_encrypted_sec1_key_takes_the_password() -> None:
    raw = ec.generate_private_key(ec.SECP256R1())
    pem = raw.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"pw"),
    )
    assert b"Proc-Type: 4,ENCRYPTED" in pem
    assert load_signing_key(pem, password=b"pw").algorithm == "ECDSA P-256"
    with pytest.raises(SigningKeyError, match="wrong password"):
        load_signing_key(pem, password=b"nope")


def test_password_callable_is_called_only_when_needed() -> None:
    calls: list[int] = []

    def ask() -> bytes:
        calls.append(1)
        return HELLO

    def never() -> bytes:
        raise AssertionError("the password was asked for an unencrypted key")

    load_signing_key(DATA / "cosign_validecp256.key", password=never)
    load_signing_key(generate_signing_key().private_pem(None), password=never)
    load_signing_key(DATA / "cosign_pemsigstorekey.key", password=ask)
    assert calls == [1]


@pytest.mark.parametrize(
    "make",
    [
        lambda: _pem_private(dsa.generate_private_key(1024)),
        lambda: _pem_private(x25519.X25519PrivateKey.generate()),
        lambda: _pem_private(ed448.Ed448PrivateKey.generate()),
    ],
    ids=["dsa", "x25519", "ed448"],
)
def test_unsupported_private_key_types(make: Callable[[], bytes], tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_bytes(make())
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(path)
    _assert_one_line(err, str(path), "unsupported key type", "expected ECDSA P-256/P-384/P-521")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b'{"kty":"EC","crv":"P-256"}', "JSON (a JWK?)"),
        (b"ssh-ed25519 AAAAC3Nza me@host", "OpenSSH"),
        (b"\x30\x82\x01\x00garbage", "raw DER"),
        (b"not a key at all", "not a PEM file"),
        (
            b"-----BEGIN PGP PRIVATE KEY BLOCK-----\nabc\n-----END PGP PRIVATE KEY BLOCK-----\n",
            "'PGP PRIVATE KEY BLOCK'",
        ),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "malformed or unsupported PRIVATE KEY"),
    ],
)
def test_garbage_private_key_files(tmp_path: Path, content: bytes, needle: str) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(path)
    _assert_one_line(err, str(path), needle, "expected a PEM private key")


def test_missing_key_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.key"
    with pytest.raises(SigningKeyError) as err:
        load_signing_key(path)
    _assert_one_line(err, f"cannot read key file {path}", "No such file")
    with pytest.raises(SigningKeyError):
        load_verification_key(tmp_path)  # a directory


def test_signing_key_error_is_a_value_error() -> None:
    assert issubclass(SigningKeyError, ValueError) and issubclass(SigningKeyError, ModelKitError)


# --- verification keys -------------------------------------------------------------------------------------------


def test_sigstore_ecdsa_vector_verifies() -> None:
    """sigstore/sigstore pkg/signature/ecdsa_test.go: the DER (and P1363) signature over "sign me" verifies."""
    pub = load_verification_key(DATA / "sigstore_ecdsa_pub.pem")
    der = base64.b64decode((DATA / "sigstore_ecdsa_sig_der.b64").read_text())
    p1363 = base64.b64decode((DATA / "sigstore_ecdsa_sig_p1363.b64").read_text())
    assert pub.algorithm == "ECDSA P-256"
    assert pub.verify(b"sign me", der)
    assert pub.verify(b"sign me", p1363)
    assert not pub.verify(b"sign me!", der)
    flipped = bytearray(der)
    flipped[10] ^= 0x01
    assert not pub.verify(b"sign me", bytes(flipped))
    assert load_signing_key(DATA / "sigstore_ecdsa_priv.pem").public_key() == pub


@pytest.mark.parametrize(
    "signature", [b"", b"\x00", os.urandom(64), os.urandom(71), b"\x30\x06\x02\x01\x01\x02\x01\x01"]
)
def test_verify_never_raises(signature: bytes) -> None:
    for key in (
        load_verification_key(DATA / "sigstore_ecdsa_pub.pem"),
        load_verification_key(_pem_public(rsa.generate_private_key(65537, 2048).public_key())),
        load_verification_key(_pem_public(ed25519.Ed25519PrivateKey.generate().public_key())),
    ):
        assert key.verify(b"data", signature) is False


def test_hint_is_base64_sha256_of_the_der_spki() -> None:
    text = (DATA / "sigstore_ecdsa_pub.pem").read_text()
    der = base64.b64decode("".join(line for line in text.splitlines() if not line.startswith("-----")))
    pub = load_verification_key(DATA / "sigstore_ecdsa_pub.pem")
    assert pub.hint == base64.b64encode(hashlib.sha256(der).digest()).decode()
    assert pub.der() == der
    assert pub.pem() == text.encode()


def test_rsa_is_pkcs1v15_sha256_and_pkcs1_public_pem_loads() -> None:
    private = rsa.generate_private_key(65537, 3072)
    pkcs1 = _pem_public(private.public_key(), serialization.PublicFormat.PKCS1)
    assert pkcs1.startswith(b"-----BEGIN RSA PUBLIC KEY-----")
    pub = load_verification_key(pkcs1)
    assert pub.algorithm == "RSA 3072"
    assert pub.verify(b"m", private.sign(b"m", padding.PKCS1v15(), hashes.SHA256()))
    assert not pub.verify(b"m", private.sign(b"m", padding.PKCS1v15(), hashes.SHA512()))
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    assert not pub.verify(b"m", private.sign(b"m", pss, hashes.SHA256()))
    assert SigningKey(private).sign(b"m") == private.sign(b"m", padding.PKCS1v15(), hashes.SHA256())


def test_ecdsa_is_always_sha256_even_on_p384() -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    pub = load_verification_key(_pem_public(private.public_key()))
    assert pub.verify(b"m", private.sign(b"m", ec.ECDSA(hashes.SHA256())))
    assert not pub.verify(b"m", private.sign(b"m", ec.ECDSA(hashes.SHA384())))
    signature = SigningKey(private).sign(b"m")
    private.public_key().verify(signature, b"m", ec.ECDSA(hashes.SHA256()))  # DER over SHA-256: raises if not


def test_ed25519_is_pure() -> None:
    private = ed25519.Ed25519PrivateKey.generate()
    pub = load_verification_key(_pem_public(private.public_key()))
    assert pub.verify(b"m", private.sign(b"m"))
    assert SigningKey(private).sign(b"m") == private.sign(b"m")  # deterministic


def test_p521_public_key_verifies() -> None:
    private = ec.generate_private_key(ec.SECP521R1())
    pub = load_verification_key(_pem_public(private.public_key()))
    assert pub.algorithm == "ECDSA P-521"
    assert pub.verify(b"m", private.sign(b"m", ec.ECDSA(hashes.SHA256())))


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda: _pem_public(dsa.generate_private_key(1024).public_key()), "unsupported key type DSA"),
        (lambda: _pem_public(x25519.X25519PrivateKey.generate().public_key()), "unsupported key type X25519"),
        (lambda: _pem_public(ec.generate_private_key(ec.SECP224R1()).public_key()), "unsupported key type ECDSA"),
        (lambda: _pem_public(rsa.generate_private_key(65537, 1024).public_key()), "unsupported key type RSA 1024"),
        (lambda: _pem_private(ec.generate_private_key(ec.SECP256R1())), "holds a private key"),
        (lambda: (DATA / "cosign_pemsigstorekey.key").read_bytes(), "holds a private key"),
        (lambda: b"", "is empty"),
        (lambda: b'{"kty":"EC","crv":"P-256","x":"..","y":".."}', "JWK"),
        (lambda: b"\xff\xfe garbage", "not a PEM file"),
        (lambda: b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "'CERTIFICATE'"),
        (
            lambda: b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "malformed or unsupported PUBLIC KEY",
        ),
    ],
    ids=["dsa", "x25519", "p224", "rsa1024", "private", "cosign-private", "empty", "jwk", "garbage", "cert", "bad-der"],
)
def test_refused_public_keys(tmp_path: Path, make: Callable[[], bytes], needle: str) -> None:
    path = tmp_path / "key.pub"
    path.write_bytes(make())
    with pytest.raises(SigningKeyError) as err:
        load_verification_key(path)
    _assert_one_line(err, str(path), needle, "expected")
    assert err.value.path == str(path)


def test_verification_key_equality_and_repr() -> None:
    a = load_verification_key(DATA / "sigstore_ecdsa_pub.pem")
    b = load_verification_key((DATA / "sigstore_ecdsa_pub.pem").read_bytes())
    assert a == b and hash(a) == hash(b) and a != load_verification_key(DATA / "cosign_attestation_pub.pem")
    assert b.source == "<bytes>" and "ECDSA P-256" in repr(a)
    with pytest.raises(SigningKeyError):
        VerificationKey(x25519.X25519PrivateKey.generate().public_key())  # type: ignore[arg-type]


# --- write_key_pair ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
def test_write_key_pair_modes_and_load_back(tmp_path: Path, umask: int) -> None:
    key = generate_signing_key()
    previous = os.umask(umask)
    try:
        key_path, pub_path = write_key_pair(key, tmp_path / "cosign", password=b"pw")
    finally:
        os.umask(previous)
    assert (key_path, pub_path) == (tmp_path / "cosign.key", tmp_path / "cosign.pub")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(pub_path.stat().st_mode) == 0o644
    assert key_path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert load_signing_key(key_path, password=b"pw").public_key() == key.public_key()
    assert load_verification_key(pub_path) == key.public_key()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cosign.key", "cosign.pub"]  # no temp files left


def test_write_key_pair_unencrypted_and_cosign_format(tmp_path: Path) -> None:
    key = generate_signing_key()
    key_path, _ = write_key_pair(key, str(tmp_path / "plain"), password=None)
    assert key_path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert load_signing_key(key_path).public_key() == key.public_key()
    key_path, pub_path = write_key_pair(key, tmp_path / "cos", password=b"pw", cosign_format=True)
    assert key_path.read_bytes().startswith(f"-----BEGIN {COSIGN_PEM_TYPE}-----".encode())
    assert load_signing_key(key_path, password=b"pw").public_key() == load_verification_key(pub_path)


def test_write_key_pair_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_bytes(b"keep me")
    with pytest.raises(SigningKeyError) as err:
        write_key_pair(generate_signing_key(), tmp_path / "k", password=None)
    _assert_one_line(err, str(tmp_path / "k.pub"), "exists already")
    assert (tmp_path / "k.pub").read_bytes() == b"keep me"
    assert not (tmp_path / "k.key").exists()
    key = generate_signing_key()
    write_key_pair(key, tmp_path / "k", password=None, overwrite=True)
    assert load_verification_key(tmp_path / "k.pub") == key.public_key()
    assert stat.S_IMODE((tmp_path / "k.key").stat().st_mode) == 0o600


def test_write_key_pair_loses_a_race_without_clobbering(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A .key that appears between the check and the link is kept, and the error names it."""
    real = keys_module._write_new

    def racing(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
        if path.suffix == ".key":
            path.write_bytes(b"theirs")
        real(path, data, mode, overwrite=overwrite)

    monkeypatch.setattr(keys_module, "_write_new", racing)
    with pytest.raises(SigningKeyError, match="exists already"):
        write_key_pair(generate_signing_key(), tmp_path / "r", password=None)
    assert (tmp_path / "r.key").read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.key"]


def test_write_key_pair_into_a_missing_directory(tmp_path: Path) -> None:
    """An operating-system failure is the builtin OSError (not a SigningKeyError: the key is fine), naming the key
    file the caller asked for, never the temp file."""
    with pytest.raises(FileNotFoundError) as err:
        write_key_pair(generate_signing_key(), tmp_path / "no" / "dir" / "k", password=None)
    assert not isinstance(err.value, SigningKeyError)
    assert err.value.filename == str(tmp_path / "no" / "dir" / "k.key")
    assert err.value.strerror == "No such file or directory"
    assert not (tmp_path / "no").exists()


def test_write_key_pair_under_a_file_names_the_key_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(NotADirectoryError) as err:
        write_key_pair(generate_signing_key(), tmp_path / "f" / "k", password=None)
    assert err.value.filename == str(tmp_path / "f" / "k.key")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_write_key_pair_public_key_failure_removes_the_new_private_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = keys_module._write_new

    def full_disk(path: Path, data: bytes, mode: int, *, overwrite: bool) -> None:
        if path.suffix == ".pub":
            raise OSError(28, "No space left on device", str(path.with_name(".k.pub.0123.tmp")))
        real(path, data, mode, overwrite=overwrite)

    monkeypatch.setattr(keys_module, "_write_new", full_disk)
    with pytest.raises(OSError, match="No space left on device") as err:
        write_key_pair(generate_signing_key(), tmp_path / "k", password=None)
    assert err.value.filename == str(tmp_path / "k.pub")
    assert list(tmp_path.iterdir()) == []


def test_write_key_pair_exists_message_names_no_keyword(tmp_path: Path) -> None:
    (tmp_path / "k.key").write_bytes(b"keep")
    with pytest.raises(SigningKeyError) as err:
        write_key_pair(generate_signing_key(), tmp_path / "k", password=None)
    assert str(err.value) == f"key file {tmp_path / 'k.key'} exists already: refusing to overwrite it"
    assert err.value.path == str(tmp_path / "k.key")


# --- password from the environment -------------------------------------------------------------------------------


def test_key_password_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COSIGN_PASSWORD", raising=False)
    assert key_password_from_env() is None
    monkeypatch.setenv("COSIGN_PASSWORD", "cos")
    assert key_password_from_env() == b"cos"
    monkeypatch.setenv("PYMODELKIT_KEY_PASSWORD", "pmk")
    assert key_password_from_env() == b"pmk"
    monkeypatch.setenv("PYMODELKIT_KEY_PASSWORD", "")
    assert key_password_from_env() == b""  # set but empty counts, as COSIGN_PASSWORD="" does in cosign
