"""Mail: dossiers and the compendium attached to messages, saved as .eml or sent by SMTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import re
import smtplib
import socket
import ssl
import stat
import tempfile
from base64 import b64decode, b64encode
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid
from pathlib import Path

from .build import Builder, DossierJob
from .config import Config, SmtpSettings
from .fileio import os_reason, write_atomic
from .inputfiles import read_bounded
from .layouts import Layout
from .model import Record, slugify
from .problems import InvalidInput, Problem
from .records import Catalog, Entry

COMPENDIUM_NAME = "compendium.pdf"
DEFAULT_PORTS = {"starttls": 587, "tls": 465}
ENVIRONMENT = (
    "DOSSIER_SMTP_HOST",
    "DOSSIER_SMTP_PORT",
    "DOSSIER_SMTP_SECURITY",
    "DOSSIER_SMTP_USER",
)
PASSWORD_FILE_VARIABLE = "DOSSIER_SMTP_PASSWORD_FILE"
# what str.splitlines() and so the email package take for a line break, and other controls
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOST_NAME = re.compile(rf"{LABEL}(\.{LABEL})*\.?")
MAX_SECRET_BYTES = 4096  # a password file holds one line; /dev/zero must not be read for ever
DRAFT_STEM_LENGTH = 60
DRAFT_RECIPIENT_LENGTH = 80


@dataclass(frozen=True)
class Attachment:
    filename: str
    data: bytes

    @property
    def megabytes(self) -> float:
        return len(self.data) / 1e6


# -- addresses ---------------------------------------------------------------------------------
def parse_address(text: str, where: str = "--to") -> Address:
    """One address ("ann@example.org" or "Ann <ann@example.org>"); InvalidInput otherwise."""
    header_text(text, where)
    try:
        header = default_policy.header_factory("To", text)
        (address,) = header.addresses
        valid = not header.defects and address.username and "." in address.domain.strip(".")
    except (ValueError, IndexError):  # the header parser raises on some broken input
        valid = False
    if not valid:
        raise InvalidInput([Problem(where, None, "", f"{text!r} is not an e-mail address")])
    return Address(address.display_name, address.username, _ascii_domain(address.domain))


def header_text(text: str, where: str) -> str:
    """Text that can go into a header as it is: one line, nothing invisible, valid Unicode."""
    found = CONTROL.search(text)
    if found:
        message = (
            f"{text!r} has U+{ord(found[0]):04X}, a line break or control character; a mail"
            " header is one line of printable text"
        )
        raise InvalidInput([Problem(where, None, "", message)])
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        message = f"{text!r} holds bytes that are not UTF-8 text"
        raise InvalidInput([Problem(where, None, "", message)]) from None
    return text


def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


# -- attachments -------------------------------------------------------------------------------
def gather_attachments(
    entries: list[Entry], config: Config, builder: Builder, compendium: Catalog | None = None
) -> list[Attachment]:
    """The dossiers' PDFs (from the build cache when current, rendered otherwise), and the
    compendium when a catalog is given."""
    from .compendium import build_compendium

    run = builder.run([DossierJob(entry.record, config) for entry in entries])
    if run.problems:
        raise InvalidInput(run.problems)
    files = [
        Attachment(f"{entry.slug}.pdf", builder.cache.get(key))
        for entry, key in zip(entries, run.keys, strict=True)
    ]
    if compendium is not None:
        with tempfile.TemporaryDirectory(prefix="dossier-mail-") as scratch:
            report = build_compendium(compendium, config, Path(scratch) / COMPENDIUM_NAME, builder)
            files.append(Attachment(COMPENDIUM_NAME, report.path.read_bytes()))
    return files


def check_size(attachments: list[Attachment], limit_mb: float) -> None:
    """Refuse attachments over the limit, naming the file and what to send instead."""
    total = sum(attachment.megabytes for attachment in attachments)
    if total <= limit_mb:
        return
    largest = max(attachments, key=lambda attachment: attachment.megabytes)
    limit = f"one message carries at most {limit_mb:g} MB of attachments (mail.max_attachment_mb)"
    if largest.filename == COMPENDIUM_NAME:
        advice = "send single dossiers instead: dossier mail SLUG... --to ADDR"
    elif len(attachments) > 1:
        advice = "send fewer dossiers per message"
    else:
        advice = "raise mail.max_attachment_mb if your mail server accepts more"
    message = f"{largest.filename} is {largest.megabytes:.1f} MB"
    if len(attachments) > 1:
        message += f" of {total:.1f} MB attached"
    raise InvalidInput([Problem(largest.filename, None, "", f"{message}; {limit}; {advice}")])


# -- messages ----------------------------------------------------------------------------------
def default_subject(records: list[Record], with_compendium: bool, specimens: int) -> str:
    if with_compendium:
        extra = f" and {len(records)} dossier(s)" if records else ""
        return f"Specimen compendium ({specimens} specimens){extra}"
    if len(records) == 1:
        return f"Specimen dossier: {_one_line(records[0].title)}"
    titles = ", ".join(_one_line(record.title) for record in records[:3])
    more = f" and {len(records) - 3} more" if len(records) > 3 else ""
    return f"{len(records)} specimen dossiers: {titles}{more}"


def _one_line(title: str) -> str:
    """A title as a subject can carry it: a record's title may hold line breaks."""
    return " ".join(title.split())


