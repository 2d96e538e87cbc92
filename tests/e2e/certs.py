"""Test PKI and tokens: a CA, server and client certificates, and tokens files, in a directory.

Certificates use P-256 keys (quick to make). The server certificate is for 127.0.0.1 (IP SAN)
and localhost (DNS SAN), which is what clients dial in the tests.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_DAY = datetime.timedelta(days=1)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` in one step, so a daemon reading it never sees half a file."""
    temporary = path.with_name(path.name + ".new")
    temporary.write_bytes(data)
    os.replace(temporary, path)


@dataclass
class Issued:
    """A certificate and its key, as PEM files."""

    cert: Path
    key: Path
    serial: int

    def cert_pem(self) -> bytes:
        return self.cert.read_bytes()

    def key_pem(self) -> bytes:
        return self.key.read_bytes()


class CertificateAuthority:
    """A certificate authority that writes what it issues into `directory`."""

    def __init__(self, directory: Path, name: str = "modelconfig test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._name = _name(name)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True,
                    crl_sign=True, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        self.path = directory / f"{name.replace(' ', '-')}.pem"
        self.path.write_bytes(self.pem())

    def pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def _issue(
        self,
        common_name: str,
        stem: str,
        usage: x509.ObjectIdentifier,
        san: list[x509.GeneralName] | None,
        serial: int | None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        serial = serial or x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - _DAY)
            .not_valid_after(now + 30 * _DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        cert_path, key_path = self.directory / f"{stem}.pem", self.directory / f"{stem}.key"
        write_atomically(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        write_atomically(key_path, _key_pem(key))
        return Issued(cert_path, key_path, serial)

    def server(self, stem: str = "server", serial: int | None = None) -> Issued:
        """A server certificate for 127.0.0.1 and localhost, written to `stem`.pem/.key."""
        san: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
        ]
        return self._issue("localhost", stem, ExtendedKeyUsageOID.SERVER_AUTH, san, serial)

    def client(self, common_name: str) -> Issued:
        """A client certificate whose subject common name is `common_name`."""
        stem = "client-" + common_name.replace("/", "_")
        return self._issue(common_name, stem, ExtendedKeyUsageOID.CLIENT_AUTH, None, None)


def peer_certificate_serial(port: int, ca: Path, host: str = "127.0.0.1") -> int:
    """The serial of the certificate the server on `port` presents to a new TLS connection."""
    context = ssl.create_default_context(cafile=str(ca))
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


# -- tokens ------------------------------------------------------------------------------------


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_toml(*entries: dict[str, str]) -> str:
    """A tokens file: one [[tokens]] table per entry; a `token` key is written as its sha256."""
    tables = []
    for entry in entries:
        lines = ["[[tokens]]"]
        for key, value in entry.items():
            if key == "token":
                key, value = "sha256", sha256_hex(value)
            lines.append(f'{key} = "{value}"')
        tables.append("\n".join(lines))
    return "\n\n".join(tables) + "\n"


def write_tokens(path: Path, *entries: dict[str, str]) -> Path:
    write_atomically(path, tokens_toml(*entries).encode())
    return path
