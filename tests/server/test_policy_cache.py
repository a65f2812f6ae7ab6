"""The policy texts read at start, kept between starts (``app/policy_cache.py``; issue 11, point 1).

The cache is only a shortcut: a set built from it decides, warns and counts exactly as one read
from scratch, and any file it cannot trust (another library version, another text, corrupt,
someone else's or writable by others) is ignored, the text read afresh and the file written again.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

import policy_lang
from app import create_app
from app.policy_cache import SUFFIX, ParsedCache, library_tag
from tests.support.server import close_app

T = "2026-11-27T10:00:00Z"
GLOBAL = 'global\nforbid any scope on name like "private/*"\nclaims role from "https://idp.example" as "jwt"\n'
ALICE = """owner "alice"
group family = ["bob@example.com", "carol@example.com"]
permit view, download on type "photo-album" when claims.email in family
forbid download on name "albums/secret" unless client.id == "alice-phone"
ask print on any resource
"""
BOB = 'owner "bob"\npermit view on any resource when claims.role == "editor"\npermit edit on resource "b1"\n'


def _sources() -> list[policy_lang.Source]:
    return [
        policy_lang.Source("policies/global.policy", GLOBAL),
        policy_lang.Source("policies/alice.policy", ALICE),
        policy_lang.Source("policies/bob.policy", BOB),
        policy_lang.Source("uploads/bob/owner.policy", 'owner "bob"\nforbid edit on name "private/x"\n', owner="bob"),
    ]


def _requests() -> list[dict[str, Any]]:
    out = []
    for owner, rid, rtype, name in [
        ("alice", "a1", "photo-album", "albums/summer"),
        ("alice", "a2", "photo-album", "albums/secret"),
        ("alice", "a3", "document", "private/notes"),
        ("bob", "b1", None, "private/x"),
        ("bob", "b2", "photo-album", "albums/b"),
        ("carol", "c1", None, None),
    ]:
        resource = {"id": rid, "owner": owner, **({"type": rtype} if rtype else {}), **({"name": name} if name else {})}
        for claims, client in [
            ({"email": "bob@example.com"}, "photo-app"),
            ({"email": "eve@example.com", "role": "editor"}, "alice-phone"),
            ({}, "other"),
        ]:
            out.append(
                {
                    "resource": resource,
                    "scopes": ["view", "download", "edit", "print"],
                    "claims": claims,
                    "client": {"id": client},
                    "time": T,
                }
            )
    return out


def _answers(ps: policy_lang.PolicySet) -> list[str]:
    out = [ps.version, json.dumps([d.render() for d in ps.diagnostics]), str(len(ps.rules))]
    out += [json.dumps(ps.decide(r).to_json(), sort_keys=True) for r in _requests()]
    return out


def _from_cache(folder: Path, sources: list[policy_lang.Source], tag: str | None = None) -> tuple[Any, ParsedCache]:
    cache = ParsedCache(folder, tag)
    ps = policy_lang.PolicySet.from_units(policy_lang.Unit(cache.parsed(s)) for s in sources)
    cache.write()
    return ps, cache


def test_a_set_built_from_a_warm_cache_decides_exactly_as_one_read_from_scratch(tmp_path):
    sources = _sources()
    scratch = _answers(policy_lang.compile_sources(sources))
    cold, first = _from_cache(tmp_path, sources)
    warm, second = _from_cache(tmp_path, sources)
    assert (first.hits, first.misses) == (0, len(sources))
    assert (second.hits, second.misses) == (len(sources), 0)
    assert _answers(cold) == scratch
    assert _answers(warm) == scratch
    assert {"partial", "deny"} <= {json.loads(a).get("decision") for a in scratch[3:]}  # the requests reach rules


def test_files_are_private_and_only_the_texts_in_use_keep_theirs(tmp_path):
    folder = tmp_path / "cache"
    sources = _sources()
    _from_cache(folder, sources)
    files = sorted(folder.iterdir())
    assert len(files) == len(sources)
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    assert {oct(f.stat().st_mode & 0o777) for f in files} == {oct(0o600)}
    # bob's file changed: its old reading goes, the new one is written, the others stay
    changed = [*sources[:2], policy_lang.Source("policies/bob.policy", BOB.replace("editor", "author")), sources[3]]
    _, cache = _from_cache(folder, changed)
    assert (cache.hits, cache.misses) == (3, 1)
    assert len(list(folder.iterdir())) == len(sources)
    _, again = _from_cache(folder, changed)
    assert (again.hits, again.misses) == (4, 0)


def test_a_cache_of_another_library_version_is_never_read(tmp_path):
    sources = _sources()
    _from_cache(tmp_path, sources, tag="version-a")
    ps, other = _from_cache(tmp_path, sources, tag="version-b")
    assert (other.hits, other.misses) == (0, len(sources))
    assert _answers(ps) == _answers(policy_lang.compile_sources(sources))
    # the tag follows the library's code: the same code gives the same tag, and it is not a constant
    assert library_tag() == library_tag() != "version-a"


def test_a_corrupt_cache_file_is_ignored_and_written_again(tmp_path):
    sources = _sources()
    _from_cache(tmp_path, sources)
    files = sorted(tmp_path.iterdir())
    files[0].write_bytes(files[0].read_bytes()[:-7])  # truncated
    data = bytearray(files[1].read_bytes())
    data[-20] ^= 0xFF  # one byte flipped in the payload
    files[1].write_bytes(bytes(data))
    files[2].write_bytes(b"not a cache file at all")
    ps, cache = _from_cache(tmp_path, sources)
    assert (cache.hits, cache.misses) == (1, 3)
    assert _answers(ps) == _answers(policy_lang.compile_sources(sources))
    _, again = _from_cache(tmp_path, sources)
    assert (again.hits, again.misses) == (len(sources), 0)


def test_a_file_holding_another_texts_reading_is_not_used(tmp_path):
    """A file renamed onto another text's name (its digest is right: it is a whole file) is not
    taken for that text: the reading's own source must be the text asked for."""
    sources = _sources()
    _from_cache(tmp_path, sources)
    cache = ParsedCache(tmp_path)
    alice, bob = (tmp_path / cache._name(s) for s in sources[1:3])
    os.replace(bob, alice)
    ps, got = _from_cache(tmp_path, sources)
    assert (got.hits, got.misses) == (2, 2)
    assert _answers(ps) == _answers(policy_lang.compile_sources(sources))


