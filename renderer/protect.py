"""Distribution copies: a PDF encrypted for one recipient (pikepdf) and signed (pyHanko).

A copy is encrypted first and signed second: the signature is an incremental update over the
whole encrypted file, so opening it needs the recipient's password and any change shows.

- Encryption is AES-256 (PDF 2.0, security handler revision 6). The recipient's password (the
  user password) opens the copy, which can be printed at full quality and read by assistive
  technology, but not changed (no edits, annotations, form filling or page assembly) nor copied
  from. The owner password is random and forgotten at once: a password equal to the user
  password would open the copy with the owner's rights, and readers would ignore the
  restrictions. Nobody holds more rights than a recipient (the restrictions are what readers
  honour: anyone who can open a PDF can decrypt it).
- Passwords are kept only as PDF readers take them: at most 127 bytes of UTF-8, and unchanged by
  SASLprep (the normalisation readers apply to what is typed; qpdf does not, so a password it
  would change could never be typed into a reader).
- Password files are CSV, one `address,password` line per recipient, UTF-8. A first line
  `address,password` is a header and is skipped; blank lines are skipped; spaces around a
  field are ignored; a password holding a comma or a quote is quoted (`"pass,word"`).
  Addresses are compared case-insensitively (the whole address), their domain in its ASCII
  (IDNA) form; the dictionaries returned are keyed by `address_key`.
- Generated password files are created readable by their owner alone (0600), written
  atomically, and never replace a file: an existing one is refused by name.
- pyHanko is an optional extra (`dossier[sign]`), imported only to sign.

No message, log or exception holds a password or a passphrase.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import stringprep
import unicodedata
from collections.abc import Iterable
from email.headerregistry import Address
from pathlib import Path
from typing import TYPE_CHECKING

import pikepdf

from .fileio import write_atomic
from .inputfiles import read_bounded
from .mail import parse_address
from .problems import InvalidInput, Problem

if TYPE_CHECKING:
    from pyhanko.sign.signers import SimpleSigner

MAX_PASSWORD_FILE_BYTES = 1_000_000
MAX_SECRET_BYTES = 4096  # a passphrase file holds one line; /dev/zero must not be read for ever
MAX_PKCS12_BYTES = 1_000_000
MAX_PDF_PASSWORD_BYTES = 127  # of UTF-8: what PDF 2.0 keeps of a password (qpdf: no more)
HEADER = ("address", "password")
UTF8_BOM = b"\xef\xbb\xbf"

# generated passwords: Crockford's base32 in lower case (no i, l, o, u: nothing to misread),
# four groups of five, 100 bits: "k7m2q-xw4pd-9f3hz-a8cne"
PASSWORD_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
PASSWORD_GROUPS = 4
PASSWORD_GROUP_LENGTH = 5

SIGNATURE_FIELD = "Signature"
NEEDS_PYHANKO = "--sign needs pyHanko: pip install 'dossier[sign]'"


# -- encryption --------------------------------------------------------------------------------
def encrypt(pdf: bytes, password: str) -> bytes:
    """The PDF encrypted with AES-256 (R6): `password` opens it, which allows printing (at full
    quality) and assistive technology, and no changes and no copying. The owner password is
    random and never kept. Raises ValueError (naming no password) for a password a PDF reader
    cannot take and for a signed PDF, whose signature encrypting would break."""
    problem = pdf_password_problem(password)
    if problem:
        raise ValueError(problem)
    with pikepdf.open(io.BytesIO(pdf)) as document:
        if _is_signed(document):
            raise ValueError(
                "the PDF is signed, and encrypting it breaks the signature: encrypt first"
            )
        output = io.BytesIO()
        document.save(output, encryption=_encryption(password))
    return output.getvalue()


def _encryption(password: str) -> pikepdf.Encryption:
    permissions = pikepdf.Permissions(
        accessibility=True,
        extract=False,
        modify_annotation=False,
        modify_assembly=False,
        modify_form=False,
        modify_other=False,
        print_lowres=True,
        print_highres=True,
    )
    owner = secrets.token_urlsafe(32)  # random, never stored: nobody opens it as its owner
    return pikepdf.Encryption(owner=owner, user=password, R=6, allow=permissions, aes=True)


def _is_signed(document: pikepdf.Pdf) -> bool:
    fields = document.Root.get("/AcroForm", {}).get("/Fields", [])
    return any(field.get("/FT") == "/Sig" and "/V" in field for field in fields)


def pdf_password_problem(password: str, what: str = "the password") -> str | None:
    """Why a PDF reader could not take `password`, or None; the message names it `what` and
    never quotes it."""
    if not password:
        return f"{what} is empty"
    if len(password.encode("utf-8", "surrogatepass")) > MAX_PDF_PASSWORD_BYTES:
        most = MAX_PDF_PASSWORD_BYTES
        return f"{what} is longer than {most} bytes of UTF-8, the most PDF readers take"
    if not saslprep_keeps(password):
        return (
            f"{what} has a character that PDF readers change or refuse (a control"
            " character, a special space, an accent not composed with its letter)"
        )
    return None


def saslprep_keeps(text: str) -> bool:
    """Whether SASLprep (RFC 4013, as PDF readers apply it to passwords) keeps `text` as it is
    and allows it: nothing mapped, NFKC-normal, nothing prohibited or unassigned, sound bidi."""
    if any(_saslprep_maps(character) or _saslprep_prohibits(character) for character in text):
        return False
    return unicodedata.normalize("NFKC", text) == text and _bidi_allowed(text)


def _saslprep_maps(character: str) -> bool:
    return stringprep.in_table_c12(character) or stringprep.in_table_b1(character)


def _saslprep_prohibits(character: str) -> bool:
    tables = (
        stringprep.in_table_a1,  # unassigned
        stringprep.in_table_c21_c22,  # control characters
        stringprep.in_table_c3,  # private use
        stringprep.in_table_c4,  # non-characters
        stringprep.in_table_c5,  # surrogates
        stringprep.in_table_c6,  # not plain text
        stringprep.in_table_c7,  # not canonical
        stringprep.in_table_c8,  # change display properties
        stringprep.in_table_c9,  # tagging
    )
    return any(table(character) for table in tables)


def _bidi_allowed(text: str) -> bool:
    """RFC 3454 section 6: right-to-left text holds no left-to-right letter, and starts and
    ends with a right-to-left character."""
    if not any(stringprep.in_table_d1(character) for character in text):
        return True
    if any(stringprep.in_table_d2(character) for character in text):
        return False
    return stringprep.in_table_d1(text[0]) and stringprep.in_table_d1(text[-1])


# -- passwords per recipient -------------------------------------------------------------------
def address_key(address: str | Address) -> str:
    """What a password file's address is looked up by: the address alone (no display name), its
    domain in ASCII (IDNA), in lower case. Raises InvalidInput for what is not an address."""
    return _key(parse_address(str(address)))


def _key(address: Address) -> str:
    return f"{address.username}@{address.domain}".lower()


def read_passwords(path: Path) -> dict[str, str]:
    """The passwords of a CSV file of `address,password` lines, keyed by `address_key`.

    Raises InvalidInput with every problem, each at its line (`path:line: ...`): a line without
    a password, one with another number of fields, an address listed twice, text that is not
    UTF-8, a file with no address. No message quotes a password, nor a field that is not an
    address (it might be a password in the wrong column)."""
    shown = str(path)
    text = _secret_text(read_bounded(path, MAX_PASSWORD_FILE_BYTES, "password files"), shown)
    passwords: dict[str, str] = {}
    first_lines: dict[str, int] = {}
    problems = []
    for line, row in _rows(text):
        try:
            address, password = _entry(row)
        except _Refused as refused:
            problems.append(Problem(shown, line, "", str(refused)))
            continue
        key = _key(address)
        if key in first_lines:
            message = f"{address.addr_spec} is listed twice (first on line {first_lines[key]})"
            problems.append(Problem(shown, line, "", message))
            continue
        first_lines[key], passwords[key] = line, password
    if problems:
        raise InvalidInput(problems)
    if not passwords:
        message = "no addresses in it; each line is address,password"
        raise InvalidInput([Problem(shown, None, "", message)])
    return passwords


def _secret_text(raw: bytes, shown: str) -> str:
    """UTF-8 text (a byte-order mark accepted) holding secrets: what is not UTF-8 is named by
    its line alone, since the byte itself may be part of a password."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        message = "not UTF-8 text; save the file as UTF-8"
        raise InvalidInput([Problem(shown, line, "", message)]) from None


