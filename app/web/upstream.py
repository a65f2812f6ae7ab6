"""Signing in with an upstream OpenID Provider (issue 14): the pages around
:mod:`app.identity.providers`.

``GET /login/upstream/<name>?next=…``
    "Sign in with <name>" on the login page. Goes to the provider (303). When ``next`` is the
    consent page of a claims interaction, the sign-in is the requesting party's, for claims:
    no account here is needed or made. Otherwise it signs in to the account linked to the
    provider's (issuer, subject), or creates one where the provider's ``create_accounts`` says
    so (:mod:`app.identity.federation`).
``GET /login/upstream/<name>/callback``
    Where the provider sends the browser back (register this URL at the provider). Checks, in
    order: the ``state`` was issued to this browser (its SHA-256 is in the session), is not
    used and not expired (one atomic update: single use, also across processes), and belongs
    to this provider; the provider's ``error`` (the person cancelled, or another); RFC 9207's
    ``iss`` when sent; then the code exchange and the ID token (``nonce`` of this sign-in).
``GET /account``, ``POST /account/link/<name>``, ``POST /account/unlink/<id>``
    The signed-in owner's sign-in methods: linking an upstream account is this explicit step
    (signed in here, "Link", then signing in at the provider), never automatic.

Every failure is a page (:func:`failure`) that says what happened and leads back, with a
status of 4xx (this sign-in cannot be used) or 502/503 (the provider failed); each is logged.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import flash, redirect, render_template, request, session, url_for
from sqlalchemy import select, update

from .. import get_settings
from ..config import IdentityProvider
from ..db import get_session
from ..identity import federation
from ..identity.providers import (
    ProviderError,
    authorization_url,
    derived,
    discovery,
    exchange_code,
    map_claims,
    origin,
    sources_of,
    verify_id_token,
)
from ..models import UpstreamSignIn, User
from ..security import hash_token, new_token, now, tokens_equal
from . import allow_form_target, bp, current_user, login_required, login_user, safe_next

log = logging.getLogger(__name__)

#: Session key: SHA-256s of the states of the sign-ins this browser started (newest last).
_STATES = "uma_upstream"
#: Session key: the requesting party's verified upstream claims for one claims interaction.
_PARTY = "uma_upstream_party"
#: Sign-ins one browser may have going at once (tabs).
_MAX_PENDING = 4
CONSENT_PATH = "/uma/claims/consent"


def _provider(name: str) -> IdentityProvider | None:
    return get_settings().identity_provider(name)


def callback_url(provider: IdentityProvider) -> str:
    """The redirect URI to register at the provider."""
    return get_settings().url(url_for("web.upstream_callback", name=provider.name))


def failure(provider: IdentityProvider | None, message: str, status: int, back: str, back_label: str) -> Any:
    """The page of a sign-in that cannot go on: what happened, and the way back."""
    name = provider.name if provider is not None else "the identity provider"
    log.warning("sign-in with %s failed: %s", name, message)
    return (
        render_template(
            "upstream_error.html", provider=name, message=message, back=back, back_label=back_label, status=status
        ),
        status,
    )


def interaction_of(target: str) -> str | None:
    """The claims interaction handle when ``target`` is the consent page of one, else None."""
    parts = urlsplit(target)
    if parts.path != CONSENT_PATH:
        return None
    handles = parse_qs(parts.query).get("interaction", [])
    return handles[0] if len(handles) == 1 and handles[0] else None


def _back_of(purpose: str, target: str) -> tuple[str, str]:
    if purpose == "claims":
        return target, "Back to the request"
    if purpose == "link":
        return url_for("web.account"), "Back to your account"
    return url_for("web.login", next=target), "Back to sign in"


@bp.get("/login/upstream/<name>")
def upstream_start(name: str) -> Any:
    """Start a sign-in with the provider ``name`` (for the login page, and for claims)."""
    provider = _provider(name)
    target = safe_next(request.args.get("next"))
    if provider is None:
        return failure(None, f"no identity provider is called {name[:64]!r} here", 404, *_back_of("login", target))
    return begin(provider, "claims" if interaction_of(target) else "login", target)


def begin(provider: IdentityProvider, purpose: str, target: str, user: User | None = None) -> Any:
    """Record a new sign-in (its state, hashed; single use; expiring), bind it to this browser,
    and send the browser to the provider."""
    back = _back_of(purpose, target)
    try:
        metadata = discovery().metadata(provider)
    except ProviderError as exc:
        return failure(provider, f"{provider.name} {exc.lead}: {exc}", exc.status, *back)
    state = new_token()
    at = now()
    db = get_session()
    db.add(
        UpstreamSignIn(
            state_hash=hash_token(state),
            provider=provider.name,
            purpose=purpose,
            user_id=user.id if user is not None else None,
            next=target,
            created_at=at,
            expires_at=at + get_settings().upstream_sign_in_lifetime,
        )
    )
    db.commit()
    pending = [h for h in session.get(_STATES, []) if isinstance(h, str)][-(_MAX_PENDING - 1) :]
    session[_STATES] = [*pending, hash_token(state)]
    return redirect(authorization_url(provider, metadata, callback_url(provider), state), code=303)


def _take(provider: IdentityProvider, state: str) -> UpstreamSignIn | str:
    """The sign-in of ``state``, marked used (one atomic update), or why it cannot be used."""
    digest = hash_token(state)
    mine = [h for h in session.get(_STATES, []) if isinstance(h, str)]
    if not any(tokens_equal(digest, h) for h in mine):
        return "the answer does not belong to a sign-in started in this browser (state mismatch)"
    session[_STATES] = [h for h in mine if not tokens_equal(digest, h)]
    db = get_session()
    at = now()
    taken = db.execute(
        update(UpstreamSignIn)
        .where(
            UpstreamSignIn.state_hash == digest,
            UpstreamSignIn.provider == provider.name,
            UpstreamSignIn.used_at.is_(None),
            UpstreamSignIn.expires_at > at,
        )
        .values(used_at=at)
        .execution_options(synchronize_session=False)
    )
    db.commit()
    row = db.execute(select(UpstreamSignIn).where(UpstreamSignIn.state_hash == digest)).scalar_one_or_none()
    if taken.rowcount != 1 or row is None:
        return "this sign-in expired or was already used; start again"
    return row


@bp.get("/login/upstream/<name>/callback")
def upstream_callback(name: str) -> Any:
    """The provider's answer (see the module docstring for the checks, in order)."""
    provider = _provider(name)
    args = request.args
    if provider is None:
        return failure(None, f"no identity provider is called {name[:64]!r} here", 404, *_back_of("login", "/"))
    if any(len(args.getlist(k)) > 1 for k in ("state", "code", "error", "iss")):
        return failure(provider, "the provider's answer repeats a parameter", 400, *_back_of("login", "/"))
    state = args.get("state", "")
    error = args.get("error")
    if not state and error:  # an error answer without state: nothing to take, nothing signed in
        return _provider_error(provider, error, _back_of("login", "/"))
    if not state or len(state) > 512:
        return failure(provider, "the provider's answer has no state", 400, *_back_of("login", "/"))
    row = _take(provider, state)
    if isinstance(row, str):
        return failure(provider, row, 400, *_back_of("login", "/"))
    back = _back_of(row.purpose, row.next)
    if error:
        return _provider_error(provider, error, back)
    issuer = args.get("iss")
    if issuer is not None and issuer != provider.issuer:  # RFC 9207: another provider's answer
        return failure(provider, "the answer comes from another issuer than this provider (iss)", 400, *back)
    code = args.get("code", "")
    if not code or len(code) > 4096:
        return failure(provider, "the provider's answer has no code", 400, *back)
    try:
        metadata = discovery().metadata(provider)
        token = exchange_code(provider, metadata, callback_url(provider), state, code)
        claims = verify_id_token(
            provider, metadata, token["id_token"], nonce=derived(state, "nonce"), access_token=token.get("access_token")
        )
    except ProviderError as exc:
        return failure(provider, f"{provider.name}: {exc}", exc.status, *back)
    subject = claims["sub"]
    if row.purpose == "claims":
        return _claims_signed_in(provider, row, subject, map_claims(provider, claims))
    if row.purpose == "link":
        return _link_signed_in(provider, row, subject, back)
    return _owner_signed_in(provider, row, subject, back)