def summary(record: Record, config: Config) -> dict:
    """What the message body says about one attached specimen."""
    return {
        "title": record.title,
        "slug": record.slug,
        "case_number": record.case_number,
        "flight_risk": record.flight_risk.percent,
        "risk_level": record.flight_risk.level,
        "line": record.flight_risk.diagnosis,
        "url": config.specimen_url(record.slug),
    }


def compose(
    records: list[Record],
    attachments: list[Attachment],
    *,
    recipients: list[Address],
    subject: str,
    config: Config,
    sender: Address | None = None,
) -> EmailMessage:
    """One message: a plain-text body, an HTML alternative, the PDFs attached."""
    context = {
        "subject": subject,
        "organisation": config.organisation,
        "classification": config.classification,
        "specimens": [summary(record, config) for record in records],
        "attachments": [
            {"filename": a.filename, "size": f"{a.megabytes:.1f} MB"} for a in attachments
        ],
    }
    layout = Layout.find(config.layout)
    message = EmailMessage(policy=default_policy)
    message["Subject"] = subject
    if sender is not None:
        message["From"] = sender
    message["To"] = recipients
    message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
    domain = sender.domain if sender is not None else "dossier.invalid"
    message["Message-ID"] = make_msgid("dossier", domain=domain)
    message.set_content(layout.render_mail(context, "text"))
    message.add_alternative(layout.render_mail(context, "html"), subtype="html")
    for attachment in attachments:
        message.add_attachment(
            attachment.data, maintype="application", subtype="pdf", filename=attachment.filename
        )
    return message


def recipients_of(message: EmailMessage) -> list[str]:
    return [address.addr_spec for address in message["To"].addresses]


# -- drafts ------------------------------------------------------------------------------------
def write_drafts(messages: list[EmailMessage], folder: Path) -> Iterator[Path]:
    """Each message as a draft file (see draft_paths), opened as a draft by mail clients; each
    path is given once its file is whole, so that a failure half-way leaves a known set.

    Existing files are never overwritten: every name is checked before anything is written.
    """
    first_recipients = [recipients_of(message)[0] for message in messages]
    targets = draft_paths(str(messages[0]["Subject"]), first_recipients, folder)
    for message, target in zip(messages, targets, strict=True):
        message["X-Unsent"] = "1"  # Outlook and Thunderbird open the file as a draft to send
        write_atomic(target, message.as_bytes(policy=SMTP_POLICY), overwrite=False)
        yield target


def draft_paths(subject: str, first_recipients: list[str], folder: Path) -> list[Path]:
    """Where the drafts of messages to these (first) recipients go: <subject>.eml for one
    message, <subject>--<recipient>.eml for each of several, a file of its own for every one.
    InvalidInput, naming them, when any is already there: callers may ask before rendering."""
    stem = slugify(subject)[:DRAFT_STEM_LENGTH].strip("-") or "dossier"
    if len(first_recipients) == 1:
        names = [f"{stem}.eml"]
    else:
        names = [f"{stem}--{name}.eml" for name in draft_names(first_recipients)]
    targets = [folder / name for name in names]
    existing = [target for target in targets if target.exists() or target.is_symlink()]
    if existing:
        problems = [
            Problem(str(path), None, "", "already exists; not overwritten") for path in existing
        ]
        raise InvalidInput(problems)
    return targets


