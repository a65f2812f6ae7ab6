"""One model of sharing rules, written out both as our policy language and as Cedar.

The benchmark (``bench/policy_engine.py``) and its smoke test build a
:class:`Model` of N rules spread over N/10 owners the way the server holds
them (one policy file per owner), then:

* :func:`our_sources` writes one ``owner "oNN"`` file per owner;
* :func:`cedar_policies` / :func:`cedar_entities` write the equivalent Cedar
  policy text and entity store;
* :func:`expected` answers a :class:`Req` directly from the model in plain
  Python: an oracle independent of both engines.

Every request carries every claim the rules read (``email``,
``email_verified``, ``role``), so our three-valued logic never meets an
UNKNOWN and Cedar never meets a missing attribute: both engines answer
permit or deny, and the two answers must match.

This module imports neither engine, so the smoke test can use it alone.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

SCOPES = ("view", "download", "print", "edit")
TYPES = ("photo-album", "document", "health-record")
NAMES = (
    "summer-2026",
    "winter-2025",
    "tax-2025",
    "notes",
    "private/diary",
    "private/keys",
    "health/labs/2026-03",
    "health/labs/2026-09",
)
NAME_GLOBS = ("private/*", "health/labs/*")
CLIENTS = ("photo-app", "clinic-app", "mail-app", "owner-phone", "owner-laptop")
ROLES = ("friend", "physician", "coworker", "accountant")
TIME = "2026-11-27T10:00:00Z"

HEADLINE_OURS = (
    'permit view on type "photo-album" when claims.email in family '
    'and claims.email_verified == true and client.id == "photo-app"'
)


@dataclass(frozen=True)
class Person:
    """A requesting party and the claims it presents (always all of them)."""

    email: str
    email_verified: bool
    role: str


@dataclass(frozen=True)
class Resource:
    id: str
    owner: str
    type: str
    name: str


@dataclass(frozen=True)
class Clause:
    """One condition clause; ``kind`` is one of the keys of ``_CLAUSE_*`` below."""

    kind: str
    value: str | tuple[str, ...] = ""


@dataclass(frozen=True)
class Rule:
    owner: str
    effect: str  # "permit" | "forbid"
    scopes: tuple[str, ...] | None  # None: any scope
    target: tuple[str, str]  # ("id"|"type"|"name"|"name_like", value)
    when: tuple[Clause, ...] = ()
    unless: tuple[Clause, ...] = ()


@dataclass
class Owner:
    id: str
    family: tuple[str, ...]
    resources: list[Resource] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)


@dataclass
class Model:
    owners: list[Owner]
    people: dict[str, Person]  # by email

    @property
    def n_rules(self) -> int:
        return sum(len(o.rules) for o in self.owners)

    def owner(self, owner_id: str) -> Owner:
        return self.owners[int(owner_id[1:])]


@dataclass(frozen=True)
class Req:
    """One decision to make: a person, through a client, asks one scope of one resource."""

    resource: Resource
    scope: str
    person: Person
    client: str


# ---------------------------------------------------------------------------
# Building the model


def headline_rule(owner: str) -> Rule:
    """The three-clause rule every owner has first (and the only rule at size 1)."""
    return Rule(
        owner=owner,
        effect="permit",
        scopes=("view",),
        target=("type", "photo-album"),
        when=(
            Clause("email_in_family"),
            Clause("email_verified"),
            Clause("client_eq", "photo-app"),
        ),
    )


def _random_clause(rng: random.Random, owner: Owner, people: list[Person]) -> Clause:
    kind = rng.choice(
        ("email_in_family", "email_eq", "email_verified", "email_ends_with", "role_eq", "client_eq", "client_in")
    )
    if kind == "email_eq":
        return Clause(kind, rng.choice(people).email)
    if kind == "email_ends_with":
        return Clause(kind, "@acme.example")
    if kind == "role_eq":
        return Clause(kind, rng.choice(ROLES))
    if kind == "client_eq":
        return Clause(kind, rng.choice(CLIENTS))
    if kind == "client_in":
        return Clause(kind, tuple(sorted(rng.sample(CLIENTS, 2))))
    return Clause(kind)


def _random_rule(rng: random.Random, owner: Owner, people: list[Person]) -> Rule:
    effect = "forbid" if rng.random() < 0.2 else "permit"
    scopes: tuple[str, ...] | None = None
    if rng.random() >= 0.15:
        chosen = set(rng.sample(SCOPES, rng.randint(1, 2)))
        scopes = tuple(s for s in SCOPES if s in chosen)
    pick = rng.random()
    if pick < 0.35:
        target = ("id", rng.choice(owner.resources).id)
    elif pick < 0.65:
        target = ("type", rng.choice(TYPES))
    elif pick < 0.90:
        target = ("name", rng.choice(owner.resources).name)
    else:
        target = ("name_like", rng.choice(NAME_GLOBS))
    when = tuple(_random_clause(rng, owner, people) for _ in range(rng.randint(1, 3)))
    unless: tuple[Clause, ...] = ()
    if effect == "forbid" and rng.random() < 0.5:
        # The guardrail shape: forbid ... unless client.id in [...]
        when = when[:1] if rng.random() < 0.5 else ()
        unless = (Clause("client_in", ("owner-laptop", "owner-phone")),)
    return Rule(owner.id, effect, scopes, target, when, unless)


def build_model(n_rules: int, seed: int = 2026, n_owners: int | None = None) -> Model:
    """N rules over ``n_owners`` owners (default max(1, N // 10)); every owner's first
    rule is the headline rule."""
    if n_rules < 1:
        raise ValueError("n_rules must be at least 1")
    rng = random.Random(seed)
    n_owners = n_owners or max(1, n_rules // 10)
    n_people = max(40, 2 * n_owners)
    people: list[Person] = []
    for i in range(n_people):
        domain = "acme.example" if i % 7 == 3 else "example.com"
        people.append(Person(f"p{i}@{domain}", rng.random() < 0.85, rng.choice(ROLES)))
    owners: list[Owner] = []
    for k in range(n_owners):
        oid = f"o{k}"
        family = tuple(sorted({p.email for p in rng.sample(people, rng.randint(2, 4))}))
        owner = Owner(oid, family)
        names = rng.sample(NAMES, rng.randint(3, 6))
        for j, name in enumerate(names):
            rtype = "photo-album" if j == 0 else rng.choice(TYPES)
            owner.resources.append(Resource(f"{oid}-r{j}", oid, rtype, name))
        owners.append(owner)
    base, extra = divmod(n_rules, n_owners)
    for k, owner in enumerate(owners):
        count = base + (1 if k < extra else 0)
        owner.rules.append(headline_rule(owner.id))
        while len(owner.rules) < count:
            owner.rules.append(_random_rule(rng, owner, people))
    return Model(owners, {p.email: p for p in people})


def build_requests(model: Model, count: int, seed: int = 7) -> list[Req]:
    """A mix of requests: family members, people named by rules, strangers; all clients."""
    rng = random.Random(seed)
    people = list(model.people.values())
    out: list[Req] = []
    for _ in range(count):
        owner = rng.choice(model.owners)
        resource = rng.choice(owner.resources)
        pick = rng.random()
        if pick < 0.5:
            person = model.people[rng.choice(owner.family)]
        elif pick < 0.7:
            named = [c.value for r in owner.rules for c in r.when if c.kind == "email_eq"]
            person = model.people[rng.choice(named)] if named else rng.choice(people)
        else:
            person = rng.choice(people)
        client = "photo-app" if rng.random() < 0.4 else rng.choice(CLIENTS)
        scope = "view" if rng.random() < 0.4 else rng.choice(SCOPES)
        out.append(Req(resource, scope, person, client))
    return out


def headline_requests(model: Model, count: int, seed: int = 11) -> list[Req]:
    """Requests that evaluate all three clauses of the headline rule and are permitted by it.

    A verified family member, through photo-app, asks `view` of a photo album
    (other rules of the owner may still forbid; the oracle says).
    """
    rng = random.Random(seed)
    candidates = [o for o in model.owners if any(model.people[e].email_verified for e in o.family)]
    if not candidates:
        raise ValueError("no owner has a verified family member; pick another seed")
    out: list[Req] = []
    while len(out) < count:
        owner = rng.choice(candidates)
        verified = [e for e in owner.family if model.people[e].email_verified]
        resource = rng.choice([r for r in owner.resources if r.type == "photo-album"])
        out.append(Req(resource, "view", model.people[rng.choice(verified)], "photo-app"))
    return out


# ---------------------------------------------------------------------------
# The oracle


def _clause_true(c: Clause, owner: Owner, req: Req) -> bool:
    p = req.person
    if c.kind == "email_in_family":
        return p.email in owner.family
    if c.kind == "email_eq":
        return p.email == c.value
    if c.kind == "email_verified":
        return p.email_verified is True
    if c.kind == "email_ends_with":
        return p.email.endswith(str(c.value))
    if c.kind == "role_eq":
        return p.role == c.value
    if c.kind == "client_eq":
        return req.client == c.value
    if c.kind == "client_in":
        return req.client in c.value
    raise ValueError(f"unknown clause kind {c.kind!r}")


def _targets(rule: Rule, res: Resource) -> bool:
    kind, value = rule.target
    if kind == "id":
        return res.id == value
    if kind == "type":
        return res.type == value
    if kind == "name":
        return res.name == value
    if kind == "name_like":
        return res.name.startswith(value.rstrip("*"))
    raise ValueError(f"unknown target kind {kind!r}")


def rule_applies(rule: Rule, owner: Owner, req: Req) -> bool:
    if rule.owner != req.resource.owner:
        return False
    if rule.scopes is not None and req.scope not in rule.scopes:
        return False
    if not _targets(rule, req.resource):
        return False
    if not all(_clause_true(c, owner, req) for c in rule.when):
        return False
    return not (rule.unless and all(_clause_true(c, owner, req) for c in rule.unless))


def expected(model: Model, req: Req) -> str:
    """'permit' or 'deny', straight from the model: forbid beats permit, default deny."""
    owner = model.owner(req.resource.owner)
    applying = [r.effect for r in owner.rules if rule_applies(r, owner, req)]
    if "forbid" in applying:
        return "deny"
    return "permit" if "permit" in applying else "deny"


# ---------------------------------------------------------------------------
# Our language


def _q(s: str) -> str:
    return json.dumps(s)


def _ours_clause(c: Clause) -> str:
    if c.kind == "email_in_family":
        return "claims.email in family"
    if c.kind == "email_eq":
        return f"claims.email == {_q(str(c.value))}"
    if c.kind == "email_verified":
        return "claims.email_verified == true"
    if c.kind == "email_ends_with":
        return f"claims.email ends with {_q(str(c.value))}"
    if c.kind == "role_eq":
        return f"claims.role == {_q(str(c.value))}"
    if c.kind == "client_eq":
        return f"client.id == {_q(str(c.value))}"
    if c.kind == "client_in":
        return "client.id in [" + ", ".join(_q(v) for v in c.value) + "]"
    raise ValueError(f"unknown clause kind {c.kind!r}")


_OURS_TARGET = {"id": "resource", "type": "type", "name": "name", "name_like": "name like"}


def ours_rule(rule: Rule) -> str:
    scopes = "any scope" if rule.scopes is None else ", ".join(rule.scopes)
    kind, value = rule.target
    text = f"{rule.effect} {scopes} on {_OURS_TARGET[kind]} {_q(value)}"
    if rule.when:
        text += " when " + " and ".join(_ours_clause(c) for c in rule.when)
    if rule.unless:
        text += " unless " + " and ".join(_ours_clause(c) for c in rule.unless)
    return text


def ours_text(owner: Owner) -> str:
    lines = [f"owner {_q(owner.id)}", ""]
    lines.append("group family = [" + ", ".join(_q(e) for e in owner.family) + "]")
    lines.append("")
    lines.extend(ours_rule(r) for r in owner.rules)
    return "\n".join(lines) + "\n"


def our_sources(model: Model) -> list[tuple[str, str, str]]:
    """(file name, text, owner) per owner, as the server holds them."""
    return [(f"{o.id}.policy", ours_text(o), o.id) for o in model.owners]


def our_request(req: Req) -> dict:
    r = req.resource
    return {
        "resource": {"id": r.id, "owner": r.owner, "type": r.type, "name": r.name, "scopes": list(SCOPES)},
        "scopes": [req.scope],
        "claims": {"email": req.person.email, "email_verified": req.person.email_verified, "role": req.person.role},
        "client": {"id": req.client},
        "time": TIME,
    }


# ---------------------------------------------------------------------------
# Cedar


def _cedar_set(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


def _cedar_clause(c: Clause, owner: Owner) -> str:
    if c.kind == "email_in_family":
        return f"{_cedar_set(owner.family)}.contains(principal.email)"
    if c.kind == "email_eq":
        return f"principal.email == {_q(str(c.value))}"
    if c.kind == "email_verified":
        return "principal.email_verified == true"
    if c.kind == "email_ends_with":
        # Cedar's `like` takes `*` as its only wildcard; the suffix has none.
        return f"principal.email like {_q('*' + str(c.value))}"
    if c.kind == "role_eq":
        return f"principal.role == {_q(str(c.value))}"
    if c.kind == "client_eq":
        return f"context.client.id == {_q(str(c.value))}"
    if c.kind == "client_in":
        return f"{_cedar_set(tuple(c.value))}.contains(context.client.id)"
    raise ValueError(f"unknown clause kind {c.kind!r}")


def _cedar_uid(kind: str, ident: str) -> str:
    return f"{kind}::{_q(ident)}"


def cedar_rule(rule: Rule, owner: Owner) -> str:
    if rule.scopes is None:
        action = "action"
    else:
        action = "action in [" + ", ".join(_cedar_uid("Action", s) for s in rule.scopes) + "]"
    kind, value = rule.target
    conds: list[str] = []
    if kind == "id":
        resource = f"resource == {_cedar_uid('Resource', value)}"
    else:
        resource = f"resource in {_cedar_uid('Owner', rule.owner)}"
        if kind == "type":
            conds.append(f"resource.rtype == {_q(value)}")
        elif kind == "name":
            conds.append(f"resource.name == {_q(value)}")
        else:
            conds.append(f"resource.name like {_q(value)}")
    conds.extend(_cedar_clause(c, owner) for c in rule.when)
    text = f"{rule.effect} (principal, {action}, {resource})"
    if conds:
        text += " when { " + " && ".join(conds) + " }"
    if rule.unless:
        text += " unless { " + " && ".join(_cedar_clause(c, owner) for c in rule.unless) + " }"
    return text + ";"


def cedar_policies(model: Model) -> str:
    return "\n".join(cedar_rule(r, o) for o in model.owners for r in o.rules) + "\n"


def cedar_policies_of(owner: Owner) -> str:
    """One owner's rules alone: for a caller that keeps one Cedar PolicySet per owner."""
    return "\n".join(cedar_rule(r, owner) for r in owner.rules) + "\n"


def cedar_entities(model: Model) -> str:
    """The entity store: owners, their resources (children of the owner), the people."""
    ents: list[dict] = []
    for o in model.owners:
        ents.append({"uid": {"type": "Owner", "id": o.id}, "attrs": {}, "parents": []})
        for r in o.resources:
            ents.append(
                {
                    "uid": {"type": "Resource", "id": r.id},
                    "attrs": {"rtype": r.type, "name": r.name, "owner": r.owner},
                    "parents": [{"type": "Owner", "id": o.id}],
                }
            )
    for p in model.people.values():
        ents.append(
            {
                "uid": {"type": "User", "id": p.email},
                "attrs": {"email": p.email, "email_verified": p.email_verified, "role": p.role},
                "parents": [],
            }
        )
    return json.dumps(ents)


def cedar_request(req: Req) -> dict:
    """Cedar request; the context is pre-serialised JSON (cedarpy accepts a string)."""
    return {
        "principal": _cedar_uid("User", req.person.email),
        "action": _cedar_uid("Action", req.scope),
        "resource": _cedar_uid("Resource", req.resource.id),
        "context": json.dumps({"client": {"id": req.client}}),
    }
