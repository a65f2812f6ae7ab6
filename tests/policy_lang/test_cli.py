"""``uma policy …`` (policy_lang.cli): every subcommand and exit code, in-process
through ``main([...])`` and through real processes (``python -m policy_lang``).

Exit codes: 0 fine; 1 policy errors, failed tests, fmt --check differences
(and changed decisions with ``diff --exit-code``); 2 bad usage or input, in
one line on stderr, never a traceback.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import policy_lang
from policy_lang.cli import main
from policy_lang.fmt import format_text

ALICE = """\
owner "alice"
group family = ["bob@example.com", "carol@example.com"]
claims email, email_verified from "https://idp.example.com" as id_token

# Family may view and download my photo albums.
permit view, download
  on type "photo-album"
  when claims.email in family and claims.email_verified == true

forbid any scope
  on name like "private/*"
  unless client.id in ["alice-phone", "alice-laptop"]
"""

BROKEN = 'owner "alice"\npermit view on any resource when claims.email in frends\n'
WARNS = 'owner "alice"\ngroup unused = ["x"]\npermit view on any resource when claims.email == "a@b"\n'
SYNTAX = 'owner "alice"\nallow view on any resource\n'

REQUEST = {
    "resource": {
        "id": "r1",
        "owner": "alice",
        "type": "photo-album",
        "name": "summer-2026",
        "scopes": ["view", "download", "print"],
    },
    "scopes": ["view"],
    "claims": {"email": "bob@example.com", "email_verified": True},
    "client": {"id": "photo-app"},
    "time": "2026-11-27T10:00:00Z",
    "approvals": [],
}


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A directory with policies and requests; the current directory for the test."""
    (tmp_path / "pol").mkdir()
    (tmp_path / "pol" / "alice.policy").write_text(ALICE)
    (tmp_path / "broken.policy").write_text(BROKEN)
    (tmp_path / "warns.policy").write_text(WARNS)
    (tmp_path / "syntax.policy").write_text(SYNTAX)
    (tmp_path / "request.json").write_text(json.dumps(REQUEST))
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *args, stdin: str | None = None, monkeypatch=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- check


def test_check_clean_policies_exit_0_with_summary(work, capsys):
    code, out, err = run(capsys, "check", "pol")
    assert code == 0 and err == ""
    assert out == "1 file checked: no problems\n"


def test_check_error_exit_1_renders_located_diagnostic(work, capsys):
    code, out, err = run(capsys, "check", "pol", "broken.policy")
    assert code == 1
    assert "broken.policy:2:" in out and "error[E200]" in out and "frends" in out
    assert "^" in out  # the caret under the offending text
    assert out.rstrip().endswith("2 files checked: 1 error, 0 warnings")


def test_check_warnings_alone_exit_0_and_strict_makes_them_fail(work, capsys):
    code, out, _ = run(capsys, "check", "warns.policy")
    assert code == 0 and "warning[W303]" in out
    assert out.rstrip().endswith("1 file checked: 0 errors, 1 warning")
    code, out, _ = run(capsys, "check", "--strict", "warns.policy")
    assert code == 1


def test_check_json_format(work, capsys):
    code, out, _ = run(capsys, "check", "--format", "json", "broken.policy", "warns.policy")
    assert code == 1
    diags = json.loads(out)
    assert [(d["code"], d["severity"], d["file"], d["line"]) for d in diags] == [
        (
            "E200",
            "error",
            "broken.policy",
            2,
        ),
        ("W303", "warning", "warns.policy", 2),
    ]
    assert set(diags[0]) >= {"code", "severity", "message", "file", "line", "column", "hint"}
    code, out, _ = run(capsys, "check", "--format", "json", "pol")
    assert code == 0 and json.loads(out) == []


def test_check_syntax_error(work, capsys):
    code, out, _ = run(capsys, "check", "syntax.policy")
    assert code == 1 and "syntax.policy:2:1: error[E102]" in out and "did you mean 'permit'?" in out


def test_check_empty_policy_file_is_fine(work, capsys):
    (work / "nothing.policy").write_text("")
    code, out, _ = run(capsys, "check", "nothing.policy")
    assert code == 0 and out == "1 file checked: no problems\n"


# ---------------------------------------------------------------- eval


