"""``uma policy …``: the offline tools of the policy language (docs/cli.md).

    uma policy check PATH… [--format text|json] [--strict]
    uma policy eval POLICY_PATH… --request REQUEST.json|- [--explain] [--text]
    uma policy fmt PATH…|- [--check]
    uma policy test PATH… [--no-explain] [--format text|json]
    uma policy who-can PATH… (--resource RESOURCE.json | --resource-id ID --owner O [--type T] [--name N])
                             [--scope S]… [--format text|json]
    uma policy diff OLD NEW [--requests REQUESTS.jsonl] [--exit-code] [--format text|json]

Exit codes: 0 fine; 1 policy errors, failed tests, fmt --check differences
(and decision changes with ``diff --exit-code``); 2 bad usage or input (an
unreadable file, a request that is not JSON or not of the documented shape),
reported in one line on stderr. Every error is turned into an exit code at one
boundary, :func:`main`: never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TextIO

from .check import check_sources
from .diagnostics import Diagnostic, PolicyError
from .eval import RESOURCE_MEMBERS, RequestError, normalise
from .policyset import PolicySet, compile_sources
from .syntax import Source, read_sources

PROG = "uma policy"


class InputError(Exception):
    """Bad input (a file that cannot be read, a request that is not JSON…): exit 2."""


class UsageError(Exception):
    """argparse's complaint about the command line: exit 2, one line plus usage."""

    def __init__(self, message: str, prog: str, usage: str):
        super().__init__(message)
        self.prog = prog
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message, self.prog, self.format_usage())


# ------------------------------------------------------------------ input helpers


def _write(stream: TextIO, text: str) -> None:
    text = text if text.endswith("\n") else text + "\n"
    try:
        stream.write(text)
    except UnicodeEncodeError:  # e.g. a lone surrogate in a request's claim: escape it
        enc = getattr(stream, "encoding", None) or "utf-8"
        stream.write(text.encode(enc, "backslashreplace").decode(enc))


def _out(text: str = "") -> None:
    _write(sys.stdout, text)


def _err(text: str) -> None:
    _write(sys.stderr, text)


def _check_paths(paths: list[str], policies: bool = True) -> None:
    """Every path exists, and (``policies``) every directory holds at least one ``*.policy``."""
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"cannot read {raw}: No such file or directory")
        if policies and p.is_dir() and not any(f.is_file() for f in p.rglob("*.policy")):
            raise InputError(f"no .policy files in {raw}")


def read_policies(paths: list[str]) -> list[Source]:
    """Files and directories (``*.policy``, recursively) → sources, or InputError."""
    _check_paths(paths)
    sources, diags = read_sources(paths)
    if diags:
        raise InputError(diags[0].message)
    return sources


def load_policies(paths: list[str]) -> PolicySet:
    """Read and compile; PolicyError (exit 1, diagnostics on stderr) if any has an error."""
    return compile_sources(read_policies(paths))


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def read_text(path: str) -> tuple[str, str]:
    """(display name, text) of a file, or of stdin for ``-``."""
    try:
        if path == "-":
            return "<stdin>", sys.stdin.read()
        return path, Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"cannot read {'<stdin>' if path == '-' else path}: not UTF-8 text") from None
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None


