"""Distribution copies: encrypted for one recipient, signed, and the password files."""

from __future__ import annotations

import io
import os
import re
import stat
import sys
import unicodedata
from pathlib import Path

import pikepdf
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.pdf_utils.crypt import AuthStatus
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import SignatureCoverageLevel

from renderer.problems import InvalidInput
from renderer.protect import (
    address_key,
    encrypt,
    kept_passwords,
    load_signer,
    new_password,
    passwords_for,
    read_passwords,
    read_secret,
    saslprep_keeps,
    sign,
    sign_with,
)
from tests.signing import (
    PASSPHRASE,
    only_signature,
    signer_certificate,
    validated,
    write_p12,
)

PASSWORD = "k7m2q-xw4pd-9f3hz-a8cne"
TEXT = b"BT /F1 12 Tf 20 50 Td (Distribution copy) Tj ET"
REFUSED_CHARACTER = (
    "has a character that PDF readers change or refuse (a control character, a special space,"
    " an accent not composed with its letter)"
)
TOO_LONG = "is longer than 127 bytes of UTF-8, the most PDF readers take"
PRINT_ONLY = pikepdf.Permissions(
    accessibility=True,
    extract=False,
    modify_annotation=False,
    modify_assembly=False,
    modify_form=False,
    modify_other=False,
    print_lowres=True,
    print_highres=True,
)


# -- a small real PDF, a CA and a signer of our own --------------------------------------------
@pytest.fixture(scope="module")
def pdf() -> bytes:
    document = pikepdf.new()
    document.add_blank_page(page_size=(200, 100))
    page = document.pages[0]
    font = pikepdf.Dictionary(
        Type=pikepdf.Name.Font, Subtype=pikepdf.Name.Type1, BaseFont=pikepdf.Name.Helvetica
    )
    page.Resources = pikepdf.Dictionary(Font=pikepdf.Dictionary(F1=document.make_indirect(font)))
    page.Contents = document.make_stream(TEXT)
    output = io.BytesIO()
    document.save(output)
    return output.getvalue()


def _page_text(document: pikepdf.Pdf) -> bytes:
    return document.pages[0].Contents.read_bytes()


# -- encryption --------------------------------------------------------------------------------
def test_an_encrypted_copy_opens_with_its_password_alone(pdf):
    encrypted = encrypt(pdf, PASSWORD)
    for wrong in ("", "k7m2q-xw4pd-9f3hz-a8cnf"):
        with pytest.raises(pikepdf.PasswordError):
            pikepdf.open(io.BytesIO(encrypted), password=wrong)
    with pikepdf.open(io.BytesIO(encrypted), password=PASSWORD) as document:
        assert _page_text(document) == TEXT
        assert document.user_password_matched
        assert not document.owner_password_matched  # the owner's is random, and forgotten
    assert TEXT not in encrypted


def test_an_encrypted_copy_is_aes_256_r6_and_may_be_printed_but_not_changed(pdf):
    with pikepdf.open(io.BytesIO(encrypt(pdf, PASSWORD)), password=PASSWORD) as document:
        info = document.encryption
        assert (info.R, info.V, info.bits) == (6, 5, 256)
        methods = {info.stream_method, info.string_method, info.file_method}
        assert {method.name for method in methods} == {"aesv3"}  # AES-256
        assert document.allow == PRINT_ONLY


def test_two_copies_for_one_password_differ(pdf):
    assert encrypt(pdf, PASSWORD) != encrypt(pdf, PASSWORD)


