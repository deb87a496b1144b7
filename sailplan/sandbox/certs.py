"""The sandbox's mesh PKI: a CA per run and a certificate per workload identity, as cert-manager
issues them in a cluster (SPIFFE URI SAN and its DNS name, client and server use), written the
way the sidecar reads its mounted Secret: `tls.crt`, `tls.key`, `ca.crt` in one directory, mode
0600."""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sailplan.model.security import identity_dns_name

# Long enough for any sandbox session; a cluster's certificates live 24 h and are renewed.
LIFETIME = datetime.timedelta(days=2)
# Clocks of a laptop and a CI runner can disagree a little.
BACKDATE = datetime.timedelta(minutes=5)


@dataclass(frozen=True)
class Authority:
    """A mesh CA: its certificate and key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


def new_authority(name: str = "sailplan sandbox mesh CA") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def _general_name(name: str) -> x509.GeneralName:
    """An IP address SAN for an address (clients check `127.0.0.1` against those), else DNS."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue(
    authority: Authority, identity: str, dns_names: list[str] | None = None
) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for a SPIFFE ID, usable as client and server certificate. No
    subject, as Istio's and cert-manager's SPIFFE certificates: the URI SAN is the identity, and
    the same identity as a DNS name (`identity_dns_name`, as cert-manager's certificates in a
    cluster) is what a caller's sidecar checks during the handshake; an identity no DNS name
    can hold gets none (the model refuses such meshes where sidecars would check one).
    With `dns_names` instead, a server certificate for those host names (the ingress's)."""
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName]
    if dns_names is None:
        names = [x509.UniformResourceIdentifier(identity)]
        dns_name = identity_dns_name(identity)
        if dns_name is not None:
            names.append(x509.DNSName(dns_name))
    else:
        names = [_general_name(name) for name in dns_names]
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + LIFETIME)
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()),
            critical=False,
        )
        .sign(authority.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def _private(path: Path, data: bytes) -> None:
    """Write `data` readable by the owner only, from the first byte on (no window at 0644)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(path, 0o600)


def write_identity(
    directory: Path, authority: Authority, identity: str, dns_names: list[str] | None = None
) -> Path:
    """The certificate directory of one workload, as its mounted Secret would be. Files are
    replaced by rename, as a Secret volume swaps them, so a reader never sees half a file.
    `dns_names`: the ingress's server certificate for those hosts instead of an identity."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    certificate, key = issue(authority, identity, dns_names)
    for name, data in (("tls.key", key), ("tls.crt", certificate), ("ca.crt", authority.pem)):
        staged = directory / f".{name}.new"
        _private(staged, data)
        staged.replace(directory / name)
    return directory


def serial_of(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number
