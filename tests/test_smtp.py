"""SMTP: TLS, logins, misbehaving servers and server settings, each failure one line."""

from __future__ import annotations

import contextlib
import hmac
import os
import socket
import ssl
import threading
import time
from collections import Counter
from email.message import EmailMessage
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from renderer import smtp as outgoing
from renderer.config import SmtpSettings
from renderer.problems import InvalidInput
from tests.conftest import SEED_SLUG
from tests.mailing import Recorder, free_port, mail, refused_early

USERS = {b"ann": b"secret", "zoë".encode(): "pässwörd".encode()}
CHALLENGE = b"<1896.697170952@example.org>"


# -- TLS and login ------------------------------------------------------------------------------
@pytest.fixture
def tls_smtp(tmp_path):
    """A server that requires STARTTLS and a login (ann / secret, or zoë / pässwörd), with a CA
    of its own."""
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))

    def authenticate(server, session, envelope, mechanism, auth_data):
        accepted = USERS.get(auth_data.login) == auth_data.password
        return AuthResult(success=accepted, handled=False)  # handled=False: answer 535

    recorder, port = Recorder(), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, tls_context=server_context,
                            require_starttls=True, authenticator=authenticate,
                            auth_require_tls=True)  # fmt: skip
    controller.start()
    config = tmp_path / "dossier.toml"
    config.write_text(
        f'[mail]\nsender = "desk@example.org"\n[mail.smtp]\nhost = "127.0.0.1"\nport = {port}\n'
        f'user = "ann"\nca_file = "{ca_file}"\n'
    )
    yield SimpleNamespace(received=recorder.received, config=config, port=port)
    controller.stop()


def test_starttls_and_login_with_the_password_from_the_environment(rendered, tls_smtp):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--config", tls_smtp.config,
                  env={"DOSSIER_SMTP_PASSWORD": "secret"})  # fmt: skip
    assert result.exit_code == 0, result.output
    (arrived,) = tls_smtp.received
    assert arrived.tls


def test_a_refused_login_is_one_line_without_the_password(rendered, tls_smtp, tmp_path):
    password_file = tmp_path / "password"
    password_file.write_text("wrong-horse\n")
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--config", tls_smtp.config,
                  env={"DOSSIER_SMTP_PASSWORD_FILE": str(password_file)})  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"NOT sent to ann@example.org: login as 'ann' refused by 127.0.0.1:{tls_smtp.port}: 535"
    )
    assert "wrong-horse" not in result.output
    assert tls_smtp.received == []


def test_a_user_without_a_password_is_told_where_to_put_it(rendered, tls_smtp):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--config", tls_smtp.config,
                  env={"DOSSIER_SMTP_PASSWORD": ""})  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr.startswith("password: a user is set, so a password is needed")


def test_a_user_and_password_beyond_ascii_log_in_as_utf8(rendered, tls_smtp):
    env = {"DOSSIER_SMTP_USER": "zoë", "DOSSIER_SMTP_PASSWORD": "pässwörd"}
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--config", tls_smtp.config,
                  env=env)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(tls_smtp.received) == 1


def test_a_refused_login_beyond_ascii_is_one_line(rendered, tls_smtp):
    env = {"DOSSIER_SMTP_USER": "zoë", "DOSSIER_SMTP_PASSWORD": "pässwort"}
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--config", tls_smtp.config,
                  env=env)  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == (
        f"NOT sent to ann@example.org: login as 'zoë' refused by 127.0.0.1:{tls_smtp.port}:"
        " 535 5.7.8 Authentication credentials invalid\n"
    )


class CramMd5Recorder(Recorder):
    """A Recorder that also knows CRAM-MD5 (RFC 2195), which aiosmtpd does not offer itself."""

    async def auth_CRAM__MD5(self, server, args):
        response = await server.challenge_auth(CHALLENGE)
        user, _, digest = response.rpartition(b" ")
        expected = hmac.new(USERS.get(user, b""), CHALLENGE, "md5").hexdigest().encode()
        return AuthResult(success=user in USERS and digest == expected, handled=False)


