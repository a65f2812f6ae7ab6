"""Anti-CSRF protection is on by default (O-07, O-12, G-51): every unsafe request to a page
needs the session's token, without any view having to ask for it; only the APIs whose
callers authenticate each request themselves are exempt, by blueprint."""

from __future__ import annotations

import re
import secrets

import pytest
from flask import Blueprint

from app import create_app
from app.factory import APIS
from tests.pages.pages_support import csrf_of
from tests.support.server import close_app

UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture()
def fresh_app(database_url, tmp_path):
    """An app no request has reached yet, so a test may still add routes to it."""
    app = create_app(
        {
            "database_url": database_url,
            "secret_key": secrets.token_hex(16),
            "instance_path": str(tmp_path),
            "TESTING": True,
        }
    )
    yield app
    close_app(app)  # its background threads and connections


def _token(client) -> str:
    return csrf_of(client.get("/login").get_data(as_text=True))


def test_a_form_route_added_later_to_the_pages_is_protected_without_asking_O_12(fresh_app):
    done = []

    def new_form():
        done.append(True)
        return "changed"

    # A route of the pages blueprint ("web.…"), as a new page would add it.
    fresh_app.add_url_rule("/my/new-form", "web.new_form", new_form, methods=["POST"])
    client = fresh_app.test_client()
    token = _token(client)
    assert client.post("/my/new-form", data={"x": "1"}).status_code == 400
    assert client.post("/my/new-form", data={"csrf_token": "forged"}).status_code == 400
    assert client.post("/my/new-form", headers={"X-CSRF-Token": "forged"}).status_code == 400
    assert done == []  # the view never ran
    assert client.post("/my/new-form", data={"csrf_token": token}).status_code == 200
    assert client.post("/my/new-form", headers={"X-CSRF-Token": token}).status_code == 200
    assert done == [True, True]


def test_a_new_blueprint_is_protected_unless_declared_an_api_O_12(fresh_app):
    pages = Blueprint("new_pages", __name__)
    pages.add_url_rule("/new/page", "change", lambda: "changed", methods=["POST", "PUT", "DELETE"])
    fresh_app.register_blueprint(pages)
    fresh_app.add_url_rule("/new/app-route", "app_route", lambda: "changed", methods=["POST"])
    client = fresh_app.test_client()
    for method in ("POST", "PUT", "DELETE"):
        assert client.open("/new/page", method=method).status_code == 400, method
    assert client.post("/new/app-route").status_code == 400
    token = _token(client)
    assert client.post("/new/page", data={"csrf_token": token}).status_code == 200


def test_every_unsafe_page_route_refuses_a_request_without_the_token_O_12(fresh_app):
    """Discovered from the URL map: a page route added later is checked here too."""
    api_names = {bp.name for bp in APIS}
    client = fresh_app.test_client()
    _token(client)  # the session has a token; the requests below do not send it
    checked = []
    for rule in fresh_app.url_map.iter_rules():
        blueprint = rule.endpoint.rpartition(".")[0]
        if blueprint in api_names:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", "1", rule.rule)
        for method in sorted(set(rule.methods or ()) & set(UNSAFE)):
            response = client.open(path, method=method, data={"text": "x"})
            assert response.status_code == 400, (method, rule.rule, response.status_code)
            assert "did not come from this site" in response.get_data(as_text=True)
            checked.append(rule.endpoint)
    assert {"web.login", "web.logout", "web.save_policy", "oauth.authorize", "claims.consent"} <= set(checked)


def test_token_authenticated_apis_need_no_csrf_token(fresh_app):
    client = fresh_app.test_client()
    _token(client)  # even with a session, the APIs do not look at it
    assert client.post("/token", data={"grant_type": "client_credentials"}).status_code == 401
    assert client.post("/uma/resources", json={"resource_scopes": []}).status_code == 401
    assert client.post("/uma/introspect", data={"token": "x"}).status_code == 401


def test_owner_api_session_needs_the_token_basic_and_bearer_do_not(fresh_app, make_user):
    owner = make_user()
    client = fresh_app.test_client()
    token = _token(client)
    r = client.post("/login", data={"csrf_token": token, "username": owner.username, "password": owner.password})
    assert r.status_code == 303
    token = csrf_of(client.get("/").get_data(as_text=True))
    body = {"text": 'permit view on type "photo-album"'}
    for headers in ({}, {"X-CSRF-Token": "forged"}):
        r = client.put("/owner/policy", json=body, headers=headers)
        assert r.status_code == 403 and r.json["error"] == "insufficient_scope"
    assert client.delete("/owner/policy").status_code == 403
    assert client.get("/owner/requests").status_code == 200  # reading needs no token
    assert client.put("/owner/policy", json=body, headers={"X-CSRF-Token": token}).status_code == 200
    basic = fresh_app.test_client()  # no session at all: Basic credentials authenticate the request
    r = basic.put("/owner/policy", json=body, auth=(owner.username, owner.password))
    assert r.status_code == 200 and r.json["version"] == 2
