"""Preview: dossiers served as HTML and PDF on 127.0.0.1, re-rendered and reloaded on change."""

from __future__ import annotations

import contextlib
import re
import secrets
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from html import unescape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes, urlsplit

import jinja2
import markupsafe

from .config import Config
from .context import INTERNAL_SCHEME, single_link
from .contract import PAPER_LENGTHS, PAPER_SIZES
from .layouts import DEFAULT_LAYOUT, FONTS_DIR, Layout, guess_type, is_allowed_file
from .problems import InvalidInput, Problem, at_files
from .records import Entry, check_catalog, record_paths

SITE_DIR = Path(__file__).resolve().parent / "preview_site"
SITE_ASSETS = ("live.js", "preview.css")
SLUG_PATH = re.compile(r"/([a-z0-9][a-z0-9-]*)(\.pdf)?")
HEARTBEAT_SECONDS = 10.0
MAX_PATH = 2000  # characters of a request's path; no page of the preview needs more
BROKEN_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# The dossier's own HTML only ever loads its layout's files and the bundled fonts, and runs no
# script but the preview's own (a layout's <script> lacks the response's nonce).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'nonce-{nonce}'; object-src 'none'; base-uri 'self'; form-action 'none'"
)


@dataclass(frozen=True)
class Snapshot:
    """What the record, layout and config files said at one moment (one generation)."""

    generation: str
    config: Config | None  # None while the config file (or its layout) has errors
    layout: Layout | None
    config_problems: list[Problem]
    entries: dict[str, Entry]  # the valid records, by slug
    files: dict[str, Path]  # every record file, by its name's slug
    record_problems: list[Problem]

    @property
    def problems(self) -> list[Problem]:
        return self.config_problems + self.record_problems

    def problems_of(self, slug: str) -> list[Problem]:
        """The config's problems, and those of the record file named by or titled `slug`."""
        names = {str(self.files[slug])} if slug in self.files else set()
        if slug in self.entries:
            names.add(str(self.entries[slug].path))
        return self.config_problems + [p for p in self.record_problems if p.path in names]


class MemoryStore(dict):
    """A records.Store in memory: parsed records by the hash of their file."""

    def put(self, key: str, data: bytes) -> None:
        self[key] = data


@dataclass(frozen=True)
class View:
    """One dossier as the preview shows it: its HTML and PDF, or the problems that stop it."""

    html: str | None = None
    pdf: bytes | None = None
    problems: list[Problem] = field(default_factory=list)
    scale: float = 0.0
    passes: int = 0
    seconds: float = 0.0


