"""Keycloak's extensions to the UMA grant, at the realm's token endpoint only.

:class:`KeycloakUmaGrant` is the standard grant (:class:`app.grant.token_grant.UmaTicketGrant`:
the same ticket redemption, claims, policy decision, audit and RPT) with what Keycloak's clients
send on top:

* ``Authorization: Bearer <access token>`` issued by this AS: the token's user is the
  requesting party (their account's claims, ``sub`` = user name, as if released at the claims
  interaction); without client credentials in the request, the token's client is the client,
  with them it must be that client's token; a trusted issuer's JWT as the bearer: its verified
  claims (as a pushed claim token of format jwt), the client authenticating in the form;
* ``permission=<resource>#<scope>`` (repeatable; ``resource`` alone means all its scopes;
  ``r#a,b`` two scopes; a resource is named by id or by name) with ``audience=<resource server
  client id>`` and no ``ticket``: the grant issues the ticket itself, as the resource server
  would at the permission endpoint, and decides it like any other;
* ``response_mode=decision`` → ``{"result": true}``; ``response_mode=permissions`` →
  ``[{"rsid", "rsname", "scopes"}]``: the decision of the standard grant, whose RPT is revoked
  before the answer (never delivered);
* ``submit_request``: accepted; whether an owner is asked is the owner's policy's choice
  (``ask`` rules), with or without it;
* a refusal is Keycloak's ``403 {"error": "access_denied", "error_description": "request_denied"}``.

Other errors are the standard grant's.
"""

from __future__ import annotations

import json
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidClientError, UnauthorizedClientError
from flask import g
from flask import request as flask_request
from sqlalchemy import or_, select

from .. import get_settings
from ..db import get_session
from ..grant.claim_tokens import JWT_FORMAT, ClaimTokenError, verify_claim_token
from ..grant.errors import RequestDenied, invalid_grant, invalid_request, invalid_scope, safe_text
from ..grant.token_grant import MAX_PARAM_CHARS, UmaTicketGrant
from ..models import Resource, Token
from ..oauth.clients import cached_client
from ..oauth.grants import active_user
from ..oauth.tokens import find_access_token
from ..protection.permissions import MAX_PERMISSIONS
from ..protection.rpt import find_rpt, revoke_rpt
from ..protection.tickets import issue_ticket

BLUEPRINT = "keycloak"
RESPONSE_MODES = ("decision", "permissions")


class InvalidBearer(OAuth2Error):
    """The bearer token naming the requesting party is unknown, expired or revoked."""

    error = "invalid_token"
    status_code = 401


class InvalidResource(OAuth2Error):
    """A ``permission`` names no resource of the audience (Keycloak's ``invalid_resource``)."""

    error = "invalid_resource"
    status_code = 400


class AccessDenied(OAuth2Error):
    """Keycloak's answer when nothing is granted."""

    error = "access_denied"
    status_code = 403


def parse_permissions(values: list[str]) -> list[tuple[str, list[str]]]:
    """``["r1#a,b", "r2", "r3#c"]`` (or one value ``"r1#a,r3#c"``, as some clients join them) →
    ``[("r1", ["a", "b"]), ("r2", []), ("r3", ["c"])]``: a piece with ``#`` starts a permission,
    a piece without one after it is another scope of that permission."""
    out: list[tuple[str, list[str]]] = []
    for value in values:
        current: tuple[str, list[str]] | None = None
        for piece in (p.strip() for p in value.split(",")):
            if not piece:
                continue
            if "#" in piece:
                resource, _, scope = piece.partition("#")
                if not resource.strip():
                    raise invalid_request("A permission names its resource: <resource>#<scope>.")
                current = (resource.strip(), [scope.strip()] if scope.strip() else [])
                out.append(current)
            elif current is not None:
                current[1].append(piece)
            else:
                current = (piece, [])
                out.append(current)
    if not out:
        raise invalid_request("Send 'ticket', or 'permission' with 'audience'.")
    if len(out) > MAX_PERMISSIONS:
        raise invalid_request(f"At most {MAX_PERMISSIONS} permissions per request.")
    return out


