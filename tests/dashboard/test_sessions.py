"""Session cookies and login tokens: signed, expiring, bound to one server key."""

from __future__ import annotations

import pytest

from tuneloop.server.dashboard.sessions import (
    LOGIN_FORM_TTL_MS,
    SESSION_TTL_MS,
    SessionCodec,
    same_token,
)

KEY = b"k" * 32
NOW = 1_767_225_600_000


def test_a_session_round_trips_until_it_expires() -> None:
    codec = SessionCodec(KEY)
    session = codec.new_session("key1", "acme", now_ms=NOW)
    token = codec.encode(session)
    assert codec.decode(token, now_ms=NOW + 1000) == session
    assert session.expires_ms == NOW + SESSION_TTL_MS
    assert codec.decode(token, now_ms=NOW + SESSION_TTL_MS) is None
    assert "key1" not in token or "." in token  # the payload is signed, never a clear key


def test_every_session_has_its_own_csrf_token() -> None:
    codec = SessionCodec(KEY)
    first = codec.new_session("key1", "acme", now_ms=NOW)
    second = codec.new_session("key1", "acme", now_ms=NOW)
    assert first.csrf != second.csrf and len(first.csrf) >= 24


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # another mac
        lambda t: "e30" + t[3:],  # another payload under the same mac
        lambda t: t.split(".")[0],  # no mac
        lambda t: "",
        lambda t: "garbage.garbage",
        lambda t: t + "é",
    ],
)
def test_a_tampered_cookie_is_no_session(mangle: object) -> None:
    codec = SessionCodec(KEY)
    token = codec.encode(codec.new_session("key1", "acme", now_ms=NOW))
    assert codec.decode(mangle(token), now_ms=NOW) is None  # type: ignore[operator]


def test_another_server_key_does_not_accept_the_cookie() -> None:
    token = SessionCodec(KEY).encode(SessionCodec(KEY).new_session("key1", "acme", now_ms=NOW))
    assert SessionCodec(b"z" * 32).decode(token, now_ms=NOW) is None


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SessionCodec(b"short")


def test_login_tokens_must_match_the_cookie_be_signed_and_fresh() -> None:
    codec = SessionCodec(KEY)
    token = codec.login_token(now_ms=NOW)
    assert codec.check_login_token(token, token, now_ms=NOW + 1)
    assert not codec.check_login_token(token, "", now_ms=NOW + 1)
    assert not codec.check_login_token("", "", now_ms=NOW + 1)
    other = codec.login_token(now_ms=NOW)
    assert not codec.check_login_token(token, other, now_ms=NOW + 1)
    assert not codec.check_login_token(token, token, now_ms=NOW + LOGIN_FORM_TTL_MS)
    forged = token.split(".")[0] + ".AAAA"
    assert not codec.check_login_token(forged, forged, now_ms=NOW + 1)
    assert not SessionCodec(b"z" * 32).check_login_token(token, token, now_ms=NOW + 1)
    assert not codec.check_login_token("é", "é", now_ms=NOW)


def test_csrf_comparison() -> None:
    assert same_token("abc", "abc")
    assert not same_token(None, "abc")
    assert not same_token("abd", "abc")
    assert not same_token("é", "abc")
