"""need_info, pushed claim tokens and PCTs over real HTTP (G-16, G-17, G-29, G-40, G-43, G-56, G-64, A5, A6, A10)."""

from __future__ import annotations

import base64
import json

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.server.grant_support import *

POLICY = f'''
claims email, email_verified from "{IDP_ISSUER}" as id_token

permit view, download on type "photo-album" when claims.email == "bob@example.com" and claims.email_verified == true
'''


def _bob(idp, **kw):
    return idp.token(sub="bob-1", email="bob@example.com", email_verified=True, **kw)


def test_need_info_names_required_claims_and_a_new_ticket_G_40_A10(uma):
    flow = uma.flow(POLICY)
    ticket = flow.ticket(("album", ["view"]))
    r = flow.token(ticket)
    assert r.status_code == 403
    body = r.json()
    assert body["error"] == "need_info"
    assert body["ticket"] and body["ticket"] != ticket  # G-40: a new value
    names = {m["name"]: m for m in body["required_claims"]}
    assert set(names) == {"email", "email_verified"}
    assert names["email"]["issuer"] == [IDP_ISSUER]
    assert names["email"]["claim_token_format"] == [ID_TOKEN]
    # The claims come from another issuer: the interaction endpoint cannot gather them.
    assert "redirect_user" not in body
    assert r.headers["Cache-Control"] == "no-store"


def test_pushed_id_token_then_rpt_with_pct_G_17_G_29(uma, idp):
    flow = uma.flow(POLICY)
    first = flow.token(flow.ticket(("album", ["view"])))
    r = flow.token(first.json()["ticket"], claim_token=_bob(idp), claim_token_format=ID_TOKEN)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["pct"] and body["pct"] not in json.dumps(body["access_token"])
    info = flow.introspect(body["access_token"])
    assert info["sub"] == f"{IDP_ISSUER}#bob-1"


def test_pushed_jwt_format_on_first_request_G_17(uma, idp):
    policy = f'claims email from "{IDP_ISSUER}" as jwt\npermit view on type "photo-album" when claims.email == "bob@example.com"'
    flow = uma.flow(policy)
    r = flow.token(
        flow.ticket(("album", ["view"])), claim_token=idp.token(email="bob@example.com"), claim_token_format=JWT_FORMAT
    )
    assert r.status_code == 200, r.text


def test_claims_from_another_format_than_declared_do_not_count(uma, idp):
    policy = f'claims email from "{IDP_ISSUER}" as jwt\npermit view on type "photo-album" when claims.email == "bob@example.com"'
    flow = uma.flow(policy)
    r = flow.token(
        flow.ticket(("album", ["view"])), claim_token=idp.token(email="bob@example.com"), claim_token_format=ID_TOKEN
    )
    assert r.status_code == 403 and r.json()["error"] == "need_info"


def test_wrong_claim_value_is_request_denied_G_41(uma, idp):
    flow = uma.flow(POLICY)
    r = flow.token(
        flow.ticket(("album", ["view"])),
        claim_token=idp.token(sub="eve", email="eve@example.com", email_verified=True),
        claim_token_format=ID_TOKEN,
    )
    assert r.status_code == 403 and r.json()["error"] == "request_denied"


def test_successor_ticket_keeps_claims_gathered_so_far_G_43(uma, idp):
    policy = f'''claims email, role from "{IDP_ISSUER}" as jwt
permit view on type "photo-album" when claims.email == "bob@example.com" and claims.role == "friend"'''
    flow = uma.flow(policy)
    r = flow.token(
        flow.ticket(("album", ["view"])), claim_token=idp.token(email="bob@example.com"), claim_token_format=JWT_FORMAT
    )
    assert r.json()["error"] == "need_info"
    assert [m["name"] for m in r.json()["required_claims"]] == ["role"]
    r = flow.token(r.json()["ticket"], claim_token=idp.token(role="friend"), claim_token_format=JWT_FORMAT)
    assert r.status_code == 200, r.text


def test_successor_ticket_is_bound_to_its_client_A6(uma):
    flow = uma.flow(POLICY)
    successor = flow.token(flow.ticket(("album", ["view"]))).json()["ticket"]
    r = flow.token(successor, client=uma.client())
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def _refused(flow, token, fmt=ID_TOKEN):
    ticket = flow.ticket(("album", ["view"]))
    r = flow.token(ticket, claim_token=token, claim_token_format=fmt)
    assert r.status_code == 403, r.text
    body = r.json()
    assert body["error"] == "need_info" and body["ticket"] != ticket
    assert body["required_claims"]
    return body["error_description"]