class _Refused(Exception):
    """A line of a password file that cannot be used; its message names no password."""


def _rows(text: str) -> list[tuple[int, str]]:
    """(line number, text) of each line that is not blank, the header left out."""
    rows = [(number, line.strip()) for number, line in enumerate(text.split("\n"), 1)]
    rows = [(number, line) for number, line in rows if line]
    if rows and _is_header(rows[0][1]):
        return rows[1:]
    return rows


def _is_header(line: str) -> bool:
    try:
        return tuple(field.strip().lower() for field in _fields(line)) == HEADER
    except _Refused:
        return False


def _fields(line: str) -> list[str]:
    """A line's CSV fields, spaces around them dropped."""
    try:
        fields = next(csv.reader([line], strict=True, skipinitialspace=True))
    except csv.Error:
        raise _Refused(
            "a quote that is not closed, or text after a closing quote; quote a whole"
            ' password: address,"pass,word"'
        ) from None
    return [field.strip() for field in fields]


def _entry(line: str) -> tuple[Address, str]:
    fields = _fields(line)
    if len(fields) > 2:
        raise _Refused(
            f"{len(fields)} fields; each line is address,password (quote a password that"
            ' holds a comma: "pass,word")'
        )
    address = _address(fields[0])
    password = fields[1] if len(fields) == 2 else ""
    if not password:
        raise _Refused(f"no password for {address.addr_spec}")
    problem = pdf_password_problem(password, f"the password for {address.addr_spec}")
    if problem:
        raise _Refused(problem)
    return address, password