class KeycloakUmaGrant(UmaTicketGrant):
    """The UMA grant as Keycloak's clients use it (see the module docstring)."""

    @classmethod
    def check_token_endpoint(cls, request: Any) -> bool:
        return request.payload.grant_type == cls.GRANT_TYPE and flask_request.blueprint == BLUEPRINT

    def validate_token_request(self) -> None:
        data = self.request.payload.data
        mode = data.get("response_mode") or None
        if mode is not None and mode not in RESPONSE_MODES:
            raise invalid_request("'response_mode' is decision or permissions.")
        self.response_mode = mode
        self.bearer, bearer_jwt = self._bearer_token()
        client = self._client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(description="The client is not registered for the UMA grant.")
        self.request.client = client
        # Verified now, before the ticket is redeemed (a trusted issuer's keys may be fetched over HTTP).
        self.party = self._party(client, bearer_jwt)
        raw_ticket = data.get("ticket")
        if not raw_ticket:
            raw_ticket = self._ticket_for_permissions(client, data.get("audience"))
        self.validate_ticket(client, raw_ticket)

    # -- who asks ----------------------------------------------------------------------

    def _bearer_token(self) -> tuple[Token | None, str | None]:
        """``(token, None)`` for an access token of this AS; ``(None, jwt)`` for a JWT to verify as
        a trusted issuer's; ``(None, None)`` without a bearer credential."""
        scheme, _, value = self.request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return None, None
        value = value.strip()
        if not 0 < len(value) <= MAX_PARAM_CHARS:
            raise InvalidBearer(description="The bearer token is malformed.")
        token = find_access_token(get_session(), value)
        if token is not None:
            if token.is_expired() or token.is_revoked():
                raise InvalidBearer(description="The bearer token is expired or revoked.")
            return token, None
        if value.count(".") == 2:
            return None, value
        raise InvalidBearer(description="The bearer token is unknown, expired or revoked.")

    def _client(self) -> Any:
        """Client credentials when the request has them (with a trusted issuer's JWT as the bearer,
        always: in the form, ``client_secret_post``); else the bearer token's client."""
        if self.bearer is None or "client_id" in self.request.payload.data:
            client = self.authenticate_token_endpoint_client()
            if self.bearer is not None and self.bearer.client_id != client.client_id:
                # A token names its user to the client it was issued to, not to every client.
                raise invalid_grant("The bearer token was issued to another client.")
            return client
        client = cached_client(get_session(), self.bearer.client_id)
        if client is None:
            raise InvalidClientError(description="The bearer token's client no longer exists.", status_code=401)
        return client

    def _party(self, client: Any, bearer_jwt: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The requesting party's verified claims: the bearer token's user's account (this AS is
        their issuer), or a trusted issuer's JWT (as a pushed ``claim_token`` of format jwt)."""
        settings = get_settings()
        if bearer_jwt is not None:
            try:
                verified = verify_claim_token(bearer_jwt, JWT_FORMAT, settings=settings, client_id=client.client_id)
            except ClaimTokenError as exc:
                raise InvalidBearer(description=safe_text(f"The bearer token was refused: {exc}.")) from None
            return dict(verified.claims), dict(verified.claim_sources)
        if self.bearer is None or not self.bearer.subject:
            return {}, {}
        user = active_user(self.bearer.subject)
        if user is None:
            raise InvalidBearer(description="The bearer token's user no longer exists or is disabled.")
        claims = {**(user.claims or {}), "sub": user.username}
        return claims, {name: {"issuer": settings.issuer} for name in claims}

    def party_claims(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.party

    # -- permission=… without a ticket ---------------------------------------------------

    def _ticket_for_permissions(self, client: Any, audience: str | None) -> str:
        """The ticket the resource server ``audience`` would get for these permissions at the
        permission endpoint (one owner's resources), bound to ``client``."""
        wanted = parse_permissions(list(g.get("keycloak_permissions", [])))
        if not audience or len(audience) > 255:
            raise invalid_request("'audience' (the resource server's client id) is required with 'permission'.")
        session = get_session()
        names = sorted({name for name, _ in wanted if len(name) <= MAX_PARAM_CHARS and "\x00" not in name})
        rows = list(
            session.execute(
                select(Resource).where(
                    Resource.rs_client_id == audience, or_(Resource.id.in_(names), Resource.name.in_(names))
                )
            ).scalars()
        )
        permissions: dict[str, list[str]] = {}
        owners: set[str] = set()
        for name, scopes in wanted:
            found = [r for r in rows if r.id == name] or [r for r in rows if r.name == name]
            if not found:
                raise InvalidResource(description=safe_text(f"No resource {name} at resource server {audience}."))
            if len({r.owner for r in found}) > 1:
                raise invalid_request(f"Resources of several owners are named {name}: name it by its id.")
            resource = found[0]
            unknown = [s for s in scopes if s not in resource.resource_scopes]
            if unknown:
                raise invalid_scope(f"Scope {unknown[0][:64]} is not registered for resource {name[:64]}.")
            owners.add(resource.owner)
            known = permissions.setdefault(resource.id, [])
            known.extend(s for s in (scopes or resource.resource_scopes) if s not in known)
        if len(owners) > 1:
            raise invalid_request("The permissions name resources of several owners: ask for each owner's apart.")
        raw, _ = issue_ticket(
            session,
            owner=owners.pop(),
            rs_client_id=audience,
            permissions=[{"resource_id": rid, "resource_scopes": s} for rid, s in permissions.items()],
            lifetime=get_settings().ticket_lifetime,
            client_id=client.client_id,
        )
        session.flush()
        return raw

    # -- the answer ----------------------------------------------------------------------

    def create_token_response(self) -> tuple[int, dict[str, Any], list]:
        try:
            status, body, headers = super().create_token_response()
        except RequestDenied:
            raise AccessDenied(description="request_denied") from None
        if self.response_mode is None:
            return status, body, headers
        session = get_session()
        row = find_rpt(session, body["access_token"])
        if row is None:  # issued in this very transaction: never absent
            raise AccessDenied(description="request_denied")
        permissions = list(row.permissions)
        revoke_rpt(session, row)  # decided and audited like any RPT, never delivered
        if self.response_mode == "decision":
            return 200, {"result": True}, headers
        names = {
            r.id: r.name
            for r in session.execute(
                select(Resource).where(Resource.id.in_([p["resource_id"] for p in permissions]))
            ).scalars()
        }
        listed = [
            {
                "rsid": p["resource_id"],
                "rsname": names.get(p["resource_id"]) or p["resource_id"],
                "scopes": p["resource_scopes"],
            }
            for p in permissions
        ]
        return 200, json.dumps(listed), headers  # type: ignore[return-value]  # authlib sends a str as it is
