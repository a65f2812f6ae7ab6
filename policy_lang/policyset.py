"""Sources → a checked, compiled PolicySet of independently compiled units, and its decide().

A policy set is made of **units**, one per policy text (an operator's file or
an owner's upload). A unit is read and compiled on its own: its rules'
conditions read only its own groups, so its compiled rules never change
when another unit does. What a unit depends on, and so what
:meth:`PolicySet.replace` rebuilds when one unit changes:

* its **owner key**: the owner its header names, or ``global``. Units of one
  owner key are checked together (claims declared alike, duplicate rules,
  groups declared in another file) and their rules share one index;
* the **global units**: every owner's units are checked with them (types they
  declare, their unconditional forbids, their claims declarations) and every
  plan starts with their rules;
* for the global units' warning W308 (a declared claim no rule reads): which
  claim names the units of any owner read.

So replacing an owner's unit re-checks that owner's units with the global
units, rebuilds that owner's index and plans, and, only when the claim names
it reads change whether a globally declared claim is read anywhere, the
global units' diagnostics. Replacing a global unit rebuilds every owner key's
checks, indexes and plans (each unit's compiled rules are still reused).
``tests/policy_lang/test_units.py`` checks over random edits that a set built
by replacements decides, warns and refuses exactly as one built from scratch.

**The canonical order** (``policy_lang/README.md``, "Which rule answers"): the
global units first, then the owners' units by owner; the units of one owner
key by the SHA-256 of their text, then by name; within a unit, rules in the
order they are written. It is the order in which a plan weighs its rules, and
it depends neither on load order nor on hash seeds nor (but for two identical
texts) on file names. Reports (diagnostics, :attr:`PolicySet.rules`) name files
and list them by name, the global ones first.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .check import check_parsed
from .compile import CRule, Ctx, Plan, TargetIndex, Tests, rule_condition
from .compile.index import Weighed
from .diagnostics import Diagnostic, PolicyError, sort_diagnostics
from .eval import Decision, ScopeTrace, assemble, check_request, decide_scope, plain_request
from .syntax import ParsedSource, Source, parse_source, read_sources
from .syntax import ast as A
from .syntax.visitor import walk
from .values import format_uri, literal_value

GLOBAL = ""  # the owner key of global units
PLANS_PER_KEY = 200_000  # cached plans per owner key before the cache starts again
WEIGHED_PER_SET = 400_000  # cached (resource, scope) → rules weighed, before that cache starts again

Declared = dict[str, tuple[str, str]]  # claim name → (issuer, format)


# ------------------------------------------------------------------ units


class Unit:
    """One policy text (a file, or an owner's upload) read on its own, and its
    rules compiled on their own when a set first uses them. Immutable: any number
    of policy sets may share it."""

    __slots__ = ("parsed", "digest", "key", "claims_read", "_compiled")

    def __init__(self, parsed: ParsedSource) -> None:
        self.parsed = parsed
        self.digest = hashlib.sha256(parsed.source.text.encode()).hexdigest()
        pf = parsed.file
        #: the owner key: the owner, GLOBAL, or None for a text that could not be read
        self.key: str | None = None if pf is None else GLOBAL if pf.is_global else pf.owner
        #: the claim names the unit's conditions read (what W308 of the global units looks at)
        self.claims_read = frozenset(_claims_read(pf)) if pf is not None else frozenset()
        self._compiled: _Compiled | None = None

    @property
    def source(self) -> Source:
        return self.parsed.source

    @property
    def name(self) -> str:
        return self.parsed.source.name

    @property
    def file(self) -> A.PolicyFile | None:
        return self.parsed.file

    def sort_key(self) -> tuple[bool, str, str, str]:
        """The canonical order of units, in which rules are weighed (see the module's docstring)."""
        return (self.key != GLOBAL, self.key or "", self.digest, self.name)

    def report_key(self) -> tuple[bool, str]:
        """The order of units in reports: the global units first, then by name."""
        return (self.key != GLOBAL, self.name)

    def compiled(self, tests: Tests | None = None) -> _Compiled:
        """The unit's rules compiled (the first time: with ``tests``, the simple tests
        of the build that first uses the unit, shared with its other units)."""
        if self._compiled is None:  # (two threads may both compile: the results are equal)
            assert self.parsed.file is not None
            self._compiled = _Compiled(self.parsed.file, {} if tests is None else tests)
        return self._compiled


def compile_unit(source: Source) -> Unit:
    """Read one policy text into a unit (its rules are compiled when a set first
    uses them, after the checks pass)."""
    return Unit(parse_source(source))


def _claims_read(pf: A.PolicyFile) -> set[str]:
    names: set[str] = set()
    for rule in pf.rules:
        for cond in (rule.when, rule.unless):
            for node in walk(cond):
                if isinstance(node, A.ClaimRef):
                    names.add(node.name if node.quoted else node.path[0])
    return names


class _Compiled:
    """A unit's rules compiled, and its declarations' values."""

    __slots__ = ("rules", "groups", "declared")

    def __init__(self, pf: A.PolicyFile, tests: Tests) -> None:
        self.groups: dict[str, Any] = {g.name: literal_value(g.members) for g in pf.groups}
        owner = None if pf.is_global else pf.owner
        rules = []
        for order, rule in enumerate(pf.rules):
            scopes = frozenset(rule.scopes) if rule.scopes is not None else None
            cond = rule_condition(rule, self.groups, tests)
            rules.append(CRule(rule.effect, scopes, cond, rule, rule.ref, owner, rule.target, order=order))
        self.rules: tuple[CRule, ...] = tuple(rules)
        self.declared: Declared = {n: (c.issuer, c.format) for c in pf.claims for n in c.names}


class _Key:
    """The units of one owner key, in the canonical order, with what they make
    together: the index of their rules, the claims declarations that apply to the
    owner's resources, their diagnostics (warnings), and a cache of plans."""

    __slots__ = ("units", "index", "declared", "diagnostics", "plans")

    def __init__(
        self,
        units: Iterable[Unit],
        globals_declared: Declared,
        diagnostics: tuple[Diagnostic, ...],
        tests: Tests | None = None,
    ):
        self.units = tuple(sorted(units, key=Unit.sort_key))
        self.index = TargetIndex()
        declared: Declared = {}
        for unit in self.units:
            compiled = unit.compiled(tests)
            for cr in compiled.rules:
                self.index.add(cr)
            for name, decl in compiled.declared.items():
                declared.setdefault(name, decl)  # (one owner's files declare a claim alike: E207)
        # an owner's view of claim declarations: the global ones, then the owner's own
        self.declared: Declared = {**globals_declared, **declared}
        self.diagnostics = diagnostics
        self.plans: dict[tuple[str | None, str | None, str | None], Plan] = {}


# ------------------------------------------------------------------ building


def compile_sources(sources: Iterable[Source]) -> PolicySet:
    """Check and compile; raise :class:`PolicyError` if any source has an error."""
    return PolicySet.from_units(compile_unit(s) for s in sources)


def compile_parsed(parsed: Iterable[ParsedSource]) -> PolicySet:
    """Check and compile sources already parsed (:func:`policy_lang.parse_source`);
    raise :class:`PolicyError` if any has an error."""
    return PolicySet.from_units(Unit(p) for p in parsed)


def load(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> PolicySet:
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    sources, diags = read_sources(paths)
    if diags:
        raise PolicyError(diags)
    return compile_sources(sources)


def loads(text: str, name: str = "<policy>", owner: str | None = None) -> PolicySet:
    return compile_sources([Source(name, text, owner)])


def _check(units: Iterable[Unit]) -> list[Diagnostic]:
    """Every diagnostic of these units checked together, in the order of reports (which
    of two files is told that it repeats or contradicts the other)."""
    return check_parsed(u.parsed for u in sorted(units, key=Unit.report_key))[1]


def _by_file(diags: Iterable[Diagnostic], units: Iterable[Unit]) -> dict[str, list[Diagnostic]]:
    names: dict[str, list[Diagnostic]] = {u.name: [] for u in units}
    for d in diags:
        if d.file in names:
            names[d.file].append(d)
    return names


def _warnings(diags: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    return tuple(d for d in diags if not d.is_error)


# ------------------------------------------------------------------ the set


class PolicySet:
    """A checked, compiled, immutable set of policies. Thread-safe to share.

    ``PolicySet(files)`` compiles parsed files as given, unchecked; a checked set
    comes from :func:`compile_sources`, :func:`load`, :meth:`from_units`, and a set
    one text away from another from :meth:`replace` / :meth:`remove`."""

    __slots__ = ("_units", "_global", "_nobody", "_keys", "_reads", "_cache", "_weighed", "__weakref__")

    _units: dict[str, Unit]  # by name
    _global: _Key  # the global units
    _nobody: _Key  # what applies to an owner without units: the global rules alone
    _keys: dict[str, _Key]  # by owner
    _reads: dict[str, frozenset[str]]  # globally declared claim → the owner units reading it
    _cache: dict[str, Any]  # rules, files, sources, version, diagnostics: computed when first asked
    _weighed: dict[tuple[str, str, str | None, str | None, str], Weighed]  # see weighed()

    def __init__(
        self,
        files: list[A.PolicyFile],
        diagnostics: list[Diagnostic] | None = None,
        sources: list[Source] | None = None,
    ):
        by_name = {s.name: s for s in sources or ()}
        units = [
            Unit(
                ParsedSource(by_name.get(pf.name) or Source(pf.name, "", pf.owner if pf.owner_filled else None), pf, ())
            )
            for pf in files
        ]
        self._build(units, _warnings(diagnostics or ()))

    @classmethod
    def from_units(cls, units: Iterable[Unit]) -> PolicySet:
        """Check the units together and compile them; raise :class:`PolicyError` if
        any has an error."""
        units = list(units)
        diags = _check(units)
        if any(d.is_error for d in diags):
            raise PolicyError(diags)
        ps = cls.__new__(cls)
        ps._build(units, tuple(diags))
        return ps

    def _build(self, units: list[Unit], diagnostics: tuple[Diagnostic, ...]) -> None:
        self._units = {u.name: u for u in units}
        by_file = _by_file(diagnostics, units)
        by_key: dict[str, list[Unit]] = {}
        for u in units:
            if u.key is not None:
                by_key.setdefault(u.key, []).append(u)
        global_units = by_key.pop(GLOBAL, [])

        def diags_of(us: list[Unit]) -> tuple[Diagnostic, ...]:
            return tuple(d for u in us for d in by_file[u.name])

        tests: Tests = {}  # one table of simple tests for every unit compiled here
        self._global = _Key(global_units, {}, diags_of(global_units), tests)
        self._nobody = _Key((), self._global.declared, ())
        self._keys = {k: _Key(us, self._global.declared, diags_of(us), tests) for k, us in by_key.items()}
        self._reads = _global_reads(self._global, units)
        self._cache = {}
        self._weighed = {}

    # -------------------------------------------------------------- one unit changed
    def replace(self, unit: Unit | Source) -> PolicySet:
        """This set with ``unit`` in place of the unit of the same name (or added):
        a new set sharing every other unit and everything built from them only.
        Raises :class:`PolicyError`, with the diagnostics :func:`compile_sources`
        would give for the resulting texts, if they do not check."""
        if isinstance(unit, Source):
            unit = compile_unit(unit)
        return self._changed(unit.name, unit)

    def remove(self, name: str) -> PolicySet:
        """This set without the unit called ``name`` (the same set if there is none)."""
        if name not in self._units:
            return self
        return self._changed(name, None)

    def _changed(self, name: str, new: Unit | None) -> PolicySet:
        old = self._units.get(name)
        units = dict(self._units)
        if new is None:
            del units[name]
        else:
            units[name] = new
        if new is not None and new.key is None:
            # a text that could not be read: its syntax errors, and the set without it
            without = self.remove(name)
            raise PolicyError(sort_diagnostics([*new.parsed.diagnostics, *without.diagnostics]))
        keys = {u.key for u in (old, new) if u is not None}
        if GLOBAL in keys:
            # the global units changed: everything is checked again (from_units reuses each
            # unit's compiled rules)
            return PolicySet.from_units(units.values())
        # one owner's units changed (the key of the old and the new unit, if it moved)
        changed = {k for k in keys if k is not None}
        global_units = self._global.units
        reads = _moved_reads(self._reads, old, new)
        new_diags: list[Diagnostic] = []
        key_units: dict[str, list[Unit]] = {}
        for key in changed:
            own = [u for u in units.values() if u.key == key]
            key_units[key] = own
            if own:
                new_diags.extend(d for d in _check([*global_units, *own]) if d.file in {u.name for u in own})
        global_diags = self._global.diagnostics
        if {n for n, us in reads.items() if us} != {n for n, us in self._reads.items() if us}:
            # whether a globally declared claim is read anywhere changed: W308 of the
            # global units, checked with one unit reading each claim that is read
            readers = {units[next(iter(sorted(us)))] for us in reads.values() if us}
            names = {u.name for u in global_units}
            global_diags = tuple(d for d in _check([*global_units, *readers]) if d.file in names)
        if any(d.is_error for d in new_diags) or any(d.is_error for d in global_diags):
            kept = [d for key, k in self._keys.items() if key not in changed for d in k.diagnostics]
            raise PolicyError(sort_diagnostics([*global_diags, *kept, *new_diags]))
        ps = PolicySet.__new__(PolicySet)
        ps._units = units
        ps._reads = reads
        ps._global = self._global
        if global_diags is not self._global.diagnostics:
            ps._global = copy.copy(self._global)  # the same units, index and plans; other warnings
            ps._global.diagnostics = _warnings(global_diags)
        ps._nobody = self._nobody
        ps._keys = dict(self._keys)
        by_file = _by_file(new_diags, units.values())
        for key, own in key_units.items():
            if own:
                ps._keys[key] = _Key(own, self._global.declared, tuple(d for u in own for d in by_file[u.name]))
            else:
                ps._keys.pop(key, None)
        ps._cache = {}
        ps._weighed = {}
        return ps

    # -------------------------------------------------------------- queries
    @property
    def units(self) -> Mapping[str, Unit]:
        """The units by name."""
        return self._units

    def _ordered(self) -> list[Unit]:
        got: list[Unit] | None = self._cache.get("units")
        if got is None:
            got = self._cache["units"] = sorted(self._units.values(), key=Unit.report_key)
        return got

    @property
    def rules(self) -> list[CRule]:
        """Every compiled rule: the global units' first, then by file name."""
        got: list[CRule] | None = self._cache.get("rules")
        if got is None:
            got = self._cache["rules"] = [cr for u in self._ordered() if u.file for cr in u.compiled().rules]
        return got

    @property
    def files(self) -> list[A.PolicyFile]:
        """The parsed files: the global ones first, then by name."""
        got: list[A.PolicyFile] | None = self._cache.get("files")
        if got is None:
            got = self._cache["files"] = [u.file for u in self._ordered() if u.file is not None]
        return got

    @property
    def sources(self) -> list[Source]:
        """The texts: the global ones first, then by name."""
        return [u.source for u in self._ordered()]

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """The warnings of every unit, sorted by file, line and column."""
        got: list[Diagnostic] | None = self._cache.get("diagnostics")
        if got is None:
            every = [*self._global.diagnostics, *(d for k in self._keys.values() for d in k.diagnostics)]
            got = self._cache["diagnostics"] = sort_diagnostics(every)
        return got

    @property
    def version(self) -> str:
        """A digest of the texts (names, uploaders, texts), whatever their load order."""
        got: str | None = self._cache.get("version")
        if got is None:
            h = hashlib.sha256()
            for u in sorted(self._units.values(), key=lambda u: u.name):
                h.update(f"{u.name}\x00{u.source.owner or ''}\x00{u.digest}\x00".encode())
            got = self._cache["version"] = h.hexdigest()[:16]
        return got

    @property
    def owners(self) -> list[str]:
        return sorted(self._keys)

    def declared_claims(self, owner: str | None) -> Declared:
        """claim name → (issuer, format) that apply to ``owner``'s resources."""
        return self._keys.get(owner or GLOBAL, self._nobody).declared

    def groups_by_file(self) -> dict[str, dict[str, Any]]:
        """file name → its groups' values (what its rules' conditions read)."""
        return {u.name: u.compiled().groups for u in self._units.values() if u.file is not None}

    def plan(self, owner: str, rid: str | None, rtype: str | None, rname: str | None) -> Plan:
        key = self._keys.get(owner, self._nobody)
        plan = key.plans.get((rid, rtype, rname))
        if plan is None:
            # the global rules first in every plan
            rules = self._global.index.candidates(rid, rtype, rname) + key.index.candidates(rid, rtype, rname)
            plan = Plan(rules)
            if len(key.plans) > PLANS_PER_KEY:
                key.plans.clear()
            key.plans[(rid, rtype, rname)] = plan
        return plan

    def claims_view(self, owner: str, claims: dict[str, Any], sources: dict[str, Any]) -> dict[str, Any]:
        """Drop claims whose issuer or format is not the one the owner's
        ``claims … from … as …`` declarations require."""
        if not sources:
            return claims
        decl = self.declared_claims(owner)
        if not decl:
            return claims
        view = claims
        for name, (issuer, fmt) in decl.items():
            src = sources.get(name)
            if name in claims and isinstance(src, dict):
                if src.get("issuer") != issuer or not _same_format(src.get("format"), fmt):
                    if view is claims:
                        view = dict(claims)
                    view.pop(name, None)
        return view

    # -------------------------------------------------------------- deciding
    def weighed(self, owner: str, rid: str, rtype: str | None, rname: str | None, scope: str) -> Weighed:
        """The rules a decision weighs for one scope of one resource: its forbids,
        permits and asks, each in the canonical order. Cached per set in one table
        (one look-up per decision, where the plans of :meth:`plan` take three: at
        10,000 rules over 1,000 owners a decision reads memory that is rarely in the
        CPU's caches, and each object on the way costs)."""
        key = (owner, rid, rtype, rname, scope)
        got = self._weighed.get(key)
        if got is None:
            got = self.plan(owner, rid, rtype, rname).for_scope(scope)
            if len(self._weighed) > WEIGHED_PER_SET:
                self._weighed.clear()
            self._weighed[key] = got
        return got

    def decide(self, request: dict[str, Any], *, trace: bool = False) -> Decision:
        """Section 3 of the language page over a section 4 request.

        With ``trace``, each :class:`ScopeResult` in ``Decision.results`` carries a
        :class:`ScopeTrace`: the candidate rules, the value of each rule weighed,
        the claims the conditions read. The decision itself is the same."""
        perms, claims, sources, client, now = plain_request(request) or check_request(request)  # normalise
        results = []
        cached = self._weighed
        for resource, scopes, approvals in perms:
            owner = resource["owner"]
            rid = resource["id"]
            rtype = resource.get("type")
            rname = resource.get("name")
            view = self.claims_view(owner, claims, sources) if sources else claims
            ctx = Ctx(view, client, resource, now)
            for scope in scopes:
                weighed = cached.get((owner, rid, rtype, rname, scope)) or self.weighed(owner, rid, rtype, rname, scope)
                approval = approvals.get(scope) if approvals else None
                if trace:
                    seen: list[tuple[CRule, Any]] = []
                    res = decide_scope(weighed, scope, ctx, approval, rid, owner, seen)
                    res.trace = ScopeTrace((*weighed[0], *weighed[1], *weighed[2]), seen, ctx, _ignored(claims, view))
                else:
                    res = decide_scope(weighed, scope, ctx, approval, rid, owner)
                results.append(res)
        return assemble(results, self.declared_claims)


def _ignored(claims: dict[str, Any], view: dict[str, Any]) -> list[str]:
    """The claims of a request that the owner's declarations dropped (issuer or format)."""
    return sorted(set(claims) - set(view))


def _global_reads(glob: _Key, units: Iterable[Unit]) -> dict[str, frozenset[str]]:
    """Each claim the global units declare → the names of the owner units that read it."""
    declared = {n: set[str]() for u in glob.units for n in u.compiled().declared}
    if declared:
        for u in units:
            if u.key not in (None, GLOBAL):
                for n in u.claims_read & declared.keys():
                    declared[n].add(u.name)
    return {n: frozenset(us) for n, us in declared.items()}


def _moved_reads(reads: dict[str, frozenset[str]], old: Unit | None, new: Unit | None) -> dict[str, frozenset[str]]:
    if not reads:
        return reads
    out = dict(reads)
    for n, us in reads.items():
        if old is not None and old.name in us:
            us = us - {old.name}
        if new is not None and n in new.claims_read:
            us = us | {new.name}
        out[n] = us
    return out


def _same_format(given: Any, declared: str) -> bool:
    if given is None:
        return True  # the source names no format: the issuer alone decides
    return format_uri(str(given)) == format_uri(declared)
