"""The app's structure (issue 9 point 7): every blueprint and grant registered by name in
``create_app`` (no loading by module lookup), and the owner API and the owner pages as two
thin layers over one service module, neither importing the other's functions."""

from __future__ import annotations

import ast
from pathlib import Path

import app as app_package

APP = Path(app_package.__file__).parent
FACTORY = (APP / "factory.py").read_text()


def _imports(path: Path) -> set[str]:
    """Absolute names of the app modules ``path`` imports (relative imports resolved)."""
    package = ".".join(("app", *path.relative_to(APP).parent.parts))
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
    return out


def _blueprints_defined() -> dict[str, str]:
    """Blueprint name -> module file, for every ``Blueprint("name", …)`` in app/."""
    found = {}
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "Blueprint"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found[node.args[0].value] = str(path.relative_to(APP))
    return found


def test_no_module_is_loaded_by_lookup():
    for path in APP.rglob("*.py"):
        text = path.read_text()
        assert "find_spec" not in text and "import_module" not in text, path


def test_every_blueprint_is_registered_by_create_app(app):
    defined = _blueprints_defined()
    # The demo client's page is registered only with the `demo` setting (uma serve --demo);
    # Keycloak's layout only with `keycloak_compat` (issue 16).
    assert set(defined) - {"demo", "keycloak", "keycloak_uma_policy"} == set(app.blueprints), defined
    assert "if get_settings(app).demo:" in FACTORY and "app.register_blueprint(demo_client)" in FACTORY
    assert "KEYCLOAK_APIS = (keycloak_api, keycloak_policy_api)" in FACTORY
    assert "APIS + KEYCLOAK_APIS if get_settings(app).keycloak_compat else APIS" in FACTORY
    tree = ast.parse(FACTORY)
    registered_in_factory = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name in ("bp", "api")
    }
    assert len(registered_in_factory) == len(defined)  # each blueprint imported by name in the factory


def test_every_grant_and_endpoint_is_registered_in_create_app(app):
    server = app.extensions["uma_oauth_server"]
    grant_names = {g.__name__ for g, _ in server._token_grants}
    for name in grant_names:
        assert f"server.register_grant({name}" in FACTORY, name
    assert grant_names >= {"AuthorizationCodeGrant", "ClientCredentialsGrant", "RefreshTokenGrant", "UmaTicketGrant"}
    for endpoint in ("RevocationEndpoint", "ClientRegistrationEndpoint", "UmaIntrospectionEndpoint"):
        assert f"server.register_endpoint({endpoint}" in FACTORY, endpoint


def test_owner_api_and_pages_share_one_service_and_do_not_import_each_other():
    api = _imports(APP / "owner_api.py")
    pages = {p: _imports(p) for p in (APP / "web").glob("*.py")}
    assert "app.owner_service" in api
    for path, imported in pages.items():
        assert not any(i == "app.owner_api" or i.startswith("app.owner_api.") for i in imported), path
    for page in ("sharing.py", "policy_pages.py"):
        assert "app.owner_service" in pages[APP / "web" / page], page
    # The API takes from the pages only who is signed in (the session), never what an owner can do.
    assert {i for i in api if i.startswith("app.web")} <= {"app.web", "app.web.current_user"}
    service = _imports(APP / "owner_service.py")
    assert not any(i.startswith(("app.web", "app.owner_api", "flask")) for i in service), service
