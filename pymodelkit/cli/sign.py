"""``pymodelkit generate-key-pair``, ``pymodelkit sign REF`` and ``pymodelkit verify REF``: one library call each
(``pymodelkit.signing``; ``docs/signing.md``).

Passwords come from ``PYMODELKIT_KEY_PASSWORD`` (else ``COSIGN_PASSWORD``), else from a prompt when stdin is a
terminal; they are never echoed, logged or put in a message.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pymodelkit.cli.context import get_state
from pymodelkit.cli.options import plain_http_setting, tls_options_without_client_cert
from pymodelkit.errors import SigningKeyError

if TYPE_CHECKING:
    from pymodelkit.signing.verification import ManifestVerifier

__all__ = [
    "annotation_options",
    "generate_key_pair_command",
    "manifest_verifier",
    "parse_annotations",
    "password_reader",
    "sign_command",
    "verify_command",
    "verify_option",
]

_F = TypeVar("_F", bound=Callable[..., Any])
PROMPT = "Enter password for private key"


def parse_annotations(values: Sequence[str]) -> dict[str, str]:
    """``-a key=value`` options as a mapping; raises click.BadParameter for one without ``=``."""
    claims: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not key=value", param_hint="'-a' / '--annotation'")
        claims[name] = text
    return claims


def annotation_options(command: _F) -> _F:
    """Add cosign's repeatable ``-a/--annotation key=value``."""
    return click.option("-a", "--annotation", "annotations", multiple=True, metavar="KEY=VALUE",
                        help="A claim in the signature payload (repeatable), as cosign's -a.")(command)


def verify_option(command: _F) -> _F:
    """Add ``--verify PUB`` (repeatable): refuse the ModelKit unless one of these public keys signed it."""
    return click.option("--verify", "verify_keys", multiple=True, metavar="PUB",
                        type=click.Path(dir_okay=False, path_type=Path),
                        help="Require a signature by this public key (repeatable: any one will do) before "
                             "anything is written. Default: what the signature policy says.")(command)


def password_reader(key: str) -> Callable[[], bytes]:
    """The password callable for an encrypted private key: the environment, else a prompt on a terminal."""

    def read() -> bytes:
        from pymodelkit.signing.keys import key_password_from_env

        found = key_password_from_env()
        if found is not None:
            return found
        if not sys.stdin.isatty():
            raise SigningKeyError(
                f"private key {key} is encrypted: set PYMODELKIT_KEY_PASSWORD (or COSIGN_PASSWORD), or run in a "
                "terminal to be asked", path=key,
            )
        return str(click.prompt(PROMPT, hide_input=True, err=True)).encode()

    return read


@click.command("generate-key-pair")
@click.option("--output-key-prefix", "prefix", default="cosign", show_default=True,
              help="Write PREFIX.key (mode 0600) and PREFIX.pub.")
@click.option("--no-password", is_flag=True, help="Write the private key unencrypted.")
@click.option("--cosign-format", is_flag=True,
              help="Write the private key as cosign's encrypted cosign.key (what `cosign sign --key` reads).")
@click.option("--force", is_flag=True, help="Replace existing key files.")
def generate_key_pair_command(prefix: str, no_password: bool, cosign_format: bool, force: bool) -> None:
    """Generate an ECDSA P-256 key pair for signing, as `cosign generate-key-pair` does.

    The password comes from PYMODELKIT_KEY_PASSWORD (or COSIGN_PASSWORD), else from a prompt (asked twice)."""
    from pymodelkit.signing.keys import generate_signing_key, key_password_from_env, write_key_pair

    password: bytes | None = None
    if not no_password:
        password = key_password_from_env()
        if password is None:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    "no password: set PYMODELKIT_KEY_PASSWORD (or COSIGN_PASSWORD), run in a terminal, or pass "
                    "--no-password for an unencrypted key"
                )
            password = str(click.prompt(PROMPT, hide_input=True, confirmation_prompt=f"{PROMPT} again",
                                        err=True)).encode()
        if not password and not cosign_format:
            raise click.UsageError("the password is empty: pass --no-password for an unencrypted key")
    try:
        key_path, pub_path = write_key_pair(generate_signing_key(), prefix, password=password, overwrite=force,
                                            cosign_format=cosign_format)
    except SigningKeyError as exc:  # a key file exists already (an OSError, exit 1, passes through as it is)
        raise SigningKeyError(f"{exc} (use --force)", path=exc.path) from None
    if not get_state().quiet:
        state = "unencrypted" if password is None and not cosign_format else "encrypted"
        click.echo(f"Private key written to {key_path} ({state}, mode 0600)")
        click.echo(f"Public key written to {pub_path}")