def test_a_composed_accent_works_with_pikepdf_and_pyhanko(pdf):
    password = "Zoë Ångström"
    encrypted = encrypt(pdf, password)
    with pikepdf.open(io.BytesIO(encrypted), password=password) as document:
        assert _page_text(document) == TEXT
    assert PdfFileReader(io.BytesIO(encrypted)).decrypt(password).status is AuthStatus.USER


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("", "the password is empty"),
        ("x" * 128, "the password is longer than 127 bytes of UTF-8, the most PDF readers take"),
        ("é" * 64, "the password is longer than 127 bytes of UTF-8, the most PDF readers take"),
        (
            "tab\there",
            "the password has a character that PDF readers change or refuse (a control"
            " character, a special space, an accent not composed with its letter)",
        ),
        (
            unicodedata.normalize("NFD", "Zoë"),
            "the password has a character that PDF readers change or refuse (a control"
            " character, a special space, an accent not composed with its letter)",
        ),
    ],
)
def test_a_password_pdf_readers_cannot_take_is_refused(pdf, password, message):
    with pytest.raises(ValueError) as raised:
        encrypt(pdf, password)
    assert str(raised.value) == message


def test_the_longest_password_is_127_bytes(pdf):
    password = "x" * 127
    with pikepdf.open(io.BytesIO(encrypt(pdf, password)), password=password) as document:
        assert _page_text(document) == TEXT


@pytest.mark.parametrize(
    "text",
    [
        "plain ascii, with spaces & signs!",
        "Zoë",
        unicodedata.normalize("NFD", "Zoë"),
        "non\u00a0breaking",
        "soft\u00adhyphen",
        "ﬁ ligature",
        "ｆｕｌｌ",
        "bell\x07",
        "private\ue000",
        "זה עברית",
        "mixed עברית",
    ],
)
def test_saslprep_keeps_what_pyhanko_keeps(text):
    from pyhanko.pdf_utils.crypt._saslprep import saslprep  # how a reader takes a password

    try:
        kept = saslprep(text) == text
    except ValueError:  # prohibited
        kept = False
    assert saslprep_keeps(text) is kept


def test_a_signed_pdf_is_not_encrypted(pdf, signing):
    signed = sign(pdf, signing.p12, PASSPHRASE)
    with pytest.raises(ValueError) as raised:
        encrypt(signed, PASSWORD)
    assert (
        str(raised.value)
        == "the PDF is signed, and encrypting it breaks the signature: encrypt first"
    )


# -- signatures --------------------------------------------------------------------------------
def test_a_signed_copy_is_intact_valid_trusted_over_the_whole_file(pdf, signing):
    signed = sign(pdf, signing.p12, PASSPHRASE)
    assert signed.startswith(pdf)  # an incremental update
    status = validated(signed, signing)
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.coverage is SignatureCoverageLevel.ENTIRE_FILE
    assert status.bottom_line
    assert status.md_algorithm == "sha256"


def test_a_signature_is_pades_b_b(pdf, signing):
    signature = only_signature(sign(pdf, signing.p12, PASSPHRASE))
    assert signature.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    attributes = {attribute["type"].native for attribute in signature.signer_info["signed_attrs"]}
    assert attributes == {"content_type", "message_digest", "signing_certificate_v2"}


def test_a_signed_encrypted_copy_stays_encrypted_and_validates(pdf, signing):
    encrypted = encrypt(pdf, PASSWORD)
    signed = sign(encrypted, signing.p12, PASSPHRASE, password=PASSWORD)
    assert signed.startswith(encrypted)
    with pytest.raises(pikepdf.PasswordError):
        pikepdf.open(io.BytesIO(signed))
    with pikepdf.open(io.BytesIO(signed), password=PASSWORD) as document:
        assert _page_text(document) == TEXT
        assert document.encryption.R == 6
        assert document.allow == PRINT_ONLY
    status = validated(signed, signing, PASSWORD)
    assert (status.intact, status.valid, status.trusted) == (True, True, True)
    assert status.coverage is SignatureCoverageLevel.ENTIRE_FILE
    assert status.bottom_line


def test_one_signer_signs_many_copies(pdf, signing):
    signer = load_signer(signing.p12, PASSPHRASE)
    for password in ("first-copy", "second-copy"):
        signed = sign_with(encrypt(pdf, password), signer, password=password)
        assert validated(signed, signing, password).bottom_line


