"""The ``uma`` command.

    uma serve [--host H] [--port P] [--config F] [--demo]
    uma demo reset [--config F]       (delete the demo's accounts, clients, resource, policy, secrets)
    uma db upgrade [--config F]
    uma db purge [--config F]
    uma client add --name N [--grant-type G]... [--redirect-uri U]... [--claims-redirect-uri U]...
                   [--owner USER] [--public] [--scope S] [--config F]
    uma client list | show ID | rotate-secret ID | delete ID          [--json] [--config F]
    uma client update ID [--name N] [--redirect-uri U]... [--no-redirect-uris]
                   [--claims-redirect-uri U]... [--no-claims-redirect-uris] [--grant-type G]...
                   [--scope S] [--json] [--config F]
    uma user add NAME [--password-stdin] [--claim k=v]... [--config F]   (asks for the password)
    uma user list | show NAME | disable NAME | enable NAME | delete NAME  [--json] [--config F]
    uma user passwd NAME [--password-stdin] [--json] [--config F]          (asks for the password)
    uma user set-claim NAME [K=V]... [--unset K]... [--json] [--config F]
    uma token revoke (--client ID | --user NAME) [--json] [--config F]
    uma keys rotate [--config F]
    uma policy ...            (everything after "policy" goes to policy_lang.cli.main)

Bad usage prints one line on stderr and exits 2, never a traceback. An unknown client id or
user name prints one line on stderr and exits 1. The administration commands (client, user,
token) are a thin layer over :mod:`app.admin`; they print text, or JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, NoReturn

PROG = "uma"


class UsageError(Exception):
    """Bad command line or bad input values (exit status 2)."""


class NotFoundError(Exception):
    """An unknown client id or user name (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="UMA 2.0 authorization server")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", metavar="FILE", help="TOML settings file (default: $UMA_CONFIG)")
        return sp

    def with_json(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--json", action="store_true", help="print JSON instead of text")
        return sp

    serve = with_config(sub.add_parser("serve", help="migrate the database, then serve HTTP (werkzeug)"))
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--demo", action="store_true", help="seed (or reuse) demo users, clients, a resource and a policy first"
    )
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser("demo", help="the demo data of `uma serve --demo`").add_subparsers(
        dest="demo_command", required=True, parser_class=_Parser
    )
    with_config(
        demo.add_parser("reset", help="delete the demo's accounts, clients, resource, policy and kept secrets")
    ).set_defaults(func=cmd_demo_reset)

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
    with_json(with_config(client.add_parser("list", help="list the clients"))).set_defaults(func=cmd_client_list)
    for name, func, text in (
        ("show", cmd_client_show, "show a client (never its secret)"),
        ("rotate-secret", cmd_client_rotate_secret, "a new client secret, shown once; the old one stops working"),
        ("delete", cmd_client_delete, "delete a client; every token issued to it is revoked"),
    ):
        cp = with_json(with_config(client.add_parser(name, help=text)))
        cp.add_argument("client_id", metavar="ID")
        cp.set_defaults(func=func)
    upd = with_json(
        with_config(client.add_parser("update", help="change a client's metadata (checked as at registration)"))
    )
    upd.add_argument("client_id", metavar="ID")
    upd.add_argument("--name")
    upd.add_argument("--redirect-uri", action="append", dest="redirect_uris", help="replaces the list (repeat)")
    upd.add_argument("--no-redirect-uris", action="store_true", help="remove every redirect URI")
    upd.add_argument(
        "--claims-redirect-uri", action="append", dest="claims_redirect_uris", help="replaces the list (repeat)"
    )
    upd.add_argument("--no-claims-redirect-uris", action="store_true", help="remove every claims redirect URI")
    upd.add_argument("--grant-type", action="append", dest="grant_types", help="replaces the list (repeat)")
    upd.add_argument("--scope", help="space-separated scopes the client may ask for (replaces them)")
    upd.set_defaults(func=cmd_client_update)

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
    with_json(with_config(user.add_parser("list", help="list the users"))).set_defaults(func=cmd_user_list)
    for name, func, text in (
        ("show", cmd_user_show, "show a user (never the password)"),
        ("disable", cmd_user_disable, "the user can no longer log in; every token of theirs is revoked"),
        ("enable", cmd_user_enable, "the user may log in again"),
        ("delete", cmd_user_delete, "delete a user and everything the account owns"),
    ):
        up = with_json(with_config(user.add_parser(name, help=text)))
        up.add_argument("name", metavar="NAME")
        up.set_defaults(func=func)
    passwd = with_json(with_config(user.add_parser("passwd", help="set a new password (asks for it)")))
    passwd.add_argument("name", metavar="NAME")
    passwd.add_argument(
        "--password-stdin", action="store_true", help="read the password from the first line of standard input"
    )
    passwd.add_argument("--password", help=argparse.SUPPRESS)  # refused: see _read_password
    passwd.set_defaults(func=cmd_user_passwd)
    claim = with_json(with_config(user.add_parser("set-claim", help="set or remove claims of a user")))
    claim.add_argument("name", metavar="NAME")
    claim.add_argument("claims", nargs="*", metavar="K=V", help="a claim; V is JSON if it parses, else a string")
    claim.add_argument("--unset", action="append", default=[], metavar="K", help="remove this claim")
    claim.set_defaults(func=cmd_user_set_claim)

    token = sub.add_parser("token", help="tokens").add_subparsers(
        dest="token_command", required=True, parser_class=_Parser
    )
    revoke = with_json(with_config(token.add_parser("revoke", help="revoke every token of a client or of a user")))
    whose = revoke.add_mutually_exclusive_group(required=True)
    whose.add_argument("--client", metavar="ID", help="every token issued to this client")
    whose.add_argument("--user", metavar="NAME", help="every token of this user")
    revoke.set_defaults(func=cmd_token_revoke)

    keys = sub.add_parser("keys", help="signing keys").add_subparsers(
        dest="keys_command", required=True, parser_class=_Parser
    )
    with_config(keys.add_parser("rotate", help="new active signing key")).set_defaults(func=cmd_keys_rotate)

    keycloak = sub.add_parser("keycloak", help="moving over from Keycloak").add_subparsers(
        dest="keycloak_command", required=True, parser_class=_Parser
    )
    kimport = with_config(
        keycloak.add_parser(
            "import",
            help="a realm export's UMA resources and permissions of one client: prints the plan; --apply does it",
        )
    )
    kimport.add_argument("export", metavar="REALM_EXPORT.json", help="Keycloak's realm export (JSON)")
    kimport.add_argument(
        "--client", required=True, metavar="CLIENT_ID", help="the resource server's clientId in Keycloak"
    )
    kimport.add_argument("--rs", required=True, metavar="CLIENT_ID", help="the resource server's client id here")
    kimport.add_argument(
        "--owner", metavar="USER", help="owner of the resources the resource server owns itself (default: --rs)"
    )
    kimport.add_argument("--apply", action="store_true", help="register the resources and save the policy texts")
    kimport.set_defaults(func=cmd_keycloak_import)

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
    app = create_app(config)
    _made.append(app)
    return app


