"""The one reader of the ``Authorization`` header (``app/http_auth.py``): HTTP Basic client
authentication (RFC 6749 §2.3.1, O-03), owners' Basic credentials (RFC 7617) and Bearer tokens
(RFC 6750 §2.1). No server: the reader is a function of the header's text, which is what WSGI
hands the app (bytes above 0x7f as Latin-1 characters)."""

from __future__ import annotations

import base64
from urllib.parse import quote_plus

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.http_auth import B64TOKEN, AuthorizationHeader, bearer_token, client_credentials, read_authorization


def basic(payload: bytes, scheme: str = "Basic") -> str:
    return f"{scheme} {base64.b64encode(payload).decode('ascii')}"


def form_basic(client_id: str, secret: str) -> str:
    """What an RFC 6749 §2.3.1 client sends: each part form-urlencoded, then base64."""
    return basic(f"{quote_plus(client_id)}:{quote_plus(secret)}".encode())


#: Any text WSGI can hand over as a header value: code points 0-255 (Latin-1 of the bytes).
header_text = st.text(alphabet=st.characters(max_codepoint=255))
b64tokens = st.from_regex(B64TOKEN, fullmatch=True)


# -- never an exception --------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["", "Basic ", "basic ", "Bearer ", "BEARER ", "Digest ", " "]), header_text)
@example("Basic ", "é")  # werkzeug's b64decode raises ValueError on this
@example("Basic ", "YTpi\xe9")
@example("Bearer ", 'a="b')
@example("Bearer ", "=abc")  # werkzeug 3.0.0 raises IndexError on this
@example("Digest ", "=")
def test_any_header_gives_an_answer_never_an_exception_O_03(prefix: str, rest: str) -> None:
    value = prefix + rest
    header = read_authorization(value)
    assert isinstance(header, AuthorizationHeader)
    if header.bearer is not None:
        assert header.scheme == "bearer" and B64TOKEN.fullmatch(header.bearer)
    if header.basic is not None:
        assert header.scheme == "basic"
        user, password = header.basic
        # only the payload a client would send for exactly these credentials
        assert value.split() == [value.split()[0], basic(f"{user}:{password}".encode()).split()[1]]
    client_credentials(value)
    bearer_token(value)


@settings(max_examples=300, deadline=None)
@given(st.binary())
def test_any_basic_payload_bytes_never_raise_and_non_utf8_is_no_credentials_O_03(payload: bytes) -> None:
    header = read_authorization(basic(payload))
    assert header.scheme == "basic"
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        assert header.basic is None
        return
    user, sep, password = text.partition(":")
    assert header.basic == ((user, password) if sep else None)


def test_no_header_or_a_blank_one_is_no_scheme() -> None:
    assert read_authorization(None) == AuthorizationHeader()
    assert read_authorization("") == AuthorizationHeader()
    assert read_authorization("  \t ") == AuthorizationHeader()
    assert client_credentials(None) is None and bearer_token(None) is None


# -- Basic: client credentials (RFC 6749 §2.3.1) -------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text())
@example("client:with:colons", "secret+with+plus")
@example("id with space", "%41 not an escape once encoded")
@example("", "")
def test_form_encoded_client_credentials_round_trip_O_03(client_id: str, secret: str) -> None:
    assert client_credentials(form_basic(client_id, secret)) == (client_id, secret)


def test_client_credentials_decode_the_form_encoding_O_03() -> None:
    # "a%3Ab+c" is the client id "a:b c": the first ':' of the payload separates id and secret.
    value = basic(b"a%3Ab+c:s%2Bx+y")
    assert client_credentials(value) == ("a:b c", "s+x y")
    # The owner's Basic credentials (RFC 7617) are the payload's text, not form-decoded.
    assert read_authorization(value).basic == ("a%3Ab+c", "s%2Bx+y")


def test_basic_without_colon_is_no_credentials_but_an_empty_secret_is_O_03() -> None:
    assert read_authorization(basic(b"nocolon")) == AuthorizationHeader(scheme="basic")
    assert client_credentials(basic(b"nocolon")) is None
    assert client_credentials(basic(b"client:")) == ("client", "")
    assert client_credentials(basic(b":")) == ("", "")


@pytest.mark.parametrize(
    "value",
    [
        basic(b"\xff\xfe:\xfd"),  # not UTF-8
        basic("clïent:sécret".encode("latin-1")),  # Latin-1, not UTF-8
        "Basic é",  # not ASCII at all
        "Basic YTpiYw",  # padding missing
        "Basic YTpi!Yw==",  # a character outside base64 (werkzeug < 3.1.9 skipped it)
        "Basic YTpi Yw==",  # a space inside
        "Basic YTpiYx==",  # non-canonical padding bits ("a:bc" is YTpiYw==)
        "Basic YTpiYw==,",
        "Basic",
        "Basic ",
    ],
)
def test_malformed_basic_is_basic_without_credentials_O_03(value: str) -> None:
    assert read_authorization(value) == AuthorizationHeader(scheme="basic")
    assert client_credentials(value) is None


@pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC", "bAsIc"])
@pytest.mark.parametrize("spaces", [("", " ", ""), ("  ", "   ", " \t "), ("\t", " \t", "\t")])
def test_basic_scheme_any_case_and_surrounding_spaces_O_03(scheme: str, spaces: tuple[str, str, str]) -> None:
    lead, middle, trail = spaces
    value = f"{lead}{scheme}{middle}{base64.b64encode(b'id:pw').decode()}{trail}"
    assert client_credentials(value) == ("id", "pw")


def test_utf8_basic_credentials_are_read_O_03() -> None:
    assert read_authorization(basic("clïent:sécret".encode())).basic == ("clïent", "sécret")


# -- Bearer (RFC 6750 §2.1) ----------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(b64tokens, st.sampled_from(["Bearer", "bearer", "BEARER", "beaRER"]), st.sampled_from([" ", "  ", " \t"]))
def test_a_b64token_is_the_bearer_token_any_scheme_case_RFC6750(token: str, scheme: str, space: str) -> None:
    value = f" {scheme}{space}{token}{space}"
    assert read_authorization(value) == AuthorizationHeader(scheme="bearer", bearer=token)
    assert bearer_token(value) == token


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        "Bearer a=b",  # auth-params, not a token68
        "Bearer a b",
        "Bearer a,b",
        "Bearer =abc",
        "Bearer caf\xe9",  # a byte that is not ASCII
        'Bearer "abc"',
    ],
)
def test_malformed_bearer_keeps_its_scheme_without_a_token_RFC6750(value: str) -> None:
    assert read_authorization(value) == AuthorizationHeader(scheme="bearer")
    assert bearer_token(value) is None


def test_other_schemes_have_no_credentials() -> None:
    assert read_authorization("Digest username=x") == AuthorizationHeader(scheme="digest")
    assert read_authorization("Token abc") == AuthorizationHeader(scheme="token")
    assert read_authorization("Digest =x") == AuthorizationHeader(scheme="digest")
    # RFC 9110 §11.4: one or more spaces (not a tab) between the scheme and the credentials.
    assert read_authorization("Bearer\tabc").bearer is None
    assert bearer_token(basic(b"id:pw")) is None
    assert client_credentials("Bearer abc") is None
