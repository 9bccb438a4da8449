"""SMTP: where to send (command line, environment, config), TLS, login, retries and rate, and
one line per failure."""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import re
import smtplib
import socket
import ssl
import stat
import threading
import time
from base64 import b64decode, b64encode
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from .config import SmtpSettings
from .fileio import os_reason
from .inputfiles import read_bounded
from .mail import recipients_of
from .problems import InvalidInput, Problem

ENVIRONMENT = (
    "DOSSIER_SMTP_HOST",
    "DOSSIER_SMTP_PORT",
    "DOSSIER_SMTP_SECURITY",
    "DOSSIER_SMTP_USER",
)
PASSWORD_FILE_VARIABLE = "DOSSIER_SMTP_PASSWORD_FILE"
DEFAULT_PORTS = {"starttls": 587, "tls": 465}
LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
HOST_NAME = re.compile(rf"{LABEL}(\.{LABEL})*\.?")
MAX_SECRET_BYTES = 4096  # a password file holds one line; /dev/zero must not be read for ever


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


RETRY_DELAYS = (1.0, 2.0, 4.0)  # seconds before each retry of a temporary failure

# what became of a message for one recipient (Outcome.status)
SENT = "sent"
REFUSED = "refused"  # for good: a 5xx answer, or a message this server cannot take as it is
FAILED = "failed"  # not sent: temporary failures until the retries ran out, or no connection
UNKNOWN = "unknown"  # the whole message went, then the connection was lost before the answer
TEMPORARY = "temporary"  # within one try only: worth another


@dataclass(frozen=True)
class Outcome:
    """What became of a message for one recipient: its status (SENT, REFUSED, FAILED or
    UNKNOWN), the reason in one line (empty when sent), and how many tries it took."""

    status: str
    reason: str = ""
    attempts: int = 1


@dataclass
class Delivery:
    """What happened to one message (its Message-ID), recipient by recipient."""

    subject: str
    message_id: str
    outcomes: dict[str, Outcome]

    @property
    def accepted(self) -> list[str]:
        return [who for who, outcome in self.outcomes.items() if outcome.status == SENT]

    @property
    def refused(self) -> dict[str, str]:
        """Every recipient the message did not surely reach, and why."""
        return {who: got.reason for who, got in self.outcomes.items() if got.status != SENT}

    @property
    def ok(self) -> bool:
        return not self.refused