def _provider_error(provider: IdentityProvider, error: str, back: tuple[str, str]) -> Any:
    """The provider answered with an error (RFC 6749 §4.1.2.1): the person cancelled, or another."""
    if error == "access_denied":
        return failure(provider, f"the sign-in was cancelled at {provider.name}", 403, *back)
    return failure(provider, f"{provider.name} answered with the error {error[:64]!r}", 502, *back)


def _owner_signed_in(provider: IdentityProvider, row: UpstreamSignIn, subject: str, back: tuple[str, str]) -> Any:
    db = get_session()
    identity = federation.find_identity(db, provider.issuer, subject)
    if identity is not None:
        user = db.get(User, identity.user_id)
        if user is None or not user.is_active:
            return failure(provider, "the account here that this sign-in opens is disabled", 403, *back)
    elif provider.create_accounts:
        user = federation.create_account(db, provider.issuer, subject)
        log.info("account %s created at the first sign-in with %s", user.username, provider.name)
        identity = federation.find_identity(db, provider.issuer, subject)
    else:
        return failure(
            provider,
            f"no account here is linked to this {provider.name} account. Sign in with your password and link it "
            "on your account page, or ask the operator for an account",
            403,
            *back,
        )
    assert identity is not None
    identity.last_sign_in_at = now()
    db.add(identity)
    db.commit()
    login_user(user)
    return redirect(safe_next(row.next), code=303)


