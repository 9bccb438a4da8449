"""Layouts: finding a layout folder, its sandboxed Jinja environment, and what it may read.

A layout name resolves, in order: a folder path; a folder in the project's layouts/; a layout
that another Python package installs (entry-point group `dossier.layouts`); a built-in one.
The built-in layouts and fonts are package data (renderer/layouts, renderer/fonts in a wheel),
built from the repository's top-level layouts/ and fonts/, which a source checkout reads as is.
"""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import importlib.util
import math
import mimetypes
import os
import traceback
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote, urlsplit

import jinja2
from jinja2.loaders import split_template_path
from jinja2.sandbox import SandboxedEnvironment

from .contract import DOSSIER_TEMPLATE, LAYOUT_ENTRY_POINTS, MAIL_TEMPLATES, SETTINGS_FILE
from .fileio import os_reason
from .fitting import PageModel
from .inputfiles import parse_toml, utf8_text
from .problems import InvalidInput, Problem, did_you_mean
from .slots import slot_markup


def package_data(name: str) -> Path:
    """A folder of package data: inside the installed package, or, in a source checkout (an
    editable install), the repository's top-level folder of that name, which is its source."""
    packaged = importlib.resources.files(__package__) / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / name


LAYOUTS_DIR = package_data("layouts")
FONTS_DIR = package_data("fonts")
FONTS_CSS = FONTS_DIR / "fonts.css"
FONTS_CONF = FONTS_DIR / "fonts.conf"  # the only fonts fontconfig sees: the bundled ones
# characters of record text one page holds at type scale 1; a layout's layout.toml may say
DEFAULT_PAGE_TEXT = 4200
MAX_PAGE_TEXT = 100_000  # far more than any page holds
DEFAULT_LAYOUT = "classified"


