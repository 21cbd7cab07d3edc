"""The ``cerana`` command: serve the platform and administer it.

``main(argv)`` returns the exit status, so tests call it directly. Each
failure has its own status; a traceback is shown only with ``--debug``.
"""

from __future__ import annotations

import argparse
import getpass
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cerana import __version__
from cerana.config import ConfigError, Settings, load_settings
from cerana.domain.errors import CeranaError
from cerana.platform import Platform
from cerana.services import template_files, templates, users
from cerana.services.context import Actor, system_actor
from cerana.store import tables

logger = logging.getLogger(__name__)

E_OK = 0
E_USAGE = 2
E_CONFIG = 3
E_INVALID = 4
E_DATABASE = 5
E_UNEXPECTED = 70


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.debug, args.quiet)
    if not hasattr(args, "handler"):
        parser.print_help()
        return E_USAGE
    try:
        settings = load_settings(args.config)
        if not (args.debug or args.quiet):
            logging.getLogger().setLevel(settings.log_level.upper())
        handler: Callable[[argparse.Namespace, Settings], int] = args.handler
        return handler(args, settings)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            "check the file given with --config and the CERANA_* variables (docs/configuration.md)",
            file=sys.stderr,
        )
        return E_CONFIG
    except CeranaError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return E_INVALID
    except Exception as exc:
        if args.debug:
            raise
        logger.debug("unexpected failure", exc_info=True)
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("run again with --debug for the full traceback", file=sys.stderr)
        return E_UNEXPECTED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cerana",
        description="Security incident response platform (TheHive 3 API).",
    )
    parser.add_argument("--version", action="version", version=f"cerana {__version__}")
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument(
        "--debug", action="store_true", help="verbose logs and tracebacks"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="log warnings and errors only"
    )
    commands = parser.add_subparsers(title="commands")

    serve = commands.add_parser("serve", help="run the web application and API")
    serve.add_argument(
        "--host", help="address to listen on (default from settings: 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, help="port to listen on (default 9000)")
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser(
        "worker", help="run queued work only (analyzer jobs, webhooks, ...)"
    )
    worker.add_argument(
        "--threads", type=int, help="worker threads (default: the workers setting)"
    )
    worker.set_defaults(handler=_worker)

    migrate = commands.add_parser(
        "migrate", help="bring the database schema up to date"
    )
    migrate.set_defaults(handler=_migrate)

    user = commands.add_parser("user", help="manage user accounts").add_subparsers(
        title="user commands"
    )
    add = user.add_parser("add", help="create a user")
    add.add_argument("login")
    add.add_argument("--name", help="display name (default: the login)")
    add.add_argument(
        "--roles", default="read,write", help="comma-separated: read,write,admin,alert"
    )
    add.add_argument(
        "--password",
        help="password (asked for when omitted; stdin when not a terminal)",
    )
    add.set_defaults(handler=_user_add)
    listing = user.add_parser("list", help="list users")
    listing.set_defaults(handler=_user_list)
    for verb, status in (("lock", "Locked"), ("unlock", "Ok")):
        cmd = user.add_parser(verb, help=f"{verb} a user")
        cmd.add_argument("login")
        cmd.set_defaults(handler=_user_status, status=status)
    password = user.add_parser("set-password", help="set a user's password")
    password.add_argument("login")
    password.add_argument("--password", help="new password (asked for when omitted)")
    password.set_defaults(handler=_user_password)
    renew = user.add_parser("renew-key", help="create a new API key and print it once")
    renew.add_argument("login")
    renew.set_defaults(handler=_user_renew_key)
    _add_template_commands(commands)
    return parser


def _add_template_commands(commands: Any) -> None:
    group = commands.add_parser(
        "templates", help="export and import case templates (TheHive 3 format)"
    ).add_subparsers(title="templates commands")
    export = group.add_parser("export", help="write case templates as JSON")
    export.add_argument("--name", help="the template to export (default: all)")
    export.add_argument(
        "--output",
        type=Path,
        help="a .json file, or a folder that gets one file per template "
        "(default: standard output)",
    )
    export.set_defaults(handler=_templates_export)
    load = group.add_parser("import", help="import case templates from JSON files")
    load.add_argument(
        "files", nargs="+", type=Path, help="template files, or folders of them"
    )
    load.add_argument(
        "--create-missing",
        action="store_true",
        help="define the custom fields and metrics the templates name",
    )
    load.set_defaults(handler=_templates_import)


def _configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@contextmanager
def _opened(settings: Settings) -> Iterator[Platform]:
    """Yields the prepared platform of an admin command, closed afterwards."""
    platform = Platform.open(settings)
    try:
        generated = platform.prepare()
        if generated:
            print(
                f"Created the administrator '{settings.admin_login}' with password: {generated}"
            )
        yield platform
    finally:
        platform.close()


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from cerana.app import create_app

    host = args.host or settings.host
    port = args.port or settings.port
    platform = Platform.open(settings)
    generated = platform.prepare()
    if generated:
        print(
            f"Created the administrator '{settings.admin_login}' with password: {generated}"
        )
        print(
            "Sign in and change it (user menu), or set CERANA_ADMIN_PASSWORD before the first start."
        )
    print(
        f"Cerana {__version__} listening on http://{host}:{port}/ (database: {platform.db.dialect})"
    )
    app = create_app(settings, prepared=platform)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    return E_OK


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    with _opened(settings) as platform:
        threads = args.threads or max(settings.workers, 1)
        print(
            f"Cerana worker running {threads} threads (database: {platform.db.dialect})"
        )
        platform.queue.run_forever(platform, threads)
    return E_OK


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    with _opened(settings):
        print("database schema is up to date")
    return E_OK


def _admin(settings: Settings) -> Actor:
    return system_actor(settings.organisation)


def _read_password(given: str | None) -> str:
    if given:
        return given
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    return sys.stdin.readline().rstrip("\n")


def _user_add(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args.password)
    roles = [r.strip() for r in args.roles.split(",") if r.strip()]
    with _opened(settings) as platform, platform.db.write() as conn:
        users.create_user(
            conn,
            _admin(settings),
            {
                "login": args.login,
                "name": args.name or args.login,
                "roles": roles,
                "password": password,
            },
        )
    print(f"user {args.login} created with roles {', '.join(roles)}")
    return E_OK


def _user_list(args: argparse.Namespace, settings: Settings) -> int:
    user = tables.user
    with _opened(settings) as platform, platform.db.read() as conn:
        rows = conn.execute(select(user).order_by(user.c.id)).mappings().all()
    for row in rows:
        key = "key" if row["key_hash"] else "-"
        print(
            f"{row['id']:<24} {row['status']:<7} {','.join(row['roles']):<24} {key:<4} {row['name']}"
        )
    return E_OK


def _user_status(args: argparse.Namespace, settings: Settings) -> int:
    with _opened(settings) as platform, platform.db.write() as conn:
        users.set_status(conn, _admin(settings), args.login, args.status)
    print(f"user {args.login} is now {args.status}")
    return E_OK


def _user_password(args: argparse.Namespace, settings: Settings) -> int:
    password = _read_password(args.password)
    with _opened(settings) as platform, platform.db.write() as conn:
        users.set_password(conn, _admin(settings), args.login, password)
    print(f"password of {args.login} changed")
    return E_OK


def _user_renew_key(args: argparse.Namespace, settings: Settings) -> int:
    with _opened(settings) as platform, platform.db.write() as conn:
        key = users.renew_key(conn, _admin(settings), args.login)
    print(key)
    return E_OK


def _templates_export(args: argparse.Namespace, settings: Settings) -> int:
    with _opened(settings) as platform, platform.db.read() as conn:
        exported = templates.export_templates(conn, settings.organisation)
    if args.name is not None:
        exported = [t for t in exported if t["name"] == args.name]
        if not exported:
            print(f"error: no case template is named {args.name}", file=sys.stderr)
            return E_INVALID
    output: Path | None = args.output
    # All templates to a path without ".json": one file each, as TheHive's
    # UI exports them.
    if output is not None and (
        output.is_dir() or (args.name is None and output.suffix.lower() != ".json")
    ):
        count = template_files.write_template_files(output, exported)
        print(f"{count} case templates written to {output}")
        return E_OK
    single = args.name is not None
    text = template_files.dump_templates(exported[0] if single else exported)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(f"{len(exported)} case templates written to {output}")
    return E_OK


def _templates_import(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console
    from rich.progress import Progress

    files = template_files.template_paths(args.files)
    imported = 0
    failures: list[str] = []
    with (
        _opened(settings) as platform,
        Progress(console=Console(stderr=True), transient=True) as progress,
    ):
        bar = progress.add_task("Importing case templates", total=len(files))
        for path in files:
            try:
                imported += _import_template_file(platform, settings, path, args)
            except CeranaError as exc:
                named = exc.message.startswith(str(path))
                failures.append(exc.message if named else f"{path}: {exc.message}")
            progress.advance(bar)
    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    print(f"{imported} case templates imported from {len(files)} files")
    if failures:
        print(
            f"{len(failures)} files not imported (nothing written from them); "
            "see docs/templates.md for the format",
            file=sys.stderr,
        )
        return E_INVALID
    return E_OK


def _import_template_file(
    platform: Platform, settings: Settings, path: Path, args: argparse.Namespace
) -> int:
    # One transaction per file: a bad file writes nothing, the others go in.
    documents = template_files.read_template_file(path)
    with platform.db.write() as conn:
        outcome = templates.import_templates(
            conn,
            _admin(settings),
            documents,
            create_missing=args.create_missing,
            source=str(path),
        )
    for reference in outcome.created_fields:
        print(f"custom field {reference} defined for {path.name}")
    for name in outcome.created_metrics:
        print(f"metric {name} defined for {path.name}")
    return len(outcome.templates)


if __name__ == "__main__":
    sys.exit(main())