def test_eval_prints_the_decision(work, capsys):
    code, out, err = run(capsys, "eval", "pol", "--request", "request.json")
    assert code == 0 and err == ""
    expected = policy_lang.load(["pol"]).decide(REQUEST).to_json()
    assert json.loads(out) == expected
    assert json.loads(out)["decision"] == "permit"
    assert out == json.dumps(expected, indent=2, ensure_ascii=False) + "\n"


def test_eval_request_from_stdin(work, capsys, monkeypatch):
    req = {**REQUEST, "resource": {**REQUEST["resource"], "name": "private/x"}}
    code, out, _ = run(capsys, "eval", "pol", "--request", "-", stdin=json.dumps(req), monkeypatch=monkeypatch)
    assert code == 0 and json.loads(out)["decision"] == "deny"


def test_eval_explain_json(work, capsys):
    code, out, _ = run(capsys, "eval", "pol", "--request", "request.json", "--explain")
    data = json.loads(out)
    assert code == 0 and data["decision"] == "permit"
    [e] = data["explanation"]
    assert (e["scope"], e["outcome"], e["step"]) == ("view", "granted", 3)
    assert e["rules"] == ["pol/alice.policy:6"]


def test_eval_explain_text(work, capsys):
    code, out, _ = run(capsys, "eval", "pol", "--request", "request.json", "--explain", "--text")
    assert code == 0
    assert out.startswith("decision: permit\n")
    assert "r1 view: granted (step 3: a permit whose condition is true grants the scope; pol/alice.policy:6)" in out
    assert "claims.email in family  -> true" in out


def test_eval_odd_claim_values_are_printed_not_crashed_on(work, capsys):
    req = {**REQUEST, "claims": {"email": "\ud800bob", "email_verified": "\u00e9"}}
    (work / "odd.json").write_text(json.dumps(req))  # JSON escapes: a lone surrogate is valid JSON
    p = _proc(PY + ["eval", "pol", "--request", "odd.json", "--explain", "--text"], work)
    assert p.returncode == 0, p.stderr
    assert "decision: deny" in p.stdout and "\\ud800bob" in p.stdout and "é" in p.stdout


def test_eval_with_policy_errors_exit_1_diagnostics_on_stderr(work, capsys):
    code, out, err = run(capsys, "eval", "broken.policy", "--request", "request.json")
    assert code == 1 and out == ""
    assert "broken.policy:2:" in err and "error[E200]" in err
    assert err.rstrip().endswith("uma policy eval: 1 error in the policies")


# ---------------------------------------------------------------- fmt

MESSY = 'owner   "alice"\npermit   view on any resource when claims.email=="a@b"   # ok\n'
MESSY_OUT = 'owner "alice"\n\npermit view  # ok\n  on any resource\n  when claims.email == "a@b"\n'


def test_fmt_rewrites_files(work, capsys):
    (work / "m.policy").write_text(MESSY)
    code, out, err = run(capsys, "fmt", "m.policy", "pol")
    assert code == 0
    assert (work / "m.policy").read_text() == MESSY_OUT
    assert "reformatted m.policy" in err
    assert (work / "pol" / "alice.policy").read_text() == format_text(ALICE)
    code, out, err = run(capsys, "fmt", "m.policy")
    assert code == 0 and "0 files reformatted, 1 unchanged" in err


def test_fmt_keeps_file_mode(work, capsys):
    (work / "m.policy").write_text(MESSY)
    os.chmod(work / "m.policy", 0o640)
    assert run(capsys, "fmt", "m.policy")[0] == 0
    assert (work / "m.policy").stat().st_mode & 0o777 == 0o640
    assert [p.name for p in work.iterdir() if p.name.startswith(".m.policy")] == []


def test_fmt_check_lists_files_and_writes_nothing(work, capsys):
    (work / "m.policy").write_text(MESSY)
    code, out, err = run(capsys, "fmt", "--check", "m.policy")
    assert code == 1 and out == "would reformat m.policy\n"
    assert (work / "m.policy").read_text() == MESSY
    (work / "ok.policy").write_text(MESSY_OUT)
    code, out, _ = run(capsys, "fmt", "--check", "ok.policy")
    assert code == 0 and out == ""


def test_fmt_stdin_to_stdout(work, capsys, monkeypatch):
    code, out, err = run(capsys, "fmt", "-", stdin=MESSY, monkeypatch=monkeypatch)
    assert code == 0 and out == MESSY_OUT and err == ""
    code, out, _ = run(capsys, "fmt", "--check", "-", stdin=MESSY, monkeypatch=monkeypatch)
    assert code == 1 and out == "would reformat <stdin>\n"
    code, out, _ = run(capsys, "fmt", "--check", "-", stdin=MESSY_OUT, monkeypatch=monkeypatch)
    assert code == 0


