"""Command line: argument parsing and messages only; every command is a few lines over the API."""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from pathlib import Path

import click

EXIT_CODES = """Exit codes: 0 success; 1 invalid input or a file that cannot be written (every
problem is listed as path:line: field: message); 2 wrong usage."""

records_option = click.option(
    "--records",
    "records_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of <slug>.yaml records [default: records/ in the project folder].",
)
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The project's config file; its folder is the project's [default: the first"
    " dossier.toml from the current folder upwards, else none and the current folder].",
)


def project_options(command):
    """--records and --config: the command gets `project` (renderer/project.py) and
    `records_dir`, the given folder or the project's records/."""

    @records_option
    @config_option
    @functools.wraps(command)
    def wrapper(*args, records_dir, config_path, **kwargs):
        from .project import Project

        project = Project.find(config_path)
        records_dir = project.records if records_dir is None else records_dir
        return command(*args, project=project, records_dir=records_dir, **kwargs)

    return wrapper


def config_of(project, **overrides):
    """The project's config with the command line's (non-None) overrides, for a command that
    uses its layout: an unknown layout stops it before any work, named where it was set
    (`dossier.toml:3: layout: ...` or `--layout: ...`), as `check` reports it."""
    config = project.config(**overrides)
    config.require_layout()
    return config


def reports_invalid_input(command):
    """Every failure of a command as one line per problem on stderr, exit code 1.

    InvalidInput lists its problems; an OS error names its path; anything else is reported as
    an internal error (DOSSIER_DEBUG=1 shows its traceback). Click's own exits pass through.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        import os

        from .problems import InvalidInput

        try:
            return command(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except InvalidInput as error:
            show_problems(error.problems)
        except Exception as error:
            if os.environ.get("DOSSIER_DEBUG") == "1":
                raise
            if isinstance(error, BrokenPipeError):  # a reader such as `head` has gone
                os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            show_problems([_last_resort_problem(error)])
        raise SystemExit(1)

    wrapper.reports_failures = True  # tests check that every command has it
    return wrapper


def _last_resort_problem(error: Exception):
    from .fileio import os_problem
    from .problems import Problem

    if isinstance(error, OSError):
        return os_problem(error, "access" if error.filename else "continue")
    text = " ".join(str(error).split())[:300]
    what = f"{type(error).__name__}: {text}" if text else type(error).__name__
    message = f"internal error: {what} (please report this; "
    return Problem("dossier", None, "", message + "set DOSSIER_DEBUG=1 for the traceback)")


def in_folder(path: str, name: str) -> Path:
    """An output path as given; one that ends in / is a folder, which gets the file `name`."""
    return Path(path, name) if path.endswith("/") else Path(path)


def show_problems(problems) -> None:
    for problem in problems:
        click.echo(str(problem), err=True)


def stops_cleanly(command):
    """SIGINT and SIGTERM end the command with one line and 128 + the signal's number, once
    temporary files are removed and worker processes ended."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from .workers import Stopped, stop_on_signals

        try:
            with stop_on_signals():
                return command(*args, **kwargs)
        except Stopped as stop:
            click.echo("interrupted", err=True)
            raise SystemExit(stop.exit_code) from None

    return wrapper


