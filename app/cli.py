"""The ``uma`` command.

    uma serve [--host H] [--port P] [--config F] [--demo]
    uma db upgrade [--config F]
    uma db purge [--config F]
    uma client add --name N [--grant-type G]... [--redirect-uri U]... [--claims-redirect-uri U]...
                   [--owner USER] [--public] [--scope S] [--config F]
    uma user add NAME [--password-stdin] [--claim k=v]... [--config F]   (asks for the password)
    uma keys rotate [--config F]
    uma policy ...            (everything after "policy" goes to policy_lang.cli.main)

Bad usage prints one line on stderr and exits 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, NoReturn

PROG = "uma"


class UsageError(Exception):
    """Bad command line or bad input values (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="UMA 2.0 authorization server")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", metavar="FILE", help="TOML settings file (default: $UMA_CONFIG)")
        return sp

    serve = with_config(sub.add_parser("serve", help="migrate the database, then serve HTTP (werkzeug)"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--demo", action="store_true", help="seed demo users, clients and a resource first")
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True, parser_class=_Parser)
    with_config(db.add_parser("upgrade", help="apply the migrations")).set_defaults(func=cmd_db_upgrade)
    with_config(
        db.add_parser("purge", help="delete expired tickets, codes, tokens, RPTs, PCTs and old audit records")
    ).set_defaults(func=cmd_db_purge)

    client = sub.add_parser("client", help="OAuth clients").add_subparsers(
        dest="client_command", required=True, parser_class=_Parser
    )
    add = with_config(client.add_parser("add", help="register a client; prints it as JSON (secret shown once)"))
    add.add_argument("--name", required=True)
    add.add_argument("--grant-type", action="append", default=[], dest="grant_types")
    add.add_argument("--redirect-uri", action="append", default=[], dest="redirect_uris")
    add.add_argument("--claims-redirect-uri", action="append", default=[], dest="claims_redirect_uris")
    add.add_argument("--owner", help="user for whom client-credentials PATs are issued")
    add.add_argument("--public", action="store_true", help="a public client (no secret)")
    add.add_argument("--scope", default="", help="space-separated scopes the client may ask for")
    add.set_defaults(func=cmd_client_add)

    user = sub.add_parser("user", help="local accounts").add_subparsers(
        dest="user_command", required=True, parser_class=_Parser
    )
    uadd = with_config(user.add_parser("add", help="create a user"))
    uadd.add_argument("name")
    uadd.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of standard input"
    )
    uadd.add_argument("--password", help=argparse.SUPPRESS)  # refused: see _read_password
    uadd.add_argument(
        "--claim", action="append", default=[], metavar="K=V", help="a claim; V is JSON if it parses, else a string"
    )
    uadd.set_defaults(func=cmd_user_add)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", required=True, parser_class=_Parser
    )
    with_config(keys.add_parser("rotate", help="new active signing key")).set_defaults(func=cmd_keys_rotate)

    sub.add_parser("policy", help="policy tools: uma policy --help", add_help=False)
    return p


def _app(args: argparse.Namespace, **overrides: Any) -> Any:
    """The app for a command. One-shot commands log from WARNING up unless DEBUG was asked
    for: their output is their answer, not the server's start-up lines."""
    from . import create_app
    from .config import load_settings

    config: dict[str, Any] = dict(overrides)
    if getattr(args, "config", None):
        config["config_file"] = args.config
    if (
        args.func is not cmd_serve
        and load_settings(config, config_file=getattr(args, "config", None)).log_level == "INFO"
    ):
        config["log_level"] = "WARNING"
    return create_app(config)


def _print(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=True))


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    from werkzeug.serving import run_simple

    from .config import Settings, load_settings
    from .logs import configure_logging

    if not 0 < args.port < 65536:
        raise UsageError(f"{PROG} serve: --port must be between 1 and 65535")
    settings = load_settings(config_file=args.config)
    configure_logging(settings)  # before the app's libraries are imported: their warnings are log lines too

    from .db import get_engine, upgrade_database
    from .factory import load_policies

    overrides: dict[str, Any] = {}
    if settings.issuer == Settings.model_fields["issuer"].default:
        overrides["issuer"] = f"http://{args.host}:{args.port}"
    app = _app(args, auto_migrate=False, **overrides)
    upgrade_database(get_engine(app))
    load_policies(app)
    if args.demo:
        from .demo import seed_demo

        with app.app_context():
            print(seed_demo(app))
    logging.getLogger("app.cli").info("listening on http://%s:%d/ (werkzeug, threaded)", args.host, args.port)
    run_simple(args.host, args.port, app, threaded=True, request_handler=_request_log_handler())
    return 0