def test_fmt_refuses_syntax_errors(work, capsys):
    code, out, err = run(capsys, "fmt", "syntax.policy")
    assert code == 1
    assert "syntax.policy:2:1: error[E102]" in err
    assert "syntax.policy: not formatted: fix the syntax errors first" in err
    assert (work / "syntax.policy").read_text() == SYNTAX


def test_fmt_formats_files_with_meaning_errors(work, capsys):
    # fmt needs only syntax: an unknown group is check's business
    code, _, _ = run(capsys, "fmt", "broken.policy")
    assert code == 0
    assert (work / "broken.policy").read_text() == (
        'owner "alice"\n\npermit view\n  on any resource\n  when claims.email in frends\n'
    )


# ---------------------------------------------------------------- who-can


def test_who_can_by_options(work, capsys):
    code, out, err = run(
        capsys,
        "who-can",
        "pol",
        "--resource-id",
        "r1",
        "--owner",
        "alice",
        "--type",
        "photo-album",
        "--name",
        "summer-2026",
        "--scope",
        "view",
    )
    from policy_lang import who_can

    ps = policy_lang.load(["pol"])
    res = {"id": "r1", "owner": "alice", "type": "photo-album", "name": "summer-2026"}
    assert code == 0 and err == ""
    assert out == who_can(ps, res, ["view"]).rstrip("\n") + "\n"
    assert "claims.email in family" in out


def test_who_can_json(work, capsys):
    code, out, _ = run(
        capsys,
        "who-can",
        "pol",
        "--resource-id",
        "r1",
        "--owner",
        "alice",
        "--type",
        "photo-album",
        "--scope",
        "view",
        "--format",
        "json",
    )
    data = json.loads(out)
    assert code == 0 and data["resource"] == {"id": "r1", "owner": "alice", "type": "photo-album"}
    assert {(e["scope"], e["effect"], e["rule"]) for e in data["entries"]} >= {("view", "permit", "pol/alice.policy:6")}


def test_who_can_by_resource_file(work, capsys):
    (work / "res.json").write_text(json.dumps(REQUEST["resource"]))
    code, out, _ = run(capsys, "who-can", "pol", "--resource", "res.json")
    assert code == 0 and "download" in out and "view" in out
    # a request file names its resource
    code, out2, _ = run(capsys, "who-can", "pol", "--resource", "request.json")
    assert code == 0 and out2 == out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--resource-id", "r1"], "uma policy who-can: --resource-id needs --owner (whose resource it is)"),
        ([], "uma policy who-can: give the resource: --resource RESOURCE.json, or --resource-id ID --owner OWNER"),
        (
            ["--resource", "noowner.json"],
            "uma policy who-can: bad resource in noowner.json: 'resource' needs an 'owner' (a string)",
        ),
        (["--resource", "colour.json"], "uma policy who-can: bad resource in colour.json: unknown member 'colour'"),
        (["--resource", "nope.json"], "uma policy who-can: cannot read nope.json: No such file or directory"),
    ],
)
def test_who_can_bad_resource_exit_2(work, capsys, args, message):
    (work / "noowner.json").write_text('{"id": "r1"}')
    (work / "colour.json").write_text('{"id": "r1", "owner": "alice", "colour": "red"}')
    code, out, err = run(capsys, "who-can", "pol", *args)
    assert code == 2 and out == ""
    assert err.startswith(message) and len(err.splitlines()) == 1


# ---------------------------------------------------------------- diff


def _changed_policy(work) -> Path:
    new = work / "new"
    new.mkdir()
    (new / "alice.policy").write_text(ALICE.replace('"carol@example.com"]', '"carol@example.com", "dave@example.com"]'))
    return new


def test_diff_no_changes(work, capsys):
    code, out, _ = run(capsys, "diff", "pol", "pol", "--exit-code")
    assert code == 0 and out.startswith("No decision changes over")


