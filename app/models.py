"""Tables of the authorization server (SQLModel over SQLAlchemy 2).

Conventions:

* timestamps are integer seconds since the epoch (UTC), the same on SQLite and
  PostgreSQL, and directly usable as JWT/introspection ``exp``/``iat``;
* every token-like secret (client secrets, access/refresh tokens, PATs,
  authorization codes, tickets, RPTs, PCTs) is stored as its SHA-256 hex
  digest, never in clear (architecture: "Secrets at rest");
* JSON columns hold lists/objects; assign a new value to change one (in-place
  mutation is not tracked).

The migration in ``app/migrations/versions`` must match these classes;
``tests/server/test_models.py`` checks it with alembic's ``compare_metadata``.
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import list_to_scope, scope_to_list
from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .security import hash_token, now, tokens_equal

PROTECTION_SCOPE = "uma_protection"
UMA_TICKET_GRANT = "urn:ietf:params:oauth:grant-type:uma-ticket"


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class User(SQLModel, table=True):
    """A local account: resource owner and/or requesting party."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=255)
    password_hash: str
    #: Claims of this person (e.g. email, email_verified), handed to the policy engine as verified.
    claims: dict[str, Any] = _json_dict()
    is_active: bool = True
    created_at: int = Field(default_factory=now)

    def get_user_id(self) -> str:
        return self.username


class FederatedIdentity(SQLModel, table=True):
    """An account at an upstream OpenID Provider, keyed by (issuer, subject), that signs in as a
    local account (issue 14): made when a first sign-in creates the account (the provider's
    ``create_accounts``), or by the account's owner linking it while signed in. Never by an
    email address or any other claim."""

    __tablename__ = "federated_identities"
    __table_args__ = (UniqueConstraint("issuer", "subject", name="uq_federated_identities_issuer_subject"),)

    id: int | None = Field(default=None, primary_key=True)
    issuer: str = Field(max_length=512)
    subject: str = Field(max_length=255)
    user_id: int = Field(index=True)
    created_at: int = Field(default_factory=now)
    last_sign_in_at: int | None = None


class UpstreamSignIn(SQLModel, table=True):
    """One sign-in at an upstream OpenID Provider in progress (app/web/upstream.py): the SHA-256
    of its ``state`` (single-use: ``used_at`` is set atomically; expires at ``expires_at``),
    what it is for and where it goes next. The PKCE verifier and the nonce are derived from the
    state and the server's secret key, so nothing secret is stored. A sign-in for a claims
    interaction keeps the verified claims it produced until the party consents or refuses,
    found by the SHA-256 of a handle held in that browser's session."""

    __tablename__ = "upstream_sign_ins"

    id: int | None = Field(default=None, primary_key=True)
    state_hash: str = Field(unique=True, index=True, max_length=64)
    provider: str = Field(max_length=64)
    #: login | link | claims
    purpose: str = Field(max_length=16)
    #: The local account that asked to link (purpose ``link``).
    user_id: int | None = None
    #: Where the browser goes afterwards: a local path (login, link) or the interaction handle (claims).
    next: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: int = Field(default_factory=now)
    expires_at: int = Field(index=True)
    used_at: int | None = None
    #: Purpose ``claims``, once verified: the handle's SHA-256, the party and the mapped claims.
    result_hash: str | None = Field(default=None, unique=True, index=True, max_length=64)
    subject: str | None = Field(default=None, max_length=255)
    claims: dict[str, Any] = _json_dict()
    claim_sources: dict[str, Any] = _json_dict()


class BrowserSession(SQLModel, table=True):
    """A logged-in browser session (app/identity/sessions.py): the cookie carries the id, this
    row its SHA-256, so logout, a password change or ``end_sessions`` end it in every process."""

    __tablename__ = "browser_sessions"

    id: int | None = Field(default=None, primary_key=True)
    sid_hash: str = Field(unique=True, index=True, max_length=64)
    user_id: int = Field(index=True)
    #: Digest of the user's password hash at login: a new password ends the session.
    credential: str = Field(max_length=64)
    created_at: int = Field(default_factory=now)
    expires_at: int = Field(index=True)


