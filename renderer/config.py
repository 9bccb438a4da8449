"""The project config file (`dossier.toml`): defaults, validation, located errors."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from .inputfiles import parse_toml, read_text
from .problems import CONTROL, InvalidInput, Problem, did_you_mean

DEFAULT_CONFIG_NAME = "dossier.toml"
MAX_CONFIG_BYTES = 1_000_000  # a config file is a few lines; anything bigger is a mistake
MAX_BASE_URL = 200  # characters: a QR code must hold it and a slug
EXAMPLE_BASE_URL = "https://specimens.example.org"


def _one_line(text: str) -> str:
    found = CONTROL.search(text)
    if found:
        raise PydanticCustomError(
            "one_line",
            "control character U+{code} at character {at}: a setting is one line of printable"
            " text; remove it",
            {"code": f"{ord(found[0]):04X}", "at": found.start() + 1},
        )
    return text


def _http_address(text: str) -> str:
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", text):
        raise PydanticCustomError(
            "http_address", f"expected an http(s) address like {EXAMPLE_BASE_URL}"
        )
    if len(text) > MAX_BASE_URL:
        raise PydanticCustomError(
            "http_address",
            "at most {limit} characters, so that a QR code holds it with a slug",
            {"limit": MAX_BASE_URL},
        )
    return text


Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), AfterValidator(_one_line)
]
HttpAddress = Annotated[str, AfterValidator(_http_address)]
FilePath = Annotated[Path, AfterValidator(lambda path: Path(_one_line(str(path))))]


class SmtpSettings(BaseModel):
    """How to reach the mail server; DOSSIER_SMTP_* variables and --smtp override these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: Text | None = Field(
        None, description="Mail server host name or address.", examples=["smtp.example.org"]
    )
    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        strict=True,
        description="Default 587 (starttls), 465 (tls).",
        examples=[587],
    )
    security: Literal["starttls", "tls"] = Field(
        "starttls",
        description="starttls: required unless the host is loopback or --insecure is given;"
        " tls: implicit TLS from the first byte.",
    )
    user: Text | None = Field(
        None,
        description="Login name; the password is never put here.",
        examples=["records@example.org"],
    )
    password_env: Text = Field(
        "DOSSIER_SMTP_PASSWORD", description="Environment variable holding the password."
    )
    password_file: FilePath | None = Field(
        None, description="File holding the password.", examples=["smtp-password.txt"]
    )
    ca_file: FilePath | None = Field(
        None, description="CA certificates to trust (PEM).", examples=["ca.pem"]
    )
    timeout: float = Field(
        30, gt=0, le=3600, allow_inf_nan=False, description="Seconds to wait for the server."
    )


class MailSettings(BaseModel):
    """E-mail: who sends, how much may be attached, which server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: Text | None = Field(
        None,
        description="From address; --from overrides it.",
        examples=["Bureau of Specimen Records <records@example.org>"],
    )
    max_attachment_mb: float = Field(
        18,
        gt=0,
        allow_inf_nan=False,
        description="Attachments per message, raw; 18 MB stays under 25 MB encoded.",
    )
    smtp: SmtpSettings = SmtpSettings()


class Config(BaseModel):
    """Project settings; every one has a default, so a project needs no config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: HttpAddress = Field(
        EXAMPLE_BASE_URL, description="QR codes link to <base_url>/<slug>."
    )
    paper: Literal["a4", "letter"] = Field("a4", description="Paper size: a4 or letter.")
    classification: Text = Field("CONFIDENTIAL", description="Default classification level.")
    organisation: Text | None = Field(
        None,
        description="Printed on every page and on the cover; nothing when unset.",
        examples=["Office of Otiose Role Taxonomy"],
    )
    author: Text | None = Field(
        None,
        description="The PDFs' author; none when unset.",
        examples=["Bureau of Specimen Records"],
    )
    layout: Text = Field(
        "classified",
        description="A layout by name (`dossier layouts` lists them) or a folder path, relative"
        " to this file.",
    )
    date: dt.date | None = Field(
        None,
        description="Build date for covers and undated files; never the wall clock.",
        examples=[dt.date(2026, 1, 31)],
    )

    mail: MailSettings = MailSettings()

    # where `layout` was set, as a problem there says it (load_config); None: the default
    _layout_set_at: Problem | None = PrivateAttr(None)

    def rendering(self) -> dict:
        """The settings that shape a rendered page: what render caches are keyed by."""
        return self.model_dump(mode="json", exclude={"mail"})

    def specimen_url(self, slug: str) -> str:
        return f"{self.base_url.rstrip('/')}/{slug}"

    def layout_problems(self) -> list[Problem]:
        """What stops the layout from being used (Layout.find: no such layout, a folder without
        a dossier template, a broken layout.toml). A name that stands for no layout is reported
        where it was set, `dossier.toml:3: layout: ...` or `--layout: ...`; a folder's problems
        name the folder or its file."""
        from .layouts import Layout  # Jinja and the rest: only when a layout is wanted

        try:
            Layout.find(self.layout)
        except InvalidInput as error:
            return [self._at_layout_setting(problem) for problem in error.problems]
        return []

    def require_layout(self) -> None:
        """Stop with the layout's problems, if any, before any work: as `check` reports them."""
        if problems := self.layout_problems():
            raise InvalidInput(problems)

    def _at_layout_setting(self, problem: Problem) -> Problem:
        if (
            self._layout_set_at is None  # the default layout
            or problem.field != "layout"
            or problem.path != self.layout  # a file of the layout (its layout.toml)
            or _is_folder(self.layout)  # a folder that is no layout: named by its path
        ):
            return problem
        return replace(self._layout_set_at, message=problem.message, severity=problem.severity)


