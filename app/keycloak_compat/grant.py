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
  ``[{"rsid", "rsname", "scopes"}]``: the decision of the standard grant (same policy, audit
  record, spent ticket), which then issues no token at all (``Assessment.decide_only``);
* ``audience`` alone (no ``ticket``, no ``permission``): Keycloak's entitlement — every scope
  of the audience's resources the policy grants the party now, asked for in a ticket the grant
  issues itself and decides like any other (one owner's resources: an RPT holds one owner's);
* ``submit_request``: accepted; whether an owner is asked is the owner's policy's choice
  (``ask`` rules), with or without it;
* a JWT RPT carries Keycloak's ``authorization.permissions`` (``[{"rsid", "rsname", "scopes"}]``)
  beside UMA's ``permissions`` (``Assessment.rpt_claims``), also when refreshed at the realm
  (:class:`KeycloakRefreshTokenGrant`);
* a refusal is Keycloak's ``403 {"error": "access_denied", "error_description": "request_denied"}``.

Other errors are the standard grant's.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidClientError, UnauthorizedClientError
from flask import g
from flask import request as flask_request
from sqlalchemy import or_, select
from sqlalchemy.exc import SQLAlchemyError

from .. import get_settings
from ..db import get_session
from ..grant.bridge import decide_requested, refresh_rpt, requesting_party_of
from ..grant.claim_tokens import JWT_FORMAT, ClaimTokenError, verify_claim_token
from ..grant.errors import RequestDenied, invalid_grant, invalid_request, invalid_scope, safe_text
from ..grant.token_grant import MAX_PARAM_CHARS, UmaTicketGrant
from ..http_auth import read_authorization
from ..models import Resource, Rpt, Token
from ..oauth.clients import cached_client
from ..oauth.grants import RefreshTokenGrant, active_user
from ..oauth.tokens import find_access_token
from ..policies import get_store
from ..protection.permissions import MAX_PERMISSIONS
from ..protection.tickets import issue_ticket

BLUEPRINT = "keycloak"
RESPONSE_MODES = ("decision", "permissions")
#: Most resources of one resource server an entitlement request decides (one engine decision
#: per owner); a resource server with more must name the permissions it asks for.
ENTITLEMENT_SCAN_LIMIT = 2000

