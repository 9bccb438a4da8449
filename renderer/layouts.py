"""Layouts: finding a layout folder, its Jinja environment, and the fetcher that guards it."""

from __future__ import annotations

import mimetypes
import tomllib
import traceback
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jinja2

from .problems import InvalidInput, Problem

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAYOUTS_DIR = PROJECT_ROOT / "layouts"
FONTS_DIR = PROJECT_ROOT / "fonts"
FONTS_CSS = FONTS_DIR / "fonts.css"
DOSSIER_TEMPLATE = "dossier.html.j2"
SETTINGS_FILE = "layout.toml"
# characters of record text one page holds at type scale 1; a layout's layout.toml may say
DEFAULT_PAGE_TEXT = 4200
DEFAULT_LAYOUT = "classified"
MAIL_TEMPLATES = {"text": "mail.txt.j2", "html": "mail.html.j2"}


@dataclass(frozen=True)
class Layout:
    """A folder of Jinja templates and CSS; `dossier.html.j2` prints one record on one page."""

    folder: Path

    @classmethod
    def find(cls, name_or_path: str) -> Layout:
        """A built-in layout by name (a folder under layouts/), or a folder path of one's own."""
        candidate = Path(name_or_path)
        folder = candidate if candidate.is_dir() else LAYOUTS_DIR / name_or_path
        if not (folder / DOSSIER_TEMPLATE).is_file():
            known = sorted(
                p.name for p in LAYOUTS_DIR.iterdir() if (p / DOSSIER_TEMPLATE).is_file()
            )
            message = f"no layout {name_or_path!r} (built in: {', '.join(known)})"
            raise InvalidInput([Problem(str(name_or_path), None, "layout", message)])
        layout = cls(folder.resolve())
        _ = layout.settings  # a broken layout.toml is reported here, before anything renders
        return layout

    @cached_property
    def settings(self) -> dict:
        """The optional layout.toml: `description`; `page_text`, the fitting's first guess."""
        path = self.folder / SETTINGS_FILE
        if not path.is_file():
            return {}
        try:
            settings = tomllib.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise InvalidInput([Problem(str(path), None, "", f"not valid TOML: {error}")]) from None
        problems = [
            Problem(str(path), None, key, "unknown setting (known: description, page_text)")
            for key in settings
            if key not in ("description", "page_text")
        ]
        page_text = settings.get("page_text", DEFAULT_PAGE_TEXT)
        if not isinstance(page_text, int) or isinstance(page_text, bool) or page_text < 100:
            problems.append(Problem(str(path), None, "page_text", "must be a whole number ≥ 100"))
        if problems:
            raise InvalidInput(problems)
        return settings

    @property
    def page_text(self) -> int:
        return self.settings.get("page_text", DEFAULT_PAGE_TEXT)

    @cached_property
    def environment(self) -> jinja2.Environment:
        return jinja2.Environment(
            loader=jinja2.FileSystemLoader(self.folder),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render_html(self, context: dict, template: str = DOSSIER_TEMPLATE) -> str:
        try:
            return self.environment.get_template(template).render(context)
        except jinja2.TemplateError as error:
            raise InvalidInput([self.template_problem(error)]) from None

    def require(self, templates: tuple[str, ...], purpose: str) -> None:
        """Refuse, before any work, a layout that lacks templates `purpose` needs."""
        missing = [name for name in templates if not (self.folder / name).is_file()]
        if missing:
            message = f"{purpose} needs {', '.join(missing)} in the layout (see layouts/README.md)"
            raise InvalidInput([Problem(str(self.folder), None, "layout", message)])

    def template_problem(self, error: jinja2.TemplateError) -> Problem:
        """A template's error at its file and line (a syntax error, or an undefined variable)."""
        path, line = getattr(error, "filename", None), getattr(error, "lineno", None)
        if isinstance(error, jinja2.TemplateNotFound):
            return Problem(str(self.folder), None, "layout", f"no template {error.name}")
        if path is None:  # raised while rendering: the template's frame has the line
            for frame, number in traceback.walk_tb(error.__traceback__):
                if frame.f_code.co_filename.endswith(".j2"):
                    path, line = frame.f_code.co_filename, number
        return Problem(path or str(self.folder), line, "", f"template error: {error.message}")

    @cached_property
    def mail_environment(self) -> jinja2.Environment:
        """Message bodies: the layout's mail templates, else the built-in ones; only the HTML
        body is escaped."""
        return jinja2.Environment(
            loader=jinja2.FileSystemLoader([self.folder, LAYOUTS_DIR / DEFAULT_LAYOUT]),
            autoescape=lambda name: not (name or "").endswith(".txt.j2"),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render_mail(self, context: dict, kind: str) -> str:
        """The message body of `kind` "text" or "html"."""
        try:
            return self.mail_environment.get_template(MAIL_TEMPLATES[kind]).render(context)
        except jinja2.TemplateError as error:
            raise InvalidInput([self.template_problem(error)]) from None

    @property
    def base_url(self) -> str:
        """Relative URLs in the templates resolve inside the layout folder."""
        return self.folder.as_uri() + "/"

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        return (self.folder, FONTS_DIR.resolve())


def is_allowed_file(url: str, roots: tuple[Path, ...]) -> Path | None:
    """The local file a `file:` URL names, when it lies under one of the roots."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    path = Path(unquote(parts.path)).resolve()
    if any(path.is_relative_to(root) for root in roots) and path.is_file():
        return path
    return None


def guess_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"