def _address(text: str) -> Address:
    if not text:
        raise _Refused("no address before the comma; each line is address,password")
    try:
        return parse_address(text)
    except InvalidInput:  # its message quotes the field, which may be a password
        raise _Refused(
            "the first field is not an e-mail address; each line is address,password"
        ) from None


def passwords_for(
    addresses: Iterable[str | Address], passwords: dict[str, str], path: Path
) -> dict[str, str]:
    """Each address's password (keyed by the address as given); InvalidInput naming every
    address that `passwords` (read from `path`) has none for."""
    found, problems = {}, []
    for address in addresses:
        password = passwords.get(address_key(address))
        if password is None:
            message = f"no password for {address!s}; add a line address,password"
            problems.append(Problem(str(path), None, "", message))
        else:
            found[str(address)] = password
    if problems:
        raise InvalidInput(problems)
    return found


def kept_passwords(addresses: Iterable[str | Address], path: Path) -> dict[str, str]:
    """Generated passwords, kept in `path` from one run to the next: a recipient the file
    lists keeps their password, one it does not list gets a new one, and the file is then
    replaced (atomically, readable by its owner alone: 0600). Returns each address's password,
    keyed by the address as given."""
    addresses = [parse_address(str(text)) for text in addresses]
    known = read_passwords(path) if _is_there(path) else {}
    missing = {_key(address): address for address in addresses if _key(address) not in known}
    if missing:
        known.update({key: new_password() for key in missing})
        _write_private(path, _password_csv(known.items()))
    return passwords_for(addresses, known, path)


def _is_there(path: Path) -> bool:
    return path.exists() or path.is_symlink()  # a broken link is read, and refused, as such


def new_password() -> str:
    """100 random bits, easy to read out and type: `k7m2q-xw4pd-9f3hz-a8cne`."""
    groups = (
        "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_GROUP_LENGTH))
        for _ in range(PASSWORD_GROUPS)
    )
    return "-".join(groups)


def _password_csv(entries: Iterable[tuple[str, str]]) -> bytes:
    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(entries)
    return output.getvalue().encode()


def _write_private(path: Path, data: bytes) -> None:
    """`data` written (atomically) to a file readable by its owner alone, never more even for
    an instant: the umask is 077 while it is made (the umask is the process's: a file another
    thread makes meanwhile is only more private)."""
    previous = os.umask(0o077)
    try:
        write_atomic(path, data, mode=0o600)
    finally:
        os.umask(previous)


def read_secret(path: Path) -> bytes:
    """The first line of a file (a PKCS#12 passphrase), without its line break; a UTF-8
    byte-order mark is dropped. InvalidInput when that line is empty."""
    raw = read_bounded(path, MAX_SECRET_BYTES, "passphrase files")
    secret = raw.removeprefix(UTF8_BOM).split(b"\n", 1)[0].removesuffix(b"\r")
    if not secret:
        raise InvalidInput(
            [Problem(str(path), 1, "", "the first line is empty; it holds the passphrase")]
        )
    return secret


# -- signatures --------------------------------------------------------------------------------
def sign(pdf: bytes, p12: Path, passphrase: bytes | None, *, password: str | None = None) -> bytes:
    """The PDF with a PAdES B-B signature over the whole file (an incremental update), made with
    the certificate and key of the PKCS#12 file `p12`. An encrypted PDF needs its user
    `password`, and stays encrypted. InvalidInput, naming the file, when it cannot be used."""
    return sign_with(pdf, load_signer(p12, passphrase), password=password)


def load_signer(p12: Path, passphrase: bytes | None) -> SimpleSigner:
    """pyHanko's signer of the certificate and key in the PKCS#12 file `p12`, to sign many
    copies with one reading; InvalidInput (one line, naming the file) when pyHanko is missing,
    the file is not PKCS#12, the passphrase is missing or wrong, the key or certificate is
    missing, or the certificate is not valid today."""
    _require_pyhanko(p12)
    data = read_bounded(p12, MAX_PKCS12_BYTES, "PKCS#12 files")
    return _simple_signer(*_open_pkcs12(data, passphrase, p12))