@dataclass(frozen=True)
class Layout:
    """A folder of Jinja templates and CSS; `dossier.html.j2` prints one record on one page.

    Layouts are code from anywhere: their templates run sandboxed and are read only from the
    layout's folder (the engine's fetcher holds its CSS, fonts and images to the same rule).
    """

    folder: Path  # resolved
    shown: str = field(default="", compare=False)  # the folder as the user named it, for messages

    @classmethod
    def find(cls, name_or_path: str, project_layouts: Path | None = None) -> Layout:
        """The layout a name or a folder path stands for (see the module's docstring for the
        order); `project_layouts` is the project's own layouts/ folder."""
        candidate = Path(name_or_path)
        if _is_dir(candidate):
            if not _is_file(candidate / DOSSIER_TEMPLATE):
                message = f"no {DOSSIER_TEMPLATE} in this folder (see layouts/README.md)"
                raise InvalidInput([Problem(str(candidate), None, "layout", message)])
            found = Found(candidate, str(candidate), "path")
        else:
            found = available(project_layouts).get(name_or_path)
            if found is None or isinstance(found, Broken):
                raise InvalidInput([_not_found(name_or_path, found, project_layouts)])
        layout = cls(found.folder.resolve(), found.shown)
        _ = layout.settings  # a broken layout.toml is reported here, before anything renders
        return layout

    def shown_path(self, name: str = "") -> str:
        """A file of the layout (or the layout itself) as messages name it."""
        base = self.shown or str(self.folder)
        return f"{base}/{name}" if name else base

    @cached_property
    def settings(self) -> dict:
        """The optional layout.toml: `description`; `page_text`, the fitting's first guess."""
        path = self.folder / SETTINGS_FILE
        shown = self.shown_path(SETTINGS_FILE)
        if not _is_there(path):
            return {}
        try:
            raw = read_inside(path, (self.folder,), "the settings file")
        except LayoutFileRefused as error:
            raise InvalidInput([Problem(shown, None, "layout", error.reason)]) from None
        settings = parse_toml(utf8_text(raw, shown), shown)
        problems = [
            Problem(shown, None, key, "unknown setting (known: description, page_text, fit)")
            for key in settings
            if key not in ("description", "page_text", "fit")
        ]
        problems += _fit_problems(settings.get("fit", {}), shown)
        if not isinstance(settings.get("description", ""), str):
            problems.append(Problem(shown, None, "description", "must be text (in quotes)"))
        page_text = settings.get("page_text", DEFAULT_PAGE_TEXT)
        if (
            not isinstance(page_text, int)
            or isinstance(page_text, bool)
            or not 100 <= page_text <= MAX_PAGE_TEXT
        ):
            message = f"must be a whole number from 100 to {MAX_PAGE_TEXT}"
            problems.append(Problem(shown, None, "page_text", message))
        if problems:
            raise InvalidInput(problems)
        return settings

    @property
    def page_text(self) -> int:
        return self.settings.get("page_text", DEFAULT_PAGE_TEXT)

    @property
    def page_model(self) -> PageModel:
        """How full a page a record makes at a type scale: the fitting's estimate."""
        if "fit" in self.settings:
            return PageModel(**self.settings["fit"])
        return PageModel.from_page_text(self.page_text)

    @cached_property
    def environment(self) -> jinja2.Environment:
        environment = SandboxedEnvironment(
            loader=FolderLoader([(self.folder, self.shown_path())]),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        environment.globals["slot"] = slot_markup
        return environment

    def render_html(self, context: dict, template: str = DOSSIER_TEMPLATE) -> str:
        try:
            return self.environment.get_template(template).render(context)
        except Exception as error:  # a template is code: any error of its own is its problem
            raise InvalidInput([self.template_problem(error)]) from None

    def require(self, templates: tuple[str, ...], purpose: str) -> None:
        """Refuse, before any work, a layout that lacks templates `purpose` needs."""
        missing = [name for name in templates if not (self.folder / name).is_file()]
        if missing:
            message = f"{purpose} needs {', '.join(missing)} in the layout (see layouts/README.md)"
            raise InvalidInput([Problem(self.shown_path(), None, "layout", message)])

    def template_problem(self, error: Exception) -> Problem:
        """A template's error at its file and line: a syntax error, an undefined variable, an
        unsafe attribute (the sandbox's SecurityError), a template that may not be read, or
        what its code raised (a division by zero, a range too big, endless recursion)."""
        path, line = getattr(error, "filename", None), getattr(error, "lineno", None)
        if path is None:  # raised while rendering: the template's frame has the line
            for frame, number in traceback.walk_tb(error.__traceback__):
                if frame.f_code.co_filename.endswith(".j2"):
                    path, line = frame.f_code.co_filename, number
        if isinstance(error, jinja2.TemplateNotFound):
            message = f"no template {error.name!r} in the layout folder"
            if path is None:  # the template asked for by name, not by another template
                return Problem(self.shown_path(), None, "layout", message)
            return Problem(path, line, "", f"template error: {message}")
        if path is None and isinstance(error, LayoutFileRefused):  # the template asked for
            path = error.path
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        return Problem(path or self.shown_path(), line, "", f"template error: {message}")

    @cached_property
    def mail_environment(self) -> jinja2.Environment:
        """Message bodies: the layout's mail templates, else the built-in ones; only the HTML
        body is escaped."""
        built_in = LAYOUTS_DIR / DEFAULT_LAYOUT
        return SandboxedEnvironment(
            loader=FolderLoader([(self.folder, self.shown_path()), (built_in, str(built_in))]),
            autoescape=lambda name: not (name or "").endswith(".txt.j2"),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def render_mail(self, context: dict, kind: str) -> str:
        """The message body of `kind` "text" or "html"."""
        try:
            return self.mail_environment.get_template(MAIL_TEMPLATES[kind]).render(context)
        except Exception as error:  # a template is code: any error of its own is its problem
            raise InvalidInput([self.template_problem(error)]) from None

    @property
    def base_url(self) -> str:
        """Relative URLs in the templates resolve inside the layout folder."""
        return self.folder.as_uri() + "/"

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        return (self.folder, FONTS_DIR.resolve())


@dataclass(frozen=True)
class Found:
    """Where a layout was found: its folder, as messages name it, and its origin ("path",
    "project", "built in", or the package that installs it)."""

    folder: Path
    shown: str
    origin: str

    @property
    def where(self) -> str:
        return self.shown

    @property
    def description(self) -> str:
        """The layout's own description (layout.toml), or what stops it from being used."""
        try:
            layout = Layout(self.folder.resolve(), self.shown)
            return layout.settings.get("description", "") or "(no description)"
        except InvalidInput as error:
            return f"cannot be used: {error.problems[0]}"


@dataclass(frozen=True)
class Broken:
    """An installed layout that cannot be used, and why."""

    origin: str
    reason: str

    @property
    def where(self) -> str:
        return "entry point"

    @property
    def description(self) -> str:
        return f"cannot be used: {self.reason}"


def available(project_layouts: Path | None = None) -> dict[str, Found | Broken]:
    """Every layout known by name, the first of each name in the order of resolution."""
    found: dict[str, Found | Broken] = {}
    for name, layout in [
        *_folders_in(project_layouts, "project"),
        *_installed(),
        *_folders_in(LAYOUTS_DIR, "built in"),
    ]:
        found.setdefault(name, layout)
    return found


def _folders_in(folder: Path | None, origin: str) -> list[tuple[str, Found]]:
    if folder is None or not _is_dir(folder):
        return []
    return [
        (path.name, Found(path, str(path), origin))
        for path in sorted(folder.iterdir())
        if _is_file(path / DOSSIER_TEMPLATE)
    ]


def _installed() -> list[tuple[str, Found | Broken]]:
    """Layouts of other packages: an entry point `name = "package"` in the group
    dossier.layouts names a package whose folder is the layout."""
    layouts: list[tuple[str, Found | Broken]] = []
    for entry in importlib.metadata.entry_points(group=LAYOUT_ENTRY_POINTS):
        origin = f"package {entry.dist.name} {entry.dist.version}" if entry.dist else "package"
        folder = _package_folder(entry.module)
        if folder is None:
            reason = f"its entry point names {entry.value!r}, which is not an installed package"
            layouts.append((entry.name, Broken(origin, reason)))
        elif not _is_file(folder / DOSSIER_TEMPLATE):
            reason = f"no {DOSSIER_TEMPLATE} in {folder}"
            layouts.append((entry.name, Broken(origin, reason)))
        else:
            layouts.append((entry.name, Found(folder, str(folder), origin)))
    return layouts


def _package_folder(name: str) -> Path | None:
    """The folder of an installed package, found without running its code."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a parent package that fails, or a malformed name
        return None
    locations = spec.submodule_search_locations if spec is not None else None
    return Path(next(iter(locations))) if locations else None


def _not_found(name: str, found: Broken | None, project_layouts: Path | None) -> Problem:
    if found is not None:
        return Problem(name, None, "layout", f"the layout of {found.origin}: {found.reason}")
    names = [key for key, value in available(project_layouts).items() if isinstance(value, Found)]
    known = did_you_mean(name, names) or f" (available: {', '.join(sorted(names))})"
    return Problem(name, None, "layout", f"no layout {name!r}{known}")


class LayoutFileRefused(jinja2.TemplateError):
    """A file a layout asked for that lies outside its folder, or is no regular file."""

    def __init__(self, path: str, reason: str):
        super().__init__(reason)
        self.path, self.reason = path, reason


class FolderLoader(jinja2.BaseLoader):
    """Templates from the first of some folders that has them, never from outside them: a
    template that is a link to a file elsewhere is refused, not followed."""

    def __init__(self, folders: list[tuple[Path, str]]):
        self.folders = [(folder.resolve(), shown) for folder, shown in folders]

    def get_source(self, environment, template):
        path, shown = self._find(template)
        roots = tuple(folder for folder, _ in self.folders)
        try:
            source = read_inside(path, roots, what=f"template {template!r}")
        except LayoutFileRefused as error:
            raise LayoutFileRefused(shown, error.reason) from None
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError as error:
            byte = error.object[error.start]
            message = f"template {template!r} is not UTF-8 text (byte {byte:#04x})"
            raise LayoutFileRefused(shown, message) from None
        mtime = _mtime(path)
        return text, shown, lambda: _mtime(path) == mtime

    def _find(self, template: str) -> tuple[Path, str]:
        """The template's path in the first folder that has it (maybe a link), and its name
        in messages."""
        pieces = split_template_path(template)  # no "..": TemplateNotFound
        for folder, shown in self.folders:
            path = folder.joinpath(*pieces)
            if _is_there(path):
                return path, "/".join([shown, *pieces])
        raise jinja2.TemplateNotFound(template)


def read_inside(path: Path, roots: tuple[Path, ...], what: str) -> bytes:
    """A regular file's bytes, when its real path lies under one of the (resolved) roots;
    `what` names the file in the refusal."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):  # a dangling link, or a loop of links
        raise LayoutFileRefused(str(path), f"{what} is a broken link") from None
    if not any(real.is_relative_to(root) for root in roots):
        reason = f"{what} is a link to a file outside the layout folder"
        raise LayoutFileRefused(str(path), reason)
    if not real.is_file():
        raise LayoutFileRefused(str(path), f"{what} is not a regular file")
    try:
        return real.read_bytes()
    except OSError as error:
        reason = os_reason(error)
        raise LayoutFileRefused(str(path), f"cannot read {what}: {reason}") from None


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def _is_there(path: Path) -> bool:
    """Whether anything is at the path, a broken link included."""
    try:
        return path.exists() or path.is_symlink()
    except (OSError, ValueError):  # a name too long, a NUL
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long, a NUL
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_allowed_file(url: str, roots: tuple[Path, ...]) -> Path | None:
    """The local file a `file:` URL names, when it lies under one of the roots."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    try:
        path = Path(unquote(parts.path)).resolve()
        if any(path.is_relative_to(root) for root in roots) and path.is_file():
            return path
    except (OSError, ValueError):  # a name too long, a NUL
        pass
    return None


def fetch_refusal(url: str, roots: tuple[Path, ...]) -> str:
    """Why a URL that is_allowed_file refused may not be fetched, in words."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return "only files under the layout folder and fonts/ (and data: URLs)"
    path = Path(os.path.normpath(unquote(parts.path)))
    if not any(path.is_relative_to(root) for root in roots):
        return "only files under the layout folder and fonts/"
    if not _is_there(path):
        return "no such file"
    try:
        real = path.resolve()
    except (OSError, ValueError):  # a NUL, a loop of links
        return "not a file name"
    if not any(real.is_relative_to(root) for root in roots):
        return "it is a link to a file outside the layout folder and fonts/"
    return "not a regular file"


def guess_type(path: Path) -> str:
    return mimetypes.guess_type(path.name)[0] or "application/octet-stream"


def _fit_problems(fit: object, shown: str) -> list[Problem]:
    """The [fit] table: numbers for PageModel's fields, written by bench/dossiers.py --calibrate."""
    known = tuple(PageModel.__dataclass_fields__)
    if not isinstance(fit, dict):
        return [Problem(shown, None, "fit", f"must be a table of {', '.join(known)}")]
    problems = [
        Problem(shown, None, f"fit.{key}", f"unknown setting (known: {', '.join(known)})")
        for key in fit
        if key not in known
    ]
    for key, value in fit.items():
        if key in known and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or abs(value) > 100
        ):
            problems.append(Problem(shown, None, f"fit.{key}", "must be a number from -100 to 100"))
    if not problems and fit and fit.get("per_char", 0) <= 0:
        problems.append(Problem(shown, None, "fit.per_char", "must be above 0"))
    return problems