def draft_names(recipients: list[str]) -> Iterator[str]:
    """A distinct file-name part per recipient: the address's slug, and where two slugs meet
    (a.b@ and a-b@, or case only) a short hash of the exact address; a counter for repeats."""
    slugs = [
        slugify(recipient)[:DRAFT_RECIPIENT_LENGTH].strip("-") or "to" for recipient in recipients
    ]
    taken: set[str] = set()
    for slug, recipient in zip(slugs, recipients, strict=True):
        name = f"{slug}-{_short_hash(recipient)}" if slugs.count(slug) > 1 else slug
        candidate, count = name, 1
        while candidate in taken:
            count += 1
            candidate = f"{name}-{count}"
        taken.add(candidate)
        yield candidate


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


# -- SMTP --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Server:
    """Where and how to send; the password is never shown in its repr."""

    host: str
    port: int
    security: str  # "starttls" (required unless loopback or insecure) or "tls" (implicit)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    timeout: float = 30.0
    insecure: bool = False

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6, as --smtp takes it
        return f"{host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def smtp_server(
    settings: SmtpSettings,
    environ: Mapping[str, str],
    address: str | None = None,
    insecure: bool = False,
) -> Server:
    """The server from the command line (HOST:PORT), else the environment, else the config.

    Everything that can be checked without connecting is checked here, before any rendering.
    """
    host = environ.get("DOSSIER_SMTP_HOST") or settings.host
    host_where = "DOSSIER_SMTP_HOST" if environ.get("DOSSIER_SMTP_HOST") else "mail.smtp.host"
    port_text = environ.get("DOSSIER_SMTP_PORT") or (settings.port and str(settings.port))
    where = "DOSSIER_SMTP_PORT" if environ.get("DOSSIER_SMTP_PORT") else "mail.smtp.port"
    if address:
        host, port_text = _split_address(address)
        where = host_where = "--smtp"
    security = environ.get("DOSSIER_SMTP_SECURITY") or settings.security
    if security not in DEFAULT_PORTS:
        raise _smtp_problem("DOSSIER_SMTP_SECURITY", f"{security!r}: use starttls or tls")
    if not host:
        message = (
            "no SMTP server: give --smtp HOST:PORT, set DOSSIER_SMTP_HOST, or host under"
            " [mail.smtp] in dossier.toml (or write drafts with --eml-dir)"
        )
        raise _smtp_problem("smtp", message)
    host = _ascii_host(host, host_where)
    port = _port(port_text, where) if port_text else DEFAULT_PORTS[security]
    user = environ.get("DOSSIER_SMTP_USER") or settings.user
    if user:
        user_where = "DOSSIER_SMTP_USER" if environ.get("DOSSIER_SMTP_USER") else "mail.smtp.user"
        _check_secret(user, user_where)
    password = _password(settings, environ) if user else None
    tls_context(settings.ca_file)  # a missing or broken CA file stops here, named
    return Server(
        host, port, security, user, password, settings.ca_file, settings.timeout, insecure
    )


def _split_address(address: str) -> tuple[str, str | None]:
    """HOST, HOST:PORT, an IPv6 address, or [IPv6]:PORT into host and port text."""
    bracketed = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", address)
    if bracketed:
        host, port_text = bracketed[1], bracketed[2]
    elif address.count(":") > 1 and _is_ip(address):
        host, port_text = address, None
    elif address.count(":") > 1:
        host, port_text = "", None
    else:
        host, colon, port_text = address.partition(":")
        port_text = port_text if colon else None
    if not host:
        message = f"{address!r}: expected HOST:PORT (an IPv6 address in brackets: [::1]:25)"
        raise _smtp_problem("--smtp", message)
    return host, port_text


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _ascii_host(host: str, where: str) -> str:
    """An IP address, or a host name in ASCII (an international one in its xn-- form)."""
    if _is_ip(host):
        return host
    try:
        name = host.encode("idna").decode("ascii")
    except UnicodeError:
        name = ""
    if not (HOST_NAME.fullmatch(name) and len(name) <= 253):
        raise _smtp_problem(where, f"{host!r} is not a host name or an IP address")
    return name


def _port(text: str, where: str) -> int:
    # isdigit() alone takes "²" and other digits that int() cannot read
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 65536:
        raise _smtp_problem(where, f"{text!r} is not a port number (1-65535)")
    return int(text)