def _require_pyhanko(p12: Path) -> None:
    try:
        import asn1crypto.pkcs12  # noqa: F401
        import cryptography.hazmat.primitives.serialization.pkcs12  # noqa: F401
        import pyhanko.sign  # noqa: F401
    except ImportError:
        raise InvalidInput([Problem(str(p12), None, "", NEEDS_PYHANKO)]) from None


def _open_pkcs12(data: bytes, passphrase: bytes | None, p12: Path) -> tuple:
    """The private key, its certificate (valid today) and the other certificates (its chain)
    of a PKCS#12 file (cryptography's objects); InvalidInput when one is missing."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    if not _is_pkcs12(data):
        raise _p12_problem(
            p12, "not a PKCS#12 file (.p12 or .pfx: a certificate and its private key)"
        )
    try:
        key, certificate, others = pkcs12.load_key_and_certificates(data, passphrase)
    except ValueError:  # cryptography says "Invalid password or PKCS12 data" for both
        message = "wrong passphrase" if passphrase else "needs a passphrase (--sign-password-file)"
        raise _p12_problem(p12, message) from None
    if key is None:
        raise _p12_problem(p12, "holds no private key; export the certificate with its private key")
    if certificate is None:
        raise _p12_problem(p12, "holds a private key but not its certificate")
    _check_validity(certificate, p12)
    return key, certificate, others


def _simple_signer(key, certificate, others) -> SimpleSigner:
    """pyHanko's signer of cryptography's key and certificates, through its constructor:
    pyHanko 0.25 has no SimpleSigner.load_pkcs12_data (which would read the file again)."""
    from asn1crypto import keys, x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    der, pkcs8 = serialization.Encoding.DER, serialization.PrivateFormat.PKCS8
    key_info = keys.PrivateKeyInfo.load(key.private_bytes(der, pkcs8, serialization.NoEncryption()))
    chain = [x509.Certificate.load(other.public_bytes(der)) for other in others]
    return SimpleSigner(
        signing_cert=x509.Certificate.load(certificate.public_bytes(der)),
        signing_key=key_info,
        cert_registry=SimpleCertificateStore.from_certs(chain),
    )


def _is_pkcs12(data: bytes) -> bool:
    """Whether `data` has the structure of a PKCS#12 file (RFC 7292's PFX, version 3)."""
    from asn1crypto.pkcs12 import Pfx

    try:
        pfx = Pfx.load(data, strict=True)
        integrity = pfx["auth_safe"]["content_type"].native  # by password or by public key
        return pfx["version"].native == "v3" and integrity in ("data", "signed_data")
    except (ValueError, TypeError, KeyError):
        return False


def _check_validity(certificate, p12: Path) -> None:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    if now > certificate.not_valid_after_utc:
        day = certificate.not_valid_after_utc.date().isoformat()
        raise _p12_problem(
            p12, f"the certificate expired on {day}; a signature made with it is not valid"
        )
    if now < certificate.not_valid_before_utc:
        day = certificate.not_valid_before_utc.date().isoformat()
        raise _p12_problem(p12, f"the certificate is valid only from {day}")


def _p12_problem(p12: Path, message: str) -> InvalidInput:
    return InvalidInput([Problem(str(p12), None, "", message)])


def sign_with(pdf: bytes, signer: SimpleSigner, *, password: str | None = None) -> bytes:
    """The PDF signed by `signer` (from load_signer): PAdES B-B (ETSI.CAdES.detached, SHA-256,
    the signing certificate among the signed attributes), in an invisible field, as an
    incremental update covering the whole file. An encrypted PDF is opened with its user
    `password` first, and its update is encrypted the same way. ValueError (naming no
    password) when the password does not fit the PDF."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    _open_for_update(writer, password)
    metadata = PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD, subfilter=SigSeedSubFilter.PADES, md_algorithm="sha256"
    )
    return PdfSigner(metadata, signer).sign_pdf(writer).getvalue()


def _open_for_update(writer, password: str | None) -> None:
    from pyhanko.pdf_utils.crypt import AuthStatus

    if not writer.prev.encrypted:
        if password is not None:
            raise ValueError("a password was given, but the PDF is not encrypted")
        return
    if password is None or pdf_password_problem(password):
        raise ValueError("the PDF is encrypted: signing it needs its user password")
    if writer.encrypt(password).status is AuthStatus.FAILED:
        raise ValueError("the password given does not open the encrypted PDF")
