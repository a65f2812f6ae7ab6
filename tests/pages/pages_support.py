"""Helpers for the owner-page tests (tests/pages/).

:class:`Sharing` sets up one owner's world over real HTTP on the live server of
tests/support/server.py: the owner's uploaded policy, a resource server with a PAT, registered
resources and an UMA client; and drives the client's side of the UMA grant
(tickets, token requests, introspection).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
CLAIMS_CB = "https://client.example.com/uma-cb"
_CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = _CSRF_RE.search(html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def sign_in(browser: httpx.Client, user: Any) -> str:
    """Log ``user`` in through the login form; returns the new session's CSRF token."""
    page = browser.get("/login")
    r = browser.post(
        "/login",
        data={"csrf_token": csrf_of(page.text), "username": user.username, "password": user.password, "next": "/"},
    )
    assert r.status_code == 303, r.text
    return csrf_of(browser.get("/").text)


@dataclass
class Sharing:
    """One owner with a policy, an RS (PAT), resources and a client, over HTTP."""

    http: httpx.Client
    owner: Any
    pat: Any
    client: Any
    resources: dict[str, str] = field(default_factory=dict)

    def put_policy(self, text: str) -> httpx.Response:
        return self.http.put(
            "/owner/policy",
            content=text.encode(),
            headers={"Content-Type": "text/plain"},
            auth=(self.owner.username, self.owner.password),
        )

    def register(self, name: str, scopes: list[str], rtype: str = "photo-album") -> str:
        r = self.http.post(
            "/uma/resources", json={"name": name, "type": rtype, "resource_scopes": scopes}, headers=self.pat.headers
        )
        assert r.status_code == 201, r.text
        self.resources[name] = r.json()["_id"]
        return self.resources[name]

    def ticket(self, name: str, scopes: list[str]) -> str:
        r = self.http.post(
            "/uma/permission",
            json={"resource_id": self.resources[name], "resource_scopes": scopes},
            headers=self.pat.headers,
        )
        assert r.status_code == 201, r.text
        return r.json()["ticket"]

    def token(self, ticket: str) -> httpx.Response:
        return self.http.post("/token", data={"grant_type": UMA_GRANT, "ticket": ticket}, auth=self.client.basic_auth)

    def introspect(self, token: str) -> dict[str, Any]:
        r = self.http.post("/uma/introspect", data={"token": token}, headers=self.pat.headers)
        assert r.status_code == 200, r.text
        return r.json()

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        return self.http.request(method, path, auth=(self.owner.username, self.owner.password), **kw)


def make_sharing(
    http: httpx.Client,
    make_user,
    make_client,
    pat_for,
    policy: str | None,
    resources: dict[str, list[str]] | None = None,
    owner: Any = None,
    owner_claims: dict | None = None,
    client_name: str | None = None,
) -> Sharing:
    """``policy``: text with ``{client}`` replaced by the new client's id (None: no upload)."""
    owner = owner or make_user(claims=owner_claims)
    named = {"client_name": client_name} if client_name else {}
    client = make_client(grant_types=[UMA_GRANT, "refresh_token"], claims_redirect_uris=[CLAIMS_CB], **named)
    world = Sharing(http, owner, pat_for(owner.username), client)
    if policy is not None:
        r = world.put_policy(policy.replace("{client}", client.client_id))
        assert r.status_code == 200, r.text
    for name, scopes in (resources or {"summer-2026": ["view", "download", "print"]}).items():
        world.register(name, scopes)
    return world
