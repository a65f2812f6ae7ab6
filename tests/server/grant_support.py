"""Fixtures and helpers for the UMA grant tests (tests/server/test_grant_*.py and friends).

* ``idp`` — a local claim-token issuer: an RSA key, its JWKS in a file, and
  ``idp.token(**claims)`` signing ID Tokens / JWTs;
* ``uma`` — a live HTTP server (create_app on the session's test database) that
  trusts ``idp`` as a claim-token issuer, and :class:`Uma` helpers driving
  real HTTP: owners with uploaded policies, an RS with a PAT, resources,
  tickets, clients, token requests.

Import them into a test module with ``from tests.server.grant_support import *  # noqa``.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.serving import make_server

from app import create_app

UMA_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"
ID_TOKEN = "http://openid.net/specs/openid-connect-core-1_0.html#IDToken"
JWT_FORMAT = "urn:ietf:params:oauth:token-type:jwt"
IDP_ISSUER = "https://idp.test.example"
#: A second trusted issuer whose keys are fetched over HTTP (jwks_uri), with the same key.
IDP2_ISSUER = "https://idp2.test.example"
IDP_AUDIENCE = "uma-as-tests"
CLAIMS_CB = "https://client.example.com/uma-cb"

__all__ = [
    "UMA_GRANT",
    "ID_TOKEN",
    "JWT_FORMAT",
    "IDP_ISSUER",
    "IDP2_ISSUER",
    "IDP_AUDIENCE",
    "CLAIMS_CB",
    "Idp",
    "idp",
    "Uma",
    "uma",
    "Flow",
]


class Idp:
    """A trusted issuer of claim tokens for the tests."""

    def __init__(self, directory) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "test-" + secrets.token_hex(4)
        self.pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        self.public_pem = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        self.jwks_file = directory / "idp-jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": [jwk]}))

    def token(
        self,
        *,
        issuer: str = IDP_ISSUER,
        audience: Any = IDP_AUDIENCE,
        lifetime: int = 300,
        key: Any = None,
        algorithm: str = "RS256",
        headers: dict | None = None,
        **claims: Any,
    ) -> str:
        at = int(time.time())
        payload = {"iss": issuer, "aud": audience, "iat": at, "exp": at + lifetime, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(
            payload,
            key if key is not None else self.pem,
            algorithm=algorithm,
            headers={"kid": self.kid, **(headers or {})},
        )


@pytest.fixture(scope="session")
def idp(tmp_path_factory) -> Iterator[Idp]:
    """The issuer, its JWKS file, and the same JWKS served over HTTP (``idp.jwks_uri``)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    issuer = Idp(tmp_path_factory.mktemp("idp"))
    body = issuer.jwks_file.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/jwks" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            if self.path == "/jwks":
                self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="idp-jwks", daemon=True)
    thread.start()
    issuer.jwks_uri = f"http://127.0.0.1:{server.server_port}/jwks"
    try:
        yield issuer
    finally:
        server.shutdown()
        thread.join(timeout=10)


class _Dispatch:
    app: Any = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


@dataclass
class Flow:
    """One owner's set-up: owner account, RS with PAT, registered resources, a client."""

    uma: Uma
    owner: Any
    pat: Any
    resources: dict[str, str] = field(default_factory=dict)
    client: Any = None

    def ticket(self, *permissions: tuple[str, list[str]]) -> str:
        body = [{"resource_id": self.resources[name], "resource_scopes": scopes} for name, scopes in permissions]
        r = self.uma.http.post("/uma/permission", json=body if len(body) > 1 else body[0], headers=self.pat.headers)
        assert r.status_code == 201, r.text
        return r.json()["ticket"]

    def token(self, ticket: str | None, client: Any = None, **params: Any) -> httpx.Response:
        return self.uma.token(client or self.client, ticket=ticket, **params)

    def introspect(self, rpt: str) -> dict[str, Any]:
        r = self.uma.http.post("/uma/introspect", data={"token": rpt}, headers=self.pat.headers)
        assert r.status_code == 200, r.text
        return r.json()