#: The apps made by the running command: closed when it ends (:func:`main`), also when ``main``
#: is called many times in one process (the tests).
_made: list[Any] = []


def _close_apps() -> None:
    """Close the command's apps for good (:func:`app.factory.close_app`): their database
    connections, and their background threads (policy checks, purge, notifications), which can
    then never start. A command is not a server: nothing of its app may outlive it, in a process
    that goes on after ``main`` returned (the tests call it in-process, on a database they drop
    afterwards). ``uma serve`` returns only when the server stops."""
    if not _made:  # nothing made (a command that failed first, e.g. on its configuration): nothing to import
        return
    from .factory import close_app

    while _made:
        close_app(_made.pop())


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
    from .policies import freeze_after_start, get_store

    overrides: dict[str, Any] = {}
    if settings.issuer == Settings.model_fields["issuer"].default:
        overrides["issuer"] = f"http://{args.host}:{args.port}"
    if args.demo:
        overrides["demo"] = True
    app = _app(args, auto_migrate=False, **overrides)
    upgrade_database(get_engine(app))
    load_policies(app)
    if args.demo:
        from .demo import seed_demo

        with app.app_context():
            print(seed_demo(app), flush=True)
    _log_policies(app)
    freeze_after_start()  # the set compiled at start out of the collector's walks (as gunicorn's master)
    get_store(app).start()  # watch the policies from now on, not from the first request
    logging.getLogger("app.cli").info("listening on http://%s:%d/ (werkzeug, threaded)", args.host, args.port)
    run_simple(args.host, args.port, app, threaded=True, request_handler=_request_log_handler())
    return 0


