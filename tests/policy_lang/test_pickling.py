"""Parsed texts survive pickling exactly (the server's policy cache keeps them so between
starts, ``app/policy_cache.py``): every node class, its fields and positions.

Nodes pickle as (class, field values) by ``_Located.__reduce__``, not through the
``__getstate__`` a frozen slotted dataclass gets (which read ``dataclasses.fields`` for every
node); these tests hold that the shortcut keeps everything the dataclass form kept."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

import policy_lang
from policy_lang.syntax import ast as A
from policy_lang.syntax.visitor import descendants

from .test_visitors import EXAMPLE, _ast_node_classes


def _nodes(tree: A.PolicyFile) -> list:
    return [node for node in descendants(tree) if isinstance(node, A._Located)]


def test_a_parsed_text_round_trips_through_pickle_with_every_field_and_position():
    parsed = policy_lang.parse_source(policy_lang.Source("example.policy", EXAMPLE, "alice"))
    assert parsed.file is not None
    again = pickle.loads(pickle.dumps(parsed, protocol=pickle.HIGHEST_PROTOCOL))
    assert again == parsed
    before, after = _nodes(parsed.file), _nodes(again.file)
    # every located node class of the module appears, so each one's fields are checked below (a
    # Truthy is only ever made by hand, test_visitors.py: one is added)
    span = ("f", 1, 1, 1, 2)
    truthy = A.Not(A.Truthy(A.ClaimRef("email_verified", ("email_verified",), False, span), span), span)
    before.extend(descendants(truthy))
    after.extend(descendants(pickle.loads(pickle.dumps(truthy))))
    assert {type(n) for n in before} == {c for c in _ast_node_classes() if issubclass(c, A._Located)}
    assert len(before) == len(after)
    for old, new in zip(before, after, strict=True):
        assert type(old) is type(new)
        for f in dataclasses.fields(old):  # compare=False fields (span, text) too
            assert getattr(new, f.name) == getattr(old, f.name), (type(old).__name__, f.name)
        assert new.pos == old.pos


def test_nodes_stay_frozen_and_copy_after_pickling():
    parsed = policy_lang.parse_source(policy_lang.Source("example.policy", EXAMPLE, "alice"))
    rule = pickle.loads(pickle.dumps(parsed)).file.rules[0]
    first = dataclasses.fields(rule)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(rule, first, None)
    assert copy.deepcopy(rule) == rule and copy.copy(rule) == rule