log = logging.getLogger(__name__)


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
        #: Tickets decided after the first one (an entitlement over several owners' resources).
        self.more_tickets: list[str] = []
        if not raw_ticket and not g.get("keycloak_permissions") and data.get("audience"):
            raw_ticket, *self.more_tickets = self._tickets_for_entitlement(client, data["audience"])
        elif not raw_ticket:
            raw_ticket = self._ticket_for_permissions(client, data.get("audience"))
        self.validate_ticket(client, raw_ticket)

    # -- who asks ----------------------------------------------------------------------

    def _bearer_token(self) -> tuple[Token | None, str | None]:
        """``(token, None)`` for an access token of this AS; ``(None, jwt)`` for a JWT to verify as
        a trusted issuer's; ``(None, None)`` without a bearer credential."""
        header = read_authorization(self.request.headers.get("Authorization"))
        if header.scheme != "bearer":
            return None, None
        value = header.bearer
        if value is None or len(value) > MAX_PARAM_CHARS:  # (RFC 6750 §2.1: a b64token)
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

    # -- audience alone: an entitlement ------------------------------------------------------

    def _tickets_for_entitlement(self, client: Any, audience: str) -> list[str]:
        """Tickets for every scope the party may reach now of the resources at ``audience``, one
        per owner: each owner's resources there decided for the party's claims (the bearer's)
        and the client, as the grant decides them (:func:`app.grant.bridge.decide_requested`;
        the "shared with me" analysis, from the resource server's side); what is granted goes
        into that owner's ticket, which the grant then decides and audits like any other.
        Nothing reachable is ``access_denied``; several owners' resources reachable without a
        ``response_mode`` is 400 (an RPT holds one owner's)."""
        if len(audience) > 255:
            raise invalid_request("'audience' is the resource server's client id.")
        session = get_session()
        rows = list(
            session.execute(
                select(Resource)
                .where(Resource.rs_client_id == audience)
                .order_by(Resource.owner, Resource.id)
                .limit(ENTITLEMENT_SCAN_LIMIT + 1)
            ).scalars()
        )
        if len(rows) > ENTITLEMENT_SCAN_LIMIT:
            raise invalid_request(
                f"More than {ENTITLEMENT_SCAN_LIMIT} resources at this resource server: name them with 'permission'."
            )
        claims, sources = self.party
        party = requesting_party_of(claims, sources, get_settings().issuer, client.client_id)
        store = get_store()
        reachable: dict[str, list[dict[str, Any]]] = {}
        for owner in sorted({r.owner for r in rows}):
            mine = [(r, list(r.resource_scopes)) for r in rows if r.owner == owner and r.resource_scopes]
            if not mine:
                continue
            try:
                decision, _version, _request = decide_requested(
                    store, session, owner, party, mine, client, claims, sources
                )
            except SQLAlchemyError:
                raise
            except Exception:
                log.exception(
                    "the policy engine failed on an entitlement request (owner %s); nothing is granted", owner
                )
                continue
            granted = [
                {"resource_id": p["resource_id"], "resource_scopes": list(p["scopes"])}
                for p in decision.granted
                if p["scopes"]
            ]
            if granted:
                reachable[owner] = granted
        if not reachable:
            raise AccessDenied(description="request_denied")
        if len(reachable) > 1 and self.response_mode is None:
            raise invalid_request(
                "Resources of several owners are reachable here and an RPT holds one owner's: ask with "
                "'permission' for each owner's resources, or with response_mode=permissions for the list."
            )
        tickets = [
            issue_ticket(
                session,
                owner=owner,
                rs_client_id=audience,
                permissions=permissions,
                lifetime=get_settings().ticket_lifetime,
                client_id=client.client_id,
            )[0]
            for owner, permissions in reachable.items()
        ]
        session.flush()
        return tickets

    # -- the answer ----------------------------------------------------------------------

    def create_token_response(self) -> tuple[int, dict[str, Any], list]:
        # With a response_mode the standard grant decides only: same decision, audit record and
        # spent ticket, no token (:attr:`app.grant.bridge.Assessment.decide_only`).
        if self.response_mode is None:
            self.request.uma_assessment.rpt_claims = self._authorization_claim
            try:
                return super().create_token_response()
            except RequestDenied:
                raise AccessDenied(description="request_denied") from None
        granted: list[dict[str, Any]] = []
        for raw_ticket in [None, *self.more_tickets]:  # each owner's ticket of an entitlement in turn
            if raw_ticket is not None:
                self.validate_ticket(self.request.client, raw_ticket)
            self.request.uma_assessment.decide_only = True
            try:
                _status, body, _headers = super().create_token_response()
            except RequestDenied:
                continue
            granted.extend(body["permissions"])
        if not granted:
            raise AccessDenied(description="request_denied")
        if self.response_mode == "decision":
            return 200, {"result": True}, self.TOKEN_RESPONSE_HEADER
        return 200, json.dumps(self._keycloak_permissions(granted)), self.TOKEN_RESPONSE_HEADER  # type: ignore[return-value]  # authlib sends a str as it is

    def _authorization_claim(self, granted: list[dict[str, Any]]) -> dict[str, Any]:
        return authorization_claim(granted, self._names())

    def _keycloak_permissions(self, granted: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return keycloak_permissions(granted, self._names())

    def _names(self) -> dict[str, str | None]:
        """The names of the request's resources, as read for it."""
        return {r.id: r.name for r, _ in self.request.uma_assessment.requested}


class KeycloakRefreshTokenGrant(RefreshTokenGrant):
    """The standard refresh grant at the realm's token endpoint: a refreshed JWT RPT carries
    Keycloak's ``authorization`` claim too (:func:`authorization_claim`)."""

    @classmethod
    def check_token_endpoint(cls, request: Any) -> bool:
        return request.payload.grant_type == cls.GRANT_TYPE and flask_request.blueprint == BLUEPRINT

    def create_token_response(self) -> tuple[int, dict[str, Any], list]:
        token = self.request.refresh_token
        if not isinstance(token, Rpt):
            return super().create_token_response()
        body = refresh_rpt(
            get_session(),
            get_settings(),
            token,
            self.request.payload.scope,
            rpt_claims=lambda granted: authorization_claim(granted, {}),
        )
        return 200, body, self.TOKEN_RESPONSE_HEADER


def keycloak_permissions(granted: list[dict[str, Any]], names: dict[str, str | None]) -> list[dict[str, Any]]:
    """UMA's granted permissions in Keycloak's shape: ``[{"rsid", "rsname", "scopes"}]``; the
    resources not in ``names`` (an upgrade's, a refresh's) are looked up."""
    missing = [p["resource_id"] for p in granted if p["resource_id"] not in names]
    if missing:
        query = select(Resource).where(Resource.id.in_(missing))
        names = {**names, **{r.id: r.name for r in get_session().execute(query).scalars()}}
    return [
        {
            "rsid": p["resource_id"],
            "rsname": names.get(p["resource_id"]) or p["resource_id"],
            "scopes": p["resource_scopes"],
        }
        for p in granted
    ]


def authorization_claim(granted: list[dict[str, Any]], names: dict[str, str | None]) -> dict[str, Any]:
    """Keycloak's RPT claim beside UMA's ``permissions``: ``{"authorization": {"permissions":
    [{"rsid", "rsname", "scopes"}]}}`` (what Keycloak's policy enforcers read)."""
    return {"authorization": {"permissions": keycloak_permissions(granted, names)}}