class Command(click.Command):
    """A command whose summary in `dossier --help` is never cut short: click's first sentence
    of the help, whole, wrapped onto more lines when it is long."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return super().get_short_help_str(limit=sys.maxsize)


class Group(click.Group):
    command_class = Command  # every @main.command


@click.group(cls=Group, epilog=EXIT_CODES, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dossier", message="dossier %(version)s")
def main() -> None:
    """Turn specimen records (YAML) into one-page case-file PDFs, a compendium and e-mails."""


@main.command(epilog=EXIT_CODES)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@reports_invalid_input
@project_options
def check(project, records_dir: Path, strict: bool) -> None:
    """Validate every record and report every problem at once."""
    from dataclasses import replace

    from .problems import Severity, errors_in
    from .records import check_catalog

    config = project.config()
    entries, problems = check_catalog(records_dir, layout_name=config.layout)
    problems = config.layout_problems() + problems
    if strict:  # a warning made an error is reported, and counted, as an error
        problems = [replace(problem, severity=Severity.ERROR) for problem in problems]
    show_problems(problems)
    errors = errors_in(problems)
    failing = {problem.path for problem in errors}
    valid = [entry for entry in entries if str(entry.path) not in failing]
    # the summary is the result: on stdout whatever it says, as build's and compendium's are
    click.echo(f"{len(valid)} valid record(s), {len(errors)} error(s),"
               f" {len(problems) - len(errors)} warning(s)")  # fmt: skip
    if errors:
        raise SystemExit(1)


@main.command("import", epilog=EXIT_CODES)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite records that already exist.")
@reports_invalid_input
@project_options
def import_(files: tuple[Path, ...], project, records_dir: Path, force: bool):
    """Import records from the scraped FILE RECORD text format into <records>/<slug>.yaml."""
    from .textimport import import_into

    project.config()
    failed = False
    for written, problems in import_into(files, records_dir, force=force):
        if written is not None:
            click.echo(str(written))
        show_problems(problems)
        failed = failed or bool(problems)
    if failed:
        raise SystemExit(1)


@main.command(epilog=EXIT_CODES)
@click.option(
    "--output",
    default=None,
    help="Write the schema to this file instead of printing it; a folder (ending in /) gets "
    "<output>/record.schema.json.",
)
@reports_invalid_input
def schema(output: str | None) -> None:
    """Print the JSON Schema of a record (records point editors at schema/record.schema.json)."""
    from .fileio import write_atomic
    from .model import json_schema

    text = json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        path = in_folder(output, "record.schema.json")
        write_atomic(path, text.encode())
        click.echo(str(path))


@main.command(epilog=EXIT_CODES)
@click.argument("title")
@click.option("--slug", default=None,
              help="File name (a-z, 0-9, dashes) [default: spelled from the title].")  # fmt: skip
@reports_invalid_input
@project_options
def new(title: str, slug: str | None, project, records_dir: Path) -> None:
    """Write a new record, <records>/<slug>.yaml, with every section and placeholder guidance."""
    from .fileio import write_atomic
    from .model import slug_problem
    from .records import dump_record, record_file
    from .skeleton import skeleton

    if slug is None and (problem := slug_problem(title, remedy="give one with --slug SLUG")):
        raise click.UsageError(problem)
    record = skeleton(title, slug)
    target = record_file(records_dir, record.slug)
    write_atomic(target, dump_record(record).encode(), overwrite=False)
    click.echo(str(target))


@main.command(epilog=EXIT_CODES)
@click.argument("folder", default=".", type=click.Path(file_okay=False, path_type=Path))
@reports_invalid_input
def init(folder: Path) -> None:
    """Start a catalog in FOLDER: dossier.toml, records/ with an example, .gitignore.

    Nothing already there is overwritten: if any of the three files exists, none is written."""
    from .project import init_project

    for path in init_project(folder):
        click.echo(str(path))
    where = "" if folder == Path() else f"cd {folder}  # then\n"
    click.echo(f"\nNext:\n{where}dossier check\ndossier build\ndossier new 'Your Role Title'")


@main.command("layouts", epilog=EXIT_CODES)
@config_option
@reports_invalid_input
def list_layouts(config_path: Path | None) -> None:
    """List the layouts by name: the project's, other packages' and the built-in ones."""
    from .layouts import available
    from .project import Project

    for name, found in available(Project.find(config_path).layouts).items():
        click.echo(f"{name}  ({found.origin}: {found.where})\n    {found.description}")


paper_option = click.option(
    "--paper", type=click.Choice(["a4", "letter"]), default=None, help="Paper size [config: a4]."
)
base_url_option = click.option(
    "--base-url", default=None, help="QR codes link to <base-url>/<slug> [config]."
)
layout_option = click.option(
    "--layout", default=None, help="A layout under layouts/ by name, or a folder [config]."
)
variant_option = click.option(
    "--pdf-variant",
    type=click.Choice(["pdf/a-3b", "pdf/ua-1"]),
    default=None,
    help="pdf/a-3b: archival, with the source YAML attached; pdf/ua-1: tagged, accessible.",
)


jobs_option = click.option(
    "--jobs", type=click.IntRange(min=1), default=None, help="Worker processes [default: CPUs]."
)
cache_option = click.option(
    "--cache",
    "cache_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Rendered PDFs by content hash; a rebuild renders only what changed [default:"
    " out/.cache in the project folder].",
)
quiet_option = click.option("--quiet", is_flag=True, help="No progress bar.")
ledger_option = click.option(
    "--ledger",
    "ledger_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where every delivery and traced copy is recorded [default: out/mail-ledger.jsonl in"
    " the project folder].",
)
scheduler_option = click.option(
    "--scheduler", default=None, help="Render on a Dask cluster at tcp://HOST:PORT."
)
keep_going_option = click.option(
    "--keep-going",
    is_flag=True,
    help="Bind the compendium without the records that have problems (listed on its contents).",
)


def ledger_path(project, given: Path | None) -> Path:
    from .ledger import LEDGER_NAME

    return project.out / LEDGER_NAME if given is None else given


def file_copies(address: str, config, project, ledger_file: Path | None):
    """`render --stamp-for`: traced copies for one address, recorded in the ledger."""
    from . import ledger
    from .mail import parse_address
    from .outbox import FileCopies

    recipient = parse_address(address, "--stamp-for").addr_spec
    book = ledger_path(project, ledger_file)
    ledger.check_writable(book)
    return FileCopies(recipient, config, book)


def make_builder(cache_dir: Path, jobs: int | None, quiet: bool, scheduler: str | None = None):
    """The batch renderer, with a progress bar when stderr is a terminal."""
    import sys

    from .build import Builder

    progress = None if quiet or not sys.stderr.isatty() else _progress_bar()
    return Builder(cache_dir, workers=jobs, scheduler=scheduler, progress=progress)


@contextlib.contextmanager
def one_at_a_time(cache_dir: Path):
    """Commands sharing a cache (and so an output folder, by default) run one after another."""
    from .cache import RenderCache
    from .fileio import exclusive

    with exclusive(cache_dir, say=lambda message: click.echo(message, err=True)):
        RenderCache(cache_dir).remove_dead_temporaries()
        yield


def _progress_bar():
    import atexit

    from rich.progress import Progress

    bar = Progress(transient=True)
    task = bar.add_task("rendering", total=None)

    def update(done: int, total: int) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=done, total=total)
        if done >= total:
            bar.stop()

    atexit.register(bar.stop)  # an interrupted command gives the terminal its cursor back
    return update


@main.command(epilog=EXIT_CODES)
@click.argument("targets", nargs=-1, metavar="[SLUG|PATH]...")
@click.option("--all", "render_all", is_flag=True, help="Render every record of the catalog.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for <slug>.pdf [default: out/dossiers in the project folder].",
)
@paper_option
@base_url_option
@layout_option
@variant_option
@click.option("--png", is_flag=True, help="Also write <out>/<slug>.png (extra: dossier[png]).")
@click.option("--dpi", type=click.IntRange(36, 600), default=110, show_default=True,
              help="Resolution of the PNG.")  # fmt: skip
@click.option("--stamp-for", "stamp_for", metavar="ADDR",
              help="Write a traced copy for ADDR instead, <out>/<slug>--<addr>.pdf, stamped and"
              " recorded in the ledger (dossier trace names ADDR from it).")  # fmt: skip
@ledger_option
@jobs_option
@cache_option
@quiet_option
@reports_invalid_input
@stops_cleanly
@project_options
def render(
    targets, render_all, project, records_dir, out, paper, base_url, layout, pdf_variant,
    png, dpi, stamp_for, ledger_file, jobs, cache_dir, quiet,
):  # fmt: skip
    """Render records to one-page PDF dossiers, <out>/<slug>.pdf.

    Every record that can be rendered is; the problems of the others are listed at the end
    (exit code 1)."""
    from .build import render_dossiers
    from .selection import select_records

    if not targets and not render_all:
        raise click.UsageError("name records (SLUG or PATH) or use --all")
    config = config_of(project, paper=paper, base_url=base_url, layout=layout)
    out = project.out / "dossiers" if out is None else out
    cache_dir = project.cache if cache_dir is None else cache_dir
    copies = file_copies(stamp_for, config, project, ledger_file) if stamp_for else None
    builder = make_builder(cache_dir, jobs, quiet)
    with one_at_a_time(cache_dir), builder.session():  # a worker starts while records load
        selection = select_records(records_dir, targets, builder.cache, config.layout)
        failed = render_dossiers(selection.entries, config, out, builder, variant=pdf_variant,
                                 echo=click.echo, png_dpi=dpi if png else None,
                                 copies=copies)  # fmt: skip
    selection = selection.without(failed)
    show_problems(selection.failures)
    if selection.failures:
        raise SystemExit(1)


@main.command(epilog=EXIT_CODES)
@click.option(
    "--out",
    default=None,
    help="The compendium PDF; a folder (ending in /) gets <out>/compendium.pdf [default:"
    " out/compendium.pdf in the project folder].",
)
@paper_option
@base_url_option
@layout_option
@click.option("--duplex", is_flag=True, help="Each dossier on a right-hand page.")
@click.option("--contact-sheet", is_flag=True,
              help="Also write <out>.png, every page as a thumbnail (dossier[png]).")  # fmt: skip
@jobs_option
@scheduler_option
@cache_option
@quiet_option
@keep_going_option
@reports_invalid_input
@stops_cleanly
@project_options
def compendium(
    project, records_dir, out, paper, base_url, layout, duplex, contact_sheet, jobs,
    scheduler, cache_dir, quiet, keep_going,
):  # fmt: skip
    """Bind the whole catalog into one PDF: cover, contents, dossiers, index, bookmarks.

    When a record has problems, they are listed and the file is not written, unless
    --keep-going (exit code 1 either way)."""
    from .compendium import bind_selection
    from .fileio import replaceable
    from .selection import select_catalog

    out = project.out / "compendium.pdf" if out is None else in_folder(out, "compendium.pdf")
    cache_dir = project.cache if cache_dir is None else cache_dir
    for path in [out, out.with_suffix(".png")] if contact_sheet else [out]:
        replaceable(path)  # a FIFO or device there is refused before rendering
    config = config_of(project, paper=paper, base_url=base_url, layout=layout)
    builder = make_builder(cache_dir, jobs, quiet, scheduler)
    with one_at_a_time(cache_dir), builder.session():  # a worker starts while records load
        selection = select_catalog(records_dir, store=builder.cache, layout_name=config.layout)
        show_problems(selection.warnings)
        binding = bind_selection(selection, config, out, builder, duplex=duplex,
                                 keep_going=keep_going)  # fmt: skip
    if binding.report is not None:
        show_report(binding.report)
        if contact_sheet:
            from .fileio import write_atomic
            from .raster import contact_sheet as sheet_of

            write_atomic(out.with_suffix(".png"), sheet_of(out.read_bytes()))
            click.echo(str(out.with_suffix(".png")))
    show_binding_problems(binding)


def show_report(report) -> None:
    click.echo(f"{report.path} ({report.pages} pages, {report.rendered} dossier(s) rendered)")


def show_binding_problems(binding) -> None:
    """Every failure at the end, then why the compendium was not written; exit code 1."""
    show_problems(binding.problems)
    if binding.refusal:
        click.echo(binding.refusal, err=True)
    if binding.refusal or binding.problems:
        raise SystemExit(1)


@main.command(epilog=EXIT_CODES)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Output folder: dossiers/, compendium.pdf and .cache/ go inside [default: out/ in the"
    " project folder].",
)
@layout_option
@jobs_option
@scheduler_option
@quiet_option
@keep_going_option
@reports_invalid_input
@stops_cleanly
@project_options
def build(project, records_dir, strict, out, layout, jobs, scheduler, quiet, keep_going):
    """Check the catalog, render every dossier into <out>/dossiers/ and <out>/compendium.pdf.

    Every record that can be rendered is; the problems of the others are listed at the end
    (exit code 1), and the compendium is then not written, unless --keep-going."""
    from .build import render_dossiers
    from .compendium import bind_selection
    from .fileio import replaceable
    from .selection import select_catalog

    config = config_of(project, layout=layout)
    out = project.out if out is None else out
    builder = make_builder(out / ".cache", jobs, quiet, scheduler)
    replaceable(out / "compendium.pdf")  # a FIFO or device there is refused before rendering
    # one set of workers for both steps; one starts while the records load
    with one_at_a_time(out / ".cache"), builder.session():
        selection = select_catalog(
            records_dir, strict=strict, store=builder.cache, layout_name=config.layout
        )
        show_problems(selection.warnings)
        failed = render_dossiers(selection.entries, config, out / "dossiers", builder,
                                 echo=click.echo)  # fmt: skip
        binding = bind_selection(selection.without(failed), config, out / "compendium.pdf",
                                 builder, keep_going=keep_going)  # fmt: skip
    if binding.report is not None:
        show_report(binding.report)
    show_binding_problems(binding)


@main.command(epilog=EXIT_CODES)
@click.argument("slug", required=False)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port on 127.0.0.1; 0 takes any free port.")  # fmt: skip
@paper_option
@base_url_option
@layout_option
@reports_invalid_input
@project_options
def preview(slug, project, records_dir, port, paper, base_url, layout) -> None:
    """Serve the dossiers (or one) as HTML and PDF; open pages reload when a file changes.

    Needs the extra dossier[preview]. Problems in a record show on its page.
    """
    from .preview import Preview, serve
    from .problems import InvalidInput, Problem
    from .selection import no_record

    try:
        import watchfiles  # noqa: F401
    except ImportError:
        message = "needs watchfiles: pip install 'dossier[preview]'"
        raise InvalidInput([Problem("dossier preview", None, "", message)]) from None
    if not records_dir.is_dir():
        raise InvalidInput([Problem(str(records_dir), None, "", "records folder not found")])

    def read_config():
        return config_of(project, paper=paper, base_url=base_url, layout=layout)

    read_config()  # a broken config or an unknown layout stops here; later, pages show it
    site = Preview(records_dir, read_config, say=lambda text: click.echo(text, err=True))
    if slug is not None and slug not in site.snapshot.files and slug not in site.snapshot.entries:
        raise InvalidInput([no_record(records_dir, slug, site.snapshot.files)])
    config_path = project.config_path or project.root / "dossier.toml"
    serve(site, port, focus=slug, config_path=config_path,
          say=lambda text: click.echo(text, err=True))  # fmt: skip


@main.command(epilog=EXIT_CODES)
@click.argument("targets", nargs=-1, metavar="[SLUG|PATH]...")
@click.option("--to", "recipients", multiple=True, required=True, metavar="ADDR",
              help="Recipient; repeat for several.")  # fmt: skip
@click.option("--each", is_flag=True, help="One message per recipient instead of one for all.")
@click.option("--compendium", "with_compendium", is_flag=True, help="Attach the compendium.")
@click.option("--subject", default=None, help="Subject [default: names what is attached].")
@click.option("--from", "sender", metavar="ADDR", help="Sender [config: mail.sender].")
@click.option(
    "--eml-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write .eml drafts into this folder instead of sending.",
)
@click.option("--smtp", "smtp_address", default=None, metavar="HOST:PORT",
              help="Mail server [config: mail.smtp; env: DOSSIER_SMTP_HOST, _PORT].")  # fmt: skip
@click.option("--insecure", is_flag=True, help="Allow sending without TLS to a remote server.")
@click.option("--stamp", is_flag=True,
              help="Each recipient gets numbered, traced copies: COPY n OF N · EYES ONLY ·"
              " address · date on every page (dossier trace reads them).")  # fmt: skip
@click.option("--encrypt", is_flag=True,
              help="Each recipient's copies are encrypted (AES-256) with their password:"
              " printing allowed, changes not.")  # fmt: skip
@click.option("--passwords", "passwords_file", type=click.Path(dir_okay=False, path_type=Path),
              help="CSV of address,password for --encrypt [default: generated, and kept in"
              " mail-passwords.csv beside the ledger, readable by you alone].")  # fmt: skip
@click.option("--sign", "sign_p12", type=click.Path(dir_okay=False, path_type=Path),
              metavar="CERT.p12",
              help="Sign every PDF (PAdES B-B; extra dossier[sign]).")  # fmt: skip
@click.option("--sign-password-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File whose first line is CERT.p12's passphrase.")  # fmt: skip
@ledger_option
@click.option("--resend", is_flag=True,
              help="Send again what the ledger says these recipients already have.")  # fmt: skip
@click.option("--dry-run", is_flag=True,
              help="Print every message that would go; write, send and record nothing.",
              )  # fmt: skip
@click.option("--rate", type=click.IntRange(min=1), default=None, metavar="N",
              help="Send at most N messages a minute.")  # fmt: skip
@layout_option
@jobs_option
@cache_option
@quiet_option
@reports_invalid_input
@stops_cleanly
@project_options
def mail(
    targets, recipients, each, with_compendium, subject, sender, eml_dir, smtp_address, insecure,
    stamp, encrypt, passwords_file, sign_p12, sign_password_file, ledger_file, resend, dry_run,
    rate, project, records_dir, layout, jobs, cache_dir, quiet,
):  # fmt: skip
    """E-mail dossiers (and the compendium) as PDF attachments, or write them as .eml drafts.

    Every delivery is recorded in the ledger, and what a recipient already has is not sent to
    them again (unless --resend). The SMTP password comes only from the environment variable
    DOSSIER_SMTP_PASSWORD (or the one named by mail.smtp.password_env) or from a file
    (DOSSIER_SMTP_PASSWORD_FILE or mail.smtp.password_file). Exit code 1 also when any
    recipient did not accept a message.
    """
    import os

    from . import ledger, outbox, smtp
    from . import mail as post
    from .records import load_catalog
    from .selection import select_entries

    if not targets and not with_compendium:
        raise click.UsageError("name records (SLUG or PATH) or use --compendium")
    if (stamp or encrypt) and not each and len(recipients) > 1:
        raise click.UsageError("--stamp and --encrypt make each recipient's own copy: add --each")
    if passwords_file and not encrypt:
        raise click.UsageError("--passwords goes with --encrypt")
    if sign_password_file and not sign_p12:
        raise click.UsageError("--sign-password-file goes with --sign")
    config = config_of(project, layout=layout)
    cache_dir = project.cache if cache_dir is None else cache_dir
    addresses = [post.parse_address(text) for text in recipients]
    sender_text = sender or config.mail.sender
    sender_where = "--from" if sender else "mail.sender"
    from_address = post.parse_address(sender_text, sender_where) if sender_text else None
    subject = post.header_text(subject, "--subject") if subject else None
    book = ledger_path(project, ledger_file)
    server = None
    if eml_dir is None and not dry_run:
        if from_address is None:
            raise click.UsageError("give --from ADDR or set mail.sender in dossier.toml")
        server = smtp.smtp_server(config.mail.smtp, os.environ, smtp_address, insecure)
    protection = outbox.protection_for(
        [address.addr_spec for address in addresses], stamp=stamp, encrypt=encrypt,
        passwords_file=passwords_file, sign_p12=sign_p12, sign_password_file=sign_password_file,
        generated=book.parent / outbox.PASSWORDS_NAME, dry_run=dry_run,
    )  # fmt: skip
    builder = make_builder(cache_dir, jobs, quiet)
    with one_at_a_time(cache_dir), builder.session():
        entries = (
            select_entries(records_dir, targets, builder.cache, config.layout) if targets else []
        )
        catalog = (
            load_catalog(records_dir, store=builder.cache, layout_name=config.layout)
            if with_compendium
            else None
        )
        records = [entry.record for entry in entries]
        subject = subject or post.default_subject(records, with_compendium, len(catalog or ()))
        groups = [[address] for address in addresses] if each else [addresses]
        book_read = ledger.read_ledger(book)
        targets = []
        if eml_dir is not None:  # a draft already there stops us before rendering
            targets = post.draft_paths(subject, [group[0].addr_spec for group in groups], eml_dir)
            known = outbox.may_have_drafts(groups, book_read, subject)
            post.refuse_existing(
                [t for t, k in zip(targets, known, strict=True) if resend or not k]
            )
        attachments = post.gather_attachments(entries, config, builder, catalog)
    post.check_size(attachments, config.mail.max_attachment_mb)
    if not dry_run:  # a ledger that cannot take a line stops us before anything goes
        ledger.check_writable(book)
    items = list(outbox.outgoing(records, attachments, groups, subject=subject, config=config,
                                 sender=from_address, protection=protection))  # fmt: skip
    via = "eml" if eml_dir is not None else "smtp"
    show_problems(book_read.skipped)
    going, going_targets = [], []
    for number, item in enumerate(items):
        before = None if resend else outbox.delivered_before(item, book_read, via)
        if dry_run:
            made = {"stamped": stamp, "encrypted": encrypt, "signed": sign_p12}
            click.echo(outbox.describe(item, before, made))
        elif before is not None:
            ledger.record(book, outbox.skipped(item, before))
            click.echo(f"skipped {', '.join(item.recipients)}: already delivered {before.time}"
                       f" in {before.message_id} (--resend sends it again)")  # fmt: skip
        else:
            going.append(item)
            going_targets += targets[number : number + 1]
    if dry_run:
        return
    if going and protection.passwords is not None and passwords_file is None:
        click.echo(f"passwords for the encrypted copies: {book.parent / outbox.PASSWORDS_NAME}")
    if eml_dir is not None:
        for path in outbox.write(going, going_targets, book):
            click.echo(str(path))
        return
    failures = []
    outbox.send(going, server, book, rate, on_delivery=lambda d: failures.extend(show_delivery(d)))
    if failures:
        raise SystemExit(1)


@main.command(epilog=EXIT_CODES)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@ledger_option
@config_option
@reports_invalid_input
def trace(file: Path, ledger_file: Path | None, config_path: Path | None) -> None:
    """Say who received a traced copy (dossier mail --stamp, render --stamp-for), from the ledger.

    Exit code 1 for a file that is not a traced copy, or one the ledger does not list."""
    from .copies import trace_copy
    from .project import Project

    book = ledger_path(Project.find(config_path), ledger_file)
    found, line = trace_copy(file, book)
    click.echo(f"{file}: {line}")
    if found is None:
        raise SystemExit(1)


def show_delivery(delivery) -> list[str]:
    """One line for those who got the message, one for each who did not or perhaps did;
    returns the recipients that did not surely get it."""
    if delivery.accepted:
        click.echo(f"sent to {', '.join(delivery.accepted)}: {delivery.subject}")
    for recipient, outcome in delivery.outcomes.items():
        if outcome.status == "unknown":
            click.echo(f"PERHAPS sent to {recipient}: {outcome.reason}; the message went, the"
                       " answer did not come (the ledger counts it as sent)", err=True)  # fmt: skip
        elif outcome.status != "sent":
            click.echo(f"NOT sent to {recipient}: {outcome.reason}", err=True)
    return list(delivery.refused)