@pytest.fixture
def login_smtp(request):
    """A loopback server in clear text that offers one login method, `request.param`."""

    def authenticate(server, session, envelope, mechanism, auth_data):
        return AuthResult(success=USERS.get(auth_data.login) == auth_data.password, handled=False)

    port = free_port()
    recorder = CramMd5Recorder()
    others = [name for name in ("PLAIN", "LOGIN", "CRAM-MD5") if name != request.param]
    controller = Controller(recorder, hostname="127.0.0.1", port=port, authenticator=authenticate,
                            auth_require_tls=False,
                            auth_exclude_mechanism=others)  # fmt: skip
    controller.start()
    yield SimpleNamespace(received=recorder.received, address=f"127.0.0.1:{port}", port=port)
    controller.stop()


@pytest.mark.parametrize("login_smtp", ["PLAIN", "LOGIN", "CRAM-MD5"], indirect=True)
@pytest.mark.parametrize(("password", "accepted"), [("pässwörd", True), ("passwort", False)])
def test_every_login_method_sends_utf8(rendered, login_smtp, password, accepted):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--from", "desk@example.org",
                  "--smtp", login_smtp.address,
                  env={"DOSSIER_SMTP_USER": "zoë", "DOSSIER_SMTP_PASSWORD": password})  # fmt: skip
    assert len(login_smtp.received) == int(accepted)
    if accepted:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code == 1
        assert result.stderr == (
            f"NOT sent to ann@example.org: login as 'zoë' refused by {login_smtp.address}:"
            " 535 5.7.8 Authentication credentials invalid\n"
        )


def test_a_user_for_a_server_without_login_is_told_so(rendered, smtp):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--from", "desk@example.org",
                  "--smtp", smtp.address,
                  env={"DOSSIER_SMTP_USER": "ann", "DOSSIER_SMTP_PASSWORD": "secret"})  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == (
        f"NOT sent to ann@example.org: a user is set, but {smtp.address} offers no login method"
        " this program knows (it offers: none; known: CRAM-MD5, PLAIN, LOGIN)\n"
    )
    assert smtp.received == []