def _password(settings: SmtpSettings, environ: Mapping[str, str]) -> str:
    """From the environment variable, else the password file; never from the command line."""
    if environ.get(settings.password_env):
        return _check_secret(environ[settings.password_env], settings.password_env)
    file = environ.get(PASSWORD_FILE_VARIABLE) or settings.password_file
    if not file:
        message = (
            f"a user is set, so a password is needed: set {settings.password_env}, or name a"
            f" file in {PASSWORD_FILE_VARIABLE} or mail.smtp.password_file"
        )
        raise _smtp_problem("password", message)
    raw = read_bounded(Path(file), MAX_SECRET_BYTES, "password files")
    try:
        password = raw.decode("utf-8-sig").strip("\r\n")
    except UnicodeDecodeError:  # no byte of it is shown: it is a secret
        message = "the password file is not UTF-8 text; save it as UTF-8"
        raise _smtp_problem(str(file), message) from None
    if not password:
        raise _smtp_problem(str(file), "the password file is empty")
    return password


def _check_secret(text: str, where: str) -> str:
    """A user name or password as it will be sent: UTF-8, never shown in the message."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise _smtp_problem(where, "holds bytes that are not UTF-8 text") from None
    return text


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """Certificate checks against the system's CAs, or those of ca_file (named if unusable)."""
    if ca_file is None:
        return ssl.create_default_context()
    try:
        if not stat.S_ISREG(ca_file.stat().st_mode):
            raise _ca_problem(ca_file, "cannot read: not a regular file")
        return ssl.create_default_context(cafile=ca_file)
    except ssl.SSLError:
        raise _ca_problem(ca_file, "no PEM certificates in it") from None
    except OSError as error:
        raise _ca_problem(ca_file, f"cannot read: {os_reason(error)}") from None


def _ca_problem(ca_file: Path, message: str) -> InvalidInput:
    return InvalidInput([Problem(str(ca_file), None, "mail.smtp.ca_file", message)])


def _smtp_problem(where: str, message: str) -> InvalidInput:
    return InvalidInput([Problem(where, None, "", message)])


class CleartextRefused(smtplib.SMTPException):
    """The server offers no STARTTLS, and clear text is not allowed for it."""


class NoLoginMethod(smtplib.SMTPException):
    """A user is set, but the server offers no login method this program knows."""


# Everything that talking to a server can raise: OS and TLS errors, SMTP answers, and the
# ValueErrors (UnicodeError among them) that smtplib and socket raise on odd input.
FAILURES = (OSError, smtplib.SMTPException, ValueError)


@dataclass
class Delivery:
    """What happened to one message: who accepted it, who did not and why."""

    subject: str
    accepted: list[str]
    refused: dict[str, str]

    @property
    def ok(self) -> bool:
        return not self.refused


def send(messages: list[EmailMessage], server: Server) -> list[Delivery]:
    """Send every message over one connection; a failure is reported, never raised."""
    deliveries = []
    try:
        connection = _connect(server)
    except FAILURES as error:
        reason = describe_failure(error, server)
        return [_failed(message, reason) for message in messages]
    try:
        for message in messages:
            delivery = _send_one(connection, message, server)
            deliveries.append(delivery)
            if not delivery.ok and not delivery.accepted and _is_disconnected(connection):
                reason = "connection lost before this message"
                deliveries += [_failed(m, reason) for m in messages[len(deliveries) :]]
                break
    finally:
        _quit(connection)
    return deliveries


def _connect(server: Server) -> smtplib.SMTP:
    context = tls_context(server.ca_file)
    if server.security == "tls":
        connection = smtplib.SMTP_SSL(
            server.host, server.port, timeout=server.timeout, context=context
        )
    else:
        connection = smtplib.SMTP(server.host, server.port, timeout=server.timeout)
    try:
        connection.ehlo()
        if server.security == "starttls":
            if connection.has_extn("starttls"):
                connection.starttls(context=context)
                connection.ehlo()
            elif not (server.is_loopback or server.insecure):
                raise CleartextRefused(
                    f"{server.name} does not offer STARTTLS; refusing to send in clear text"
                    " (use --insecure to allow it)"
                )
        if server.user:
            _login(connection, server.user, server.password or "")
    except BaseException:
        connection.close()
        raise
    return connection


def _quit(connection: smtplib.SMTP) -> None:
    """Say goodbye; whatever the server answers, or fails to, the messages' fate is known."""
    try:
        connection.quit()
    except FAILURES:
        pass
    finally:
        connection.close()


