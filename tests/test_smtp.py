"""SMTP: TLS, logins, misbehaving servers and server settings, each failure one line."""

from __future__ import annotations

import contextlib
import hmac
import os
import socket
import ssl
import threading
import time
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


def test_a_server_that_hangs_up_mid_session_is_one_line_per_recipient(rendered, tcp_server,
                                                                       tmp_path):  # fmt: skip
    address = tcp_server(hang_up_after_hello)
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "bo@example.org",
                  "--each", "--from", "desk@example.org", "--smtp", address,
                  "--config", quick_config(tmp_path))  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"NOT sent to ann@example.org: {address} closed the connection\n"
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
