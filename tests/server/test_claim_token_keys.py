"""Claim-token keys follow the provider (app/grant/claim_tokens.py, G-17): a JWKS served over
real HTTP whose keys rotate. The key set is fetched again after ``jwks_cache_lifetime``, so a
withdrawn key stops verifying within it; an unknown ``kid`` makes one early fetch (a key just
rotated in), at most once per ``jwks_refresh_cooldown``, so made-up kids do not hammer the
provider."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app import create_app
from app.grant.claim_tokens import JWT_FORMAT, ClaimTokenError, verify_claim_token

ISSUER = "https://rotating-idp.test.example"
AUDIENCE = "uma-as-key-tests"


class RotatingProvider:
    """An identity provider's JWKS endpoint whose published keys the test changes."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.status = 200
        self.lock = threading.Lock()

    def new_key(self) -> str:
        kid = "k-" + secrets.token_hex(4)
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return kid

    def publish(self, *kids: str) -> None:
        with self.lock:
            self.published = list(kids)

    def jwks(self) -> bytes:
        with self.lock:
            self.fetches += 1
            keys = []
            for kid in self.published:
                jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.keys[kid].public_key()))
                keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
            return json.dumps({"keys": keys}).encode()

    def token(self, kid: str, key_of: str | None = None) -> str:
        now = int(time.time())
        payload = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300, "email": "bob@example.com"}
        return jwt.encode(payload, self.keys[key_of or kid], algorithm="RS256", headers={"kid": kid})


@pytest.fixture()
def provider() -> Iterator[tuple[RotatingProvider, str]]:
    state = RotatingProvider()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = state.jwks() if state.status == 200 else b"down"
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="rotating-jwks", daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_port}/jwks"
    finally:
        server.shutdown()
        thread.join(timeout=10)


def make_verifier(database_url: str, tmp_path, jwks_uri: str, lifetime: int, cooldown: int):
    app = create_app(
        {
            "database_url": database_url,
            "instance_path": str(tmp_path),
            "secret_key": "k",
            "trusted_issuers": [{"issuer": ISSUER, "jwks_uri": jwks_uri, "audience": AUDIENCE}],
            "jwks_cache_lifetime": lifetime,
            "jwks_refresh_cooldown": cooldown,
            "log_format": "none",
        }
    )

    def verify(token: str) -> dict[str, Any]:
        with app.app_context():
            return verify_claim_token(token, JWT_FORMAT, settings=app.config["UMA_SETTINGS"], client_id="c").claims

    return verify


def test_a_withdrawn_key_stops_verifying_within_the_cache_lifetime(provider, database_url, tmp_path):
    state, uri = provider
    old, new = state.new_key(), state.new_key()
    state.publish(old)
    verify = make_verifier(database_url, tmp_path, uri, lifetime=1, cooldown=60)
    assert verify(state.token(old))["email"] == "bob@example.com"
    state.publish(new)  # the provider rotates: the old key is withdrawn
    time.sleep(1.5)  # past jwks_cache_lifetime
    with pytest.raises(ClaimTokenError, match="no key of the issuer matches"):
        verify(state.token(old))
    assert verify(state.token(new))["email"] == "bob@example.com"
    assert state.fetches == 2


def test_a_key_rotated_in_is_fetched_on_its_unknown_kid(provider, database_url, tmp_path):
    state, uri = provider
    old, new = state.new_key(), state.new_key()
    state.publish(old)
    verify = make_verifier(database_url, tmp_path, uri, lifetime=3600, cooldown=0)
    verify(state.token(old))
    state.publish(old, new)
    assert verify(state.token(new))["email"] == "bob@example.com"  # long before the lifetime ends
    assert state.fetches == 2
    assert verify(state.token(old)) and verify(state.token(new)) and state.fetches == 2  # both cached now


def test_unknown_kids_do_not_hammer_the_provider(provider, database_url, tmp_path):
    state, uri = provider
    known = state.new_key()
    state.publish(known)
    verify = make_verifier(database_url, tmp_path, uri, lifetime=3600, cooldown=600)
    verify(state.token(known))
    for _ in range(25):
        made_up = state.new_key()  # signed with a key the provider never published
        with pytest.raises(ClaimTokenError, match="no key of the issuer matches"):
            verify(state.token(made_up))
    assert state.fetches == 1  # the first fetch started the cool-down; no refetch inside it
    assert verify(state.token(known))


def test_a_token_signed_by_another_key_under_a_known_kid_fails(provider, database_url, tmp_path):
    state, uri = provider
    known, forger = state.new_key(), state.new_key()
    state.publish(known)
    verify = make_verifier(database_url, tmp_path, uri, lifetime=3600, cooldown=0)
    with pytest.raises(ClaimTokenError, match="signature does not verify"):
        verify(state.token(known, key_of=forger))


@pytest.mark.parametrize("status", [500, 404])
def test_an_unreachable_or_broken_key_endpoint_is_a_claim_token_error(provider, database_url, tmp_path, status):
    state, uri = provider
    kid = state.new_key()
    state.publish(kid)
    state.status = status
    verify = make_verifier(database_url, tmp_path, uri, lifetime=3600, cooldown=0)
    with pytest.raises(ClaimTokenError, match="could not be fetched"):
        verify(state.token(kid))


def test_a_key_endpoint_answering_no_keys_or_not_json_is_a_claim_token_error(provider, database_url, tmp_path):
    state, uri = provider
    kid = state.new_key()
    state.publish()  # {"keys": []}
    verify = make_verifier(database_url, tmp_path, uri, lifetime=3600, cooldown=0)
    with pytest.raises(ClaimTokenError):
        verify(state.token(kid))