def _log_policies(app: Any) -> None:
    """Say which policies the server starts with: the absolute folder, how many files and rules
    were loaded; a warning when there are none (every request would be denied)."""
    import logging

    from .policies import get_store

    log = logging.getLogger("app.cli")
    store = get_store(app)
    in_use = store.current()
    folder = store.policy_dir
    files = len(in_use.file_sources)
    log.info(
        "policies: %d rules from %d policy files in %s and %d owner uploads",
        in_use.rules,
        files,
        folder,
        len(in_use.upload_sources),
    )
    if not store.compiled:
        log.warning("no policy set checked (see the errors above): every request is denied until one does")
    elif not files:
        why = "there is no such folder" if not folder.is_dir() else "it holds no *.policy file"
        log.warning(
            "no policy files in %s (%s; setting policy_dir): only owners' uploads decide, every other request is denied",
            folder,
            why,
        )
    elif not in_use.rules:
        log.warning("the policy files in %s hold no rules: every request is denied", folder)


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


def cmd_demo_reset(args: argparse.Namespace) -> int:
    """Delete the demo data; the next ``uma serve --demo`` seeds it afresh."""
    from .demo import reset_demo

    app = _app(args)
    with app.app_context():
        removed = reset_demo(app)
    print(
        f"demo reset: deleted clients {', '.join(removed['clients']) or '(none)'}, "
        f"accounts {', '.join(removed['users']) or '(none)'}"
        + (", and the kept secrets" if removed["secrets_file"] else "")
        + "; `uma serve --demo` starts over"
    )
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


def _claims(pairs: list[str], where: str = f"{PROG} user add: --claim") -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{where} needs K=V, not {pair!r}")
        try:
            claims[key] = json.loads(value)
        except ValueError:
            claims[key] = value
    return claims


def _read_password(args: argparse.Namespace, where: str = f"{PROG} user add") -> str:
    """A new password: asked twice at the terminal (getpass), or the first line of
    stdin with ``--password-stdin``. ``--password P`` is refused: the process list and the
    shell history would show it."""
    import getpass

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


# -- administration (a thin layer over app.admin) -------------------------------------------


def _admin(args: argparse.Namespace, where: str, action: Any) -> Any:
    """Run ``action(session)`` in one transaction; an unknown id is exit 1, a refused value exit 2."""
    from .db import session_scope
    from .errors import InvalidRequest, NotFound

    app = _app(args)
    with app.app_context():
        try:
            with session_scope() as session:
                return action(session)
        except NotFound as exc:
            raise NotFoundError(f"{PROG} {where}: {exc.description}") from None
        except InvalidRequest as exc:
            raise UsageError(f"{PROG} {where}: {exc.description}") from None


def _text(value: Any) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value) if value else "-"
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True) if value else "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "-" if value in (None, "") else str(value)


def _show(args: argparse.Namespace, data: Any, columns: tuple[str, ...] = ()) -> None:
    """JSON with ``--json``; else a table (``columns`` of each row of a list) or ``key: value`` lines."""
    if args.json:
        _print(data)
    elif isinstance(data, list):
        rows = [columns] + [tuple(_text(item.get(c)) for c in columns) for item in data]
        widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
        for row in rows:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    else:
        for key in sorted(data):
            print(f"{key}: {_text(data[key])}")


def cmd_client_list(args: argparse.Namespace) -> int:
    from . import admin

    _show(args, _admin(args, "client list", admin.list_clients), ("client_id", "client_name", "grant_types", "owner"))
    return 0


def cmd_client_show(args: argparse.Namespace) -> int:
    from . import admin

    _show(args, _admin(args, "client show", lambda db: admin.client_view(admin.find_client(db, args.client_id))))
    return 0


def cmd_client_update(args: argparse.Namespace) -> int:
    from . import admin

    where = "client update"
    changes: dict[str, Any] = {}
    if args.name is not None:
        changes["client_name"] = args.name
    for member, flag in (("redirect_uris", "no_redirect_uris"), ("claims_redirect_uris", "no_claims_redirect_uris")):
        given = getattr(args, member)
        if given is not None and getattr(args, flag):
            raise UsageError(
                f"{PROG} {where}: --{member[:-1].replace('_', '-')} and --{flag.replace('_', '-')} contradict"
            )
        if given is not None or getattr(args, flag):
            changes[member] = given or []
    if args.grant_types is not None:
        changes["grant_types"] = args.grant_types
    if args.scope is not None:
        changes["scope"] = args.scope
    if not changes:
        raise UsageError(f"{PROG} {where}: nothing to change (see {PROG} client update --help)")
    _show(args, _admin(args, where, lambda db: admin.change_client(db, args.client_id, **changes)))
    return 0


def cmd_client_rotate_secret(args: argparse.Namespace) -> int:
    from . import admin

    data, secret = _admin(args, "client rotate-secret", lambda db: admin.rotate_client_secret(db, args.client_id))
    _show(args, {**data, "client_secret": secret})  # the only time this secret is shown
    return 0