def test_forged_claim_token_is_refused_G_17(uma, idp):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = idp.token(sub="bob-1", email="bob@example.com", email_verified=True, key=other_key)
    assert "signature" in _refused(uma.flow(POLICY), token)


def test_tampered_claim_token_is_refused_G_17(uma, idp):
    header, payload, signature = _bob(idp).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["email"] = "bob@example.com"
    claims["sub"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    assert "signature" in _refused(uma.flow(POLICY), f"{header}.{forged}.{signature}")


def test_expired_claim_token_is_refused_G_17(uma, idp):
    assert "expired" in _refused(uma.flow(POLICY), _bob(idp, lifetime=-3600))


def test_claim_token_of_untrusted_issuer_is_refused_G_74(uma, idp):
    token = idp.token(issuer="https://evil.example", sub="bob-1", email="bob@example.com", email_verified=True)
    assert "not trusted" in _refused(uma.flow(POLICY), token)


def test_claim_token_for_another_audience_is_refused_G_74(uma, idp):
    token = idp.token(audience="some-other-service", sub="bob-1", email="bob@example.com", email_verified=True)
    assert "aud" in _refused(uma.flow(POLICY), token)


def test_claim_token_not_yet_valid_is_refused(uma, idp):
    import time

    token = _bob(idp, nbf=int(time.time()) + 3600)
    assert "not valid yet" in _refused(uma.flow(POLICY), token)


def test_unsigned_alg_none_claim_token_is_refused(uma, idp):
    token = jwt.encode(
        {"iss": IDP_ISSUER, "aud": IDP_AUDIENCE, "exp": 4102444800, "email": "bob@example.com", "email_verified": True},
        None,
        algorithm="none",
    )
    assert "algorithm" in _refused(uma.flow(POLICY), token)


def test_hs256_signed_with_the_public_key_is_refused(uma, idp):
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT", "kid": idp.kid}).encode()).rstrip(b"=")
    payload = base64.urlsafe_b64encode(
        json.dumps(
            {
                "iss": IDP_ISSUER,
                "aud": IDP_AUDIENCE,
                "exp": 4102444800,
                "email": "bob@example.com",
                "email_verified": True,
            }
        ).encode()
    ).rstrip(b"=")
    import hashlib
    import hmac

    signing_input = header + b"." + payload
    sig = base64.urlsafe_b64encode(hmac.new(idp.public_pem, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    assert "algorithm" in _refused(uma.flow(POLICY), (signing_input + b"." + sig).decode())


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "x" * 20000])
def test_malformed_claim_token_is_refused(uma, token):
    assert _refused(uma.flow(POLICY), token)


def test_unsupported_claim_token_format_is_refused_G_17(uma, idp):
    assert "unsupported" in _refused(uma.flow(POLICY), _bob(idp), fmt="urn:example:saml")


def test_refused_claim_token_never_grants_even_if_policy_needs_nothing(uma, idp):
    flow = uma.flow('permit view on type "photo-album"')
    r = flow.token(
        flow.ticket(("album", ["view"])),
        claim_token=idp.token(issuer="https://evil.example"),
        claim_token_format=ID_TOKEN,
    )
    assert r.status_code == 403 and r.json()["error"] == "need_info"
    assert r.json()["required_claims"] == [
        {"claim_token_format": [ID_TOKEN, JWT_FORMAT], "issuer": [IDP_ISSUER, IDP2_ISSUER]}
    ]


def test_pct_is_reusable_without_pushing_claims_again_G_18_G_64(uma, idp):
    flow = uma.flow(POLICY)
    r = flow.token(flow.ticket(("album", ["view"])), claim_token=_bob(idp), claim_token_format=ID_TOKEN)
    pct = r.json()["pct"]
    again = flow.token(flow.ticket(("album", ["download"])), pct=pct)
    assert again.status_code == 200, again.text
    assert "pct" not in again.json()  # nothing new was gathered
    third = flow.token(flow.ticket(("album", ["view"])), pct=pct)
    assert third.status_code == 200


def test_pct_of_another_client_is_invalid_grant_G_64_A5(uma, idp):
    flow = uma.flow(POLICY)
    pct = flow.token(flow.ticket(("album", ["view"])), claim_token=_bob(idp), claim_token_format=ID_TOKEN).json()["pct"]
    r = flow.token(flow.ticket(("album", ["view"])), client=uma.client(), pct=pct)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"


def test_unknown_pct_is_ignored_A5(uma):
    flow = uma.flow(POLICY)
    r = flow.token(flow.ticket(("album", ["view"])), pct="unknown-pct")
    assert r.status_code == 403 and r.json()["error"] == "need_info"


def test_revoked_pct_is_ignored_G_56_O_31(uma, idp):
    flow = uma.flow(POLICY)
    pct = flow.token(flow.ticket(("album", ["view"])), claim_token=_bob(idp), claim_token_format=ID_TOKEN).json()["pct"]
    revoke = uma.http.post("/revoke", data={"token": pct, "token_type_hint": "pct"}, auth=flow.client.basic_auth)
    assert revoke.status_code == 200
    r = flow.token(flow.ticket(("album", ["view"])), pct=pct)
    assert r.status_code == 403 and r.json()["error"] == "need_info"


def test_issuer_keys_fetched_from_jwks_uri_and_default_audience_G_74(uma, idp):
    """Without a configured audience the token must be meant for this server or the presenting client."""
    policy = f'claims email from "{IDP2_ISSUER}" as jwt\npermit view on type "photo-album" when claims.email == "bob@example.com"'
    flow = uma.flow(policy)
    for audience in (uma.url, flow.client.client_id):
        token = idp.token(issuer=IDP2_ISSUER, audience=audience, email="bob@example.com")
        r = flow.token(flow.ticket(("album", ["view"])), claim_token=token, claim_token_format=JWT_FORMAT)
        assert r.status_code == 200, r.text
    token = idp.token(issuer=IDP2_ISSUER, audience="another-client", email="bob@example.com")
    assert "aud" in _refused(flow, token, fmt=JWT_FORMAT)


def test_id_token_without_subject_is_refused(uma, idp):
    token = idp.token(email="bob@example.com", email_verified=True)
    assert "sub" in _refused(uma.flow(POLICY), token)


def test_pct_link_travels_with_successor_tickets_G_43(uma, idp):
    """A PCT presented at the start of a process is remembered by its successor tickets:
    polling later without it still decides with its claims and issues no redundant PCT."""
    policy = POLICY + '\nask print on type "photo-album" when claims.email == "bob@example.com"'
    flow = uma.flow(policy)
    pct = flow.token(flow.ticket(("album", ["view"])), claim_token=_bob(idp), claim_token_format=ID_TOKEN).json()["pct"]
    submitted = flow.token(flow.ticket(("album", ["print"])), pct=pct).json()
    assert submitted["error"] == "request_submitted"
    pending = uma.http.get("/owner/requests", auth=(flow.owner.username, flow.owner.password)).json()["requests"]
    uma.http.post(f"/owner/requests/{pending[0]['id']}/approve", auth=(flow.owner.username, flow.owner.password))
    r = flow.token(submitted["ticket"])
    assert r.status_code == 200, r.text
    assert "pct" not in r.json()


def test_deeply_nested_claim_token_is_refused_not_a_500(uma, idp):
    deep = "[" * 5000 + "]" * 5000
    payload = base64.urlsafe_b64encode(('{"iss": "%s", "x": %s}' % (IDP_ISSUER, deep)).encode()).decode().rstrip("=")
    header = base64.urlsafe_b64encode(b'{"alg": "RS256"}').decode().rstrip("=")
    assert _refused(uma.flow(POLICY), f"{header}.{payload}.c2ln")
    signed = idp.token(
        sub="bob-1", email="bob@example.com", email_verified=True, x=[[[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]]
    )
    assert "nested" in _refused(uma.flow(POLICY), signed)


@pytest.mark.parametrize(
    "member, value",
    [
        ("exp", "123"),
        ("exp", "4102444800"),  # pyjwt alone would take this string as a date in 2100
        ("exp", True),
        ("exp", [4102444800]),
        ("nbf", "1"),
        ("iat", "1700000000"),
        ("iat", False),
    ],
)
def test_claim_token_dates_must_be_numbers_G_17(uma, idp, member, value):
    """Issue 10, point 8: ``exp``/``nbf``/``iat`` are RFC 7519 NumericDates; a signed token with
    a string (or a boolean, or a list) there is refused with need_info, never used and never a 500."""
    token = _bob(idp, **{member: value})
    assert f"{member} is not a number" in _refused(uma.flow(POLICY), token)


def test_claim_token_with_numeric_dates_still_works(uma, idp):
    """The check above refuses only what is not a number: a fractional exp is a NumericDate."""
    import time

    flow = uma.flow(POLICY)
    r = flow.token(
        flow.ticket(("album", ["view"])), claim_token=_bob(idp, exp=time.time() + 300.5), claim_token_format=ID_TOKEN
    )
    assert r.status_code == 200, r.text