@pytest.mark.parametrize("password", [None, PASSWORD])
def test_one_byte_changed_in_the_signed_range_invalidates_the_signature(pdf, signing, password):
    unsigned = pdf if password is None else encrypt(pdf, password)
    signed = bytearray(sign(unsigned, signing.p12, PASSPHRASE, password=password))
    at = signed.index(b"stream\n") + len(b"stream\n")  # the first stream's first byte
    assert at < len(unsigned)  # in the signed revision, so inside the first signed range
    signed[at] ^= 0x01
    status = validated(bytes(signed), signing, password)
    # the CMS signature over its attributes still verifies (valid); the digest of the document
    # it holds no longer matches (not intact), so the certificate is not even checked
    assert (status.intact, status.valid, status.trusted) == (False, True, False)
    assert status.coverage is SignatureCoverageLevel.ENTIRE_FILE
    assert not status.bottom_line
    assert status.summary() == "INVALID"


def test_signing_an_encrypted_pdf_needs_its_password(pdf, signing):
    signer = load_signer(signing.p12, PASSPHRASE)
    encrypted = encrypt(pdf, PASSWORD)
    cases = [
        (encrypted, None, "the PDF is encrypted: signing it needs its user password"),
        (encrypted, "not-the-password", "the password given does not open the encrypted PDF"),
        (pdf, PASSWORD, "a password was given, but the PDF is not encrypted"),
    ]
    for unsigned, password, message in cases:
        with pytest.raises(ValueError) as raised:
            sign_with(unsigned, signer, password=password)
        assert str(raised.value) == message


# -- what the PKCS#12 file can be --------------------------------------------------------------
def _refusal(p12: Path, passphrase: bytes | None = PASSPHRASE) -> str:
    with pytest.raises(InvalidInput) as raised:
        load_signer(p12, passphrase)
    assert PASSPHRASE.decode() not in str(raised.value)
    return str(raised.value)


def test_a_wrong_or_missing_passphrase_is_named(signing):
    assert _refusal(signing.p12, b"wrong") == f"{signing.p12}: wrong passphrase"
    expected = f"{signing.p12}: needs a passphrase (--sign-password-file)"
    assert _refusal(signing.p12, None) == expected


def test_a_file_that_is_not_pkcs12_is_named(signing, pdf):
    pem = signing.folder / "ca.pem"
    pem.write_bytes(signing.ca_certificate.public_bytes(serialization.Encoding.PEM))
    der = signing.folder / "ca.der"  # DER, but a certificate's, not a PFX
    der.write_bytes(signing.ca_certificate.public_bytes(serialization.Encoding.DER))
    document = signing.folder / "document.pdf"
    document.write_bytes(pdf)
    for path in (pem, der, document):
        message = "not a PKCS#12 file (.p12 or .pfx: a certificate and its private key)"
        assert _refusal(path) == f"{path}: {message}"


def test_a_certificate_without_its_private_key_is_named(signing):
    key = ec.generate_private_key(ec.SECP256R1())
    p12 = write_p12(signing.folder / "no-key.p12", None, None, [signer_certificate(signing, key)])
    expected = f"{p12}: holds no private key; export the certificate with its private key"
    assert _refusal(p12) == expected


def test_a_private_key_without_its_certificate_is_named(signing):
    p12 = write_p12(signing.folder / "no-cert.p12", ec.generate_private_key(ec.SECP256R1()), None)
    assert _refusal(p12) == f"{p12}: holds a private key but not its certificate"


def test_an_expired_certificate_is_named(signing):
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = signer_certificate(signing, key, days=(-30, -2))
    p12 = write_p12(signing.folder / "expired.p12", key, certificate)
    day = certificate.not_valid_after_utc.date().isoformat()
    expected = f"{p12}: the certificate expired on {day}; a signature made with it is not valid"
    assert _refusal(p12) == expected


def test_a_missing_pkcs12_file_is_named(signing):
    missing = signing.folder / "missing.p12"
    assert _refusal(missing) == f"{missing}: cannot read: no such file or directory"