def cmd_client_delete(args: argparse.Namespace) -> int:
    """Delete the client; then, once the other processes have forgotten it (``row_cache_lifetime``,
    app/cache.py), revoke what they may have issued to it meanwhile."""
    import time

    from . import admin
    from .config import load_settings

    counts = _admin(args, "client delete", lambda db: admin.delete_client_by_id(db, args.client_id))
    lifetime = load_settings({}, config_file=args.config).row_cache_lifetime
    if lifetime > 0:
        time.sleep(lifetime + 1)  # and a second for a request that read the client just in time
        late = _admin(args, "client delete", lambda db: admin.revoke_tokens_issued_to(db, args.client_id))
        counts = {kind: number + late.get(kind, 0) for kind, number in counts.items()}
    _show(args, {"deleted": args.client_id, "revoked": counts} if args.json else {"deleted": args.client_id, **counts})
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from . import admin

    _show(args, _admin(args, "user list", admin.list_users), ("username", "enabled", "claims"))
    return 0


def cmd_user_show(args: argparse.Namespace) -> int:
    from . import admin

    _show(args, _admin(args, "user show", lambda db: admin.user_view(admin.find_user(db, args.name))))
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    from . import admin

    where = "user passwd"
    _admin(args, where, lambda db: admin.find_user(db, args.name))  # an unknown name before asking
    password = _read_password(args, f"{PROG} {where}")
    _show(args, _admin(args, where, lambda db: admin.set_password(db, args.name, password)))
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    from . import admin

    _show(args, _admin(args, "user disable", lambda db: admin.disable_user(db, args.name)))
    return 0


def cmd_user_enable(args: argparse.Namespace) -> int:
    from . import admin

    _show(args, _admin(args, "user enable", lambda db: admin.enable_user(db, args.name)))
    return 0


def cmd_user_delete(args: argparse.Namespace) -> int:
    from . import admin

    counts = _admin(args, "user delete", lambda db: admin.delete_user(db, args.name))
    _show(args, {"deleted": args.name, "removed": counts} if args.json else {"deleted": args.name, **counts})
    return 0


def cmd_user_set_claim(args: argparse.Namespace) -> int:
    from . import admin

    where = "user set-claim"
    claims = _claims(args.claims, f"{PROG} {where}:")
    if not claims and not args.unset:
        raise UsageError(f"{PROG} {where}: give claims K=V to set or --unset K")
    _show(args, _admin(args, where, lambda db: admin.set_claims(db, args.name, claims, args.unset)))
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from . import admin

    if args.client is not None:
        counts = _admin(args, "token revoke", lambda db: admin.revoke_client_tokens(db, args.client))
        whose = {"client": args.client}
    else:
        counts = _admin(args, "token revoke", lambda db: admin.revoke_user_tokens(db, args.user))
        whose = {"user": args.user}
    _show(args, {**whose, "revoked": counts} if args.json else {**whose, **counts})
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from .db import session_scope
    from .oauth.keys import rotate_signing_key

    app = _app(args)
    with app.app_context(), session_scope() as session:
        key = rotate_signing_key(session)
        print(json.dumps({"kid": key.kid, "algorithm": key.algorithm}))
    return 0


def cmd_keycloak_import(args: argparse.Namespace) -> int:
    """Print what importing a Keycloak realm export does (JSON); with ``--apply``, do it and print
    the resources created and the policy versions saved too (docs/keycloak-migration.md)."""
    from .db import session_scope
    from .keycloak_compat.realm_import import apply, plan
    from .oauth.clients import get_client
    from .owner_service import InvalidPolicy

    try:
        export = json.loads(Path(args.export).read_text(encoding="utf-8"))
        the_plan = plan(export, client_id=args.client, default_owner=args.owner or args.rs)
    except (OSError, ValueError) as exc:  # RealmExportError is a ValueError, as is bad JSON
        raise UsageError(f"{PROG} keycloak import: {exc}") from None
    out: dict[str, Any] = the_plan.summary()
    if args.apply:
        app = _app(args)
        with app.app_context(), session_scope() as session:
            if get_client(session, args.rs) is None:
                raise NotFoundError(f"no client {args.rs!r} here: register the resource server first (uma client add)")
            try:
                out["applied"] = apply(session, the_plan, rs_client_id=args.rs)
            except InvalidPolicy as exc:
                _print({**out, "refused": exc.diagnostics})
                return 1
    _print(out)
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
    except NotFoundError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except ConfigError as exc:
        for line in str(exc).splitlines():
            print(f"{PROG}: configuration error: {line}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        return 130
    finally:
        _close_apps()


if __name__ == "__main__":
    sys.exit(main())