def parse_json(name: str, text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as e:
        raise InputError(f"{name} is not JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    except ValueError as e:
        raise InputError(f"{name} is not JSON: {e}") from None
    except RecursionError:
        raise InputError(f"{name} is nested too deeply") from None


def read_request(path: str) -> tuple[str, dict[str, Any]]:
    name, text = read_text(path)
    request = parse_json(name, text)
    try:
        normalise(request)
    except RequestError as e:
        raise InputError(f"bad request in {name}: {e}") from None
    return name, request


def read_requests(path: str) -> list[dict[str, Any]]:
    """JSON lines: one request per line (blank lines skipped)."""
    name, text = read_text(path)
    out = []
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        req = parse_json(f"{name}:{n}", line)
        try:
            normalise(req)
        except RequestError as e:
            raise InputError(f"bad request at {name}:{n}: {e}") from None
        out.append(req)
    if not out:
        raise InputError(f"{name} holds no requests")
    return out


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def _print_diagnostics(diags: list[Diagnostic], to: Callable[[str], None]) -> None:
    for d in diags:
        to(d.render())
        to("")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary(n_files: int, diags: list[Diagnostic]) -> str:
    errors = sum(1 for d in diags if d.is_error)
    warnings = len(diags) - errors
    head = f"{_plural(n_files, 'file')} checked"
    if not diags:
        return f"{head}: no problems"
    return f"{head}: {_plural(errors, 'error')}, {_plural(warnings, 'warning')}"


def _sorted(diags: list[Diagnostic]) -> list[Diagnostic]:
    return sorted(diags, key=lambda d: (d.file, d.line, d.column))


# ------------------------------------------------------------------ commands


def cmd_check(args: argparse.Namespace) -> int:
    sources = read_policies(args.paths)
    diags = _sorted(check_sources(sources))
    if args.format == "json":
        _out(_dump([d.to_json() for d in diags]))
    else:
        _print_diagnostics(diags, _out)
        _out(summary(len(sources), diags))
    if any(d.is_error for d in diags):
        return 1
    if args.strict and diags:
        return 1
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    ps = load_policies(args.paths)
    name, request = read_request(args.request)
    try:
        if args.explain or args.text:
            from .analysis.explain import explain, render_explanation

            data = explain(ps, request)
            _out(render_explanation(data) if args.text else _dump(data))
        else:
            _out(_dump(ps.decide(request).to_json()))
    except RequestError as e:
        raise InputError(f"bad request in {name}: {e}") from None
    return 0


def _replace_file(path: Path, text: str) -> None:
    """Replace a file's content in one step (never a half-written policy);
    through a symbolic link, the file it points to."""
    path = Path(os.path.realpath(path))
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".fmt", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _policy_files(paths: list[str]) -> list[Path]:
    _check_paths(paths)
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        files.extend(sorted(f for f in p.rglob("*.policy") if f.is_file()) if p.is_dir() else [p])
    return files


def cmd_fmt(args: argparse.Namespace) -> int:
    from .fmt import FormatError, format_text

    if "-" in args.paths:
        if len(args.paths) > 1:
            raise InputError("'-' (standard input) cannot be mixed with files")
        name, text = read_text("-")
        try:
            out = format_text(text, name)
        except PolicyError as e:
            _print_diagnostics(e.diagnostics, _err)
            return 1
        if args.check:
            if out != text:
                _out(f"would reformat {name}")
                return 1
            return 0
        sys.stdout.write(out)
        return 0
    failed = False
    changed: list[Path] = []
    files = _policy_files(args.paths)
    for f in files:
        name, text = read_text(str(f))
        try:
            out = format_text(text, name)
        except PolicyError as e:
            _print_diagnostics(e.diagnostics, _err)
            _err(f"{name}: not formatted: fix the syntax errors first")
            failed = True
            continue
        except FormatError as e:
            _err(str(e))
            failed = True
            continue
        if out != text:
            changed.append(f)
            if args.check:
                _out(f"would reformat {f}")
            else:
                _replace_file(f, out)
                _err(f"reformatted {f}")
    if args.check:
        if changed:
            _err(f"{_plural(len(changed), 'file')} would be reformatted, {len(files) - len(changed)} unchanged")
        return 1 if failed or changed else 0
    _err(f"{_plural(len(changed), 'file')} reformatted, {len(files) - len(changed)} unchanged")
    return 1 if failed else 0


def cmd_test(args: argparse.Namespace) -> int:
    _check_paths(args.paths, policies=False)  # test files may name their policies elsewhere
    from .analysis.testing import TestFileError, run_tests

    try:
        report = run_tests(args.paths, explain=not args.no_explain)
    except TestFileError as e:
        raise InputError(str(e)) from None
    _out(_dump(report.to_json()) if args.format == "json" else report.render())
    return 0 if report.ok else 1


def _resource_arg(args: argparse.Namespace) -> dict[str, Any]:
    if args.resource is not None:
        name, text = read_text(args.resource)
        resource = parse_json(name, text)
        if isinstance(resource, dict) and "id" not in resource and isinstance(resource.get("resource"), dict):
            resource = resource["resource"]  # a request file: its resource
    else:
        if not args.owner:
            raise InputError("--resource-id needs --owner (whose resource it is)")
        name = "the resource options"
        resource = {"id": args.resource_id, "owner": args.owner}
        if args.type is not None:
            resource["type"] = args.type
        if args.name is not None:
            resource["name"] = args.name
    try:
        normalise({"resource": resource, "scopes": list(args.scope or [])})
    except RequestError as e:
        raise InputError(f"bad resource in {name}: {e}") from None
    unknown = sorted(set(resource) - RESOURCE_MEMBERS)
    if unknown:
        raise InputError(
            f"bad resource in {name}: unknown member {unknown[0]!r} (known: {', '.join(sorted(RESOURCE_MEMBERS))})"
        )
    return dict(resource)  # an object: normalise() refused anything else


def cmd_who_can(args: argparse.Namespace) -> int:
    if args.resource is None and args.resource_id is None:
        raise InputError("give the resource: --resource RESOURCE.json, or --resource-id ID --owner OWNER")
    resource = _resource_arg(args)
    ps = load_policies(args.paths)
    scopes = list(args.scope) if args.scope else None
    if args.format == "json":
        from .analysis.who_can import who_can_data

        _out(_dump({"resource": resource, "entries": who_can_data(ps, resource, scopes)}))
        return 0
    from .analysis.who_can import who_can

    _out(who_can(ps, resource, scopes))
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    requests = read_requests(args.requests) if args.requests else None
    old = load_policies([args.old])
    new = load_policies([args.new])
    from .analysis.diff import diff

    try:
        report = diff(old, new, requests)
    except RequestError as e:
        raise InputError(f"bad request in {args.requests}: {e}") from None
    _out(_dump(report.to_json()) if args.format == "json" else report.render())
    return 1 if args.exit_code and report.changes else 0


# ------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Check, evaluate, format, test and analyse sharing policies offline.",
        epilog="Exit codes: 0 fine; 1 policy errors, failed tests or fmt --check differences; "
        "2 bad usage or input. See docs/cli.md.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("check", help="parse and validate policies")
    c.add_argument("paths", nargs="+", metavar="PATH", help="policy files or directories of *.policy")
    c.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    c.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    c.set_defaults(func=cmd_check)

    e = sub.add_parser("eval", help="decide one request; print the JSON decision")
    e.add_argument("paths", nargs="+", metavar="POLICY_PATH", help="policy files or directories of *.policy")
    e.add_argument(
        "--request",
        required=True,
        metavar="REQUEST.json",
        help="the request (section 4 of the language page); - reads stdin",
    )
    e.add_argument(
        "--explain",
        action="store_true",
        help="add, per scope, every candidate rule's clause values and the deciding step",
    )
    e.add_argument("--text", action="store_true", help="print the explanation as text (implies --explain)")
    e.set_defaults(func=cmd_eval)

    f = sub.add_parser("fmt", help="rewrite policies in the canonical layout")
    f.add_argument("paths", nargs="+", metavar="PATH", help="files, directories, or - (stdin to stdout)")
    f.add_argument("--check", action="store_true", help="write nothing; list files that would change; exit 1 if any")
    f.set_defaults(func=cmd_fmt)

    t = sub.add_parser("test", help="run the test cases written next to the policies")
    t.add_argument(
        "paths", nargs="+", metavar="PATH", help="directories (or files) with *.policy and *.tests.json files"
    )
    t.add_argument("--no-explain", action="store_true", help="do not explain failures")
    t.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    t.set_defaults(func=cmd_test)

    w = sub.add_parser("who-can", help="which scopes of a resource can be granted, under which conditions")
    w.add_argument("paths", nargs="+", metavar="PATH", help="policy files or directories of *.policy")
    g = w.add_mutually_exclusive_group()
    g.add_argument("--resource", metavar="RESOURCE.json", help='the resource as JSON ({"id", "owner", …})')
    g.add_argument("--resource-id", metavar="ID", help="the resource's id (with --owner)")
    w.add_argument("--owner", metavar="OWNER", help="whose resource it is")
    w.add_argument("--type", metavar="TYPE", help="the resource's type")
    w.add_argument("--name", metavar="NAME", help="the resource's name")
    w.add_argument("--scope", action="append", metavar="SCOPE", help="only this scope (repeatable)")
    w.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    w.set_defaults(func=cmd_who_can)

    d = sub.add_parser("diff", help="which decisions change between two versions of a policy set")
    d.add_argument("old", metavar="OLD", help="the policies before (a file or directory)")
    d.add_argument("new", metavar="NEW", help="the policies after (a file or directory)")
    d.add_argument(
        "--requests",
        metavar="REQUESTS.jsonl",
        help="one request per line (default: requests generated from the policies)",
    )
    d.add_argument("--exit-code", action="store_true", help="exit 1 when some decision changes")
    d.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="output format (default text; json lists every change)",
    )
    d.set_defaults(func=cmd_diff)
    return p


# ------------------------------------------------------------------ the boundary


def main(argv: list[str] | None = None) -> int:
    """Run ``uma policy`` with these arguments (those after ``policy``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except UsageError as e:
        _err(f"{e.prog}: {e}")
        sys.stderr.write(e.usage)
        return 2
    except SystemExit as e:  # --help
        return e.code if isinstance(e.code, int) else 0
    where = f"{PROG} {args.command}"
    try:
        code: int = args.func(args)
        return code
    except InputError as e:
        _err(f"{where}: {e}")
        return 2
    except PolicyError as e:
        _print_diagnostics(_sorted(e.diagnostics), _err)
        errors = [d for d in e.diagnostics if d.is_error]
        _err(f"{where}: {_plural(len(errors), 'error')} in the policies")
        return 1
    except RequestError as e:
        _err(f"{where}: bad request: {e}")
        return 2
    except ModuleNotFoundError as e:
        _err(f"{where}: not available in this installation ({e.name} is missing)")
        return 2
    except KeyboardInterrupt:
        _err(f"{where}: interrupted")
        return 130
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except OSError as e:
        _err(f"{where}: {e.filename + ': ' if e.filename else ''}{e.strerror or e}")
        return 2
    except Exception as e:
        _err(f"{where}: internal error ({type(e).__name__}: {e}); please report it")
        return 2
