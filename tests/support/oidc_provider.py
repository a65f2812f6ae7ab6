"""A real OpenID Provider for the tests of issue 14: the ``oidc-provider-mock`` package's Flask
app, served over HTTP on 127.0.0.1 with a free port, in a thread (never a mocked function).

What the tests use of it, all through its own HTTP API or state:

* discovery (``/.well-known/openid-configuration``), the authorization endpoint (a form: the
  person types a subject and presses "Authorize", or "Deny"), the token endpoint (any client id,
  any secret: it does not register clients), the JWKS (one RSA key);
* ``PUT /users/<sub>``: the person's claims. The provider copies them into the ID token *after*
  its own members, so a person with an ``aud``, ``iss``, ``exp`` or ``nonce`` claim gets an ID
  token with that value: how the tests make the provider send a wrong audience, issuer, expiry
  or nonce;
* :meth:`OpenIDProvider.rotate_key`: the provider replaces its signing key (as a real one
  rotates); its ID tokens carry no ``kid``, the JWKS one key;
* ``requested``: the paths it served, in order (what the relying party fetched, and when).

:func:`authorize` plays the person at the provider's page.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
from werkzeug.serving import make_server


class OpenIDProvider:
    """One provider on its own port; ``issuer`` is its URL."""

    def __init__(self, port: int = 0) -> None:
        import oidc_provider_mock

        self.app = oidc_provider_mock.app(require_nonce=True)
        #: The paths the provider was asked for, in order (to see what a relying party fetched).
        self.requested: list[str] = []

        def recording(environ: Any, start_response: Any) -> Any:
            self.requested.append(environ.get("PATH_INFO", ""))
            return self.app(environ, start_response)

        self.server = make_server("127.0.0.1", port, recording, threaded=True)
        self.issuer = f"http://127.0.0.1:{self.server.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="openid-provider", daemon=True)
        self.thread.start()

    def set_user(self, sub: str, **claims: Any) -> None:
        """The person ``sub`` and the claims the provider asserts about them."""
        r = httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert r.status_code == 204, r.text

    @property
    def storage(self) -> Any:
        """The provider's state (users, codes, its signing key), as its requests see it."""
        import flask

        with self.app.test_request_context("/"):
            self.app.preprocess_request()
            return flask.g.oidc_provider_mock_storage

    def rotate_key(self) -> None:
        """A new signing key replaces the old one, in the JWKS too."""
        storage = self.storage
        key_type = type(storage.jwk)
        try:
            storage.jwk = key_type.generate_key(private=True)  # joserfc's keys
        except TypeError:
            storage.jwk = key_type.generate_key(is_private=True)  # authlib.jose's keys

    def jwks(self) -> dict[str, Any]:
        return httpx.get(f"{self.issuer}/jwks", timeout=10).json()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


def authorize(browser: httpx.Client, authorization_url: str, sub: str | None, *, deny: bool = False) -> str:
    """At the provider's authorization page (``authorization_url``, where the relying party sent
    the browser): sign in as ``sub`` and authorize, or deny. Returns where the provider sends the
    browser back (the relying party's redirect URI with ``code`` or ``error``, and ``state``)."""
    page = browser.get(authorization_url)
    assert page.status_code == 200, page.text
    assert 'name="sub"' in page.text
    r = browser.post(authorization_url, data={"action": "deny"} if deny else {"sub": sub})
    assert r.status_code == 302, r.text
    return r.headers["Location"]
