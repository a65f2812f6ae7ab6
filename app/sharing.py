"""Sharing without writing code (issue 15): a share is a rule in the owner's policy text.

A *share* is a rule of the owner's uploaded text of exactly this shape::

    permit view, download on resource "R" when claims.email == "bob@example.com" for 7d
    ask view on resource "R" when claims.sub in ["bob", "carol"] until 2026-12-31

(``permit`` or ``ask``; explicit scopes; one resource by id; a condition comparing one
top-level claim with a string, or with a list of strings; no ``unless``; an optional ``for``
or ``until``). :func:`share_rule` writes such a rule (formatted by ``policy_lang``'s
formatter), :func:`add_share` appends it to a text, :func:`read_shares` reads the shares of
one resource back from a text, :func:`stop_sharing` removes a share for one person (the rule,
or that person from a rule's list). Every other rule is left exactly as written:
:func:`other_rules` lists those naming the resource, for the pages to show as text.

A rule may also name the clients (applications) it is for, ``client.id`` compared the same
way, alone or joined to the claim's comparison by ``and`` (Keycloak's ``uma-policy``
``clients``, :mod:`app.keycloak_compat.uma_policy`)::

    permit view on resource "R" when claims.sub in ["bob", "carol"] and client.id == "photo-app"

:func:`share_rule` writes it with ``clients``, :func:`read_rules` reads it back. The pages'
form names people only: to them such a rule is one of the :func:`other_rules`.

No Flask and no database here: text in, text out. Saving goes through
:func:`app.owner_service.save_policy` (checked like any upload).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from policy_lang import PolicyError, Source, format_text, parse_source

#: How a person can be named in the form: the claim each choice compares.
#: A local account's user name is the ``sub`` claim of its sign-in (app/grant/interaction.py).
IDENTIFIERS = {"username": "sub", "email": "email"}
EFFECTS = ("permit", "ask")
_CLAIM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_TIMESTAMP_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$")
_DURATION_RE = re.compile(r"^[1-9][0-9]{0,5}[mhdw]$")
_SCOPE_MAX = 128
_VALUE_MAX = 320


#: How a rule's condition names the client, where a claim's name would be.
CLIENT = "client.id"


class ShareError(ValueError):
    """The form's input cannot make a share (the message says why, for the person)."""


@dataclass(frozen=True)
class Share:
    """One person's share read from a rule (``line``..``end_line`` of the text)."""

    resource_id: str
    effect: str
    scopes: tuple[str, ...]
    claim: str
    person: str
    expiry: str | None  # "for 7d" | "until 2026-12-31" | None
    line: int
    end_line: int
    others: tuple[str, ...]  # the other people the same rule names

    @property
    def who(self) -> str:
        """How the pages name the person: ``bob`` (user name), ``bob@example.com`` (email), ``claims.x = v``."""
        if self.claim in IDENTIFIERS.values():
            return self.person
        return f"{self.claim} = {self.person}"


@dataclass(frozen=True)
class SharedRule:
    """A rule of the share shape, whole: the people (``claim``, ``people``; None, [] when it
    names clients only) and the ``clients`` it names (``line``..``end_line`` of the text)."""

    resource_id: str
    effect: str
    scopes: tuple[str, ...]
    claim: str | None
    people: tuple[str, ...]
    clients: tuple[str, ...]
    expiry: str | None
    line: int
    end_line: int


def _parsed(text: str) -> Any:
    parsed = parse_source(Source("owner.policy", text))
    if parsed.file is None or any(d.is_error for d in parsed.diagnostics):
        return None
    return parsed.file


