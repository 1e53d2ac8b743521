"""TLS in front of the plain-HTTP test registry: a throwaway PKI, a TLS terminator (optionally requiring a client
certificate), and a registry whose upload Locations are relative so that pushes work through the terminator.

:class:`TestPki` makes a CA, a server certificate for ``127.0.0.1`` and client certificates, all PEM files in one
directory. :func:`tls_front` listens on a free loopback port, completes the TLS handshake (``client_ca`` given:
``ssl.CERT_REQUIRED`` against it) and relays the decrypted bytes to the upstream, unchanged. distribution builds
absolute ``http://`` upload Locations from the ``Host`` header; :class:`RelativeUrlRegistry` (``http.relativeurls``)
answers with paths instead, which the client resolves against its ``https://`` request (spec
``oci-distribution.md`` §1.1).
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.registry import RegistryProcess

__all__ = ["CertFiles", "RelativeUrlRegistry", "TestPki", "tls_front"]

_LIFETIME = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class CertFiles:
    """A certificate and its unencrypted key, as PEM files."""

    cert: Path
    key: Path

    def combined(self) -> Path:
        """One PEM file holding the certificate and then the key (written next to them)."""
        path = self.cert.with_name(self.cert.stem + "-combined.pem")
        path.write_bytes(self.cert.read_bytes() + self.key.read_bytes())
        return path


class TestPki:
    """A CA named ``name`` in ``directory`` (``<name>-ca.pem``) that issues server and client certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path, name: str = "test") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"pymodelkit {name} CA")])
        now = datetime.datetime.now(datetime.timezone.utc)
        public = self._key.public_key()
        self._cert = (
            x509.CertificateBuilder().subject_name(self._subject).issuer_name(self._subject).public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca = directory / f"{name}-ca.pem"
        self.ca.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))

    def server(self, host: str = "127.0.0.1") -> CertFiles:
        """A server certificate for the IP address ``host``."""
        return self._issue(f"{self.name}-server", ExtendedKeyUsageOID.SERVER_AUTH,
                           x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]))

    def client(self, label: str = "client") -> CertFiles:
        """A client certificate (``clientAuth``)."""
        return self._issue(f"{self.name}-{label}", ExtendedKeyUsageOID.CLIENT_AUTH, None)

    def _issue(self, label: str, usage: x509.ObjectIdentifier, san: x509.SubjectAlternativeName | None) -> CertFiles:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, label)]))
            .issuer_name(self._subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        if san is not None:
            builder = builder.add_extension(san, critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        files = CertFiles(self.directory / f"{label}.pem", self.directory / f"{label}-key.pem")
        files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        files.key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()))
        return files


class RelativeUrlRegistry(RegistryProcess):
    """The Debian ``docker-registry`` with ``http.relativeurls: true``: upload Locations are paths."""

    def config(self) -> dict[str, object]:
        config = super().config()
        http = config["http"]
        assert isinstance(http, dict)
        config["http"] = {**http, "relativeurls": True}
        return config


@contextlib.contextmanager
def tls_front(upstream: tuple[str, int], server: CertFiles, *, client_ca: Path | None = None) -> Iterator[str]:
    """A TLS terminator on a free loopback port relaying each connection to ``upstream``; yields ``127.0.0.1:port``.

    With ``client_ca`` the handshake requires a client certificate that CA issued. A failed handshake closes the
    connection (the client sees the TLS alert)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server.cert, server.key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=client_ca)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    sockets: list[socket.socket] = []
    lock = threading.Lock()

    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(256 * 1024):
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def connect(raw: socket.socket) -> None:
        raw.settimeout(10)
        try:
            client = context.wrap_socket(raw, server_side=True)
        except OSError:  # ssl.SSLError included: no or a refused client certificate, plain HTTP, …
            raw.close()
            return
        try:
            backend = socket.create_connection(upstream, timeout=10)
        except OSError:
            client.close()
            return
        with lock:
            sockets.extend((client, backend))
        for source, sink in ((client, backend), (backend, client)):
            start(pump, source, sink)

    def start(target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        with lock:
            threads.append(thread)

    def serve() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            start(connect, raw)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        acceptor.join()
        listener.close()
        with lock:
            pending, open_sockets = list(threads), list(sockets)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in pending:
            thread.join(timeout=5)
        for sock in open_sockets:
            sock.close()