def _request_log_handler() -> Any:
    """werkzeug's request handler, logging request lines without their query string
    (permission tickets and other tokens travel there) and without colours."""
    from urllib.parse import urlsplit

    from werkzeug.serving import WSGIRequestHandler

    class RequestLog(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            path = urlsplit(getattr(self, "path", "") or "").path
            shown = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in path)
            self.log("info", '"%s %s %s" %s %s', self.command or "-", shown, self.request_version, code, size)

    return RequestLog


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from .db import get_engine, upgrade_database

    app = _app(args, auto_migrate=False)
    upgrade_database(get_engine(app))
    print("database is up to date")
    return 0


def cmd_db_purge(args: argparse.Namespace) -> int:
    """Purge once (for cron, e.g. with ``purge_interval = 0``); prints the rows deleted per table."""
    from .db import get_engine
    from .purge import purge

    app = _app(args)
    _print(purge(get_engine(app), app.config["UMA_SETTINGS"]))
    return 0


def cmd_client_add(args: argparse.Namespace) -> int:
    from .db import session_scope
    from .oauth.clients import ClientError, create_client
    from .users import get_user

    app = _app(args)
    grant_types = args.grant_types or (["authorization_code"] if args.public else ["client_credentials"])
    with app.app_context(), session_scope() as session:
        if args.owner and get_user(session, args.owner) is None:
            raise UsageError(f"{PROG} client add: no user {args.owner!r} (create it with: uma user add)")
        try:
            client, secret = create_client(
                session,
                client_name=args.name,
                grant_types=grant_types,
                redirect_uris=args.redirect_uris,
                claims_redirect_uris=args.claims_redirect_uris,
                scope=args.scope,
                token_endpoint_auth_method="none" if args.public else "client_secret_basic",
                owner=args.owner,
            )
        except ClientError as exc:
            raise UsageError(f"{PROG} client add: {exc}") from None
        data = client.to_public_dict()
    if secret:
        data["client_secret"] = secret
    _print(data)
    return 0


def _claims(pairs: list[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{PROG} user add: --claim needs K=V, not {pair!r}")
        try:
            claims[key] = json.loads(value)
        except ValueError:
            claims[key] = value
    return claims


def _read_password(args: argparse.Namespace) -> str:
    """The new user's password: asked twice at the terminal (getpass), or the first line of
    stdin with ``--password-stdin``. ``--password P`` is refused: the process list and the
    shell history would show it."""
    import getpass

    where = f"{PROG} user add"
    if args.password is not None:
        raise UsageError(
            f"{where}: --password is refused (the process list and shell history would show it); "
            "type the password at the prompt, or pipe it with --password-stdin"
        )
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError(f"{where}: --password-stdin: no password on the first line of standard input")
        return password
    if not sys.stdin.isatty():
        raise UsageError(f"{where}: no terminal to ask for the password; pipe it with --password-stdin")
    try:
        password = getpass.getpass(f"Password for {args.name}: ")
        again = getpass.getpass("The same password again: ")
    except EOFError:
        raise UsageError(f"{where}: no password given") from None
    if password != again:
        raise UsageError(f"{where}: the two passwords differ")
    return password


def cmd_user_add(args: argparse.Namespace) -> int:
    from .db import session_scope
    from .users import UserError, check_username, create_user

    claims = _claims(args.claim)
    try:
        check_username(args.name)
    except UserError as exc:
        raise UsageError(f"{PROG} user add: {exc}") from None
    password = _read_password(args)
    app = _app(args)
    with app.app_context(), session_scope() as session:
        try:
            user = create_user(session, args.name, password, claims)
        except UserError as exc:
            raise UsageError(f"{PROG} user add: {exc}") from None
        data = {"username": user.username, "claims": user.claims}
    _print(data)
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from .db import session_scope
    from .oauth.keys import rotate_signing_key

    app = _app(args)
    with app.app_context(), session_scope() as session:
        key = rotate_signing_key(session)
        print(json.dumps({"kid": key.kid, "algorithm": key.algorithm}))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``uma`` console script; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "policy":
        from policy_lang.cli import main as policy_main

        return policy_main(argv[1:])
    from .config import ConfigError

    try:
        args = _parser().parse_args(argv)
        return int(args.func(args) or 0)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"{PROG}: configuration error: {line}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