def test_without_pyhanko_signing_says_what_to_install(signing, monkeypatch):
    for name in [name for name in sys.modules if name.split(".")[0] == "pyhanko"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pyhanko", None)
    expected = f"{signing.p12}: --sign needs pyHanko: pip install 'dossier[sign]'"
    assert _refusal(signing.p12) == expected


def test_read_secret_takes_the_first_line_without_its_line_break(tmp_path):
    secret = tmp_path / "passphrase"
    for content in (
        PASSPHRASE,
        PASSPHRASE + b"\n",
        PASSPHRASE + b"\r\nmore\n",
        b"\xef\xbb\xbf" + PASSPHRASE,
    ):
        secret.write_bytes(content)
        assert read_secret(secret) == PASSPHRASE


def test_read_secret_refuses_an_empty_first_line(tmp_path):
    secret = tmp_path / "passphrase"
    for content in (b"", b"\n", b"\r\nsecond line\n"):
        secret.write_bytes(content)
        with pytest.raises(InvalidInput) as raised:
            read_secret(secret)
        assert str(raised.value) == f"{secret}:1: the first line is empty; it holds the passphrase"


def test_read_secret_reads_no_more_than_a_line_can_hold(tmp_path):
    secret = tmp_path / "passphrase"
    secret.write_bytes(b"x" * 5000)
    with pytest.raises(InvalidInput) as raised:
        read_secret(secret)
    expected = f"{secret}: file is 5,000 bytes; passphrase files are at most 4,096 bytes"
    assert str(raised.value) == expected


# -- password files ----------------------------------------------------------------------------
def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(InvalidInput) as raised:
        read_passwords(path)
    return str(raised.value).splitlines()


def test_a_password_file_with_its_header(tmp_path):
    path = _write(
        tmp_path / "passwords.csv",
        "\n Address , Password \n"
        "ann@example.org,first-pw\r\n"
        "\n"
        '  Bob <Bob@Example.ORG> , "pass, with a comma"  \n'
        'carol@bücher.de,"say ""hi"""\n',
    )
    assert read_passwords(path) == {
        "ann@example.org": "first-pw",
        "bob@example.org": "pass, with a comma",
        "carol@xn--bcher-kva.de": 'say "hi"',
    }


def test_a_password_file_without_a_header(tmp_path):
    path = _write(tmp_path / "passwords.csv", "ann@example.org,first-pw\n")
    assert read_passwords(path) == {"ann@example.org": "first-pw"}


def test_addresses_are_looked_up_without_regard_to_case(tmp_path):
    path = _write(tmp_path / "passwords.csv", "Ann@Example.org,first-pw\ncarol@bücher.de,pw\n")
    passwords = read_passwords(path)
    assert passwords[address_key("ANN@EXAMPLE.ORG")] == "first-pw"
    assert passwords[address_key("Carol <carol@BÜCHER.de>")] == "pw"
    assert passwords_for(["Ann <ann@example.ORG>"], passwords, path) == {
        "Ann <ann@example.ORG>": "first-pw"
    }


def test_every_problem_of_a_password_file_at_its_line_and_no_password_shown(tmp_path):
    lines = [
        "address,password",
        "ann@example.org",  # 2
        "bob@example.org,",  # 3
        "carol@example.org,secret-one,secret-two",  # 4
        "secret-three,dave@example.org",  # 5: the columns swapped
        "eve@example.org,secret-four",  # 6
        "EVE@EXAMPLE.ORG,secret-five",  # 7
        ",secret-six",  # 8
        'frank@example.org,"secret-seven',  # 9
        "gina@example.org,secret\x07eight",  # 10
        "hank@example.org," + "secret-nine" * 12,  # 11
        "address,password",  # 12: a header only on the first line
    ]
    path = _write(tmp_path / "passwords.csv", "\n".join(lines) + "\n")
    shown = str(path)
    assert _problems(path) == [
        f"{shown}:2: no password for ann@example.org",
        f"{shown}:3: no password for bob@example.org",
        f"{shown}:4: 3 fields; each line is address,password (quote a password that holds a"
        ' comma: "pass,word")',
        f"{shown}:5: the first field is not an e-mail address; each line is address,password",
        f"{shown}:7: EVE@EXAMPLE.ORG is listed twice (first on line 6)",
        f"{shown}:8: no address before the comma; each line is address,password",
        f"{shown}:9: a quote that is not closed, or text after a closing quote; quote a whole"
        ' password: address,"pass,word"',
        f"{shown}:10: the password for gina@example.org {REFUSED_CHARACTER}",
        f"{shown}:11: the password for hank@example.org {TOO_LONG}",
        f"{shown}:12: the first field is not an e-mail address; each line is address,password",
    ]
    assert "secret" not in "\n".join(_problems(path)).replace(shown, "")


@pytest.mark.parametrize("text", ["", "\n\n", "address,password\n", " \r\n"])
def test_a_password_file_with_no_address_is_refused(tmp_path, text):
    path = _write(tmp_path / "passwords.csv", text)
    assert _problems(path) == [f"{path}: no addresses in it; each line is address,password"]


def test_a_password_file_that_is_not_utf8_names_the_line_but_not_the_byte(tmp_path):
    path = tmp_path / "passwords.csv"
    path.write_bytes(b"ann@example.org,first\nbob@example.org,caf\xe9\n")
    assert _problems(path) == [f"{path}:2: not UTF-8 text; save the file as UTF-8"]


def test_a_missing_password_file_is_named(tmp_path):
    missing = tmp_path / "passwords.csv"
    assert _problems(missing) == [f"{missing}: cannot read: no such file or directory"]


def test_a_recipient_without_a_password_is_named(tmp_path):
    path = _write(tmp_path / "passwords.csv", "ann@example.org,first-pw\n")
    with pytest.raises(InvalidInput) as raised:
        passwords_for(["ann@example.org", "bob@example.org"], read_passwords(path), path)
    expected = f"{path}: no password for bob@example.org; add a line address,password"
    assert str(raised.value) == expected


# -- generated passwords -----------------------------------------------------------------------
@pytest.fixture
def permissive_umask():
    """Whatever the user's umask, a password file is readable by its owner alone."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def test_generated_passwords_are_written_for_their_owner_alone(tmp_path, permissive_umask):
    path = tmp_path / "new" / "passwords.csv"
    addresses = ["ann@example.org", "Bob <bob@example.org>", "ANN@example.org"]
    passwords = kept_passwords(addresses, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.umask(0) == 0  # put back as it was
    assert list(passwords) == addresses
    assert passwords["ann@example.org"] == passwords["ANN@example.org"]
    assert read_passwords(path) == {
        "ann@example.org": passwords["ann@example.org"],
        "bob@example.org": passwords["Bob <bob@example.org>"],
    }
    assert path.read_text().splitlines()[0] == "address,password"
    assert sorted(found.name for found in path.parent.iterdir()) == [
        "passwords.csv"
    ]  # no temporary file left


def test_generated_passwords_are_readable_and_strong():
    passwords = {new_password() for _ in range(200)}
    assert len(passwords) == 200
    group = "[0-9a-hjkmnp-tv-z]{5}"  # Crockford's base32: 5 bits a character, 100 in all
    assert all(re.fullmatch(f"{group}-{group}-{group}-{group}", found) for found in passwords)


def test_generated_passwords_are_kept_and_only_new_recipients_get_new_ones(tmp_path):
    path = _write(tmp_path / "passwords.csv", "ann@example.org,kept-one\n")
    passwords = kept_passwords(["ann@example.org", "bob@example.org"], path)
    assert passwords["ann@example.org"] == "kept-one"
    again = kept_passwords(["bob@example.org"], path)
    assert again == {"bob@example.org": passwords["bob@example.org"]}
    assert read_passwords(path) == passwords
    assert sorted(found.name for found in tmp_path.iterdir()) == ["passwords.csv"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_damaged_password_file_is_refused_not_replaced(tmp_path):
    path = _write(tmp_path / "passwords.csv", "ann@example.org\n")
    with pytest.raises(InvalidInput) as raised:
        kept_passwords(["bob@example.org"], path)
    assert str(raised.value).startswith(f"{path}:1: ")
    assert path.read_text() == "ann@example.org\n"
