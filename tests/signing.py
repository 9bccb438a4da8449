"""A test CA and a signer's PKCS#12 file made for the tests, and pyHanko's verdict on a
signed PDF (used by tests/test_protect.py and tests/test_outbox.py)."""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils.crypt import AuthStatus
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext

PASSPHRASE = b"p12 passphrase \xc3\xa9"  # UTF-8, with a space: taken as it is


@dataclass(frozen=True)
class Signing:
    folder: Path
    p12: Path
    ca: asn1_x509.Certificate
    ca_key: ec.EllipticCurvePrivateKey
    ca_certificate: x509.Certificate

    def trusting(self) -> ValidationContext:
        return ValidationContext(trust_roots=[self.ca])


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, signer: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signer,
        content_commitment=signer,  # non-repudiation, which pyHanko's validator asks for
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not signer,
        crl_sign=not signer,
        encipher_only=False,
        decipher_only=False,
    )


def certificate(subject, issuer, public_key, issuer_key, *, ca: bool, days=(-1, 30)):
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days[0]))
        .not_valid_after(now + dt.timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(_key_usage(signer=not ca), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def signer_certificate(signing: Signing, key, days=(-1, 30)) -> x509.Certificate:
    return certificate(
        "Dossier Signer", "Dossier Test CA", key.public_key(), signing.ca_key, ca=False, days=days
    )


def write_p12(path: Path, key, certificate, extra=(), passphrase=PASSPHRASE) -> Path:
    protection = serialization.BestAvailableEncryption(passphrase)
    path.write_bytes(
        pkcs12.serialize_key_and_certificates(b"signer", key, certificate, extra, protection)
    )
    return path


def make_signing(folder: Path) -> Signing:
    """A CA, and a signer's certificate and key in `folder`/signer.p12 (with PASSPHRASE)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("Dossier Test CA", "Dossier Test CA", ca_key.public_key(), ca_key, ca=True)
    ca_der = ca.public_bytes(serialization.Encoding.DER)
    found = Signing(folder, folder / "signer.p12", asn1_x509.Certificate.load(ca_der), ca_key, ca)
    key = ec.generate_private_key(ec.SECP256R1())
    write_p12(found.p12, key, signer_certificate(found, key), [ca])
    return found


def only_signature(signed: bytes, password: str | None = None):
    reader = PdfFileReader(io.BytesIO(signed))
    if password is not None:
        assert reader.decrypt(password).status is AuthStatus.USER
    (signature,) = reader.embedded_signatures
    return signature


def validated(signed: bytes, signing: Signing, password: str | None = None):
    return validate_pdf_signature(only_signature(signed, password), signing.trusting())
