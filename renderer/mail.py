"""Mail: dossiers and the compendium attached to messages, saved as .eml or sent by SMTP."""

from __future__ import annotations

import datetime as dt
import ipaddress
import smtplib
import socket
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid
from pathlib import Path

from .build import Builder, DossierJob
from .config import Config, SmtpSettings
from .fileio import write_atomic
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
    try:
        header = default_policy.header_factory("To", text)
        (address,) = header.addresses
        valid = not header.defects and address.username and "." in address.domain.strip(".")
    except (ValueError, IndexError):  # the header parser raises on some broken input
        valid = False
    if not valid:
        raise InvalidInput([Problem(where, None, "", f"{text!r} is not an e-mail address")])
    return Address(address.display_name, address.username, _ascii_domain(address.domain))


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
        return f"Specimen dossier: {records[0].title}"
    titles = ", ".join(record.title for record in records[:3])
    more = f" and {len(records) - 3} more" if len(records) > 3 else ""
    return f"{len(records)} specimen dossiers: {titles}{more}"


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
def write_drafts(messages: list[EmailMessage], folder: Path) -> list[Path]:
    """Each message as <subject>[--<recipient>].eml, opened as a draft by mail clients.

    Existing files are never overwritten: every name is checked before anything is written.
    """
    stem = slugify(str(messages[0]["Subject"]))[:60] or "dossier"
    if len(messages) == 1:
        names = [f"{stem}.eml"]
    else:
        names = [f"{stem}--{slugify(recipients_of(m)[0])}.eml" for m in messages]
    targets = [folder / name for name in names]
    existing = [target for target in targets if target.exists()]
    if existing:
        problems = [
            Problem(str(path), None, "", "already exists; not overwritten") for path in existing
        ]
        raise InvalidInput(problems)
    for message, target in zip(messages, targets, strict=True):
        message["X-Unsent"] = "1"  # Outlook and Thunderbird open the file as a draft to send
        write_atomic(target, message.as_bytes(policy=SMTP_POLICY))
    return targets


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
        return f"{self.host}:{self.port}"

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
    """The server from the command line (HOST:PORT), else the environment, else the config."""
    host = environ.get("DOSSIER_SMTP_HOST") or settings.host
    port_text = environ.get("DOSSIER_SMTP_PORT") or (settings.port and str(settings.port))
    where = "DOSSIER_SMTP_PORT" if environ.get("DOSSIER_SMTP_PORT") else "mail.smtp.port"
    if address:
        host, _, port_text = address.rpartition(":") if ":" in address else (address, "", None)
        host, where = host.strip("[]"), "--smtp"
    security = environ.get("DOSSIER_SMTP_SECURITY") or settings.security
    if security not in DEFAULT_PORTS:
        raise _smtp_problem("DOSSIER_SMTP_SECURITY", f"{security!r}: use starttls or tls")
    if not host:
        message = (
            "no SMTP server: give --smtp HOST:PORT, set DOSSIER_SMTP_HOST, or host under"
            " [mail.smtp] in dossier.toml (or write drafts with --eml-dir)"
        )
        raise _smtp_problem("smtp", message)
    port = _port(port_text, where) if port_text else DEFAULT_PORTS[security]
    user = environ.get("DOSSIER_SMTP_USER") or settings.user
    password = _password(settings, environ) if user else None
    return Server(
        host, port, security, user, password, settings.ca_file, settings.timeout, insecure
    )


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise _smtp_problem(where, f"{text!r} is not a port number (1-65535)")
    return int(text)


def _password(settings: SmtpSettings, environ: Mapping[str, str]) -> str:
    """From the environment variable, else the password file; never from the command line."""
    if environ.get(settings.password_env):
        return environ[settings.password_env]
    file = environ.get(PASSWORD_FILE_VARIABLE) or settings.password_file
    if not file:
        message = (
            f"a user is set, so a password is needed: set {settings.password_env}, or name a"
            f" file in {PASSWORD_FILE_VARIABLE} or mail.smtp.password_file"
        )
        raise _smtp_problem("password", message)
    try:
        return Path(file).read_text(encoding="utf-8").strip("\r\n")
    except OSError as error:
        raise _smtp_problem(str(file), f"cannot read the password file: {error.strerror}") from None


def _smtp_problem(where: str, message: str) -> InvalidInput:
    return InvalidInput([Problem(where, None, "", message)])


class CleartextRefused(smtplib.SMTPException):
    """The server offers no STARTTLS, and clear text is not allowed for it."""


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
    except (OSError, smtplib.SMTPException) as error:
        reason = describe_failure(error, server)
        return [_failed(message, reason) for message in messages]
    with connection:
        for message in messages:
            delivery = _send_one(connection, message, server)
            deliveries.append(delivery)
            if not delivery.ok and not delivery.accepted and _is_disconnected(connection):
                reason = "connection lost before this message"
                deliveries += [_failed(m, reason) for m in messages[len(deliveries) :]]
                break
    return deliveries


def _connect(server: Server) -> smtplib.SMTP:
    context = ssl.create_default_context(cafile=server.ca_file)
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


def _login(connection: smtplib.SMTP, user: str, password: str) -> None:
    """One attempt with the best mechanism offered (smtplib's login() tries each in turn, and
    servers may hang up after the first refusal, hiding its answer)."""
    offered = connection.esmtp_features.get("auth", "").upper().split()
    connection.user, connection.password = user, password
    for name in ("CRAM-MD5", "PLAIN", "LOGIN"):
        if name in offered:
            method = getattr(connection, f"auth_{name.lower().replace('-', '_')}")
            connection.auth(name, method, initial_response_ok=name != "LOGIN")
            return
    raise smtplib.SMTPNotSupportedError(f"no login method this program knows of: {offered}")


def _send_one(connection: smtplib.SMTP, message: EmailMessage, server: Server) -> Delivery:
    recipients = recipients_of(message)
    try:
        refused = connection.send_message(message)
    except smtplib.SMTPRecipientsRefused as error:
        refused = error.recipients
    except (OSError, smtplib.SMTPException) as error:
        return _failed(message, describe_failure(error, server))
    reasons = {recipient: _response(*answer) for recipient, answer in refused.items()}
    accepted = [recipient for recipient in recipients if recipient not in reasons]
    return Delivery(str(message["Subject"]), accepted, reasons)


def _failed(message: EmailMessage, reason: str) -> Delivery:
    return Delivery(str(message["Subject"]), [], dict.fromkeys(recipients_of(message), reason))


def _is_disconnected(connection: smtplib.SMTP) -> bool:
    try:
        return connection.noop()[0] != 250
    except (OSError, smtplib.SMTPException):
        return True


def _response(code: int, text: bytes | str) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {' '.join(text.split())}"


def describe_failure(error: BaseException, server: Server) -> str:
    """One line for anything that stops a message; passwords never appear in it."""
    if isinstance(error, CleartextRefused):
        return str(error)
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
    if isinstance(error, ssl.SSLError):
        return f"TLS with {server.name} failed: {error.reason or error}"
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return f"{server.name} closed the connection"
    return f"{server.name}: {error}"
