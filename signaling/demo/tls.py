"""A self-signed certificate for ``switchboard demo --tls``.

Browsers only give a page the microphone and the screen in a secure context: ``https://``, or
plain HTTP on localhost (W3C Secure Contexts; the Calls documentation's "run on HTTPS"
requirement). Across a LAN that means HTTPS, and a demo has no CA-signed certificate, so we
make one: ECDSA P-256, valid for a year, with the machine's names and addresses as subject
alternative names. Browsers warn once about the unknown issuer; the printed SHA-256
fingerprint lets people check that they are talking to this machine.

The files are kept (``~/.cache/switchboard/demo-tls`` by default) and reused while they are
valid for another week and cover the current addresses, so a browser's exception survives
restarts.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VALIDITY = datetime.timedelta(days=365)
RENEW_BEFORE = datetime.timedelta(days=7)


@dataclass(frozen=True)
class CertFiles:
    cert: Path
    key: Path
    fingerprint: str      # SHA-256 of the DER certificate, colon-separated hex
    created: bool         # False when an existing certificate was reused


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "switchboard" / "demo-tls"


def fingerprint(cert: x509.Certificate) -> str:
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def _names(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set(), set()
    return set(san.get_values_for_type(x509.DNSName)), {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def ensure_self_signed(directory: Path, hostnames: Iterable[str], addresses: Iterable[str],
                       *, now: datetime.datetime | None = None) -> CertFiles:
    """Reuse ``directory/cert.pem`` and ``key.pem`` if they fit, else write new ones."""
    now = now or datetime.datetime.now(datetime.UTC)
    dns = sorted({h for h in hostnames if h})
    ips = sorted({str(ipaddress.ip_address(a)) for a in addresses})
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            have_dns, have_ips = _names(cert)
            if (cert.not_valid_after_utc - RENEW_BEFORE > now and cert.not_valid_before_utc <= now
                    and set(dns) <= have_dns and set(ips) <= have_ips):
                return CertFiles(cert_path, key_path, fingerprint(cert), False)
        except ValueError:
            pass                                           # unreadable: replace it
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "switchboard demo"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "switchboard (self-signed)")])
    san: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    san += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CertFiles(cert_path, key_path, fingerprint(cert), True)


def machine_names() -> list[str]:
    names = ["localhost"]
    for n in (socket.gethostname(), socket.getfqdn()):
        if n and n not in names:
            names.append(n)
    return names


def server_context(files: CertFiles) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(files.cert), str(files.key))
    return ctx
