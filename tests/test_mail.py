"""Mail: messages, drafts and a real SMTP server (aiosmtpd) on 127.0.0.1."""

from __future__ import annotations

import contextlib
import hmac
import os
import socket
import ssl
import subprocess
import threading
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from click.testing import CliRunner

from renderer import mail as post
from renderer import smtp as outgoing
from renderer.cli import main
from renderer.config import Config, SmtpSettings
from renderer.problems import InvalidInput
from renderer.records import load_record
from tests.conftest import SEED_SLUG, small_catalog

OTHER_SLUG = "sdet"


def run(*args, env=None):
    return CliRunner().invoke(main, [str(arg) for arg in args], env=env)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The small catalog, two of its dossiers rendered once into a cache shared by these tests."""
    folder = tmp_path_factory.mktemp("mail")
    records = small_catalog(folder)
    cache, out = folder / "cache", folder / "dossiers"
    result = run("render", SEED_SLUG, OTHER_SLUG, "--records", records, "--cache", cache,
                 "--out", out, "--jobs", "1", "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    return SimpleNamespace(records=records, cache=cache, dossiers=out)


# the machine's own mail settings must not leak into these tests
CLEAN_ENVIRONMENT = dict.fromkeys(
    [*outgoing.ENVIRONMENT, "DOSSIER_SMTP_PASSWORD", outgoing.PASSWORD_FILE_VARIABLE]
)


def mail(rendered, *args, env=None):
    common = ("--records", rendered.records, "--cache", rendered.cache, "--jobs", "1", "--quiet")
    return run("mail", *args, *common, env={**CLEAN_ENVIRONMENT, **(env or {})})


class Recorder:
    """An aiosmtpd handler that keeps every message it accepts and can refuse recipients."""

    def __init__(self, refuse=()):
        self.refuse, self.received = set(refuse), []

    async def handle_RCPT(self, server, session, envelope, address, options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        message = BytesParser(policy=default).parsebytes(envelope.original_content)
        self.received.append(
            SimpleNamespace(
                sender=envelope.mail_from,
                recipients=list(envelope.rcpt_tos),
                message=message,
                tls=session.ssl is not None,
            )
        )
        return "250 Message accepted"


@pytest.fixture
def smtp():
    """A real SMTP server on a free loopback port, without TLS."""
    recorder, port = Recorder(refuse={"nobody@example.org"}), free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    yield SimpleNamespace(received=recorder.received, address=f"127.0.0.1:{port}", port=port)
    controller.stop()


def attachments(message: EmailMessage) -> dict[str, bytes]:
    return {part.get_filename(): part.get_content() for part in message.iter_attachments()}


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def cached_pdfs(cache: Path) -> set[Path]:
    return {path for path in cache.rglob("*.cache") if b"\n%PDF" in path.read_bytes()[:200]}


# -- over SMTP -----------------------------------------------------------------------------------
def test_one_message_carries_both_bodies_and_the_rendered_pdfs(rendered, smtp):
    before = cached_pdfs(rendered.cache)
    result = mail(rendered, SEED_SLUG, OTHER_SLUG, "--to", "ann@example.org",
                  "--to", "Bo Bell <bo@example.org>", "--from", "desk@example.org",
                  "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 0, result.output
    seed = load_record(rendered.records / f"{SEED_SLUG}.yaml").record
    other = load_record(rendered.records / f"{OTHER_SLUG}.yaml").record
    subject = f"2 specimen dossiers: {seed.title}, {other.title}"
    assert result.stdout == f"sent to ann@example.org, bo@example.org: {subject}\n"
    (arrived,) = smtp.received
    assert arrived.sender == "desk@example.org"
    assert arrived.recipients == ["ann@example.org", "bo@example.org"]
    assert arrived.message["Subject"] == subject
    assert arrived.message["To"] == "ann@example.org, Bo Bell <bo@example.org>"
    text, html = bodies(arrived.message)
    for record in (seed, other):
        assert record.title in text and record.flight_risk.diagnosis in text
        assert f"Flight risk {record.flight_risk.percent}% - {record.flight_risk.level}" in text
        assert record.title.replace("&", "&amp;") in html
    assert attachments(arrived.message) == {
        f"{slug}.pdf": (rendered.dossiers / f"{slug}.pdf").read_bytes()
        for slug in (SEED_SLUG, OTHER_SLUG)
    }
    assert cached_pdfs(rendered.cache) == before  # served from the build cache, not rendered


def test_each_recipient_gets_a_message_of_their_own(rendered, smtp):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "bo@example.org",
                  "--each", "--from", "desk@example.org", "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [r.recipients for r in smtp.received] == [["ann@example.org"], ["bo@example.org"]]
    assert [r.message["To"] for r in smtp.received] == ["ann@example.org", "bo@example.org"]
    assert result.stdout.count("sent to ") == 2


def test_a_refused_recipient_is_named_and_the_exit_code_says_so(rendered, smtp):
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "nobody@example.org",
                  "--from", "desk@example.org", "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 1
    assert result.stdout.startswith("sent to ann@example.org: ")
    assert result.stderr == ("NOT sent to nobody@example.org: 550 5.1.1 no such mailbox here\n")
    assert [r.recipients for r in smtp.received] == [["ann@example.org"]]


def test_a_server_that_is_down_fails_every_recipient_in_one_line_each(rendered):
    port = free_port()
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "bo@example.org",
                  "--from", "desk@example.org", "--smtp", f"127.0.0.1:{port}")  # fmt: skip
    assert result.exit_code == 1
    reason = f"cannot connect to 127.0.0.1:{port}: connection refused (is the server running?)"
    assert result.stderr == (
        f"NOT sent to ann@example.org: {reason}\nNOT sent to bo@example.org: {reason}\n"
    )
    assert result.stdout == ""


@pytest.mark.parametrize("address", ["not an address", "ann@", "@example.org", "a@b@c.org"])
def test_an_address_that_is_not_one_stops_before_anything_is_sent(rendered, smtp, address):
    result = mail(rendered, SEED_SLUG, "--to", address, "--from", "desk@example.org",
                  "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == f"--to: {address!r} is not an e-mail address\n"
    assert smtp.received == []


def test_attachments_over_the_limit_are_refused_with_what_to_send_instead(rendered, smtp, tmp_path):
    config = tmp_path / "dossier.toml"
    config.write_text("[mail]\nmax_attachment_mb = 0.05\n")
    result = mail(rendered, SEED_SLUG, OTHER_SLUG, "--to", "ann@example.org", "--config", config,
                  "--from", "desk@example.org", "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 1
    assert "one message carries at most 0.05 MB of attachments" in result.stderr
    assert "send fewer dossiers per message" in result.stderr
    assert result.stderr.startswith(f"{SEED_SLUG}.pdf: ") or result.stderr.startswith(
        f"{OTHER_SLUG}.pdf: "
    )
    assert smtp.received == []


def test_a_compendium_over_the_limit_suggests_single_dossiers():
    files = [post.Attachment("compendium.pdf", b"x" * 300_000)]
    with pytest.raises(InvalidInput) as error:
        post.check_size(files, 0.2)
    assert str(error.value) == (
        "compendium.pdf: compendium.pdf is 0.3 MB; one message carries at most 0.2 MB of"
        " attachments (mail.max_attachment_mb); send single dossiers instead:"
        " dossier mail SLUG... --to ADDR"
    )


@pytest.mark.slow
def test_the_compendium_can_be_attached(rendered, smtp, tmp_path):
    result = mail(rendered, "--compendium", "--to", "ann@example.org", "--from", "desk@example.org",
                  "--smtp", smtp.address)  # fmt: skip
    assert result.exit_code == 0, result.output
    (arrived,) = smtp.received
    assert arrived.message["Subject"] == "Specimen compendium (4 specimens)"
    (name, pdf), *_ = attachments(arrived.message).items()
    assert name == "compendium.pdf" and pdf.startswith(b"%PDF-")


def test_a_remote_server_without_starttls_is_refused_unless_insecure(rendered, smtp, monkeypatch):
    monkeypatch.setattr(outgoing.Server, "is_loopback", property(lambda server: False))
    args = (SEED_SLUG, "--to", "ann@example.org", "--from", "desk@example.org",
            "--smtp", smtp.address)  # fmt: skip
    result = mail(rendered, *args)
    assert result.exit_code == 1
    assert result.stderr == (
        f"NOT sent to ann@example.org: {smtp.address} does not offer STARTTLS; refusing to send"
        " in clear text (use --insecure to allow it)\n"
    )
    assert smtp.received == []
    assert mail(rendered, *args, "--insecure").exit_code == 0
    assert len(smtp.received) == 1


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


# -- what is checked before anything is rendered ------------------------------------------------
def refused_early(args, env=None, records="no-such-folder"):
    """Run `dossier mail` where rendering would fail: the answer must come before it."""
    result = run("mail", SEED_SLUG, "--records", records, *args,
                 env={**CLEAN_ENVIRONMENT, **(env or {})})  # fmt: skip
    assert result.exit_code == 1, result.output
    return result.stderr


ONE_LINE = "a line break or control character; a mail header is one line of printable text"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subject", "Hi\r\nBcc: all@example.org"],
         f"--subject: 'Hi\\r\\nBcc: all@example.org' has U+000D, {ONE_LINE}"),
        (["--subject", "Hi\u2028Bcc: all@example.org"],
         f"--subject: 'Hi\\u2028Bcc: all@example.org' has U+2028, {ONE_LINE}"),
        (["--subject", "Hi\x00"], f"--subject: 'Hi\\x00' has U+0000, {ONE_LINE}"),
        (["--subject", "Hi \udcff"], "--subject: 'Hi \\udcff' holds bytes that are not UTF-8 text"),
        (["--to", "Ann\nBcc: all@example.org <ann@example.org>"],
         f"--to: 'Ann\\nBcc: all@example.org <ann@example.org>' has U+000A, {ONE_LINE}"),
        (["--from", "Desk\r\n <desk@example.org>"],
         f"--from: 'Desk\\r\\n <desk@example.org>' has U+000D, {ONE_LINE}"),
    ],
)  # fmt: skip
def test_line_breaks_in_headers_are_refused_naming_the_option(args, message, tmp_path):
    stderr = refused_early(["--to", "ann@example.org", "--eml-dir", tmp_path, *args])
    assert stderr == message + "\n"
    assert list(tmp_path.iterdir()) == []


def test_a_line_break_in_the_configured_sender_names_the_line(tmp_path):
    config = tmp_path / "dossier.toml"
    config.write_text('[mail]\nsender = "desk@example.org\\nBcc: all@example.org"\n')
    stderr = refused_early(["--to", "ann@example.org", "--config", config, "--smtp", "h:25"])
    assert stderr == (
        f"{config}:2: mail.sender: control character U+000A at character 17: a setting is one"
        " line of printable text; remove it (got 'desk@example.org\\nBcc: all@example.org')\n"
    )


def test_an_infinite_timeout_is_refused_in_words(tmp_path):
    config = tmp_path / "dossier.toml"
    config.write_text("[mail.smtp]\ntimeout = inf\n")
    stderr = refused_early(["--to", "ann@example.org", "--config", config, "--smtp", "h:25",
                            "--from", "desk@example.org"])  # fmt: skip
    assert stderr == f"{config}:2: mail.smtp.timeout: input should be a finite number (got inf)\n"


def test_a_password_file_that_is_not_utf8_is_named(tmp_path):
    password = tmp_path / "password"
    password.write_bytes(b"p\xe4sswort\n")
    stderr = refused_early(["--to", "ann@example.org", "--from", "desk@example.org",
                            "--smtp", "mail.example.org:587"],
                           env={"DOSSIER_SMTP_USER": "ann",
                                "DOSSIER_SMTP_PASSWORD_FILE": str(password)})  # fmt: skip
    assert stderr == f"{password}: the password file is not UTF-8 text; save it as UTF-8\n"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (os.mkfifo, "not a regular file (a FIFO); password files must be regular files"),
        (os.mkdir, "not a regular file (a folder); password files must be regular files"),
        (lambda path: path.write_text("\n"), "the password file is empty"),
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


# -- drafts -------------------------------------------------------------------------------------
def test_an_eml_draft_parses_back_into_the_same_parts(rendered, tmp_path):
    drafts = tmp_path / "drafts"
    args = (SEED_SLUG, "--to", "Zoë Ångström <zoe@example.org>", "--subject", "Dossier für Zoë",
            "--eml-dir", drafts)  # fmt: skip
    result = mail(rendered, *args)
    assert result.exit_code == 0, result.output
    (path,) = drafts.iterdir()
    assert result.stdout == f"{path}\n"
    message = BytesParser(policy=default).parsebytes(path.read_bytes())
    assert message["Subject"] == "Dossier für Zoë"
    assert message["To"] == "Zoë Ångström <zoe@example.org>"
    assert message["X-Unsent"] == "1"
    text, html = bodies(message)
    title = load_record(rendered.records / f"{SEED_SLUG}.yaml").record.title
    assert title in text and "<html>" in html
    assert attachments(message) == {
        f"{SEED_SLUG}.pdf": (rendered.dossiers / f"{SEED_SLUG}.pdf").read_bytes()
    }
    again = mail(rendered, *args)
    assert again.exit_code == 1
    assert again.stderr == f"{path}: already exists; not overwritten\n"


def test_each_recipient_gets_a_draft_of_their_own_even_when_their_names_meet(rendered, tmp_path):
    drafts = tmp_path / "drafts"
    recipients = ["a.b@example.org", "a-b@example.org", "A.B@Example.org", "a.b@example.org"]
    to = [arg for recipient in recipients for arg in ("--to", recipient)]
    result = mail(rendered, SEED_SLUG, *to, "--each", "--eml-dir", drafts)
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.stdout.splitlines()]
    assert len(set(paths)) == 4 and sorted(drafts.iterdir()) == sorted(paths)
    parsed = [BytesParser(policy=default).parsebytes(path.read_bytes()) for path in paths]
    assert [message["To"] for message in parsed] == recipients
    before = {path: path.read_bytes() for path in paths}
    again = mail(rendered, SEED_SLUG, *to, "--each", "--eml-dir", drafts)
    assert again.exit_code == 1
    assert again.stderr == "".join(
        f"{path}: already exists; not overwritten\n" for path in sorted(paths)
    )
    assert {path: path.read_bytes() for path in drafts.iterdir()} == before


def test_a_draft_already_there_stops_the_command_before_it_renders(rendered, tmp_path):
    drafts, cache = tmp_path / "drafts", tmp_path / "fresh-cache"
    drafts.mkdir()
    (drafts / "hello.eml").write_text("mine")
    result = run("mail", SEED_SLUG, "--to", "ann@example.org", "--subject", "Hello",
                 "--eml-dir", drafts, "--records", rendered.records, "--cache", cache,
                 env=CLEAN_ENVIRONMENT)  # fmt: skip
    assert result.exit_code == 1
    assert result.stderr == f"{drafts / 'hello.eml'}: already exists; not overwritten\n"
    assert (drafts / "hello.eml").read_text() == "mine"
    assert cached_pdfs(cache) == set()


def test_a_link_in_the_way_of_a_draft_is_not_replaced(rendered, tmp_path):
    drafts = tmp_path / "drafts"
    drafts.mkdir()
    first = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--eml-dir", tmp_path / "probe")
    (name,) = [Path(line).name for line in first.stdout.splitlines()]
    (drafts / name).symlink_to(tmp_path / "elsewhere.eml")  # dangling: exists() says no
    result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--eml-dir", drafts)
    assert result.exit_code == 1
    assert result.stderr == f"{drafts / name}: already exists; not overwritten\n"
    assert (drafts / name).is_symlink() and not (tmp_path / "elsewhere.eml").exists()


@contextlib.contextmanager
def mounted_tmpfs(folder: Path, options: str):
    """A real tmpfs at `folder` (root only, as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_drafts_on_a_read_only_file_system_are_one_line(rendered, tmp_path):
    with mounted_tmpfs(tmp_path / "drafts", "ro,size=1m") as drafts:
        result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--subject", "Hello",
                      "--eml-dir", drafts)  # fmt: skip
        assert result.exit_code == 1
        assert result.stderr == f"{drafts / 'hello.eml'}: cannot write: read-only file system\n"
        assert list(drafts.iterdir()) == []


