"""Policy tests: ``uma policy test PATH…``.

Test cases live beside the policies, in ``<name>.tests.json`` (for example
``policies/alice.tests.json`` next to ``policies/alice.policy``). A test file
is one JSON object::

    {
      "description": "Alice's sharing rules",            (optional)
      "policies": ["global.policy"],                      (optional: more policy files or
                                                           directories, relative to this file)
      "defaults": {                                       (optional: merged into every request)
        "resource": {"owner": "alice", "type": "photo-album"},
        "time": "2026-11-27T10:00:00Z"
      },
      "cases": [
        {
          "name": "family can view an album",             (required, unique in the file)
          "description": "…",                             (optional)
          "request": {                                    (section 4 of the language page)
            "resource": {"id": "a1", "name": "summer-2026"},
            "scopes": ["view"],
            "claims": {"email": "bob@example.com", "email_verified": true},
            "client": {"id": "photo-app"}
          },
          "expect": "permit",                             (required: permit | need_info |
                                                           request_submitted | partial | deny)
          "granted": ["view"],                            (optional: exactly the scopes granted)
          "denied": [], "submitted": [],                  (optional: likewise)
          "required_claims": ["email_verified"],          (optional: exactly these claim names)
          "rule": "family-albums",                        (optional: a rule label, "alice.policy:17",
                                                           a list of those, or null for default deny)
          "expires_at": "2026-12-27T10:00:00Z"            (optional: the grant's expiry, or null)
        }
      ]
    }

Merging defaults: ``resource``, ``claims``, ``client`` and ``claim_sources``
are merged member by member (the case wins; a ``null`` member removes the
default's); every other request member given by the case replaces the
default's. A case giving ``permissions`` (several resources) drops the
defaults' ``resource``, ``scopes`` and ``approvals``; a case giving
``resource`` or ``scopes`` drops the defaults' ``permissions``. ``granted``/``denied``/``submitted`` are a list of scopes (over all
resources of the request) or an object ``{"resource id": [scopes]}``.

``rule`` names the rules that decided the request (its reasons): each one
given must be among them. A rule is named by ``file:line`` (the file relative
to the test file, or as the decision prints it) or by a label: a comment
``# label: NAME`` in the comment block just above the rule. Labels keep tests
valid when lines move.

Unknown or repeated members anywhere in a test file are errors (a misspelt
expectation must not pass silently), as are malformed requests; all raise
:class:`TestFileError` naming the file, the case and the problem.

Running: every ``*.policy`` under the given paths (plus the ``policies`` the
test files name) is loaded into one policy set with :func:`policy_lang.load`,
as the server would, so the operator's ``global`` guardrails take part in
every owner's tests. Every case is decided; a failing case is reported with
what was expected, what came, and why (the decision's reasons and the
engine's explanation of every candidate rule). Coverage: a rule is exercised
when some case's decision names it among its reasons; the report lists the
rules no case exercised.

The user documentation, with examples: ``docs/policy-testing.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from ..eval import REQUEST_MEMBERS, RESOURCE_MEMBERS, RequestError
from ..fmt import rule_one_line
from ..policyset import PolicySet, load
from .explain import explain as explain_request
from .explain import render_explanation

__all__ = [
    "TEST_SUFFIX",
    "TestFileError",
    "TestReport",
    "CaseResult",
    "TestCase",
    "run_tests",
    "load_test_file",
    "rule_labels",
]

TEST_SUFFIX = ".tests.json"
FILE_MEMBERS = ("description", "policies", "defaults", "cases")
CASE_MEMBERS = (
    "name",
    "description",
    "request",
    "expect",
    "granted",
    "denied",
    "submitted",
    "required_claims",
    "rule",
    "expires_at",
)
DECISIONS = ("permit", "need_info", "request_submitted", "partial", "deny")
MERGED_OBJECTS = ("resource", "claims", "client", "claim_sources")
_LABEL = re.compile(r"^#\s*label:\s*([A-Za-z0-9_.\-/]+)\s*$")
_REF = re.compile(r"^(.+):(\d+)$")


class TestFileError(Exception):
    """A test file that cannot be read, is not valid JSON, or is not of the documented shape."""

    __test__ = False  # not a pytest test class

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class TestCase:
    __test__ = False

    file: str
    name: str
    index: int
    line: int
    request: dict[str, Any]
    expect: dict[str, Any]  # the expectation members given (expect, granted, …)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class CaseResult:
    case: TestCase
    problems: list[str]
    decision: dict[str, Any]
    explanation: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass
class TestReport:
    """What :func:`run_tests` found. ``ok``: at least one case ran and none failed."""

    __test__ = False

    results: list[CaseResult]
    rules: list[tuple[str, str]]  # every rule: (file:line, its first line)
    exercised: set[str]
    test_files: list[str]
    policy_files: list[str]
    explain: bool = True

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    @property
    def ok(self) -> bool:
        return bool(self.results) and self.failed == 0

    @property
    def uncovered(self) -> list[tuple[str, str]]:
        """The rules no case exercised: (file:line, the rule's first line)."""
        return [(ref, text) for ref, text in self.rules if ref not in self.exercised]

    @property
    def coverage(self) -> float:
        """Exercised rules / all rules (1.0 when there are no rules)."""
        if not self.rules:
            return 1.0
        return (len(self.rules) - len(self.uncovered)) / len(self.rules)

    def render(self) -> str:
        lines: list[str] = []
        for r in self.results:
            if r.passed:
                continue
            lines.append(f"FAIL {r.case.where}: {r.case.name}")
            for p in r.problems:
                lines.append(f"  {p}")
            lines.append(f"  request: {json.dumps(r.case.request, sort_keys=True, ensure_ascii=False)}")
            lines.append("  reasons:")
            for reason in r.decision.get("reasons", []):
                lines.append("    " + _reason_text(reason))
            if r.explanation:
                lines.append("  why:")
                lines.extend("    " + x if x else "" for x in r.explanation.rstrip("\n").split("\n"))
            lines.append("")
        if not self.results:
            lines.append("no test cases found (test files are named *" + TEST_SUFFIX + ", beside the policies)")
        total = len(self.results)
        lines.append(
            f"{self.passed} passed, {self.failed} failed ({_n(total, 'case')} in "
            f"{_n(len(self.test_files), 'test file')}, "
            f"{_n(len(self.policy_files), 'policy file')})"
        )
        uncovered = self.uncovered
        n_rules = len(self.rules)
        lines.append(
            f"coverage: {n_rules - len(uncovered)} of {n_rules} rules exercised"
            + (f" ({self.coverage:.0%})" if n_rules else "")
        )
        if uncovered:
            lines.append("rules no test exercised:")
            for ref, text in uncovered:
                lines.append(f"  {ref}: {text}")
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "passed": self.passed,
            "failed": self.failed,
            "failures": [
                {
                    "file": r.case.file,
                    "line": r.case.line,
                    "name": r.case.name,
                    "problems": r.problems,
                    "request": r.case.request,
                    "decision": r.decision,
                }
                for r in self.results
                if not r.passed
            ],
            "rules": len(self.rules),
            "uncovered": [{"rule": ref, "text": text} for ref, text in self.uncovered],
        }


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _reason_text(r: dict[str, Any]) -> str:
    where = f"{r.get('resource_id')} {r.get('scope')}"
    if r.get("missing"):
        return f"{where}: needs {', '.join(r['missing'])} for the {r.get('effect')} at {r.get('rule')}"
    rule = r.get("rule") or "no rule (default deny)"
    return f"{where}: {r.get('effect')} by {rule}"


