"""Deterministic answers (issue 9.6): nothing in a decision or its explanation
depends on file paths, load order or hash seeds.

The same texts are loaded in every order, under other file names, from
directories, by replacements, and in fresh interpreters with different
``PYTHONHASHSEED`` values: the answers and explanations are byte-identical
(under other names, identical once the rule references name the original
files again). The texts are made so that order could matter: two files of one
owner each hold a permit needing one claim (a tie for the cheapest need_info
alternative), a global file's rules come first in every plan, and the claims
read are many (sets of names).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import policy_lang
from policy_lang import Source, compile_sources, compile_unit, explain, render_explanation

ROOT = Path(__file__).resolve().parents[2]
T = "2026-11-27T10:00:00Z"

TEXTS = {
    "alice-1.policy": 'owner "alice"\npermit view on any resource when claims.zeta == 1 and claims.kappa == 2\n'
    'ask print on type "album" when claims.nu == "x"\n',
    "alice-2.policy": 'owner "alice"\npermit view on any resource when claims.alpha == 1 and claims.omega == 2\n'
    'permit print on type "album" when claims.mu == "y"\n',
    "alice-3.policy": 'owner "alice"\nforbid share on any resource when claims.epsilon == true or claims.beta == true\n'
    "permit share on any resource when claims.gamma == 1\n",
    "global.policy": 'global\nforbid any scope on name like "private/*" when claims.tier != "gold"\n'
    'permit view on type "album" when claims.delta == 3 and claims.eta == 4\n',
    "bob.policy": 'owner "bob"\ngroup friends = ["a@x", "b@x"]\n'
    "permit any scope on any resource when claims.email in friends\n",
}

REQUESTS: list[dict[str, Any]] = [
    {"resource": {"id": "r1", "owner": "alice", "type": "album"}, "scopes": ["view"], "claims": {}, "time": T},
    {"resource": {"id": "r1", "owner": "alice", "type": "album"}, "scopes": ["view", "print", "share"], "time": T},
    {
        "permissions": [
            {"resource": {"id": "r2", "owner": "alice", "name": "private/x"}, "scopes": ["share", "view"]},
            {"resource": {"id": "r3", "owner": "bob", "type": "album"}, "scopes": ["view"]},
        ],
        "claims": {"tier": "gold", "email": "c@x"},
        "time": T,
    },
    {"resource": {"id": "r4", "owner": "carol", "type": "album"}, "scopes": ["view"], "claims": {"eta": 4}, "time": T},
]


def answers(ps: policy_lang.PolicySet) -> str:
    """Every request's decision, explanation (JSON) and explanation (text), as one text."""
    out = []
    for request in REQUESTS:
        out.append(json.dumps(ps.decide(request).to_json()))
        data = explain(ps, request)
        out.append(json.dumps(data))
        out.append(render_explanation(data))
    return "\n".join(out)


def renamed(names: dict[str, str]) -> dict[str, str]:
    return {names[n]: t for n, t in TEXTS.items()}


def test_the_texts_do_tie():
    """The need_info of the first request could be explained by a permit of either
    alice-1 or alice-2 (two claims each): the documented order picks one."""
    ps = compile_sources([Source(n, t) for n, t in TEXTS.items()])
    reasons = ps.decide(REQUESTS[0]).reasons
    assert [r["effect"] for r in reasons] == ["permit"]
    assert len(reasons[0]["missing"]) == 2


def test_every_load_order_gives_the_same_answers():
    """G-04: byte-identical answers and explanations whatever order the files come in."""
    items = list(TEXTS.items())
    expected = answers(compile_sources([Source(n, t) for n, t in items]))
    for order in itertools.permutations(items):
        assert answers(compile_sources([Source(n, t) for n, t in order])) == expected


def test_other_file_names_give_the_same_answers(tmp_path):
    """The rule that answers does not depend on what the files are called or where they lie:
    under other names the answers are the same once references name the original files."""
    expected = answers(compile_sources([Source(n, t) for n, t in TEXTS.items()]))
    for k, prefix in enumerate(["zz-", "00-", "x/y/"]):
        # names that sort differently from the originals, each time another way
        names = {n: f"{prefix}{(len(TEXTS) - i) * (k + 1)}-{n}" for i, n in enumerate(TEXTS)}
        got = answers(compile_sources([Source(m, t) for m, t in renamed(names).items()]))
        for original, other in names.items():
            got = got.replace(other, original)
        assert got == expected
    # read from a directory (as ``uma policy`` and the server do), the names being paths
    for k in range(2):
        root = tmp_path / f"d{k}"
        paths = {}
        for i, (n, t) in enumerate(TEXTS.items()):
            p = root / n if k == 0 else root / f"sub{i % 2}" / f"{9 - i}-{n}"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(t)
            paths[n] = str(p)
        got = answers(policy_lang.load(root))
        for original, path in paths.items():
            got = got.replace(path, original)
        assert got == expected


def test_a_set_built_by_replacements_gives_the_same_answers():
    expected = answers(compile_sources([Source(n, t) for n, t in TEXTS.items()]))
    ps = compile_sources([])
    for n in reversed(list(TEXTS)):
        ps = ps.replace(compile_unit(Source(n, TEXTS[n])))
    assert answers(ps) == expected


SCRIPT = """
import json, sys
import policy_lang
from tests.policy_lang.test_determinism import TEXTS, answers
order = json.loads(sys.argv[1])
print(answers(policy_lang.compile_sources([policy_lang.Source(n, TEXTS[n]) for n in order])))
"""


def test_hash_seeds_and_fresh_interpreters_give_the_same_answers():
    """Sets of claim names, dictionaries of rules: no answer follows a hash seed."""
    outputs = set()
    orders = [list(TEXTS), list(reversed(TEXTS))]
    for seed, order in zip(["0", "1", "12345", "random"], itertools.cycle(orders)):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, json.dumps(order)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
    assert outputs.pop() == answers(compile_sources([Source(n, t) for n, t in TEXTS.items()])) + "\n"  # (print's)