def _link_signed_in(provider: IdentityProvider, row: UpstreamSignIn, subject: str, back: tuple[str, str]) -> Any:
    user = current_user()
    if user is None or user.id != row.user_id:
        return failure(
            provider, "you are no longer signed in as the account that asked to link; sign in again", 403, *back
        )
    db = get_session()
    try:
        federation.link(db, user, provider.issuer, subject)
    except federation.LinkError as exc:
        db.rollback()
        return failure(provider, str(exc), 409, *back)
    db.commit()
    log.info("account %s linked to its %s account", user.username, provider.name)
    flash(f"Your {provider.name} account now signs in to this account.")
    return redirect(url_for("web.account"), code=303)


def _claims_signed_in(provider: IdentityProvider, row: UpstreamSignIn, subject: str, claims: dict[str, Any]) -> Any:
    """Keep the requesting party's verified claims for the interaction (server-side, found by a
    handle held in this browser's session) and go back to its consent page."""
    handle = new_token()
    db = get_session()
    row.result_hash = hash_token(handle)
    row.subject = subject
    row.claims = claims
    row.claim_sources = sources_of(provider, claims)
    row.expires_at = now() + get_settings().ticket_lifetime + 600  # as long as the interaction's own handle
    db.add(row)
    db.commit()
    session[_PARTY] = {"interaction": interaction_of(row.next), "handle": handle}
    return redirect(row.next, code=303)


def upstream_party(interaction: str) -> UpstreamSignIn | None:
    """The requesting party's upstream sign-in for this claims interaction in this browser, if any."""
    held = session.get(_PARTY)
    if not isinstance(held, dict) or held.get("interaction") != interaction or not isinstance(held.get("handle"), str):
        return None
    return (
        get_session()
        .execute(
            select(UpstreamSignIn).where(
                UpstreamSignIn.result_hash == hash_token(held["handle"]), UpstreamSignIn.expires_at > now()
            )
        )
        .scalar_one_or_none()
    )


def forget_upstream_party(row: UpstreamSignIn | None) -> None:
    """The interaction is over: its claims leave the database (the caller commits) and the session."""
    session.pop(_PARTY, None)
    if row is not None:
        get_session().delete(row)


# -- the owner's sign-in methods -------------------------------------------------


@bp.get("/account")
@login_required
def account() -> Any:
    """Linked providers, with "Link" and "Unlink" (O-54's POST + 303 for both)."""
    from .common import render_page

    user = current_user()
    assert user is not None and user.id is not None
    settings = get_settings()
    linked = federation.identities_of(get_session(), user.id)
    names = {p.issuer: p.name for p in settings.identity_providers}
    for provider in settings.identity_providers:
        # "Link" posts here, then redirects to the provider's authorization endpoint: the form may
        # lead to its origin (the issuer's, and the endpoint's as discovered, if known already:
        # rendering the page never waits for a provider).
        allow_form_target(provider.issuer)
        metadata = discovery().cached(provider)
        if metadata is not None:
            allow_form_target(origin(metadata["authorization_endpoint"]))
    linked_issuers = {row.issuer for row in linked}
    return render_page(
        "web/account.html",
        user=user,
        linked=[(row, names.get(row.issuer, row.issuer)) for row in linked],
        unlinked=[p for p in settings.identity_providers if p.issuer not in linked_issuers],
        has_password=federation.has_password(user),
    )


@bp.post("/account/link/<name>")
@login_required
def account_link(name: str) -> Any:
    """The explicit, signed-in step that links an upstream account: sign in there now."""
    provider = _provider(name)
    if provider is None:
        flash("There is no such identity provider.", "error")
        return redirect(url_for("web.account"), code=303)
    return begin(provider, "link", url_for("web.account"), user=current_user())


@bp.post("/account/unlink/<int:identity_id>")
@login_required
def account_unlink(identity_id: int) -> Any:
    user = current_user()
    assert user is not None
    db = get_session()
    try:
        row = federation.unlink(db, user, identity_id)
    except federation.LinkError as exc:
        db.rollback()
        flash(f"Not unlinked: {exc}.", "error")
        return redirect(url_for("web.account"), code=303)
    db.commit()
    log.info("account %s unlinked from %s", user.username, row.issuer)
    flash("The link was removed.")
    return redirect(url_for("web.account"), code=303)