# ------------------------------------------------------------------ reading test files


def _fail(file: str, problem: str, case: str | None = None, line: int = 0) -> TestFileError:
    where = f"{file}:{line}" if line else file
    if case is not None:
        where += f": case {case}"
    return TestFileError(f"{where}: {problem}")


def _unknown(members: Iterable[str], known: tuple[str, ...], what: str) -> str | None:
    for m in members:
        if m not in known:
            close = get_close_matches(m, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(known)})"
            return f"unknown member {m!r} in {what}{hint}"
    return None


def _case_line(text: str, name: Any, start: int) -> tuple[int, int]:
    """The line of ``"name": <name>`` at or after offset ``start`` (0 if not found)."""
    if not isinstance(name, str):
        return 0, start
    pattern = re.compile(r'"name"\s*:\s*' + re.escape(json.dumps(name, ensure_ascii=False)))
    m = pattern.search(text, start)
    if m is None:
        return 0, start
    return text.count("\n", 0, m.start()) + 1, m.end()


class _Duplicate(Exception):
    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Duplicate(k)
        out[k] = v
    return out


def _scopes_expectation(value: Any) -> str | None:
    if isinstance(value, list):
        return None if all(isinstance(s, str) for s in value) else "a list of scope names"
    if isinstance(value, dict):
        ok = all(isinstance(v, list) and all(isinstance(s, str) for s in v) for v in value.values())
        return None if ok else "an object of resource id → list of scope names"
    return "a list of scope names, or an object of resource id → list of scope names"