def _login(connection: smtplib.SMTP, user: str, password: str) -> None:
    """One attempt with the best mechanism offered (servers may hang up after a first refusal,
    hiding its answer). Names and passwords go as UTF-8, as RFC 4616 has it for PLAIN: smtplib's
    own login() sends only ASCII."""
    offered = connection.esmtp_features.get("auth", "").upper().split()
    for name in ("CRAM-MD5", "PLAIN", "LOGIN"):
        if name in offered:
            code, answer = LOGINS[name](connection, user.encode(), password.encode())
            if code not in (235, 503):  # 503: already logged in
                raise smtplib.SMTPAuthenticationError(code, answer)
            return
    raise NoLoginMethod(", ".join(offered) or "none")


def _login_plain(connection: smtplib.SMTP, user: bytes, password: bytes) -> tuple[int, bytes]:
    response = _base64(b"\0".join((b"", user, password)))
    return connection.docmd("AUTH", f"PLAIN {response}")


def _login_login(connection: smtplib.SMTP, user: bytes, password: bytes) -> tuple[int, bytes]:
    code, answer = connection.docmd("AUTH", "LOGIN")
    for secret in (user, password):
        if code != 334:
            break
        code, answer = connection.docmd(_base64(secret))
    return code, answer


def _login_cram_md5(connection: smtplib.SMTP, user: bytes, password: bytes) -> tuple[int, bytes]:
    code, answer = connection.docmd("AUTH", "CRAM-MD5")
    if code != 334:
        return code, answer
    digest = hmac.new(password, b64decode(answer), "md5").hexdigest()
    return connection.docmd(_base64(user + b" " + digest.encode()))


def _base64(data: bytes) -> str:
    return b64encode(data).decode("ascii")


LOGINS = {"CRAM-MD5": _login_cram_md5, "PLAIN": _login_plain, "LOGIN": _login_login}


def _send_one(connection: smtplib.SMTP, message: EmailMessage, server: Server) -> Delivery:
    recipients = recipients_of(message)
    try:
        refused = connection.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        refused = error.recipients
    except FAILURES as error:
        return _failed(message, describe_failure(error, server))
    reasons = {recipient: _response(*answer) for recipient, answer in refused.items()}
    accepted = [recipient for recipient in recipients if recipient not in reasons]
    return Delivery(str(message["Subject"]), accepted, reasons)


def _failed(message: EmailMessage, reason: str) -> Delivery:
    return Delivery(str(message["Subject"]), [], dict.fromkeys(recipients_of(message), reason))


def _is_disconnected(connection: smtplib.SMTP) -> bool:
    try:
        return connection.noop()[0] != 250
    except FAILURES:
        return True


def _response(code: int, text: bytes | str) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(text.split())}"


def describe_failure(error: BaseException, server: Server) -> str:
    """One line for anything that stops a message; passwords never appear in it."""
    if isinstance(error, smtplib.SMTPServerDisconnected) and isinstance(error.__context__, OSError):
        error = error.__context__  # smtplib hides a timeout or reset behind "disconnected"
    if isinstance(error, CleartextRefused):
        return str(error)
    if isinstance(error, NoLoginMethod):
        return (
            f"a user is set, but {server.name} offers no login method this program knows"
            f" (it offers: {error}; known: CRAM-MD5, PLAIN, LOGIN)"
        )
    if isinstance(error, smtplib.SMTPAuthenticationError):
        answer = _response(error.smtp_code, error.smtp_error)
        return f"login as {server.user!r} refused by {server.name}: {answer}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{server.name} answered {_response(error.smtp_code, error.smtp_error)}"
    if isinstance(error, ConnectionRefusedError):
        return f"cannot connect to {server.name}: connection refused (is the server running?)"
    if isinstance(error, socket.gaierror):
        return f"cannot find the host {server.host!r}"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"{server.name} did not answer within {server.timeout:g} s"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS with {server.name} failed: {error.verify_message} (see mail.smtp.ca_file)"
    if isinstance(error, ssl.SSLError) and error.reason == "WRONG_VERSION_NUMBER":
        return f"{server.name} does not speak TLS from the first byte; use starttls for it"
    if isinstance(error, ssl.SSLError):
        return f"TLS with {server.name} failed: {error.reason or error}"
    if isinstance(error, smtplib.SMTPServerDisconnected | ConnectionResetError | BrokenPipeError):
        return f"{server.name} closed the connection"
    if isinstance(error, OSError):
        return f"cannot talk to {server.name}: {os_reason(error)}"
    return f"{server.name}: {error}"