def test_a_cache_file_others_may_read_or_write_is_not_read(tmp_path, caplog):
    sources = _sources()
    _from_cache(tmp_path, sources)
    loose = sorted(tmp_path.iterdir())[0]
    loose.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger="app.policy_cache"):
        _, cache = _from_cache(tmp_path, sources)
    assert (cache.hits, cache.misses) == (len(sources) - 1, 1)
    assert "not a private file" in caplog.text
    assert oct(loose.stat().st_mode & 0o777) == oct(0o600)  # written again, privately


def _app(database_url: str, tmp_path: Path, **more: Any) -> Any:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    for name, text in [("global.policy", GLOBAL), ("alice.policy", ALICE), ("bob.policy", BOB)]:
        (policies / name).write_text(text)
    return create_app(
        {
            "database_url": database_url,
            "instance_path": str(tmp_path / "instance"),
            "secret_key": "cache-" + "k" * 32,
            "policy_dir": str(policies),
            "purge_interval": 0,
            **more,
        }
    )


def test_a_restarted_server_reads_its_policies_from_the_cache_and_decides_the_same(fresh_database_url, tmp_path):
    first = _app(fresh_database_url, tmp_path)
    try:
        cold = first.extensions["uma_policies"].current().policy_set
        cold_answers = _answers(cold)
    finally:
        close_app(first)
    cached = list((tmp_path / "instance" / "policy-cache").glob("*" + SUFFIX))
    assert len(cached) == 3
    second = _app(fresh_database_url, tmp_path)
    try:
        warm = second.extensions["uma_policies"].current().policy_set
        assert _answers(warm) == cold_answers
        assert [u.name for u in warm.units.values()] == [u.name for u in cold.units.values()]
    finally:
        close_app(second)


def test_without_the_setting_nothing_is_written(fresh_database_url, tmp_path):
    app = _app(fresh_database_url, tmp_path, policy_cache=False)
    try:
        assert app.extensions["uma_policies"].current().rules == 6
        assert not (tmp_path / "instance" / "policy-cache").exists()
    finally:
        close_app(app)


# -- the interpreter's state around the start-up compile and the background sync -------------


def test_the_start_up_compile_leaves_the_garbage_collector_as_it_found_it(fresh_database_url, tmp_path):
    import gc

    from app.policies import oldest_generation_held

    before, enabled = gc.get_threshold(), gc.isenabled()
    with pytest.raises(RuntimeError), oldest_generation_held():
        assert gc.get_threshold()[:2] == before[:2]  # the young generations run as usual
        assert gc.get_threshold()[2] > before[2]
        raise RuntimeError("a compile that fails")
    assert gc.get_threshold() == before
    app = _app(fresh_database_url, tmp_path)
    try:
        assert app.extensions["uma_policies"].current().rules == 6
        assert (gc.get_threshold(), gc.isenabled()) == (before, enabled)
    finally:
        close_app(app)


def test_the_background_sync_switches_often_and_restores_the_interval():
    import sys

    from app.policies import SWITCH_INTERVAL_WHILE_SYNCING, switching_often

    before = sys.getswitchinterval()
    with pytest.raises(RuntimeError), switching_often():
        assert sys.getswitchinterval() == SWITCH_INTERVAL_WHILE_SYNCING
        raise RuntimeError("a sync that fails")
    assert sys.getswitchinterval() == before