class Uma:
    """HTTP helpers over the grant test server."""

    def __init__(self, url: str, app: Any, make_user, make_client, make_rs, pat_for) -> None:
        self.url = url
        self.app = app
        self.http = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
        self._make_user = make_user
        self._make_client = make_client
        self._make_rs = make_rs
        self._pat_for = pat_for

    @property
    def settings(self):
        return self.app.config["UMA_SETTINGS"]

    def user(self, claims: dict | None = None, username: str | None = None):
        return self._make_user(username=username, claims=claims)

    def client(self, *, scope: str = "", public: bool = False, claims_redirect_uris=(CLAIMS_CB,), **kw: Any):
        kw.setdefault("grant_types", [UMA_GRANT, "refresh_token"])
        return self._make_client(
            scope=scope,
            claims_redirect_uris=list(claims_redirect_uris),
            token_endpoint_auth_method="none" if public else "client_secret_basic",
            **kw,
        )

    def put_policy(self, owner, text: str) -> httpx.Response:
        return self.http.put(
            "/owner/policy",
            content=text.encode(),
            auth=(owner.username, owner.password),
            headers={"Content-Type": "text/plain"},
        )

    def flow(self, policy: str | None, resources: dict[str, dict] | None = None, owner=None, **client_kw: Any) -> Flow:
        """An owner (with ``policy`` uploaded; ``{owner}`` and ``{client}`` are replaced),
        an RS with a PAT, resources, a client."""
        owner = owner or self.user()
        client = self.client(**client_kw)
        if policy is not None:
            r = self.put_policy(owner, policy.replace("{owner}", owner.username).replace("{client}", client.client_id))
            assert r.status_code == 200, r.text
        pat = self._pat_for(owner.username)
        flow = Flow(self, owner, pat, client=client)
        for name, desc in (
            resources or {"album": {"resource_scopes": ["view", "download", "print"], "type": "photo-album"}}
        ).items():
            body = {"name": name, **desc}
            r = self.http.post("/uma/resources", json=body, headers=pat.headers)
            assert r.status_code == 201, r.text
            flow.resources[name] = r.json()["_id"]
        return flow

    def token(self, client: Any, **params: Any) -> httpx.Response:
        data = {"grant_type": UMA_GRANT, **{k: v for k, v in params.items() if v is not None}}
        if client.client_secret is None:
            data["client_id"] = client.client_id
            return self.http.post("/token", data=data)
        return self.http.post("/token", data=data, auth=client.basic_auth)


@pytest.fixture(scope="session")
def uma(engine, database_url, idp, make_user, make_client, make_rs, pat_for, tmp_path_factory) -> Iterator[Uma]:
    """A live server on the session's database that trusts ``idp`` for pushed claim tokens."""
    dispatch = _Dispatch()
    server = make_server("127.0.0.1", 0, dispatch, threaded=True)
    url = f"http://127.0.0.1:{server.port}"
    dispatch.app = create_app(
        {
            "database_url": database_url,
            "issuer": url,
            "secret_key": secrets.token_hex(32),
            "instance_path": str(tmp_path_factory.mktemp("grant-instance")),
            "rpt_format": "jwt",
            "purge_interval": 0,  # tests/server/test_purge.py purges; a background purge mid-test would not be seen
            "lockout_address_attempts": 0,  # every request comes from 127.0.0.1 (tests/support/server.py)
            "trusted_issuers": [
                {
                    "issuer": IDP_ISSUER,
                    "jwks_file": str(idp.jwks_file),
                    "audience": IDP_AUDIENCE,
                    "algorithms": ["RS256"],
                },
                {"issuer": IDP2_ISSUER, "jwks_uri": idp.jwks_uri, "algorithms": ["RS256"]},
            ],
            "TESTING": True,
        }
    )
    thread = threading.Thread(target=server.serve_forever, name="grant-live-server", daemon=True)
    thread.start()
    helper = Uma(url, dispatch.app, make_user, make_client, make_rs, pat_for)
    try:
        yield helper
    finally:
        helper.http.close()
        server.shutdown()
        thread.join(timeout=10)