# -- servers that misbehave ---------------------------------------------------------------------
@pytest.fixture
def tcp_server():
    """A loopback TCP server playing `serve(connection)` for each connection; not SMTP-aware."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    held = []

    def start(serve):
        def accept():
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:  # closed at the end of the test
                    return
                held.append(connection)
                serve(connection)

        threading.Thread(target=accept, daemon=True).start()
        return f"127.0.0.1:{port}"

    yield start
    listener.close()
    for connection in held:
        connection.close()


def silent(connection):
    """Accept, then never say a word."""


def hang_up(connection):
    connection.close()


def hang_up_after_hello(connection):
    """Greet and answer EHLO, then close when the first message starts."""
    stream = connection.makefile("rwb")
    stream.write(b"220 flaky.example.org ESMTP\r\n")
    stream.flush()
    for line in stream:
        if line.upper().startswith((b"EHLO", b"HELO")):
            stream.write(b"250-flaky.example.org\r\n250 8BITMIME\r\n")
            stream.flush()
        else:
            break
    stream.close()
    connection.close()


def rude_goodbye(connection):
    """A server that takes every message but answers QUIT with an error."""
    stream = connection.makefile("rwb")
    answers = {b"EHLO": b"250 rude.example.org", b"MAIL": b"250 OK", b"RCPT": b"250 OK",
               b"DATA": b"354 go ahead", b"QUIT": b"500 I do not say goodbye",
               b"NOOP": b"250 OK"}  # fmt: skip
    stream.write(b"220 rude.example.org ESMTP\r\n")
    stream.flush()
    for line in stream:
        answer = answers.get(line[:4].upper(), b"502 what?")
        stream.write(answer + b"\r\n")
        stream.flush()
        if line[:4].upper() == b"DATA":
            for body in stream:
                if body == b".\r\n":
                    break
            stream.write(b"250 accepted\r\n")
            stream.flush()
        if line[:4].upper() == b"QUIT":
            break
    stream.close()
    connection.close()


def quick_config(tmp_path, timeout=0.5):
    config = tmp_path / "dossier.toml"
    config.write_text(f"[mail.smtp]\ntimeout = {timeout}\n")
    return config


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_a_silent_server_is_reported_as_a_timeout(rendered, tcp_server, tmp_path, security):
    address = tcp_server(silent)
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "bo@example.org",
                  "--from", "desk@example.org", "--smtp", address,
                  "--config", quick_config(tmp_path),
                  env={"DOSSIER_SMTP_SECURITY": security})  # fmt: skip
    assert result.exit_code == 1
    reason = f"{address} did not answer within 0.5 s"
    assert result.stderr == (
        f"NOT sent to ann@example.org: {reason}\nNOT sent to bo@example.org: {reason}\n"
    )


def endless_greeting(connection):
    """A greeting that does not end: a continuation line every 0.1 s, each read on time
    (for 10 s, so that a client without a deadline fails the test instead of hanging it)."""
    with contextlib.suppress(OSError):
        for _ in range(100):
            connection.sendall(b"220-still greeting you\r\n")
            time.sleep(0.1)


def byte_by_byte(connection):
    """A greeting trickled one byte every 0.1 s: each read on time, the reply never."""
    with contextlib.suppress(OSError):
        for byte in b"220 slow.example.org ESMTP, answering one byte at a time, slowly, slowly\r\n":
            connection.sendall(bytes([byte]))
            time.sleep(0.1)


@pytest.mark.parametrize("serve", [endless_greeting, byte_by_byte])
def test_a_server_that_trickles_its_answer_is_reported_as_a_timeout(
    rendered, tcp_server, tmp_path, serve
):
    address = tcp_server(serve)
    started = time.monotonic()
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--from", "desk@example.org",
                  "--smtp", address, "--config", quick_config(tmp_path))  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == f"NOT sent to ann@example.org: {address} did not answer within 0.5 s\n"
    assert time.monotonic() - started < 5


def test_a_server_that_hangs_up_at_once_is_one_line_per_recipient(rendered, tcp_server, tmp_path):
    address = tcp_server(hang_up)
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "bo@example.org",
                  "--each", "--from", "desk@example.org", "--smtp", address,
                  "--config", quick_config(tmp_path))  # fmt: skip
    assert result.exit_code == 1
    reason = f"{address} closed the connection"
    assert result.stderr == (
        f"NOT sent to ann@example.org: {reason}\nNOT sent to bo@example.org: {reason}\n"
    )


def test_a_server_that_hangs_up_mid_session_is_one_line_per_recipient(
    rendered, tcp_server, tmp_path, monkeypatch
):
    monkeypatch.setattr(outgoing, "RETRY_DELAYS", (0, 0, 0))
    address = tcp_server(hang_up_after_hello)
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "bo@example.org",
                  "--each", "--from", "desk@example.org", "--smtp", address,
                  "--config", quick_config(tmp_path))  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"NOT sent to ann@example.org: {address} closed the connection (after 3 retries)\n"
        "NOT sent to bo@example.org: connection lost before this message\n"
    )


def test_implicit_tls_to_a_clear_text_port_says_so(rendered, smtp):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--from", "desk@example.org",
                  "--smtp", smtp.address, env={"DOSSIER_SMTP_SECURITY": "tls"})  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == (
        f"NOT sent to ann@example.org: {smtp.address} does not speak TLS from the first byte;"
        " use starttls for it\n"
    )


def test_a_refused_goodbye_does_not_undo_what_was_sent(rendered, tcp_server, tmp_path):
    address = tcp_server(rude_goodbye)
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--from", "desk@example.org",
                  "--smtp", address, "--config", quick_config(tmp_path))  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("sent to ann@example.org: ")
    assert result.stderr == ""


# -- what is checked before anything is sent ---------------------------------------------------
def test_an_infinite_timeout_is_refused_in_words(tmp_path):
    config = tmp_path / "dossier.toml"
    config.write_text("[mail.smtp]\ntimeout = inf\n")
    stderr = refused_early(["--to", "ann@example.org", "--config", config, "--smtp", "h:25",
                            "--from", "desk@example.org"])  # fmt: skip
    assert stderr == f"{config}:2: mail.smtp.timeout: input should be a finite number (got inf)\n"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (os.mkfifo, "not a regular file (a FIFO); password files must be regular files"),
        (os.mkdir, "not a regular file (a folder); password files must be regular files"),
        (lambda path: path.write_text("\n"), "the password file is empty"),
        (
            lambda path: path.write_bytes(b"p\xe4sswort\n"),
            "the password file is not UTF-8 text; save it as UTF-8",
        ),
        (lambda path: None, "cannot read: no such file or directory"),
        (
            lambda path: path.symlink_to("/dev/zero"),
            "not a regular file (a link to a character device); password files must be regular"
            " files",
        ),
    ],
)
def test_a_password_file_that_cannot_be_used_is_named_and_not_waited_on(tmp_path, make, message):
    password = tmp_path / "password"
    make(password)
    stderr = refused_early(["--to", "ann@example.org", "--from", "desk@example.org",
                            "--smtp", "mail.example.org:587"],
                           env={"DOSSIER_SMTP_USER": "ann",
                                "DOSSIER_SMTP_PASSWORD_FILE": str(password)})  # fmt: skip
    assert stderr == f"{password}: {message}\n"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("DOSSIER_SMTP_USER", "ann\udce4"), ("DOSSIER_SMTP_PASSWORD", "p\udce4")],
)
def test_a_user_or_password_of_undecodable_bytes_is_named_not_shown(variable, value):
    env = {"DOSSIER_SMTP_USER": "ann", "DOSSIER_SMTP_PASSWORD": "secret", variable: value}
    stderr = refused_early(["--to", "ann@example.org", "--from", "desk@example.org",
                            "--smtp", "mail.example.org:587"], env=env)  # fmt: skip
    assert stderr == f"{variable}: holds bytes that are not UTF-8 text\n"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read: no such file or directory"),
        ("not a certificate\n", "no PEM certificates in it"),
    ],
)
def test_a_ca_file_that_cannot_be_used_is_named(tmp_path, content, message):
    ca_file = tmp_path / "ca.pem"
    if content is not None:
        ca_file.write_text(content)
    config = tmp_path / "dossier.toml"
    config.write_text(f'[mail.smtp]\nca_file = "{ca_file}"\n')
    stderr = refused_early(["--to", "ann@example.org", "--from", "desk@example.org",
                            "--smtp", "mail.example.org:587", "--config", config])  # fmt: skip
    assert stderr == f"{ca_file}: mail.smtp.ca_file: {message}\n"


# -- the parts ----------------------------------------------------------------------------------
def test_server_settings_come_from_the_command_line_then_environment_then_config(tmp_path):
    settings = SmtpSettings(host="mail.example.org", user="ann", password_file=tmp_path / "pw")
    (tmp_path / "pw").write_text("from-file\n")
    from_config = outgoing.smtp_server(settings, {})
    assert (from_config.host, from_config.port, from_config.password) == (
        "mail.example.org", 587, "from-file"
    )  # fmt: skip
    environ = {"DOSSIER_SMTP_HOST": "relay.example.org", "DOSSIER_SMTP_PASSWORD": "from-env"}
    from_environment = outgoing.smtp_server(settings, environ)
    assert (from_environment.host, from_environment.password) == ("relay.example.org", "from-env")
    from_option = outgoing.smtp_server(settings, environ, "[::1]:2525")
    assert (from_option.host, from_option.port, from_option.is_loopback) == ("::1", 2525, True)
    assert from_option.name == "[::1]:2525"
    assert outgoing.smtp_server(settings, environ, "::1").name == "[::1]:587"
    idn = outgoing.smtp_server(settings, environ, "bücher.example:25")
    assert idn.host == "xn--bcher-kva.example"
    assert "from-env" not in repr(from_option)
    implicit = outgoing.smtp_server(SmtpSettings(host="mail.example.org", security="tls"), {})
    assert implicit.port == 465


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("mail.example.org:smtp", "--smtp: 'smtp' is not a port number (1-65535)"),
        ("mail.example.org:70000", "--smtp: '70000' is not a port number (1-65535)"),
        ("mail.example.org:²", "--smtp: '²' is not a port number (1-65535)"),
        ("mail.example.org:٢٥", "--smtp: '٢٥' is not a port number (1-65535)"),
        ("mail example.org:25", "--smtp: 'mail example.org' is not a host name or an IP address"),
        ("mail..example.org:25", "--smtp: 'mail..example.org' is not a host name or an IP address"),
        ("mail\x00.org:25", "--smtp: 'mail\\x00.org' is not a host name or an IP address"),
        (":25", "--smtp: ':25': expected HOST:PORT (an IPv6 address in brackets: [::1]:25)"),
        (
            "fe80::1::25",
            "--smtp: 'fe80::1::25': expected HOST:PORT (an IPv6 address in brackets: [::1]:25)",
        ),
        (f"{'a' * 64}.org:25", f"--smtp: '{'a' * 64}.org' is not a host name or an IP address"),
    ],
)
def test_a_bad_server_address_is_a_clear_error(address, message):
    with pytest.raises(InvalidInput) as error:
        outgoing.smtp_server(SmtpSettings(), {}, address)
    assert str(error.value) == message


def test_no_server_anywhere_says_where_to_set_one():
    with pytest.raises(InvalidInput) as error:
        outgoing.smtp_server(SmtpSettings(), {})
    assert "no SMTP server: give --smtp HOST:PORT" in str(error.value)


# -- retries and rate ---------------------------------------------------------------------------
Outcome = outgoing.Outcome
TRY_LATER = "451 4.7.1 try later"


def message_to(*recipients: str, number: int = 1) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "desk@example.org"
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"Dossier {number}"
    message["Message-ID"] = f"<{number}@example.org>"
    message.set_content("The dossier is attached.")
    return message


class Scripted(Recorder):
    """A Recorder that first answers MAIL, DATA (after the message) and RCPT (for an address)
    from its scripts, as usual once a script is used up; it counts what it was asked."""

    def __init__(self, mail=(), rcpt=None, data=(), refuse=()):
        super().__init__(refuse)
        self.scripts = {"MAIL": list(mail), "DATA": list(data)}
        self.rcpt_scripts = {address: list(answers) for address, answers in (rcpt or {}).items()}
        self.asked = Counter()

    async def handle_MAIL(self, server, session, envelope, address, options):
        self.asked["MAIL"] += 1
        if self.scripts["MAIL"]:
            return self.scripts["MAIL"].pop(0)
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        self.asked["RCPT"] += 1
        script = self.rcpt_scripts.get(address)
        if script:
            return script.pop(0)
        return await super().handle_RCPT(server, session, envelope, address, options)

    async def handle_DATA(self, server, session, envelope):
        self.asked["DATA"] += 1
        if self.scripts["DATA"]:
            return self.scripts["DATA"].pop(0)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def serve_smtp():
    """Starts an aiosmtpd server with a given handler; gives the Server to send to."""
    controllers = []

    def start(handler):
        port = free_port()
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        controllers.append(controller)
        return outgoing.Server("127.0.0.1", port, "starttls", timeout=5.0)

    yield start
    for controller in controllers:
        controller.stop()


def send_all(messages, server, **options):
    """Every Delivery, the sleeps asked for instead of taken (retries wait 1, 2 and 4 s)."""
    sleeps = []
    deliveries = list(outgoing.send(messages, server, sleep=sleeps.append, **options))
    return deliveries, sleeps


def test_a_recipient_put_off_twice_is_tried_again_until_accepted(serve_smtp):
    handler = Scripted(rcpt={"ann@example.org": [TRY_LATER, TRY_LATER]})
    server = serve_smtp(handler)
    (delivery,), sleeps = send_all([message_to("ann@example.org")], server)
    assert delivery.outcomes == {"ann@example.org": Outcome("sent", "", 3)}
    assert (delivery.accepted, delivery.refused) == (["ann@example.org"], {})
    assert delivery.message_id == "<1@example.org>"
    assert sleeps == [1.0, 2.0]
    assert handler.asked == {"MAIL": 3, "RCPT": 3, "DATA": 1}
    assert [arrived.recipients for arrived in handler.received] == [["ann@example.org"]]


def test_a_recipient_put_off_every_time_fails_after_three_retries(serve_smtp):
    handler = Scripted(rcpt={"ann@example.org": [TRY_LATER] * 4})
    server = serve_smtp(handler)
    (delivery,), sleeps = send_all([message_to("ann@example.org")], server)
    assert delivery.outcomes == {
        "ann@example.org": Outcome("failed", "451 4.7.1 try later (after 3 retries)", 4)
    }
    assert delivery.refused == {"ann@example.org": "451 4.7.1 try later (after 3 retries)"}
    assert sleeps == [1.0, 2.0, 4.0]
    assert handler.asked == {"MAIL": 4, "RCPT": 4}
    assert handler.received == []


def test_a_permanent_refusal_is_not_tried_again(serve_smtp):
    handler = Scripted(refuse={"nobody@example.org"})
    server = serve_smtp(handler)
    (delivery,), sleeps = send_all([message_to("nobody@example.org")], server)
    assert delivery.outcomes == {
        "nobody@example.org": Outcome("refused", "550 5.1.1 no such mailbox here", 1)
    }
    assert sleeps == []
    assert handler.asked == {"MAIL": 1, "RCPT": 1}


def test_only_the_recipients_put_off_are_tried_again(serve_smtp):
    handler = Scripted(rcpt={"bo@example.org": [TRY_LATER]}, refuse={"nobody@example.org"})
    server = serve_smtp(handler)
    message = message_to("ann@example.org", "bo@example.org", "nobody@example.org")
    (delivery,), sleeps = send_all([message], server)
    assert delivery.outcomes == {
        "ann@example.org": Outcome("sent", "", 1),
        "bo@example.org": Outcome("sent", "", 2),
        "nobody@example.org": Outcome("refused", "550 5.1.1 no such mailbox here", 1),
    }
    assert delivery.accepted == ["ann@example.org", "bo@example.org"]  # as the message has them
    assert sleeps == [1.0]
    assert [arrived.recipients for arrived in handler.received] == [
        ["ann@example.org"],
        ["bo@example.org"],
    ]


@pytest.mark.parametrize("command", ["MAIL", "DATA"])
def test_a_message_put_off_is_tried_again(serve_smtp, command):
    handler = Scripted(**{command.lower(): ["451 4.3.0 busy, try later"]})
    server = serve_smtp(handler)
    (delivery,), sleeps = send_all([message_to("ann@example.org")], server)
    assert delivery.outcomes == {"ann@example.org": Outcome("sent", "", 2)}
    assert sleeps == [1.0]
    assert handler.asked[command] == 2
    assert len(handler.received) == 1


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        (["451 4.3.0 busy"] * 4,
         Outcome("failed", "{server} answered 451 4.3.0 busy (after 3 retries)", 4)),
        (["554 5.6.0 no thanks"], Outcome("refused", "{server} answered 554 5.6.0 no thanks", 1)),
    ],
)  # fmt: skip
def test_a_message_refused_after_its_data_is_named_with_the_answer(serve_smtp, answers, outcome):
    handler = Scripted(data=answers)
    server = serve_smtp(handler)
    (delivery,), _ = send_all([message_to("ann@example.org")], server)
    expected = Outcome(outcome.status, outcome.reason.format(server=server.name), outcome.attempts)
    assert delivery.outcomes == {"ann@example.org": expected}
    assert handler.asked["DATA"] == outcome.attempts
    assert handler.received == []


class FailsOnce:
    """A raw SMTP server (for tcp_server) that takes every message but fails once: when
    `command` first comes (b"MAIL", b"RCPT", b"DATA"; b"." once the whole message has come),
    it answers `answer` and goes on, or else hangs up, or falls silent (`silent`). Like a real
    server, it refuses a MAIL in the middle of a transaction until RSET."""

    def __init__(self, command: bytes, silent: bool = False, answer: bytes | None = None):
        self.command, self.silent, self.answer, self.failed = command, silent, answer, False
        self.connections, self.commands, self.messages = 0, [], 0

    def __call__(self, connection):
        self.connections += 1
        stream = connection.makefile("rwb")
        try:
            self._converse(stream)
        except OSError:  # the client hung up first
            pass
        finally:
            stream.close()
            connection.close()

    def _converse(self, stream):
        self._say(stream, b"220 once.example.org ESMTP")
        in_transaction = False
        for line in stream:
            verb = line[:4].upper()
            self.commands.append(verb.decode())
            if self._fails_at(verb):
                if self.answer is None:
                    return self._fall_silent(stream)
                self._say(stream, self.answer)
            elif verb == b"MAIL" and in_transaction:
                self._say(stream, b"503 5.5.1 Error: nested MAIL command")
            elif verb == b"DATA":
                self._say(stream, b"354 go ahead")
                for body in stream:
                    if body == b".\r\n":
                        break
                if self._fails_at(b"."):
                    return self._fall_silent(stream)
                self.messages += 1
                in_transaction = False
                self._say(stream, b"250 accepted")
            elif verb == b"QUIT":
                return self._say(stream, b"221 bye")
            else:
                in_transaction = (in_transaction or verb == b"MAIL") and verb != b"RSET"
                self._say(stream, b"250 once.example.org" if verb == b"EHLO" else b"250 OK")
        return None

    def _fails_at(self, verb: bytes) -> bool:
        if self.failed or verb != self.command:
            return False
        self.failed = True
        return True

    def _fall_silent(self, stream):
        if self.silent:
            for _ in stream:  # until the client gives up and hangs up
                pass

    @staticmethod
    def _say(stream, line: bytes):
        stream.write(line + b"\r\n")
        stream.flush()


def no_sleep(seconds: float):
    pytest.fail(f"slept {seconds} s")


def raw_server(address: str, timeout: float = 5.0) -> outgoing.Server:
    host, port = address.rsplit(":", 1)
    return outgoing.Server(host, int(port), "starttls", timeout=timeout)


@pytest.mark.parametrize("command", [b"MAIL", b"RCPT", b"DATA"])
def test_a_connection_dropped_before_the_message_went_is_opened_again(tcp_server, command):
    script = FailsOnce(command)
    server = raw_server(tcp_server(script))
    (delivery,), sleeps = send_all([message_to("ann@example.org")], server)
    assert delivery.outcomes == {"ann@example.org": Outcome("sent", "", 2)}
    assert sleeps == [1.0]
    assert (script.connections, script.messages) == (2, 1)


def test_a_data_command_put_off_is_tried_again_after_a_reset(tcp_server):
    script = FailsOnce(b"DATA", answer=b"451 4.3.0 not now")
    server = raw_server(tcp_server(script))
    (delivery,), sleeps = send_all([message_to("ann@example.org")], server)
    assert delivery.outcomes == {"ann@example.org": Outcome("sent", "", 2)}
    assert sleeps == [1.0]
    assert (script.connections, script.messages) == (1, 1)
    assert script.commands == ["EHLO", "MAIL", "RCPT", "DATA", "RSET", "MAIL", "RCPT", "DATA",
                               "QUIT"]  # fmt: skip


def test_a_server_that_falls_silent_once_is_tried_again_on_a_new_connection(tcp_server):
    script = FailsOnce(b"RCPT", silent=True)
    server = raw_server(tcp_server(script), timeout=0.3)
    (delivery,), sleeps = send_all([message_to("ann@example.org")], server)
    assert delivery.outcomes == {"ann@example.org": Outcome("sent", "", 2)}
    assert sleeps == [1.0]
    assert (script.connections, script.messages) == (2, 1)


def test_an_answer_lost_after_the_whole_message_went_is_not_sent_again(tcp_server):
    script = FailsOnce(b".")
    server = raw_server(tcp_server(script))
    messages = [message_to("ann@example.org"), message_to("bo@example.org", number=2)]
    first, second = outgoing.send(messages, server, sleep=no_sleep)
    assert first.outcomes == {
        "ann@example.org": Outcome("unknown", f"{server.name} closed the connection", 1)
    }
    assert second.outcomes == {"bo@example.org": Outcome("sent", "", 1)}  # on a new connection
    assert script.connections == 2
    assert script.commands.count("DATA") == 2


def test_each_delivery_is_known_before_the_next_message_goes(serve_smtp):
    handler = Scripted()
    server = serve_smtp(handler)
    messages = [message_to("ann@example.org"), message_to("bo@example.org", number=2)]
    deliveries = outgoing.send(messages, server)
    first = next(deliveries)
    assert (first.accepted, first.message_id) == (["ann@example.org"], "<1@example.org>")
    assert [arrived.recipients for arrived in handler.received] == [["ann@example.org"]]
    (second,) = deliveries
    assert (second.accepted, second.message_id) == (["bo@example.org"], "<2@example.org>")
    assert len(handler.received) == 2


class FakeTime:
    """A clock that moves only when slept on, or when a test moves it."""

    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class TakesHalfASecond(Scripted):
    """Each message it accepts takes half a second of the fake clock."""

    def __init__(self, fake: FakeTime, **scripts):
        super().__init__(**scripts)
        self.fake = fake

    async def handle_DATA(self, server, session, envelope):
        self.fake.now += 0.5
        return await super().handle_DATA(server, session, envelope)


def test_a_rate_spaces_the_messages_from_start_to_start(serve_smtp):
    fake = FakeTime()
    handler = TakesHalfASecond(fake)
    server = serve_smtp(handler)
    messages = [message_to("ann@example.org", number=number) for number in (1, 2, 3)]
    deliveries = list(outgoing.send(messages, server, rate=30, clock=fake.clock, sleep=fake.sleep))
    assert [delivery.ok for delivery in deliveries] == [True, True, True]
    assert fake.sleeps == [1.5, 1.5]  # 2 s apart at 30 a minute, each taking 0.5 s


def test_a_retry_waits_for_its_delay_and_for_the_rate(serve_smtp):
    fake = FakeTime()
    handler = TakesHalfASecond(fake, rcpt={"bo@example.org": [TRY_LATER]})
    server = serve_smtp(handler)
    messages = [message_to(to, number=n) for n, to in enumerate(["ann@example.org",
                "bo@example.org", "cy@example.org"], start=1)]  # fmt: skip
    deliveries = list(outgoing.send(messages, server, rate=30, clock=fake.clock, sleep=fake.sleep))
    assert [d.outcomes for d in deliveries] == [
        {"ann@example.org": Outcome("sent", "", 1)},
        {"bo@example.org": Outcome("sent", "", 2)},
        {"cy@example.org": Outcome("sent", "", 1)},
    ]
    assert fake.sleeps == [1.5, 2.0, 1.5]  # bo's retry: 1 s of delay, but 2 s for the rate


def test_without_a_rate_messages_go_at_once(serve_smtp):
    fake = FakeTime()
    server = serve_smtp(TakesHalfASecond(fake))
    messages = [message_to("ann@example.org", number=number) for number in (1, 2, 3)]
    list(outgoing.send(messages, server, clock=fake.clock, sleep=fake.sleep))
    assert fake.sleeps == []