def _is_folder(name: str) -> bool:
    try:
        return Path(name).is_dir()
    except OSError:  # a name too long for a file name, say: no folder
        return False


def load_config(path: str | Path | None = None, **overrides: object) -> Config:
    """The config from `path` (or ./dossier.toml when present), with non-None overrides applied.

    Overrides come from the command-line options of the same name (base_url: --base-url), so
    their problems name the option.
    """
    data: dict = {}
    name = str(path) if path is not None else DEFAULT_CONFIG_NAME
    text = ""
    if path is not None or _present(Path(DEFAULT_CONFIG_NAME)):
        text, data = _read(Path(name))
    given = {key: value for key, value in overrides.items() if value is not None}
    data.update(given)
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        problems = [
            _option_problem(detail) if detail["loc"][0] in given else _problem(name, text, detail)
            for detail in error.errors()
        ]
        raise InvalidInput(problems) from None
    if "layout" in given:
        config._layout_set_at = Problem("--layout", None, "", "")
    elif "layout" in data:
        config._layout_set_at = Problem(name, _line_of(text, "layout"), "layout", "")
    return config


def _present(path: Path) -> bool:
    """Whether anything is there, even a broken link or a folder: that is worth a word."""
    return path.exists() or path.is_symlink()


def _read(path: Path) -> tuple[str, dict]:
    """The config's text and data; a special file is refused unread, a huge one at the limit."""
    try:
        path.lstat()
    except FileNotFoundError:
        raise _file_problem(path, "config file not found") from None
    except OSError:
        pass  # read_text names what is wrong
    text = read_text(path, MAX_CONFIG_BYTES, "config files")
    return text, parse_toml(text, str(path))


def _file_problem(path: Path, message: str) -> InvalidInput:
    return InvalidInput([Problem(str(path), None, "", message)])


def _option_problem(detail: dict) -> Problem:
    option = "--" + str(detail["loc"][0]).replace("_", "-")
    return Problem(option, None, "", _message(detail))


def _problem(name: str, text: str, detail: dict) -> Problem:
    key = ".".join(str(part) for part in detail["loc"])
    line = _line_of(text, str(detail["loc"][-1]))
    if detail["type"] == "extra_forbidden":
        known = list(_model_at(detail["loc"][:-1]).model_fields)
        what = "table" if isinstance(detail["input"], dict) else "setting"
        hint = did_you_mean(str(detail["loc"][-1]), known) or f" (known: {', '.join(known)})"
        message = f"unknown {what}{hint}"
    else:
        message = _message(detail)
    return Problem(name, line, key, message)


def _line_of(text: str, key: str) -> int | None:
    """The line where `key` is set (`key = ...`, `a.key = ...`) or opens a table (`[a.key]`)."""
    name = re.escape(key)
    found = re.search(
        rf"^[ \t]*(?:\[\s*(?:[\w\-]+\.)*{name}\s*\]|(?:[\w\-]+\.)*{name}\s*=)", text, re.MULTILINE
    )
    return text.count("\n", 0, found.start()) + 1 if found else None


def _message(detail: dict) -> str:
    return f"{detail['msg'][:1].lower()}{detail['msg'][1:]} (got {_shown(detail['input'])})"


def _shown(value: object) -> str:
    """The value as written, cut short: a message is one line."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(str(value))} characters)"


def _model_at(location: tuple) -> type[BaseModel]:
    """The settings model that a location (a path of table names) points into."""
    model: type[BaseModel] = Config
    for name in location:
        annotation = model.model_fields[name].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model