def test_diff_over_recorded_requests(work, capsys):
    new = _changed_policy(work)
    dave = {**REQUEST, "claims": {"email": "dave@example.com", "email_verified": True}}
    (work / "reqs.jsonl").write_text(json.dumps(REQUEST) + "\n\n" + json.dumps(dave) + "\n")
    code, out, _ = run(capsys, "diff", "pol", str(new), "--requests", "reqs.jsonl")
    from policy_lang import diff

    report = diff(policy_lang.load(["pol"]), policy_lang.load([new]), [REQUEST, dave])
    assert code == 0 and len(report.changes) == 1
    assert out == report.render().rstrip("\n") + "\n"
    code, _, _ = run(capsys, "diff", "pol", str(new), "--requests", "reqs.jsonl", "--exit-code")
    assert code == 1
    code, out, _ = run(capsys, "diff", "pol", str(new), "--requests", "reqs.jsonl", "--format", "json")
    data = json.loads(out)
    assert code == 0 and data["checked"] == 2 and len(data["changes"]) == 1
    assert data["changes"][0]["request"] == dave
    assert (data["changes"][0]["old"]["decision"], data["changes"][0]["new"]["decision"]) == ("deny", "permit")


def test_diff_bad_requests_file_exit_2(work, capsys):
    (work / "reqs.jsonl").write_text(json.dumps(REQUEST) + "\n{nope\n")
    code, out, err = run(capsys, "diff", "pol", "pol", "--requests", "reqs.jsonl")
    assert code == 2 and out == ""
    assert err.startswith("uma policy diff: reqs.jsonl:2 is not JSON:") and len(err.splitlines()) == 1
    (work / "reqs.jsonl").write_text(json.dumps({**REQUEST, "extra": 1}) + "\n")
    code, _, err = run(capsys, "diff", "pol", "pol", "--requests", "reqs.jsonl")
    assert code == 2 and err.startswith("uma policy diff: bad request at reqs.jsonl:1: unknown member 'extra'")


# ---------------------------------------------------------------- test

ALICE_TESTS = {
    "defaults": {
        "resource": {"id": "r1", "owner": "alice", "type": "photo-album", "name": "summer-2026"},
        "scopes": ["view"],
        "client": {"id": "photo-app"},
        "time": "2026-11-27T10:00:00Z",
    },
    "cases": [
        {
            "name": "family views",
            "request": {"claims": {"email": "bob@example.com", "email_verified": True}},
            "expect": "permit",
        },
        {
            "name": "private stays home",
            "expect": "deny",
            "request": {
                "resource": {"name": "private/x"},
                "claims": {"email": "bob@example.com", "email_verified": True},
            },
        },
    ],
}


def test_test_passing_cases_exit_0(work, capsys):
    (work / "pol" / "alice.tests.json").write_text(json.dumps(ALICE_TESTS))
    code, out, err = run(capsys, "test", "pol")
    assert code == 0 and err == ""
    assert "2 passed, 0 failed" in out
    assert "coverage: 2 of 2 rules exercised" in out


def test_test_failing_case_exit_1_with_explanation(work, capsys):
    tests = json.loads(json.dumps(ALICE_TESTS))
    tests["cases"][1]["expect"] = "permit"
    (work / "pol" / "alice.tests.json").write_text(json.dumps(tests))
    code, out, _ = run(capsys, "test", "pol")
    assert code == 1
    assert "FAIL" in out and "private stays home" in out and "1 passed, 1 failed" in out
    assert "step 1: a forbid whose condition is true denies the scope" in out
    code, out, _ = run(capsys, "test", "--no-explain", "pol")
    assert code == 1 and "FAIL" in out and "step 1:" not in out


def test_test_json_format(work, capsys):
    tests = json.loads(json.dumps(ALICE_TESTS))
    tests["cases"][1]["expect"] = "permit"
    (work / "pol" / "alice.tests.json").write_text(json.dumps(tests))
    code, out, _ = run(capsys, "test", "--format", "json", "pol")
    data = json.loads(out)
    assert code == 1 and (data["ok"], data["passed"], data["failed"]) == (False, 1, 1)
    assert data["failures"][0]["name"] == "private stays home"


def test_test_reports_rules_no_case_exercised(work, capsys):
    tests = json.loads(json.dumps(ALICE_TESTS))
    del tests["cases"][1]
    (work / "pol" / "alice.tests.json").write_text(json.dumps(tests))
    code, out, _ = run(capsys, "test", "pol")
    assert code == 0 and "coverage: 1 of 2 rules exercised" in out
    assert "pol/alice.policy:10" in out


