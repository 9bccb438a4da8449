"""The project config file (`dossier.toml`): defaults, validation, located errors."""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from .problems import InvalidInput, Problem

DEFAULT_CONFIG_NAME = "dossier.toml"
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class SmtpSettings(BaseModel):
    """How to reach the mail server; DOSSIER_SMTP_* variables and --smtp override these."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: Text | None = Field(None, description="Mail server host name or address.")
    port: int | None = Field(None, ge=1, le=65535, description="Default 587 (starttls), 465 (tls).")
    security: Literal["starttls", "tls"] = Field(
        "starttls",
        description="starttls: required unless the host is loopback or --insecure is given;"
        " tls: implicit TLS from the first byte.",
    )
    user: Text | None = Field(None, description="Login name; the password is never put here.")
    password_env: Text = Field(
        "DOSSIER_SMTP_PASSWORD", description="Environment variable holding the password."
    )
    password_file: Path | None = Field(None, description="File holding the password.")
    ca_file: Path | None = Field(None, description="CA certificates to trust (PEM).")
    timeout: float = Field(30, gt=0, description="Seconds to wait for the server.")


class MailSettings(BaseModel):
    """E-mail: who sends, how much may be attached, which server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: Text | None = Field(None, description="From address; --from overrides it.")
    max_attachment_mb: float = Field(
        18, gt=0, description="Attachments per message, raw; 18 MB stays under 25 MB encoded."
    )
    smtp: SmtpSettings = SmtpSettings()


class Config(BaseModel):
    """Project settings; every one has a default, so a project needs no config file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/\S*)?$")] = Field(
        "https://specimens.example.org", description="QR codes link to <base_url>/<slug>."
    )
    paper: Literal["a4", "letter"] = "a4"
    classification: Text = Field("CONFIDENTIAL", description="Default classification level.")
    organisation: Text = "Office of Otiose Role Taxonomy"
    author: Text = "Bureau of Specimen Records"
    layout: Text = "classified"
    date: dt.date | None = Field(
        None, description="Build date for covers and undated files; never the wall clock."
    )

    mail: MailSettings = MailSettings()

    def rendering(self) -> dict:
        """The settings that shape a rendered page: what render caches are keyed by."""
        return self.model_dump(mode="json", exclude={"mail"})

    def specimen_url(self, slug: str) -> str:
        return f"{self.base_url.rstrip('/')}/{slug}"


def load_config(path: str | Path | None = None, **overrides: object) -> Config:
    """The config from `path` (or ./dossier.toml when present), with non-None overrides applied."""
    data: dict = {}
    name = str(path) if path is not None else DEFAULT_CONFIG_NAME
    text = ""
    if path is not None or Path(DEFAULT_CONFIG_NAME).is_file():
        text, data = _read(Path(name))
    data.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise InvalidInput([_problem(name, text, detail) for detail in error.errors()]) from None


def _read(path: Path) -> tuple[str, dict]:
    try:
        text = path.read_text(encoding="utf-8-sig")
        return text, tomllib.loads(text)
    except FileNotFoundError:
        raise InvalidInput([Problem(str(path), None, "", "config file not found")]) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInput([Problem(str(path), None, "", f"cannot read: {error}")]) from None
    except tomllib.TOMLDecodeError as error:
        found = re.search(r"\(at line (\d+)", str(error))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(error))
        line = int(found.group(1)) if found else None
        message = f"not valid TOML: {message[:1].lower()}{message[1:]}"
        raise InvalidInput([Problem(str(path), line, "", message)]) from None


def _problem(name: str, text: str, detail: dict) -> Problem:
    key = ".".join(str(part) for part in detail["loc"])
    found = re.search(rf"^\s*{re.escape(str(detail['loc'][-1]))}\s*=", text, re.MULTILINE)
    line = text.count("\n", 0, found.start()) + 1 if found else None
    if detail["type"] == "extra_forbidden":
        known = _model_at(detail["loc"][:-1]).model_fields
        message = f"unknown setting (known: {', '.join(known)})"
    else:
        message = f"{detail['msg'][:1].lower()}{detail['msg'][1:]} (got {detail['input']!r})"
    return Problem(name, line, key, message)


def _model_at(location: tuple) -> type[BaseModel]:
    """The settings model that a location (a path of table names) points into."""
    model: type[BaseModel] = Config
    for name in location:
        annotation = model.model_fields[name].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model
