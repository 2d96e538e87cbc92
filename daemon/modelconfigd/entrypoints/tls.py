"""TLS for the server: its certificate and key, and for mutual TLS the CA clients must chain to.

The files are read at start and again on `reload()` (SIGHUP): new connections then use the new
ones, established ones keep theirs. A file that cannot be used is refused before it replaces
anything, so a botched rotation leaves the daemon serving with the old certificate.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from pathlib import Path

import grpc


class TlsFileError(ValueError):
    """A certificate, key or CA file that cannot be used; the message says which and why."""


def read_tls_files(cert: str, key: str, client_ca: str = "") -> tuple[bytes, bytes, bytes | None]:
    """The PEM bytes of the certificate, the key and the client CA, once `ssl` has checked what
    grpc would only find at the first handshake: that they are PEM and the key is the
    certificate's. No grpc object is made: a supervisor checks them before it forks."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsFileError(
            f"cannot use the TLS certificate {cert} with the key {key}: {exc}"
        ) from exc
    ca_pem = None
    if client_ca:
        try:
            context.load_verify_locations(client_ca)
            ca_pem = Path(client_ca).read_bytes()
        except (OSError, ssl.SSLError) as exc:
            raise TlsFileError(f"cannot use the client CA {client_ca}: {exc}") from exc
    return Path(cert).read_bytes(), Path(key).read_bytes(), ca_pem


class ServerTls:
    def __init__(self, cert: str, key: str, client_ca: str = "") -> None:
        self._cert, self._key, self._client_ca = cert, key, client_ca
        self._lock = threading.Lock()
        self._pending: grpc.ServerCertificateConfiguration | None = None
        self._ssl: ssl.SSLContext | None = None
        self._initial = self._read()

    @property
    def client_certificates(self) -> bool:
        return bool(self._client_ca)

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self._initial,
            self._next_configuration,
            require_client_authentication=self.client_certificates,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The same certificate (and client CA) for the JSON API over HTTP; `reload` loads
        the new files into it too, for new connections."""
        if self._ssl is None:
            self._ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._load_ssl()
        return self._ssl

    def _load_ssl(self) -> None:
        assert self._ssl is not None
        self._ssl.load_cert_chain(self._cert, self._key)
        if self._client_ca:
            self._ssl.verify_mode = ssl.CERT_REQUIRED
            self._ssl.load_verify_locations(self._client_ca)

    def reload(self) -> None:
        """Read the files again; TlsFileError (and nothing replaced) if they cannot be used."""
        configuration = self._read()
        with self._lock:
            self._pending = configuration
        if self._ssl is not None:
            with contextlib.suppress(OSError, ssl.SSLError):  # _read checked them just now
                self._load_ssl()

    def _next_configuration(self) -> grpc.ServerCertificateConfiguration | None:
        """grpc asks before each handshake; None keeps the configuration in use."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending

    def _read(self) -> grpc.ServerCertificateConfiguration:
        cert, key, client_ca = read_tls_files(self._cert, self._key, self._client_ca)
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=client_ca)