class OAuthClient(SQLModel, table=True):
    """An OAuth client: a resource server (uses the protection API) or an UMA client.

    Implements authlib's ``ClientMixin``.
    """

    __tablename__ = "clients"

    id: int | None = Field(default=None, primary_key=True)
    client_id: str = Field(unique=True, index=True, max_length=255)
    #: SHA-256 of the client secret; None for public clients.
    client_secret_hash: str | None = None
    client_name: str = ""
    redirect_uris: list[str] = _json_list()
    #: Claims redirection URIs for the UMA claims interaction endpoint (G-10, G-11).
    claims_redirect_uris: list[str] = _json_list()
    grant_types: list[str] = _json_list()
    response_types: list[str] = _json_list()
    #: Space-separated scopes the client may ask for (RegisteredScopes, G-13).
    scope: str = ""
    #: client_secret_basic | client_secret_post | none (none = public client).
    token_endpoint_auth_method: str = "client_secret_basic"
    #: Username of the resource owner for whom client-credentials PATs are issued;
    #: None: the client (the RS itself, an organisation) is the owner.
    owner: str | None = Field(default=None, max_length=255)
    #: Other RFC 7591 metadata (client_uri, logo_uri, contacts, jwks_uri, ...).
    client_metadata: dict[str, Any] = _json_dict()
    client_id_issued_at: int = Field(default_factory=now)
    client_secret_expires_at: int = 0
    #: SHA-256 of the registration access token of a dynamically registered client (RFC 7592);
    #: None for clients added by an operator (they cannot manage themselves).
    registration_token_hash: str | None = Field(default=None, max_length=64)

    # -- authlib ClientMixin -------------------------------------------------
    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str:
        """Requested scopes the client is registered for; all of them when none was requested."""
        if not scope:
            return self.scope
        allowed = set(scope_to_list(self.scope))
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        """Exact string matching (O-43)."""
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        if self.client_secret_hash is None:
            return False
        return tokens_equal(hash_token(client_secret), self.client_secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if self.is_public:
            return method == "none"
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type: str) -> bool:
        return response_type in (self.response_types or ["code"])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types

    def to_public_dict(self) -> dict[str, Any]:
        """Registered metadata as RFC 7591 describes it (no secret)."""
        data: dict[str, Any] = dict(self.client_metadata)
        data.update(
            client_id=self.client_id,
            client_name=self.client_name,
            redirect_uris=list(self.redirect_uris),
            claims_redirect_uris=list(self.claims_redirect_uris),
            grant_types=list(self.grant_types),
            response_types=list(self.response_types),
            scope=self.scope,
            token_endpoint_auth_method=self.token_endpoint_auth_method,
            client_id_issued_at=self.client_id_issued_at,
        )
        if not self.is_public:
            data["client_secret_expires_at"] = self.client_secret_expires_at
        if self.owner:
            data["owner"] = self.owner
        return data


class AuthorizationCode(SQLModel, table=True):
    """An authorization code (hashed), bound to client, redirect URI and PKCE challenge (O-09, O-39)."""

    __tablename__ = "authorization_codes"

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(unique=True, index=True, max_length=64)
    client_id: str = Field(index=True, max_length=255)
    username: str = Field(max_length=255)
    redirect_uri: str = ""
    #: True when the authorization request carried redirect_uri (then the token request must repeat it).
    redirect_uri_sent: bool = False
    scope: str = ""
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    created_at: int = Field(default_factory=now)
    expires_at: int = Field(index=True)
    used: bool = False

    def get_redirect_uri(self) -> str | None:
        return self.redirect_uri if self.redirect_uri_sent else None

    def get_scope(self) -> str:
        return self.scope