def test_a_full_disk_keeps_the_drafts_written_before_it_and_names_the_first_that_failed(
    rendered, tmp_path
):
    pdf = (rendered.dossiers / f"{SEED_SLUG}.pdf").stat().st_size
    room = (pdf * 2 // 4096 + 1) * 4096  # one draft (base64: 4/3 of the PDF), not two
    with mounted_tmpfs(tmp_path / "drafts", f"size={room}") as drafts:
        result = mail(rendered, SEED_SLUG, "--to", "ann@example.org", "--to", "bo@example.org",
                      "--each", "--subject", "Hello", "--eml-dir", drafts)  # fmt: skip
        assert result.exit_code == 1
        first, second = drafts / "hello--ann-example-org.eml", drafts / "hello--bo-example-org.eml"
        assert result.stdout == f"{first}\n"
        assert result.stderr == f"{second}: cannot write: no space left on device\n"
        assert list(drafts.iterdir()) == [first]  # and no temporary file left behind
        assert BytesParser(policy=default).parsebytes(first.read_bytes())["To"] == "ann@example.org"


def test_draft_names_are_distinct_for_every_recipient():
    long = "x" * 200
    recipients = ["a.b@example.org", "a-b@example.org", "A.B@Example.org", "a.b@example.org",
                  "c@example.org", f"{long}@example.org", f"{long}@example.net"]  # fmt: skip
    names = list(post.draft_names(recipients))
    assert len(set(names)) == len(recipients)
    assert names[4] == "c-example-org"  # no collision, no hash
    assert names[3] == f"{names[0]}-2"  # the same address twice
    assert all(len(name) <= 100 for name in names)


def test_a_title_with_a_line_break_makes_a_one_line_subject():
    record = SimpleNamespace(title="Chief\nExecutive   Officer")
    assert post.default_subject([record], False, 1) == "Specimen dossier: Chief Executive Officer"
    two = post.default_subject([record, record], False, 2)
    assert "\n" not in two


# -- the parts ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ann@example.org", "ann@example.org"),
        ("Ann Lee <ann@example.org>", "Ann Lee <ann@example.org>"),
        ("zoe@exämple.org", "zoe@xn--exmple-cua.org"),
    ],
)
def test_addresses_are_parsed_and_domains_made_ascii(text, expected):
    assert str(post.parse_address(text)) == expected


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


def test_smtp_settings_do_not_change_what_renders():
    plain = Config()
    with_server = Config(mail={"smtp": {"host": "mail.example.org"}, "sender": "a@example.org"})
    assert plain.rendering() == with_server.rendering()


def test_unknown_mail_settings_list_the_known_ones(tmp_path):
    from renderer.config import load_config

    config = tmp_path / "dossier.toml"
    config.write_text("[mail.smtp]\nhots = 'x'\n")
    with pytest.raises(InvalidInput) as error:
        load_config(config)
    assert str(error.value) == (
        f"{config}:2: mail.smtp.hots: unknown setting (known: host, port, security, user,"
        " password_env, password_file, ca_file, timeout)"
    )