def send(
    messages: list[EmailMessage],
    server: Server,
    rate: float | None = None,
    *,
    retry_delays: Sequence[float] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[Delivery]:
    """Send the messages, over one connection while it lasts, yielding each one's Delivery as
    soon as it is known (the next message goes when the next Delivery is asked for).

    A temporary failure (a 4xx answer; the connection dropped or timed out, which opens a new
    one) is tried again after each of `retry_delays` (RETRY_DELAYS); a permanent one (5xx) is
    not, nor a lost answer once the whole message went (UNKNOWN: it may have arrived). A first
    connection that fails fails every message at once. With `rate`, tries (retries included)
    start at least 60/rate seconds apart. A failure is reported, never raised.
    """
    session, pace = _Session(server), _Pace(rate, clock, sleep)
    delays = RETRY_DELAYS if retry_delays is None else tuple(retry_delays)
    try:
        try:
            session.open()
        except FAILURES as error:
            reason = describe_failure(error, server)
            yield from (_failed(message, reason) for message in messages)
            return
        for index, message in enumerate(messages):
            delivery = _deliver(session, message, pace, delays)
            yield delivery
            if _gave_up_on_the_connection(delivery, session):
                reason = "connection lost before this message"
                yield from (_failed(later, reason) for later in messages[index + 1 :])
                return
    finally:
        session.close()


def _gave_up_on_the_connection(delivery: Delivery, session: _Session) -> bool:
    """Whether the retries of this message could not keep a connection: the messages after it
    are then not tried."""
    gave_up = any(outcome.status == FAILED for outcome in delivery.outcomes.values())
    return gave_up and not session.is_open


class _Pace:
    """Waits before each try: at least the given delay, and, at `rate` tries a minute, until
    60/rate seconds after the previous try started."""

    def __init__(self, rate: float | None, clock: Callable[[], float], sleep: Callable) -> None:
        self.interval = 60 / rate if rate else 0.0
        self.clock, self.sleep, self.started = clock, sleep, None

    def wait(self, delay: float = 0.0) -> None:
        pause = delay
        if self.started is not None:
            pause = max(delay, self.started + self.interval - self.clock())
        if pause > 0:
            self.sleep(pause)
        self.started = self.clock()


def _deliver(session: _Session, message: EmailMessage, pace: _Pace, delays: tuple) -> Delivery:
    """One message, tried again after each delay for the recipients whose failure was
    temporary (only those: the others have their answer)."""
    outcomes: dict[str, Outcome] = {}
    recipients = list(dict.fromkeys(recipients_of(message)))
    pending = recipients
    for attempt, delay in enumerate((0.0, *delays), start=1):
        pace.wait(delay)
        results = _attempt(session, message, pending, retry=attempt > 1)
        for recipient, (status, reason) in results.items():
            if status != TEMPORARY or attempt > len(delays):
                final = FAILED if status == TEMPORARY else status
                outcomes[recipient] = Outcome(final, _after(reason, attempt), attempt)
        pending = [recipient for recipient in pending if recipient not in outcomes]
        if not pending:
            break
    in_order = {recipient: outcomes[recipient] for recipient in recipients}
    return Delivery(str(message["Subject"]), _message_id(message), in_order)


def _attempt(
    session: _Session, message: EmailMessage, recipients: list[str], retry: bool
) -> dict[str, tuple[str, str]]:
    """One try: each recipient's status (SENT, REFUSED, TEMPORARY or UNKNOWN) and reason."""
    try:
        refused = session.send(message, recipients, retry)
    except smtplib.SMTPRecipientsRefused as error:  # all of them, or those before a 421
        cut_short = (TEMPORARY, _response(*list(error.recipients.values())[-1]))
        return _answers(recipients, error.recipients, cut_short)
    except FAILURES as error:
        status = _status_of_failure(error, session.message_went)
        return dict.fromkeys(recipients, (status, describe_failure(error, session.server)))
    return _answers(recipients, refused, (SENT, ""))


def _answers(recipients: list[str], refused: dict, others: tuple[str, str]) -> dict:
    """Each recipient's status and reason from the server's answers to those it refused."""
    results = {}
    for recipient in recipients:
        if recipient in refused:
            code, text = refused[recipient]
            results[recipient] = (_status_of_code(code), _response(code, text))
        else:
            results[recipient] = others
    return results


def _status_of_code(code: int) -> str:
    return TEMPORARY if 400 <= code < 500 else REFUSED


def _status_of_failure(error: BaseException, message_went: bool) -> str:
    if isinstance(error, smtplib.SMTPResponseException):
        return _status_of_code(error.smtp_code)
    if message_went:  # the server may have taken it: sending it again could deliver it twice
        return UNKNOWN
    lost = isinstance(error, OSError | smtplib.SMTPServerDisconnected)
    return TEMPORARY if lost and not isinstance(error, ssl.SSLError) else REFUSED


def _after(reason: str, attempts: int) -> str:
    if not reason or attempts == 1:
        return reason
    retries = attempts - 1
    return f"{reason} (after {retries} {'retry' if retries == 1 else 'retries'})"


def _message_id(message: EmailMessage) -> str:
    return str(message["Message-ID"] or "")


class _Session:
    """The connection to the server, opened again for a try when the last one lost it."""

    def __init__(self, server: Server):
        self.server, self.message_went = server, False
        self.connection: smtplib.SMTP | None = None
        self.deadline: Deadline | None = None

    @property
    def is_open(self) -> bool:
        return self.connection is not None and self.connection.sock is not None

    def open(self) -> None:
        """Connect, greet, secure and log in (raises FAILURES)."""
        self.connection = _client(self.server)
        self.deadline = Deadline(self.connection, self.server.timeout)
        try:
            with self.deadline.within(self.server.timeout):
                _connect(self.connection, self.server)
        except FAILURES:
            self.drop()
            raise

    def send(self, message: EmailMessage, recipients: list[str], retry: bool) -> dict:
        """Send to these recipients; those refused, with the server's answers (raises
        FAILURES). A connection that failed is dropped, for the next try to open anew."""
        self.message_went = False
        if not self.is_open:
            self.open()
        connection, deadline = self.connection, self.deadline
        connection.message_went = False
        # a large message takes longer to upload: its time grows at 64 KB a second
        seconds = self.server.timeout + len(message.as_bytes()) / 65_536
        try:
            with deadline.within(seconds):
                if retry:
                    connection.rset()  # whatever the failed try left half done
                return connection.send_message(message, to_addrs=recipients)
        except FAILURES as error:
            self.message_went = connection.message_went
            if not isinstance(error, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
                self.drop()
            raise

    def drop(self) -> None:
        if self.connection is not None:
            self.connection.close()

    def close(self) -> None:
        if self.is_open:
            _quit(self.connection, self.deadline, self.server.timeout)
        self.drop()


class Deadline:
    """Each exchange with the server ends within its time, however slowly the server trickles
    its answer: the socket's own timeout bounds each read, not a reply of many reads. When the
    time is up, the socket is shut down, and the exchange fails as a timeout."""

    def __init__(self, connection: smtplib.SMTP, timeout: float):
        self.connection, self.timeout, self.expired = connection, timeout, False

    @contextmanager
    def within(self, seconds: float) -> Iterator[None]:
        timer = threading.Timer(seconds, self._expire)
        timer.daemon = True
        timer.start()
        try:
            yield
        except FAILURES as error:
            if self.expired:
                raise TimeoutError(f"no answer within {self.timeout:g} s") from error
            raise
        finally:
            timer.cancel()

    def _expire(self) -> None:
        self.expired = True
        connection = getattr(self.connection, "sock", None)
        if connection is not None:  # the plain socket's shutdown, under any TLS wrapper
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)


class _ConnectsLater:
    """smtplib's client, created before it connects (so that the deadline can reach its socket
    from the start), connecting as it does when given a host at once; it notes when a whole
    message has gone to the server (`message_went`)."""

    message_went = False

    def connect(self, host="localhost", port=0, source_address=None):
        self._host = host  # as SMTP.__init__ sets it: TLS names the server by it
        code, message = super().connect(host, port, source_address)
        if code != 220:
            raise smtplib.SMTPConnectError(code, message)
        return code, message

    def send(self, s):
        self.message_went = False
        super().send(s)
        # smtplib's data() ends the message with CRLF.CRLF; no command line ends so
        self.message_went = isinstance(s, bytes) and s.endswith(b"\r\n.\r\n")


class _Client(_ConnectsLater, smtplib.SMTP):
    pass


class _TlsClient(_ConnectsLater, smtplib.SMTP_SSL):
    pass


def _client(server: Server) -> smtplib.SMTP:
    if server.security == "tls":
        return _TlsClient(timeout=server.timeout, context=tls_context(server.ca_file))
    return _Client(timeout=server.timeout)


def _connect(connection: smtplib.SMTP, server: Server) -> None:
    """Connect, greet, secure the connection and log in."""
    connection.connect(server.host, server.port)
    connection.ehlo()
    if server.security == "starttls":
        if connection.has_extn("starttls"):
            connection.starttls(context=tls_context(server.ca_file))
            connection.ehlo()
        elif not (server.is_loopback or server.insecure):
            raise CleartextRefused(
                f"{server.name} does not offer STARTTLS; refusing to send in clear text"
                " (use --insecure to allow it)"
            )
    if server.user:
        _login(connection, server.user, server.password or "")


def _quit(connection: smtplib.SMTP, deadline: Deadline, seconds: float) -> None:
    """Say goodbye; whatever the server answers, or fails to, the messages' fate is known."""
    try:
        with deadline.within(seconds):
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


def _failed(message: EmailMessage, reason: str) -> Delivery:
    """A message not tried: every recipient FAILED for the same reason."""
    outcomes = dict.fromkeys(recipients_of(message), Outcome(FAILED, reason))
    return Delivery(str(message["Subject"]), _message_id(message), outcomes)


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