class Token(SQLModel, table=True):
    """An OAuth access token (a PAT when its scope has uma_protection) and its refresh token.

    Both are stored as SHA-256 digests. ``subject`` is the resource owner's
    username; None means the client itself is the owner (client credentials
    without an owner). ``family_id`` links a refresh-token rotation chain so
    the reuse of a rotated refresh token revokes the whole chain (O-47).
    Implements authlib's ``TokenMixin``.
    """

    __tablename__ = "tokens"
    #: What the purge looks for (app.purge): expired tokens whose refresh token expired too (or has none).
    __table_args__ = (Index("ix_tokens_purge", "refresh_expires_at", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    access_token_hash: str = Field(unique=True, index=True, max_length=64)
    refresh_token_hash: str | None = Field(default=None, unique=True, index=True, max_length=64)
    token_type: str = "Bearer"
    client_id: str = Field(index=True, max_length=255)
    subject: str | None = Field(default=None, index=True, max_length=255)
    scope: str = ""
    grant_type: str = ""
    family_id: str = Field(index=True, max_length=64)
    issued_at: int = Field(default_factory=now)
    expires_at: int
    refresh_expires_at: int | None = None
    revoked: bool = False
    #: Set when a refresh produced a successor (the refresh token is spent, O-47).
    rotated: bool = False

    # -- authlib TokenMixin --------------------------------------------------
    @property
    def owner(self) -> str:
        """The resource owner this token acts for (F-05)."""
        return self.subject or self.client_id

    @property
    def is_pat(self) -> bool:
        return PROTECTION_SCOPE in scope_to_list(self.scope)

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.client_id

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_at - self.issued_at

    def is_expired(self) -> bool:
        return self.expires_at <= now()

    def is_refresh_expired(self) -> bool:
        return self.refresh_expires_at is None or self.refresh_expires_at <= now()

    def is_revoked(self) -> bool:
        return self.revoked


class Resource(SQLModel, table=True):
    """A registered resource description (FedAuthz §3), scoped to (owner, RS) (F-05, A8)."""

    __tablename__ = "resources"
    __table_args__ = (Index("ix_resources_owner_rs", "owner", "rs_client_id"),)

    id: str = Field(primary_key=True, max_length=64)
    owner: str = Field(max_length=255)
    rs_client_id: str = Field(max_length=255)
    name: str | None = None
    type: str | None = None
    description: str | None = None
    icon_uri: str | None = None
    resource_scopes: list[str] = _json_list()
    #: Members the spec does not define, kept and returned as sent (G-02), incl. name#lang.
    extra: dict[str, Any] = _json_dict()
    user_access_policy_uri: str | None = None
    created_at: int = Field(default_factory=now)
    updated_at: int = Field(default_factory=now)

    def description_document(self) -> dict[str, Any]:
        """The stored resource description with ``_id`` (F-23)."""
        doc: dict[str, Any] = dict(self.extra)
        doc["resource_scopes"] = list(self.resource_scopes)
        for key in ("name", "type", "description", "icon_uri"):
            value = getattr(self, key)
            if value is not None:
                doc[key] = value
        doc["_id"] = self.id
        if self.user_access_policy_uri:
            doc["user_access_policy_uri"] = self.user_access_policy_uri
        return doc


class PermissionTicket(SQLModel, table=True):
    """A permission ticket (hashed): the requested permissions of one owner at one RS (G-57…G-63).

    ``permissions`` is ``[{"resource_id": str, "resource_scopes": [str]}]``.
    ``client_id`` is the client the ticket chain is bound to after first use (A6).
    ``claims`` accumulates the claims gathered so far in the authorization process;
    ``claim_sources`` says, per claim name, where it came from (policy request format).
    """

    __tablename__ = "permission_tickets"

    id: int | None = Field(default=None, primary_key=True)
    ticket_hash: str = Field(unique=True, index=True, max_length=64)
    owner: str = Field(index=True, max_length=255)
    rs_client_id: str = Field(max_length=255)
    permissions: list[dict[str, Any]] = _json_list()
    client_id: str | None = Field(default=None, max_length=255)
    requesting_party: str | None = Field(default=None, max_length=255)
    claims: dict[str, Any] = _json_dict()
    claim_sources: dict[str, Any] = _json_dict()
    predecessor_id: int | None = Field(default=None, index=True)
    created_at: int = Field(default_factory=now)
    expires_at: int = Field(index=True)
    consumed: bool = False
    consumed_at: int | None = None
    #: Set (atomically) when the claims interaction issued this consumed ticket's successor.
    continued_at: int | None = None
    #: The PCT whose claims joined this authorization process (carried to successor tickets).
    pct_id: int | None = None
    #: The requesting party who signed in at the claims interaction (a local user name, or
    #: ``issuer#subject`` after an upstream sign-in): who asks, without releasing a claim for it.
    signed_in_party: str | None = Field(default=None, max_length=255)


class Rpt(SQLModel, table=True):
    """An issued RPT (JWT or opaque), kept to be introspected, decided again, refreshed and revoked
    (G-03, O-21, O-31).

    ``permissions`` is ``[{"resource_id", "resource_scopes", "exp", "iat"}]`` with per-permission expiry,
    as issued; introspection answers the part of them the current policy still grants.
    """

    __tablename__ = "rpts"
    #: What the purge looks for (app.purge): expired RPTs whose refresh token expired too (or has none).
    __table_args__ = (Index("ix_rpts_purge", "refresh_expires_at", "expires_at"),)

    id: int | None = Field(default=None, primary_key=True)
    jti: str = Field(unique=True, index=True, max_length=64)
    token_hash: str = Field(unique=True, index=True, max_length=64)
    format: str = Field(max_length=16)
    client_id: str = Field(index=True, max_length=255)
    requesting_party: str | None = Field(default=None, index=True, max_length=255)
    owner: str = Field(index=True, max_length=255)
    rs_client_id: str = Field(index=True, max_length=255)
    permissions: list[dict[str, Any]] = _json_list()
    issued_at: int = Field(default_factory=now)
    expires_at: int
    refresh_token_hash: str | None = Field(default=None, unique=True, index=True, max_length=64)
    refresh_expires_at: int | None = None
    #: Ticket whose redemption produced this RPT (G-61).
    ticket_id: int | None = Field(default=None, index=True)
    revoked: bool = False
    #: Refresh-rotation chain: the RPTs refreshed from one grant share it; a reused refresh token revokes them all (O-47).
    family_id: str = Field(index=True, max_length=64)
    #: Set when a refresh spent this RPT's refresh token (presenting it again is reuse, O-47).
    rotated: bool = False
    #: What the permissions were decided from, to decide them again while the RPT lives (G-61, G-76, F-30):
    #: ``{"claims", "claim_sources", "policy_version", "bounds": {resource_id: epoch or None}}``;
    #: ``bounds`` are the policy's ``for``/``until`` limits, not capped by the RPT's lifetime.
    basis: dict[str, Any] = _json_dict()

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.client_id

    def is_expired(self) -> bool:
        return self.expires_at <= now()

    def is_revoked(self) -> bool:
        return self.revoked


class Pct(SQLModel, table=True):
    """A persisted claims token (hashed), bound to its client (G-29, G-64…G-67)."""

    __tablename__ = "pcts"

    id: int | None = Field(default=None, primary_key=True)
    pct_hash: str = Field(unique=True, index=True, max_length=64)
    client_id: str = Field(index=True, max_length=255)
    subject: str | None = Field(default=None, max_length=255)
    claims: dict[str, Any] = _json_dict()
    claim_sources: dict[str, Any] = _json_dict()
    created_at: int = Field(default_factory=now)
    expires_at: int = Field(index=True)
    revoked: bool = False

    def check_client(self, client: OAuthClient) -> bool:
        return self.client_id == client.client_id


class PendingRequest(SQLModel, table=True):
    """An access request waiting for (or answered by) the owner (request_submitted, G-42)."""

    __tablename__ = "pending_requests"
    __table_args__ = (Index("ix_pending_owner_status", "owner", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=255)
    requesting_party: str | None = Field(default=None, max_length=255)
    client_id: str = Field(max_length=255)
    rs_client_id: str = Field(max_length=255)
    resource_id: str = Field(index=True, max_length=64)
    scopes_requested: list[str] = _json_list()
    scopes_approved: list[str] = _json_list()
    #: pending | approved | denied
    status: str = Field(default="pending", max_length=16)
    ticket_id: int | None = Field(default=None, index=True)
    created_at: int = Field(default_factory=now)
    updated_at: int = Field(default_factory=now)
    decided_at: int | None = None


class AuditRecord(SQLModel, table=True):
    """One authorization decision, for owners and auditors."""

    __tablename__ = "audit_records"

    id: int | None = Field(default=None, primary_key=True)
    created_at: int = Field(default_factory=now, index=True)
    owner: str = Field(index=True, max_length=255)
    requesting_party: str | None = Field(default=None, max_length=255)
    client_id: str | None = Field(default=None, max_length=255)
    resource_id: str | None = Field(default=None, max_length=64)
    scopes: list[str] = _json_list()
    #: e.g. permit | deny | need_info | request_submitted | partial
    outcome: str = Field(max_length=32)
    #: The rules that decided (policy engine reasons).
    rules: list[dict[str, Any]] = _json_list()
    policy_version: int | None = None
    #: Names of the requesting party's claims: those the decision was made with, or, for a
    #: consent at the claims interaction (outcome ``claims_released``), those the party released.
    claims: list[str] = _json_list()


class PolicyDocument(SQLModel, table=True):
    """One version of an owner's uploaded policy text; at most one active per (owner, name)."""

    __tablename__ = "policy_documents"
    __table_args__ = (UniqueConstraint("owner", "name", "version", name="uq_policy_documents_version"),)

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(index=True, max_length=255)
    name: str = Field(default="owner.policy", max_length=255)
    version: int
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: int = Field(default_factory=now)
    active: bool = False


class PolicySetVersion(SQLModel, table=True):
    """The single global policy-set version every process reads (one row, id 1)."""

    __tablename__ = "policy_set_version"

    id: int = Field(default=1, primary_key=True)
    version: int = 0
    updated_at: int = Field(default_factory=now)
    #: SHA-256 over the operator's policy files last seen (app.policies bumps the version when it changes).
    files_hash: str | None = Field(default=None, max_length=64)
    #: Diagnostics (JSON list) of the last policy set that did not check, and the version it had.
    last_error: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    error_version: int | None = None


class SigningKey(SQLModel, table=True):
    """An RS256 signing key for JWT RPTs; the active one signs, recent ones stay in the JWKS."""

    __tablename__ = "signing_keys"

    id: int | None = Field(default=None, primary_key=True)
    kid: str = Field(unique=True, index=True, max_length=64)
    algorithm: str = Field(default="RS256", max_length=16)
    private_key_pem: str = Field(sa_column=Column(Text, nullable=False))
    created_at: int = Field(default_factory=now)
    active: bool = False
    retired_at: int | None = None


class RateLimitCounter(SQLModel, table=True):
    """A fixed-window counter of the ``limits`` storage in the database
    (:mod:`app.identity.limits_storage`): failed authentications of one account or address.
    Times are seconds since the epoch with fractions (the window arithmetic of ``limits``)."""

    __tablename__ = "rate_limit_counters"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True, index=True, max_length=255)
    count: int = 0
    expires_at: float = Field(index=True)


class RateLimitEntry(SQLModel, table=True):
    """One counted event of a moving-window limit (:mod:`app.identity.limits_storage`): a failed
    authentication at ``at``, counted until ``expires_at``."""

    __tablename__ = "rate_limit_entries"
    __table_args__ = (Index("ix_rate_limit_entries_key_at", "key", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=255)
    at: float
    expires_at: float = Field(index=True)


class OwnerAction(SQLModel, table=True):
    """An owner's action that leaves no other trace with a time (issue 15 point 5): revoking an
    RPT (``revoke_grant``; the RPT row itself is purged once expired) or withdrawing an approval
    (``withdraw_approval``; the request then reads as denied). Kept as long as audit records."""

    __tablename__ = "owner_actions"

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(index=True, max_length=255)
    at: int = Field(default_factory=now, index=True)
    #: revoke_grant | withdraw_approval
    kind: str = Field(max_length=32)
    #: The RPT's or the request's id.
    ref_id: int | None = None
    requesting_party: str | None = Field(default=None, max_length=255)
    client_id: str | None = Field(default=None, max_length=255)
    #: ``[{"resource_id", "scopes"}]``: what stopped working.
    permissions: list[dict[str, Any]] = _json_list()


class NotificationTarget(SQLModel, table=True):
    """Where an owner is told of a pending request (issue 15 point 4): a webhook URL or an email
    address (:mod:`app.notifications`)."""

    __tablename__ = "notification_targets"

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(index=True, max_length=255)
    #: webhook | email
    kind: str = Field(max_length=16)
    address: str = Field(max_length=2048)
    #: The webhook's HMAC secret, encrypted with a key derived from the server's secret key
    #: (:func:`app.notifications.seal`). Not hashed like the other secrets: signing needs the
    #: secret itself, so it must be recoverable. None for an email address.
    secret_sealed: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: int = Field(default_factory=now)


class NotificationDelivery(SQLModel, table=True):
    """One notification to one target: the outbox row the grant writes in its own transaction,
    delivered by a background thread of any process (claimed with a lease), retried with
    exponential backoff until delivered or ``notification_max_attempts`` (app/notifications.py)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (Index("ix_notification_deliveries_due", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    target_id: int = Field(index=True)
    owner: str = Field(index=True, max_length=255)
    #: webhook | email (the target's, so a process without SMTP settings leaves email alone)
    kind: str = Field(max_length=16)
    event: str = Field(max_length=64)
    request_id: int | None = Field(default=None, index=True)
    #: The JSON body, fixed when the row is written (the webhook's signature covers these bytes).
    body: str = Field(sa_column=Column(Text, nullable=False))
    #: pending | delivered | failed
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: int = Field(default_factory=now)
    #: While a process delivers: until when the row is its own, and a random id of that claim.
    lease_until: int | None = None
    lease_id: str | None = Field(default=None, max_length=64)
    #: The last attempt: the receiver's HTTP status (webhook) and what went wrong, if anything.
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=512)
    created_at: int = Field(default_factory=now)
    updated_at: int = Field(default_factory=now)
    delivered_at: int | None = None