def _check_expectations(case: dict[str, Any]) -> str | None:
    expect = case.get("expect")
    if expect not in DECISIONS:
        close = get_close_matches(str(expect), DECISIONS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"'expect' must be one of {', '.join(DECISIONS)}, not {json.dumps(expect)}{hint}"
    for key in ("granted", "denied", "submitted"):
        if key in case:
            bad = _scopes_expectation(case[key])
            if bad:
                return f"'{key}' must be {bad}"
    if "required_claims" in case:
        rc = case["required_claims"]
        if not isinstance(rc, list) or not all(isinstance(n, str) for n in rc):
            return "'required_claims' must be a list of claim names"
    if "rule" in case:
        rule = case["rule"]
        ok = (
            rule is None
            or (isinstance(rule, str) and rule)
            or (isinstance(rule, list) and rule and all(isinstance(x, str) and x for x in rule))
        )
        if not ok:
            return "'rule' must be a rule label or file:line, a non-empty list of those, or null"
    if "expires_at" in case:
        e = case["expires_at"]
        if e is not None and _parse_time(e) is None:
            return "'expires_at' must be an ISO-8601 timestamp such as 2026-12-27T10:00:00Z, or null"
    return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _merge(defaults: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in request.items():
        base = out.get(key)
        if key in MERGED_OBJECTS and isinstance(base, dict) and isinstance(value, dict):
            merged = {**base, **value}
            out[key] = {k: v for k, v in merged.items() if v is not None}
        else:
            out[key] = value
    for key in MERGED_OBJECTS:
        if isinstance(out.get(key), dict):
            out[key] = {k: v for k, v in out[key].items() if v is not None}
    return out


def _resource_members(request: dict[str, Any]) -> str | None:
    """A misspelt resource member would silently test another resource."""
    known = tuple(sorted(RESOURCE_MEMBERS))
    found = [("the request's resource", request.get("resource"))]
    perms = request.get("permissions")
    if isinstance(perms, list):
        found += [(f"permissions[{i}].resource", p.get("resource")) for i, p in enumerate(perms) if isinstance(p, dict)]
    for what, resource in found:
        if isinstance(resource, dict):
            problem = _unknown(resource, known, what)
            if problem:
                return problem
    return None


def load_test_file(path: str | Path) -> tuple[list[TestCase], list[str]]:
    """One test file → (its cases, the extra policy paths it names).
    Raises :class:`TestFileError` for anything not of the documented shape."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = "not UTF-8 text" if isinstance(e, UnicodeDecodeError) else (e.strerror or str(e))
        raise _fail(file, f"cannot read the test file: {reason}") from None
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as e:
        raise _fail(file, f"not valid JSON: {e.msg} (column {e.colno})", line=e.lineno) from None
    except _Duplicate as e:
        raise _fail(
            file, f"member {e.name!r} is given twice in one object (JSON would silently keep only the last)"
        ) from None
    if not isinstance(data, dict):
        raise _fail(file, 'a test file is a JSON object: {"defaults": {...}, "cases": [...]}')
    problem = _unknown(data, FILE_MEMBERS, "the test file")
    if problem:
        raise _fail(file, problem)
    extra = data.get("policies", [])
    if not isinstance(extra, list) or not all(isinstance(p, str) and p for p in extra):
        raise _fail(file, "'policies' must be a list of policy file or directory paths")
    base_dir = Path(path).parent
    extra_paths = [str(base_dir / p) for p in extra]
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise _fail(file, "'defaults' must be an object of request members")
    problem = _unknown(defaults, tuple(sorted(REQUEST_MEMBERS)), "'defaults'")
    if problem:
        raise _fail(file, problem)
    cases = data.get("cases")
    if not isinstance(cases, list) or not cases:
        raise _fail(file, "'cases' must be a non-empty list of test cases")
    out: list[TestCase] = []
    names: set[str] = set()
    offset = 0
    for i, case in enumerate(cases):
        label = f"#{i + 1}"
        if not isinstance(case, dict):
            raise _fail(file, "a case is a JSON object with 'name', 'request' and 'expect'", label)
        name = case.get("name")
        line, offset = _case_line(text, name, offset)
        if not isinstance(name, str) or not name.strip():
            raise _fail(file, "every case needs a 'name' (a non-empty string)", label, line)
        label = f"{label} {name!r}"
        if name in names:
            raise _fail(file, "another case has the same name; names must be unique in a file", label, line)
        names.add(name)
        problem = _unknown(case, CASE_MEMBERS, "the case")
        if problem:
            raise _fail(file, problem, label, line)
        if "expect" not in case:
            raise _fail(file, "the case has no 'expect' (the decision it should get)", label, line)
        problem = _check_expectations(case)
        if problem:
            raise _fail(file, problem, label, line)
        request = case.get("request", {})
        if not isinstance(request, dict):
            raise _fail(file, "'request' must be an object (section 4 of the language page)", label, line)
        problem = _unknown(request, tuple(sorted(REQUEST_MEMBERS)), "the request")
        if problem:
            raise _fail(file, problem, label, line)
        base = dict(defaults)
        if "permissions" in request:  # several resources: the single-resource defaults do not apply
            for k in ("resource", "scopes", "approvals"):
                base.pop(k, None)
        elif "resource" in request or "scopes" in request:
            base.pop("permissions", None)
        merged = _merge(base, request)
        problem = _resource_members(merged)
        if problem:
            raise _fail(file, problem, label, line)
        expect = {k: case[k] for k in CASE_MEMBERS if k in case and k not in ("name", "description", "request")}
        out.append(TestCase(file, name, i, line, merged, expect))
    return out, extra_paths


# ------------------------------------------------------------------ finding files


def _discover(paths: list[str]) -> tuple[list[Path], list[Path]]:
    policies: list[Path] = []
    tests: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            policies.extend(sorted(f for f in p.rglob("*.policy") if f.is_file()))
            tests.extend(sorted(f for f in p.rglob("*" + TEST_SUFFIX) if f.is_file()))
        elif p.is_file() and p.name.endswith(TEST_SUFFIX):
            tests.append(p)
            sibling = p.with_name(p.name[: -len(TEST_SUFFIX)] + ".policy")
            if sibling.is_file():
                policies.append(sibling)
        elif p.is_file() and p.suffix == ".policy":
            policies.append(p)
            sibling = p.with_name(p.name[: -len(".policy")] + TEST_SUFFIX)
            if sibling.is_file():
                tests.append(sibling)
        elif not p.exists():
            raise TestFileError(f"{raw}: no such file or directory")
        else:
            raise TestFileError(f"{raw}: neither a policy (*.policy) nor a test file (*{TEST_SUFFIX})")
    return _unique(policies), _unique(tests)


def _unique(paths: list[Path]) -> list[Path]:
    seen: set[Path] = set()
    out = []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# ------------------------------------------------------------------ labels and rule names


def rule_labels(ps: PolicySet) -> dict[str, set[str]]:
    """Rule ref (file:line) → the labels of the ``# label: NAME`` comments just above it."""
    texts = {s.name: s.text.splitlines() for s in ps.sources}
    out: dict[str, set[str]] = {}
    for cr in ps.rules:
        lines = texts.get(cr.rule.pos.file)
        labels: set[str] = set()
        if lines:
            i = cr.rule.pos.line - 2
            while i >= 0 and lines[i].strip().startswith("#"):
                m = _LABEL.match(lines[i].strip())
                if m:
                    labels.add(m.group(1))
                i -= 1
        out[cr.ref] = labels
    return out


def _rule_line(ps: PolicySet) -> list[tuple[str, str]]:
    """Every rule: (file:line, the rule on one line)."""
    return [(cr.ref, rule_one_line(cr.rule)) for cr in ps.rules]


def _same_file(expected: str, actual: str, base_dir: Path) -> bool:
    if expected == actual:
        return True
    try:
        if (base_dir / expected).resolve() == Path(actual).resolve():
            return True
    except OSError:
        return False
    return actual.replace("\\", "/").endswith("/" + expected.lstrip("./"))


def _rule_matches(expected: str, ref: str | None, labels: dict[str, set[str]], base_dir: Path) -> bool:
    if ref is None:
        return False
    m = _REF.match(expected)
    if m:
        r = _REF.match(ref)
        return r is not None and r.group(2) == m.group(2) and _same_file(m.group(1), r.group(1), base_dir)
    return expected in labels.get(ref, ())


def _rule_exists(expected: str, labels: dict[str, set[str]], base_dir: Path) -> bool:
    return any(_rule_matches(expected, ref, labels, base_dir) for ref in labels)


# ------------------------------------------------------------------ checking one case


def _scopes_by_resource(entries: list[dict[str, Any]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in entries:
        out.setdefault(e["resource_id"], set()).update(e["scopes"])
    return out


def _show(scopes: Iterable[str]) -> str:
    return "[" + ", ".join(sorted(scopes)) + "]"


def _show_by_resource(m: dict[str, set[str]]) -> str:
    return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in sorted(m.items())) + "}"


def _check(case: TestCase, d: dict[str, Any], labels: dict[str, set[str]]) -> list[str]:
    exp = case.expect
    problems: list[str] = []
    if d["decision"] != exp["expect"]:
        problems.append(f"expected decision {exp['expect']}, got {d['decision']}")
    for key in ("granted", "denied", "submitted"):
        if key not in exp:
            continue
        got = _scopes_by_resource(d[key])
        want = exp[key]
        if isinstance(want, list):
            all_got = set().union(*got.values()) if got else set()
            if set(want) != all_got:
                problems.append(f"expected {key} {_show(want)}, got {_show(all_got)}")
        else:
            want_sets = {rid: set(s) for rid, s in want.items() if s}
            got_sets = {rid: s for rid, s in got.items() if s}
            if want_sets != got_sets:
                problems.append(f"expected {key} {_show_by_resource(want_sets)}, got {_show_by_resource(got_sets)}")
    if "required_claims" in exp:
        got_names = sorted(c["name"] for c in d["required_claims"])
        if sorted(set(exp["required_claims"])) != got_names:
            problems.append(f"expected required_claims {_show(exp['required_claims'])}, got {_show(got_names)}")
    if "rule" in exp:
        refs = [r.get("rule") for r in d["reasons"]]
        shown = ", ".join(_ref_text(ref, labels) for ref in dict.fromkeys(refs)) or "none"
        base_dir = Path(case.file).parent
        if exp["rule"] is None:
            if any(ref is not None for ref in refs):
                problems.append(f"expected no deciding rule (default deny), got {shown}")
        else:
            wanted = [exp["rule"]] if isinstance(exp["rule"], str) else exp["rule"]
            for w in wanted:
                if not _rule_exists(w, labels, base_dir):
                    kind = "rule starts at" if _REF.match(w) else "rule has the label"
                    problems.append(f"expected rule {w}, but no {kind} {w!r}")
                elif not any(_rule_matches(w, ref, labels, base_dir) for ref in refs):
                    problems.append(f"expected the decision to name rule {w}, got {shown}")
    if "expires_at" in exp:
        want_t = _parse_time(exp["expires_at"]) if exp["expires_at"] is not None else None
        if not d["granted"]:
            problems.append(f"expected expires_at {exp['expires_at']}, but nothing was granted")
        for g in d["granted"]:
            got_t = _parse_time(g.get("expires_at")) if g.get("expires_at") else None
            if got_t != want_t:
                problems.append(
                    f"expected expires_at {exp['expires_at'] or 'null (no expiry)'} for "
                    f"{g['resource_id']}, got {g.get('expires_at') or 'null (no expiry)'}"
                )
    return problems


def _ref_text(ref: str | None, labels: dict[str, set[str]]) -> str:
    if ref is None:
        return "default deny"
    names = sorted(labels.get(ref, ()))
    return f"{ref} ({', '.join(names)})" if names else ref


def _explanation(ps: PolicySet, request: dict[str, Any]) -> str:
    return render_explanation(explain_request(ps, request))


# ------------------------------------------------------------------ the entry point


def run_tests(paths: Iterable[str | Path] | str | Path, *, explain: bool = True) -> TestReport:
    """Find the policies and ``*.tests.json`` files under ``paths``, load the
    policies into one set, run every case, and report failures (with an
    explanation when ``explain``) and the rules no case exercised.

    Raises :class:`TestFileError` for a missing path or a malformed test file,
    and :class:`policy_lang.PolicyError` when the policies do not check."""
    if isinstance(paths, (str, Path)):
        paths = [str(paths)]
    policy_paths, test_paths = _discover([str(p) for p in paths])
    cases: list[TestCase] = []
    for tp in test_paths:
        file_cases, extra = load_test_file(tp)
        cases.extend(file_cases)
        for e in extra:
            ep = Path(e)
            if ep.is_dir():
                policy_paths.extend(sorted(f for f in ep.rglob("*.policy") if f.is_file()))
            elif ep.is_file():
                policy_paths.append(ep)
            else:
                raise _fail(str(tp), f"'policies' names {e}, which does not exist")
    policy_paths = _unique(policy_paths)
    ps = load([str(p) for p in policy_paths])
    labels = rule_labels(ps)
    exercised: set[str] = set()
    results: list[CaseResult] = []
    for case in cases:
        try:
            decision = ps.decide(case.request).to_json()
        except RequestError as e:
            raise _fail(case.file, f"the request is not valid: {e}", repr(case.name), case.line) from None
        for r in decision["reasons"]:
            if r.get("rule"):
                exercised.add(r["rule"])
        problems = _check(case, decision, labels)
        why = _explanation(ps, case.request) if problems and explain else ""
        results.append(CaseResult(case, problems, decision, why))
    return TestReport(
        results, _rule_line(ps), exercised, [str(t) for t in test_paths], [str(p) for p in policy_paths], explain
    )