@click.command("sign")
@click.argument("reference")
@click.option("--key", "key", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The private key file (PKCS#8/SEC1/PKCS#1 PEM, or cosign's cosign.key).")
@annotation_options
@click.option("--bundle", is_flag=True,
              help="Also attach a sigstore bundle as an OCI 1.1 referrer (cosign v3's format).")
@click.option("--legacy/--no-legacy", default=True, show_default=True,
              help="Append the signature to the sha256-<hex>.sig tag (read by cosign 1.x, 2.x and 3.x).")
@tls_options_without_client_cert
def sign_command(
    reference: str, key: Path, annotations: tuple[str, ...], bundle: bool, legacy: bool, plain_http: bool,
    tls_verify: bool,
) -> None:
    """Sign the manifest of the ModelKit REFERENCE in its registry, as `cosign sign --key` does (no tlog)."""
    if not bundle and not legacy:
        raise click.UsageError("--no-legacy needs --bundle: nothing would be written")
    from pymodelkit.signing.signer import sign

    state = get_state()
    result = sign(
        reference, key, annotations=parse_annotations(annotations), password=password_reader(str(key)),
        bundle=bundle, legacy=legacy, plain_http=plain_http_setting(plain_http), tls_verify=tls_verify,
    )
    if state.quiet:
        return
    if legacy:
        what = "added to" if result.added else "already in"
        click.echo(f"Signed {result.reference}: signature {what} tag {result.signature_tag}")
    if result.bundle is not None:
        click.echo(f"Signed {result.reference}: bundle attached as referrer {result.bundle.digest}")


@click.command("verify")
@click.argument("reference")
@click.option("--key", "keys", required=True, multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="A public key file (PEM); repeatable: a signature by any one of them will do.")
@annotation_options
@tls_options_without_client_cert
def verify_command(
    reference: str, keys: tuple[Path, ...], annotations: tuple[str, ...], plain_http: bool, tls_verify: bool
) -> None:
    """Verify the signatures of the ModelKit REFERENCE, as `cosign verify --key --insecure-ignore-tlog=true` does.

    Prints the payload of each signature that verified, one JSON line each; exits 14 when none does."""
    from pymodelkit.signing.verification import verify

    state = get_state()
    result = verify(reference, list(keys), annotations=parse_annotations(annotations),
                    plain_http=plain_http_setting(plain_http), tls_verify=tls_verify)
    for signature in result.signatures:
        click.echo(signature.payload.decode("utf-8", "replace").strip())
    if not state.quiet:
        kinds = ", ".join(sorted({s.kind for s in result.signatures}))
        used = ", ".join(sorted({s.key for s in result.signatures}))
        click.echo(f"Verified {result.reference}: {len(result.signatures)} signature(s) ({kinds}) with {used}",
                   err=True)


def manifest_verifier(keys: Sequence[Path]) -> ManifestVerifier | None:
    """The library ``verify=`` value for ``--verify`` options: a verifier, or ``None`` (the policy applies)."""
    if not keys:
        return None
    from pymodelkit.signing.verification import verifier

    return verifier(list(keys))