def _quote(value: str) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def share_rule(
    resource_id: str,
    scopes: list[str],
    claim: str,
    people: list[str],
    effect: str = "permit",
    duration: str | None = None,
    until: str | None = None,
    clients: list[str] | None = None,
) -> str:
    """The formatted text of one share rule (for ``people`` by ``claim``, and only through
    ``clients`` when given; ``people`` may be empty then); :class:`ShareError` for input it
    cannot be made of."""
    if effect not in EFFECTS:
        raise ShareError("Choose to share directly or to be asked first.")
    if not scopes:
        raise ShareError("Choose at least one scope to share.")
    if any(not s or len(s) > _SCOPE_MAX or "\x00" in s for s in scopes):
        raise ShareError("A scope name is empty or too long.")
    if not _CLAIM_RE.fullmatch(claim or ""):
        raise ShareError("A claim name is letters, digits and underscores (at most 64), e.g. email.")
    people = [p.strip() for p in people]
    clients = [c.strip() for c in clients or []]
    if not (people or clients) or any(not p or len(p) > _VALUE_MAX or "\x00" in p for p in [*people, *clients]):
        raise ShareError("Name the person to share with.")
    if duration and until:
        raise ShareError("Choose a duration or an end date, not both.")
    expiry = ""
    if duration:
        if not _DURATION_RE.fullmatch(duration):
            raise ShareError("A duration is a number and a unit: 30m, 12h, 7d or 2w.")
        expiry = f" for {duration}"
    elif until:
        try:
            if not _TIMESTAMP_RE.fullmatch(until):
                raise ValueError(until)
            datetime.fromisoformat(until)
        except ValueError:
            raise ShareError("An end date reads 2026-12-31.") from None
        expiry = f" until {until}"
    scope_list = ", ".join(_quote(s) for s in dict.fromkeys(scopes))
    parts = [f"claims.{claim} {_one_of(people)}"] if people else []
    if clients:
        parts.append(f"{CLIENT} {_one_of(clients)}")
    text = f"{effect} {scope_list} on resource {_quote(resource_id)} when {' and '.join(parts)}{expiry}\n"
    try:
        return format_text(text).strip("\n")
    except PolicyError:
        raise ShareError("These values do not make a valid rule.") from None


def _one_of(values: list[str]) -> str:
    """``== "v"`` for one value, ``in ["v", "w"]`` for several."""
    return f"== {_quote(values[0])}" if len(values) == 1 else "in [" + ", ".join(_quote(v) for v in values) + "]"


def add_share(text: str, rule: str) -> str:
    """``text`` with ``rule`` appended after one blank line (the rest untouched)."""
    body = text.rstrip("\n")
    return f"{body}\n\n{rule}\n" if body else f"{rule}\n"


def _compared(cond: Any) -> tuple[str, list[str]] | None:
    """``claims.x == "v"`` / ``claims.x in ["v", …]`` → ``("x", values)``; the same on
    ``client.id`` → ``(CLIENT, values)``; None for any other condition."""
    if type(cond).__name__ != "Compare" or type(cond.right).__name__ != "Literal":
        return None
    left, value = cond.left, cond.right
    if type(left).__name__ == "ClaimRef":
        if left.quoted or tuple(left.path) != (left.name,) or not _CLAIM_RE.fullmatch(left.name):
            return None
        who = left.name
    elif type(left).__name__ == "AttrRef" and (left.entity, left.name) == ("client", "id"):
        who = CLIENT
    else:
        return None
    if cond.op == "==" and value.kind == "string":
        return who, [value.value]
    if cond.op == "in" and value.kind == "list" and value.value and all(v.kind == "string" for v in value.value):
        return who, [v.value for v in value.value]
    return None


def _rule_of(rule: Any, resource_id: str | None) -> SharedRule | None:
    """The rule as a :class:`SharedRule` (of ``resource_id``, or of any resource with None), or
    None when it is not of the share shape: one comparison, or a claim's and ``client.id``'s
    joined by ``and``."""
    target, cond = rule.target, rule.when
    if (
        rule.effect not in EFFECTS
        or rule.scopes is None
        or target.kind != "id"
        or (resource_id is not None and target.resource_id != resource_id)
        or rule.unless is not None
        or cond is None
    ):
        return None
    parts = cond.items if type(cond).__name__ == "And" and len(cond.items) == 2 else (cond,)
    claim, people, clients = None, [], []
    for part in parts:
        found = _compared(part)
        if found is None or (found[0] == CLIENT and clients) or (found[0] != CLIENT and claim is not None):
            return None
        if found[0] == CLIENT:
            clients = found[1]
        else:
            claim, people = found
    return SharedRule(
        resource_id=target.resource_id,
        effect=rule.effect,
        scopes=tuple(rule.scopes),
        claim=claim,
        people=tuple(people),
        clients=tuple(clients),
        expiry=f"{rule.expiry.kind} {rule.expiry.text}" if rule.expiry is not None else None,
        line=rule.pos.line,
        end_line=rule.pos.end_line,
    )


