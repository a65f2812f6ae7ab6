"""policy_lang is built in layers (policy_lang/README.md draws them): each module
imports only the layers below its own, never a sibling on its line, never a
name private to another module; the app uses only the public API.

Imports are read from the source text (every ``import``, at any depth, including
those made only for type checking), so a lazy import inside a function counts too.
"""

import ast
import re
from pathlib import Path

import policy_lang

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "policy_lang"


def drawn_layers() -> list[set[str]]:
    """The README's drawing, lowest layer first: each line's first column names the
    layer (``a | b`` siblings, ``a, b`` one layer of two parts)."""
    readme = (PACKAGE / "README.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- layers: begin -->\n```\n(.*?)```\n<!-- layers: end -->", readme, re.S)
    assert block, "policy_lang/README.md has no layer drawing"
    layers = []
    for line in block.group(1).splitlines():
        names = re.match(r"^(\w+(?:(?: \| |, )\w+)*)", line)
        assert names, line
        layers.append(names.group(1))
    return [set(re.split(r" \| |, ", line)) for line in reversed(layers)]


def siblings() -> dict[str, set[str]]:
    """Each layer → the other layers on its line (``check | compile | fmt``)."""
    readme = (PACKAGE / "README.md").read_text(encoding="utf-8")
    out: dict[str, set[str]] = {}
    for line in re.findall(r"^(\w+(?: \| \w+)+)", readme, re.M):
        names = set(line.split(" | "))
        for n in names:
            out[n] = names - {n}
    return out


def modules() -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(path: Path, module: str) -> list[tuple[str, list[str], int]]:
    """(the module imported, the names taken from it, line) for every import in the file."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names = [a.name for a in node.names]
            if node.level and not node.module:  # from . import x: x may be a module
                out += [(f"{target}.{n}", [], node.lineno) for n in names]
            else:
                out.append((target, names, node.lineno))
    return out


def layer_of(module: str) -> str | None:
    """``policy_lang.check.checker`` → ``check``; the package itself → None."""
    parts = module.split(".")
    if parts[0] != "policy_lang" or len(parts) == 1:
        return None
    return parts[1]


def test_the_drawing_names_every_part_of_the_package_once():
    layers = drawn_layers()
    drawn = [name for layer in layers for name in layer]
    assert len(drawn) == len(set(drawn))
    present = {layer_of(m) for m in modules()} - {None}
    assert present == set(drawn), "draw every module and package of policy_lang in README.md"


def test_each_layer_imports_only_the_layers_below_it():
    layers = drawn_layers()
    rank = {name: i for i, layer in enumerate(layers) for name in layer}
    beside = siblings()
    problems = []
    for module, path in modules().items():
        own = layer_of(module)
        if own is None:
            continue  # policy_lang/__init__.py: the public API, re-exporting from every layer
        for target, _, line in imports(path, module):
            if target == "policy_lang":
                problems.append(f"{module}:{line} imports the package's public face (import the layer itself)")
                continue
            other = layer_of(target)
            if other is None or other == own:
                continue
            if other in beside.get(own, ()):
                problems.append(f"{module}:{line} imports its sibling layer {other}")
            elif rank[other] > rank[own]:
                problems.append(f"{module}:{line} imports {other}, a layer above {own}")
    assert problems == []


def test_no_module_imports_a_name_private_to_another():
    problems = []
    for module, path in modules().items():
        for target, names, line in imports(path, module):
            if target.startswith("policy_lang"):
                problems += [f"{module}:{line} imports {target}.{n}" for n in names if n.startswith("_")]
            if target.startswith("policy_lang.") and target.split(".")[-1].startswith("_"):
                problems.append(f"{module}:{line} imports the private module {target}")
    assert problems == []


def test_check_and_compile_share_values_not_each_other():
    """(The case the layering was made for: check once imported the compiler for its
    operators; both now take them from values.)"""
    for module, path in modules().items():
        if layer_of(module) in ("check", "compile"):
            other = "compile" if layer_of(module) == "check" else "check"
            assert not [t for t, _, _ in imports(path, module) if layer_of(t) == other], module


def test_the_app_uses_only_the_public_api():
    """``import policy_lang``, names from its ``__all__``, and the command line's main."""
    public = set(policy_lang.__all__)
    problems = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for target, names, line in imports(path, module):
            if not target.startswith("policy_lang"):
                continue
            if target == "policy_lang":
                problems += [f"{module}:{line} imports policy_lang.{n}" for n in names if n not in public]
            elif (target, names) != ("policy_lang.cli", ["main"]):
                problems.append(f"{module}:{line} imports {target}")
        text = path.read_text(encoding="utf-8")
        used = set(re.findall(r"\bpolicy_lang\.([A-Za-z_]\w*)", text))
        problems += [f"{module} uses policy_lang.{n}" for n in used - public - {"cli"} if f"policy_lang.{n}" in text]
    assert problems == []


def test_every_public_name_is_there():
    for name in policy_lang.__all__:
        assert getattr(policy_lang, name) is not None, name