def test_test_malformed_test_file_exit_2(work, capsys):
    (work / "pol" / "alice.tests.json").write_text(json.dumps({"cases": [{"name": "x", "expekt": "permit"}]}))
    code, out, err = run(capsys, "test", "pol")
    assert code == 2 and out == ""
    assert err.startswith("uma policy test: ") and "alice.tests.json" in err and "expekt" in err
    assert "Traceback" not in err


def test_test_with_policy_errors_exit_1(work, capsys):
    (work / "pol" / "broken.policy").write_text(BROKEN)
    (work / "pol" / "alice.tests.json").write_text(json.dumps(ALICE_TESTS))
    code, out, err = run(capsys, "test", "pol")
    assert code == 1 and "error[E200]" in err


# ---------------------------------------------------------------- bad inputs and usage


def _write_inputs(work: Path) -> None:
    (work / "notjson.json").write_text("{'resource': 1}")
    (work / "unknown.json").write_text(json.dumps({**REQUEST, "colour": "red"}))
    (work / "nores.json").write_text(json.dumps({"scopes": ["view"]}))
    (work / "binary.policy").write_bytes(b"\xff\xfe\x00\x81policy")
    (work / "binary.json").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (work / "empty.json").write_text("")
    (work / "nan.json").write_text('{"resource": {"id": "r1", "owner": "alice"}, "scopes": [], "claims": {"x": NaN}}')
    (work / "list.json").write_text("[1, 2]")


