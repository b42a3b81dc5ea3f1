"""TLS material for the controller, made and checked with `cryptography` (never by running openssl).

- The fallback certificate ingress-nginx serves when a host has no usable Secret (and on the default
  server): self-signed, CN "Kubernetes Ingress Controller Fake Certificate", O "Acme Co", SAN
  ingress.local (ingress-nginx's internal/net/ssl GetFakeSSLCert).
- `certificate_from_secret`: a kubernetes.io/tls Secret -> one PEM file of certificate and key
  (ingress-nginx writes the same layout), or the reason it cannot be used (missing keys, bad PEM, a
  key that does not belong to the certificate, a host the certificate does not name).
- `self_signed`: what tests, benchmarks and users pass to `kubectl create secret tls`.
"""
from __future__ import annotations

import base64
import binascii
import datetime
import functools
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

FAKE_CN = "Kubernetes Ingress Controller Fake Certificate"
FAKE_FILE = "default-fake-certificate.pem"


@dataclass(frozen=True)
class Certificate:
    file: str            # file name under the controller's ssl directory
    pem: str             # certificate chain + private key
    names: tuple[str, ...]
    not_after: datetime.datetime

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.pem.encode()).hexdigest()


def self_signed(common_name: str, hosts: tuple[str, ...] | list[str] = (), *, organization: str | None = None,
                days: int = 365, key: str = "ec") -> tuple[str, str]:
    """(certificate PEM, private key PEM) of a self-signed certificate for `hosts` (SANs)."""
    private = ec.generate_private_key(ec.SECP256R1()) if key == "ec" else rsa.generate_private_key(65537, 2048)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    name = x509.Name(attributes)
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    certificate = builder.sign(private, hashes.SHA256())
    key_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                    serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


@functools.lru_cache(maxsize=1)
def fake_certificate() -> Certificate:
    """Made once per process, as ingress-nginx makes it once at start (RSA 2048, like upstream)."""
    cert, key = self_signed(FAKE_CN, ("ingress.local",), organization="Acme Co", key="rsa")
    parsed = x509.load_pem_x509_certificate(cert.encode())
    return Certificate(FAKE_FILE, cert + key, ("ingress.local",), parsed.not_valid_after_utc)


def _names(certificate: x509.Certificate) -> tuple[str, ...]:
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [n.lower() for n in san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    if not names:   # ingress-nginx falls back to the Common Name (verifyHostname)
        names = [a.value.lower() for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return tuple(names)


def names_host(names: tuple[str, ...], host: str) -> bool:
    """Go's VerifyHostname: an exact name, or a wildcard name covering exactly one left-most label."""
    host = host.lower().rstrip(".")
    for name in names:
        if name == host:
            return True
        if name.startswith("*.") and "." in host and host.split(".", 1)[1] == name[2:]:
            return True
        if host.startswith("*.") and name == host:   # a wildcard Ingress host and a wildcard certificate
            return True
    return False


def _decode(secret: dict, key: str) -> bytes | None:
    if key in (secret.get("stringData") or {}):
        return str(secret["stringData"][key]).encode()
    value = (secret.get("data") or {}).get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return None


def certificate_from_secret(secret: dict | None, host: str) -> tuple[Certificate | None, str | None]:
    """The Secret's certificate for `host`, or (None, why not)."""
    if secret is None:
        return None, "secret not found"
    meta = secret["metadata"]
    crt, key = _decode(secret, "tls.crt"), _decode(secret, "tls.key")
    if not crt or not key:
        return None, "secret has no tls.crt and tls.key"
    try:
        certificates = x509.load_pem_x509_certificates(crt)
    except ValueError as err:
        return None, f"tls.crt is not a PEM certificate ({err})"
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as err:
        return None, f"tls.key is not an unencrypted PEM private key ({err})"
    leaf = certificates[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(serialization.Encoding.PEM, public) != \
            private.public_key().public_bytes(serialization.Encoding.PEM, public):
        return None, "tls.key does not match the certificate in tls.crt"
    names = _names(leaf)
    if host and not names_host(names, host):
        return None, f"the certificate names {', '.join(names) or 'no host'}, not {host}"
    pem = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates) + key.decode()
    if not pem.endswith("\n"):
        pem += "\n"
    return Certificate(f"{meta.get('namespace', 'default')}-{meta['name']}.pem", pem, names,
                       leaf.not_valid_after_utc), None