class Preview:
    """The catalog as it is now, re-read on every change, and its dossiers rendered on demand."""

    def __init__(self, records_dir: Path, read_config: Callable[[], Config], say=print):
        self.records_dir = records_dir
        self.read_config = read_config
        self.say = say
        self.started = time.time_ns()
        self.count = 0
        self._changed = threading.Condition()
        self._rendering = threading.Lock()
        self._views: dict[str, tuple[str, View]] = {}
        self._parsed = MemoryStore()  # so that a change re-parses only the files that changed
        self.snapshot = self._read()

    # ---- files ------------------------------------------------------------------------------

    def refresh(self, changed: set[Path] = frozenset()) -> Snapshot:
        """Re-read config and records after `changed` files changed; open pages then reload."""
        if any(not path.is_relative_to(self.records_dir.resolve()) for path in changed):
            self._forget_layouts()
        snapshot = self._read()
        with self._changed:
            self.snapshot = snapshot
            self._views.clear()
            self._changed.notify_all()
        return snapshot

    def _read(self) -> Snapshot:
        self.count += 1
        generation = f"{self.started:x}-{self.count}"
        try:
            config = self.read_config()
            layout, config_problems = Layout.find(config.layout), []
        except InvalidInput as error:
            config, layout, config_problems = None, None, error.problems
        layout_name = config.layout if config is not None else DEFAULT_LAYOUT
        entries, problems = check_catalog(self.records_dir, self._parsed, layout_name)
        folder = self.records_dir
        return Snapshot(
            generation=generation,
            config=config,
            layout=layout,
            config_problems=config_problems,
            entries={entry.slug: entry for entry in entries},
            files={path.stem: path for path in record_paths(folder)} if folder.is_dir() else {},
            record_problems=problems,
        )

    @staticmethod
    def _forget_layouts() -> None:
        """A layout or font file changed: drop what was loaded from them."""
        from .glyphs import forget_fonts
        from .render import engine_for

        engine_for.cache_clear()
        forget_fonts()

    def watched_paths(self, config_path: Path | None) -> list[Path]:
        """The folders to watch: the config's own, since editors save a file by writing a new
        one and renaming it over the old, which a watch on the file itself loses."""
        paths = self._watched_folders()
        if config_path is not None and config_path.parent.is_dir():
            paths.append(config_path.parent.resolve())
        return paths

    def _watched_folders(self) -> list[Path]:
        paths = [self.records_dir, FONTS_DIR]
        if self.snapshot.layout is not None:
            paths.append(self.snapshot.layout.folder)
        return [path.resolve() for path in paths]

    def watch_filter(self, config_path: Path | None) -> Callable[[object, str], bool]:
        """Which changes count: in the watched folders, or to the config file itself."""
        import watchfiles

        usual, folders = watchfiles.DefaultFilter(), self._watched_folders()
        config = config_path.parent.resolve() / config_path.name if config_path else None

        def counts(change, path: str) -> bool:
            changed = Path(path)
            inside = any(changed.is_relative_to(folder) for folder in folders)
            return usual(change, path) and (inside or changed == config)

        return counts

    def wait_for_change(self, shown: str, timeout: float) -> str:
        """The current generation, once it differs from `shown` or the timeout has passed."""
        with self._changed:
            self._changed.wait_for(lambda: self.snapshot.generation != shown, timeout)
            return self.snapshot.generation

    # ---- dossiers ---------------------------------------------------------------------------

    def view(self, slug: str) -> View:
        snapshot = self.snapshot
        with self._rendering:
            held = self._views.get(slug)
            if held is not None and held[0] == snapshot.generation:
                return held[1]
            view = self._render(snapshot, slug)
            self._views[slug] = (snapshot.generation, view)
            return view

    def _render(self, snapshot: Snapshot, slug: str) -> View:
        from .render import dossier_html, printed_alone, render_dossier_report
        from .slots import filled_html

        problems = snapshot.problems_of(slug)
        entry = snapshot.entries.get(slug)
        if snapshot.config is None or entry is None or any(p.is_error for p in problems):
            return View(problems=problems)
        started = time.perf_counter()
        try:
            rendered = render_dossier_report(entry.record, snapshot.config)
            html = filled_html(
                dossier_html(
                    entry.record, snapshot.config, scale=rendered.scale, layout=snapshot.layout
                ),
                printed_alone,
            )
        except InvalidInput as error:
            return View(problems=problems + at_files(error.problems, {slug: str(entry.path)}))
        seconds = time.perf_counter() - started
        self.say(f"rendered {slug} in {seconds:.1f} s (type scale {rendered.scale:.2f})")
        return View(html, rendered.pdf, problems, rendered.scale, rendered.passes, seconds)

    # ---- pages ------------------------------------------------------------------------------

    @cached_property
    def site(self) -> jinja2.Environment:
        return jinja2.Environment(
            loader=jinja2.FileSystemLoader(SITE_DIR),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def index_page(self, nonce: str) -> str:
        snapshot = self.snapshot
        rows = [
            {
                "slug": slug,
                "title": snapshot.entries[slug].record.title if slug in snapshot.entries else slug,
                "file": str(path),
                "valid": slug in snapshot.entries
                and not any(p.is_error for p in snapshot.problems_of(slug)),
            }
            for slug, path in snapshot.files.items()
        ]
        return self._site_page(
            "Specimens", snapshot, nonce, problems=snapshot.problems, entries=rows
        )

    def problems_page(self, slug: str, problems: list[Problem], nonce: str) -> str:
        snapshot = self.snapshot
        if not problems:
            problems = [Problem(str(self.records_dir), None, "", f"no record {slug!r}")]
        return self._site_page(slug, snapshot, nonce, problems=problems, slug=slug)

    def _site_page(self, heading: str, snapshot: Snapshot, nonce: str, **context) -> str:
        context.setdefault("entries", None)
        context.setdefault("slug", None)
        return self.site.get_template("site.html.j2").render(
            heading=heading,
            generation=snapshot.generation,
            nonce=nonce,
            records=f"{len(snapshot.entries)} valid record(s) in {self.records_dir}",
            **context,
        )

    def dossier_page(self, slug: str, view: View, nonce: str) -> str:
        """The layout's HTML as WeasyPrint gets it, shown on a sheet of paper with the bar;
        `nonce` lets the preview's own script run, and no other."""
        assert view.html is not None and self.snapshot.config is not None
        width, height = PAPER_LENGTHS[PAPER_SIZES[self.snapshot.config.paper]]
        head = (
            '<link rel="stylesheet" href="/fonts/fonts.css">'
            '<link rel="stylesheet" href="/_preview/preview.css">'
            f"<style>:root {{ --preview-width: {width}; --preview-height: {height}; }}</style>"
            f'<script src="/_preview/live.js" nonce="{nonce}"'
            f' data-generation="{self.snapshot.generation}" defer></script>'
        )
        bar = self.site.get_template("bar.html.j2").render(
            slug=slug,
            scale=view.scale,
            passes=view.passes,
            seconds=view.seconds,
            warnings=[str(p) for p in view.problems if not p.is_error],
        )
        html = _links_to_previews(view.html, self.snapshot).replace("</head>", head + "</head>", 1)
        # before any relative URL, so that the layout's own files resolve under /layout/
        html = re.sub(r"<head\b[^>]*>", lambda found: found.group(0) + '<base href="/layout/">',
                      html, count=1)  # fmt: skip
        html = re.sub(r"<html\b", '<html class="preview-sheet"', html, count=1)
        return re.sub(r"<body\b[^>]*>", lambda found: found.group(0) + bar, html, count=1)

    def asset(self, path: str) -> Path | None:
        """A file of the layout, of the bundled fonts or of the preview itself, else None."""
        area, _, rest = path.lstrip("/").partition("/")
        if area == "_preview" and rest in SITE_ASSETS:
            return SITE_DIR / rest
        roots = {"fonts": FONTS_DIR.resolve()}
        if self.snapshot.layout is not None:
            roots["layout"] = self.snapshot.layout.folder
        root = roots.get(area)
        if root is None or not rest:
            return None
        return is_allowed_file((root / unquote(rest)).as_uri(), (root,))


def _links_to_previews(html: str, snapshot: Snapshot) -> str:
    """Links to specimens of this catalog open their previews, links to others their web
    address (their QR codes stay as printed)."""
    for slug in snapshot.files:
        html = html.replace(f'href="{INTERNAL_SCHEME}{slug}"', f'href="/{slug}"')

    def web(match: re.Match) -> str:
        return f'href="{markupsafe.escape(single_link(unescape(match[1]), snapshot.config))}"'

    return re.sub(rf'href="({re.escape(INTERNAL_SCHEME)}[^"]*)"', web, html)


def path_refusal(path: str) -> tuple[HTTPStatus, str] | None:
    """Why a request's path (as sent, percent-encoded) is not one any page could have."""
    if len(path) > MAX_PATH:
        return HTTPStatus.REQUEST_URI_TOO_LONG, f"the path is longer than {MAX_PATH} characters"
    if not path.isascii():
        return HTTPStatus.BAD_REQUEST, "a path is ASCII text, other characters percent-encoded"
    if BROKEN_ESCAPE.search(path):
        return HTTPStatus.BAD_REQUEST, "% in a path must be followed by two hexadecimal digits"
    try:
        text = unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return HTTPStatus.BAD_REQUEST, "the path is not UTF-8 text"
    if any(ord(character) < 32 or ord(character) == 127 for character in text):
        return HTTPStatus.BAD_REQUEST, "the path holds a control character"
    return None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:  # gone or unreadable since it was found
        return None


class Handler(BaseHTTPRequestHandler):
    """GET / (the index), /<slug>, /<slug>.pdf, assets, and /_preview/events."""

    preview: Preview
    server_version = "dossier-preview"

    def do_GET(self) -> None:
        self.nonce = secrets.token_urlsafe(16)  # one per response, as CSP wants
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the browser left
            path, refusal = self._path_or_refusal()
            if refusal is None:
                self._route(path)
            else:
                status, reason = refusal
                self._send(status, f"{reason}\n".encode(), "text/plain; charset=utf-8")

    def do_HEAD(self) -> None:
        self.do_GET()

    def _path_or_refusal(self) -> tuple[str, tuple[HTTPStatus, str] | None]:
        """The path asked for, and the status and reason of an error answer when it gets one.

        Only the names of this machine are answered: a web page whose domain an attacker
        points at 127.0.0.1 (DNS rebinding) sends its own name as Host, and gets nothing.
        """
        port = self.server.server_address[1]
        names = {f"127.0.0.1:{port}", f"localhost:{port}"}
        hosts = self.headers.get_all("Host") or []
        if len(hosts) != 1 or hosts[0].lower() not in names:
            message = f"this preview answers only to 127.0.0.1:{port} and localhost:{port}"
            return "", (HTTPStatus.MISDIRECTED_REQUEST, message)
        try:
            path = urlsplit(self.path).path
        except ValueError:  # "http://[" reads as a broken IPv6 address
            return "", (HTTPStatus.BAD_REQUEST, "not a path")
        return path, path_refusal(path)

    def _route(self, path: str) -> None:
        if path == "/":
            self._send_html(self.preview.index_page(self.nonce))
            return
        if path == "/favicon.ico":
            self._send(HTTPStatus.NO_CONTENT, b"", "image/x-icon")
            return
        if path == "/_preview/events":
            self._events()
            return
        found = SLUG_PATH.fullmatch(path)
        if found:
            self._dossier(found.group(1), as_pdf=bool(found.group(2)))
            return
        asset = self.preview.asset(path)
        data = _read(asset) if asset is not None else None
        if data is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")
        else:
            self._send(HTTPStatus.OK, data, guess_type(asset))

    def _dossier(self, slug: str, as_pdf: bool) -> None:
        preview = self.preview
        try:
            view = preview.view(slug)
        except Exception as error:  # a bug, not bad input: show it, keep serving
            traceback.print_exc()
            problem = Problem(slug, None, "", f"internal error: {type(error).__name__}: {error}")
            view = View(problems=[problem])
        if view.html is None:
            missing = slug not in preview.snapshot.files
            status = HTTPStatus.NOT_FOUND if missing else HTTPStatus.UNPROCESSABLE_ENTITY
            self._send_html(preview.problems_page(slug, view.problems, self.nonce), status)
        elif as_pdf:
            self._send(HTTPStatus.OK, view.pdf, "application/pdf")
        else:
            self._send_html(preview.dossier_page(slug, view, self.nonce))

    def _events(self) -> None:
        """Server-sent events: the generation now, then again after every change."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        shown = ""
        while True:
            generation = self.preview.wait_for_change(shown, HEARTBEAT_SECONDS)
            message = f"data: {generation}\n\n" if generation != shown else ": still here\n\n"
            self.wfile.write(message.encode())
            self.wfile.flush()
            shown = generation

    def _send_html(self, html: str, status: int = HTTPStatus.OK) -> None:
        self._send(status, html.encode(), "text/html; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if content_type.startswith("text/html"):
            policy = CONTENT_SECURITY_POLICY.format(nonce=self.nonce)
            self.send_header("Content-Security-Policy", policy)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:
        pass  # the terminal shows renders and problems, not every request


def serve(
    preview: Preview,
    port: int,
    focus: str | None = None,
    config_path: Path | None = None,
    say=print,
) -> None:
    """Serve until interrupted, re-reading the files whenever one of them changes."""
    handler = type("PreviewHandler", (Handler,), {"preview": preview})
    try:
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as error:
        message = (
            f"cannot listen on 127.0.0.1:{port}: {error.strerror}; try --port 0 (any free port)"
        )
        raise InvalidInput([Problem("--port", None, "", message)]) from None
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, _interrupt)  # stop as cleanly as on Ctrl-C
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(preview, config_path, stop), daemon=True)
    watcher.start()
    host, bound_port = server.server_address[:2]
    say(f"Previewing at http://{host}:{bound_port}/{focus or ''} (Ctrl-C to stop)")
    _report(preview.snapshot, say)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        say("stopped")
    finally:
        stop.set()
        server.server_close()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _watch(preview: Preview, config_path: Path | None, stop: threading.Event) -> None:
    """Refresh the preview on every change; when the config names another layout, watch it."""
    import watchfiles

    while not stop.is_set():
        paths = preview.watched_paths(config_path)
        wanted = preview.watch_filter(config_path)
        for changes in watchfiles.watch(
            *paths, watch_filter=wanted, stop_event=stop, debounce=300, step=50
        ):
            changed = {Path(path) for _, path in changes}
            preview.say(f"changed: {', '.join(sorted(path.name for path in changed))}")
            _report(preview.refresh(changed), preview.say)
            if preview.watched_paths(config_path) != paths:
                break


def _report(snapshot: Snapshot, say) -> None:
    for problem in snapshot.problems:
        say(str(problem))
    errors = sum(problem.is_error for problem in snapshot.problems)
    say(f"{len(snapshot.entries)} valid record(s), {errors} error(s)")