def _share_of(rule: Any, resource_id: str | None) -> list[Share]:
    """The shares one parsed rule is (of ``resource_id``, or of any resource with None), or []
    when the form cannot represent it (a rule naming clients is not a share of the form)."""
    found = _rule_of(rule, resource_id)
    if found is None or found.clients or found.claim is None:
        return []
    return [
        Share(
            resource_id=found.resource_id,
            effect=found.effect,
            scopes=found.scopes,
            claim=found.claim,
            person=p,
            expiry=found.expiry,
            line=found.line,
            end_line=found.end_line,
            others=tuple(o for o in found.people if o != p),
        )
        for p in found.people
    ]


def read_rules(text: str | None) -> list[SharedRule]:
    """The rules of the share shape in ``text``, people and clients alike, in the order of the text."""
    pf = _parsed(text) if text else None
    if pf is None:
        return []
    return [found for rule in pf.rules if (found := _rule_of(rule, None)) is not None]


def read_shares(text: str | None, resource_id: str | None) -> list[Share]:
    """Every person's share of ``resource_id`` (None: of every resource) in ``text``, in the
    order of the text."""
    pf = _parsed(text) if text else None
    if pf is None:
        return []
    return [s for rule in pf.rules for s in _share_of(rule, resource_id)]


def other_rules(text: str | None, resource_id: str) -> list[dict[str, Any]]:
    """The rules of ``text`` naming ``resource_id`` that are not shares: ``{"line", "text"}``."""
    pf = _parsed(text) if text else None
    if pf is None:
        return []
    lines = (text or "").splitlines()
    out = []
    for rule in pf.rules:
        if rule.target.kind == "id" and rule.target.resource_id == resource_id and not _share_of(rule, resource_id):
            out.append({"line": rule.pos.line, "text": "\n".join(lines[rule.pos.line - 1 : rule.pos.end_line])})
    return out


def stop_sharing(text: str, resource_id: str, line: int, claim: str, person: str) -> str:
    """``text`` without ``person``'s share in the rule at ``line``: the whole rule when it names
    no one else, else the rule narrowed to the others (rewritten, formatted). :class:`ShareError`
    when there is no such share (the text changed meanwhile)."""
    found = [s for s in read_shares(text, resource_id) if s.line == line and s.claim == claim and s.person == person]
    if not found:
        raise ShareError("That share is no longer in your policy.")
    share = found[0]
    lines = text.splitlines()
    before, after = lines[: share.line - 1], lines[share.end_line :]
    if share.others:
        duration = share.expiry[4:] if share.expiry and share.expiry.startswith("for ") else None
        until = share.expiry[6:] if share.expiry and share.expiry.startswith("until ") else None
        rule = share_rule(
            resource_id, list(share.scopes), share.claim, list(share.others), share.effect, duration, until
        )
        kept = [*before, *rule.splitlines(), *after]
    else:
        if before and not before[-1].strip() and (not after or not after[0].strip()):
            before = before[:-1]  # the blank line that separated it
        kept = [*before, *after]
    return "\n".join(kept).strip("\n") + "\n"


def text_diff(old: str, new: str) -> list[dict[str, str]]:
    """A line diff for the pages: ``{"kind": "add"|"del"|"same"|"hunk", "text"}`` per line."""
    out = []
    for line in difflib.unified_diff(old.splitlines(), new.splitlines(), "before", "after", lineterm="", n=3):
        if line.startswith(("---", "+++")):
            continue
        kind = {"+": "add", "-": "del", "@": "hunk"}.get(line[:1], "same")
        out.append({"kind": kind, "text": line})
    return out