BAD_INPUTS = [
    (["check", "nope.policy"], "uma policy check: cannot read nope.policy: No such file or directory"),
    (["check", "empty"], "uma policy check: no .policy files in empty"),
    (["check", "binary.policy"], "uma policy check: cannot read binary.policy: not UTF-8 text"),
    (["fmt", "nope.policy"], "uma policy fmt: cannot read nope.policy: No such file or directory"),
    (["fmt", "empty"], "uma policy fmt: no .policy files in empty"),
    (["fmt", "binary.policy"], "uma policy fmt: cannot read binary.policy: not UTF-8 text"),
    (
        ["eval", "pol", "--request", "request.jsn"],
        "uma policy eval: cannot read request.jsn: No such file or directory",
    ),
    (
        ["eval", "pol", "--request", "notjson.json"],
        "uma policy eval: notjson.json is not JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
    ),
    (
        ["eval", "pol", "--request", "unknown.json"],
        "uma policy eval: bad request in unknown.json: unknown member 'colour' in the request",
    ),
    (
        ["eval", "pol", "--request", "nores.json"],
        "uma policy eval: bad request in nores.json: the request needs a 'resource' (or 'permissions')",
    ),
    (["eval", "pol", "--request", "binary.json"], "uma policy eval: cannot read binary.json: not UTF-8 text"),
    (
        ["eval", "pol", "--request", "empty.json"],
        "uma policy eval: empty.json is not JSON: Expecting value (line 1, column 1)",
    ),
    (["eval", "pol", "--request", "nan.json"], "uma policy eval: nan.json is not JSON: NaN is not allowed in JSON"),
    (
        ["eval", "pol", "--request", "list.json"],
        "uma policy eval: bad request in list.json: a request is a JSON object",
    ),
    (["eval", "pol", "--request", "empty"], "uma policy eval: cannot read empty: Is a directory"),
    (["eval", "nope", "--request", "request.json"], "uma policy eval: cannot read nope: No such file or directory"),
    (["eval", "empty", "--request", "request.json"], "uma policy eval: no .policy files in empty"),
    (
        ["who-can", "nope", "--resource-id", "r", "--owner", "o"],
        "uma policy who-can: cannot read nope: No such file or directory",
    ),
    (["diff", "pol", "nope"], "uma policy diff: cannot read nope: No such file or directory"),
    (["diff", "pol", "pol", "--requests", "empty.json"], "uma policy diff: empty.json holds no requests"),
    (["test", "nope"], "uma policy test: cannot read nope: No such file or directory"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_bad_input_exit_2_with_one_clear_line(work, capsys, args, message):
    _write_inputs(work)
    code, out, err = run(capsys, *args)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert err.startswith(message), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args,first_line",
    [
        (["eval", "pol"], "uma policy eval: the following arguments are required: --request"),
        ([], "uma policy: the following arguments are required: COMMAND"),
        (["frobnicate"], "uma policy: argument COMMAND: invalid choice: 'frobnicate'"),
        (["check"], "uma policy check: the following arguments are required: PATH"),
        (["check", "pol", "--format", "xml"], "uma policy check: argument --format: invalid choice: 'xml'"),
        (["check", "pol", "--bogus"], "uma policy: unrecognized arguments: --bogus"),
        (
            ["who-can", "pol", "--resource", "a.json", "--resource-id", "r"],
            "uma policy who-can: argument --resource-id: not allowed with argument --resource",
        ),
        (["diff", "pol"], "uma policy diff: the following arguments are required: NEW"),
    ],
)
def test_usage_errors_exit_2_one_line_plus_usage(work, capsys, args, first_line):
    code, out, err = run(capsys, *args)
    assert code == 2 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith(first_line), err
    assert lines[1].startswith("usage: uma policy")
    assert "Traceback" not in err


def test_fmt_stdin_cannot_mix_with_files(work, capsys):
    code, _, err = run(capsys, "fmt", "-", "pol")
    assert code == 2 and err == "uma policy fmt: '-' (standard input) cannot be mixed with files\n"


def test_help_exits_0(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("check", "eval", "fmt", "test", "who-can", "diff"):
        assert command in out
    assert main(["eval", "--help"]) == 0
    assert "--explain" in capsys.readouterr().out


def test_internal_errors_are_one_line_not_a_traceback(work, capsys, monkeypatch):
    def boom(self, request):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(policy_lang.PolicySet, "decide", boom)
    code, out, err = run(capsys, "eval", "pol", "--request", "request.json")
    assert code == 2 and out == ""
    assert err == ("uma policy eval: internal error (ZeroDivisionError: division by zero); please report it\n")


def test_unreadable_policy_paths_exit_2(work, capsys):
    (work / "dangling.policy").symlink_to(work / "gone.policy")
    code, _, err = run(capsys, "check", "dangling.policy")
    assert code == 2 and err == "uma policy check: cannot read dangling.policy: No such file or directory\n"
    (work / "pol" / "dir.policy").mkdir()  # a directory named like a policy is not read as one
    (work / "only-dirs").mkdir()
    (work / "only-dirs" / "x.policy").mkdir()
    code, _, err = run(capsys, "check", "only-dirs")
    assert code == 2 and err == "uma policy check: no .policy files in only-dirs\n"
    assert run(capsys, "check", "pol")[0] == 0


def test_fmt_through_a_symlink_rewrites_the_target(work, capsys):
    (work / "m.policy").write_text(MESSY)
    (work / "link.policy").symlink_to(work / "m.policy")
    assert run(capsys, "fmt", "link.policy")[0] == 0
    assert (work / "link.policy").is_symlink()
    assert (work / "m.policy").read_text() == MESSY_OUT


# ---------------------------------------------------------------- real processes


def _proc(args: list[str], cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60)


PY = [sys.executable, "-m", "policy_lang"]


def test_python_m_policy_lang_check_and_eval(work):
    p = _proc(PY + ["check", "pol", "broken.policy"], work)
    assert p.returncode == 1 and "2 files checked: 1 error, 0 warnings" in p.stdout
    p = _proc(PY + ["eval", "pol", "--request", "-"], work, stdin=json.dumps(REQUEST))
    assert p.returncode == 0 and json.loads(p.stdout)["decision"] == "permit" and p.stderr == ""


def test_python_m_policy_lang_bad_input_is_one_line(work):
    p = _proc(PY + ["eval", "pol", "--request", "request.jsn"], work)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr == "uma policy eval: cannot read request.jsn: No such file or directory\n"
    p = _proc(PY + ["eval", "pol"], work)
    assert p.returncode == 2 and p.stderr.splitlines()[0] == (
        "uma policy eval: the following arguments are required: --request"
    )


def test_python_m_policy_lang_fmt_stdin(work):
    p = _proc(PY + ["fmt", "-"], work, stdin=MESSY)
    assert p.returncode == 0 and p.stdout == MESSY_OUT
    p = _proc(PY + ["fmt", "--check", "pol"], work)
    assert p.returncode == 1 and p.stdout == "would reformat pol/alice.policy\n"


UMA = Path(sys.executable).parent / "uma"


def test_uma_policy_console_script(work):
    """The installed ``uma`` entry point (app.cli:main) hands ``policy …`` to policy_lang.cli.main."""
    assert UMA.exists(), "the project is installed (pip install -e .) with its uma console script"
    p = _proc([str(UMA), "policy", "eval", "pol", "--request", "request.json", "--explain"], work)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["explanation"][0]["step"] == 3
