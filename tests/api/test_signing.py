from eth_account import Account

import pytest

from backend import signing

AUDIENCE = signing.Audience(31337, "0x" + "Ab" * 20, "http://127.0.0.1:8000")


def test_canonical_string_is_the_documented_layout():
    text = signing.canonical_string(
        AUDIENCE, "post", "/v1/projects/1/rounds/0/updates", "ab" * 32, 1700000000, "n0nce-123"
    )
    assert text == (
        "MERIT-API-2\n31337\n0x"
        + "ab" * 20
        + "\nhttp://127.0.0.1:8000\nPOST\n/v1/projects/1/rounds/0/updates\n"
        + "ab" * 32
        + "\n1700000000\nn0nce-123"
    )


@pytest.mark.parametrize(
    "url, origin",
    [
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("HTTP://Example.ORG:80/", "http://example.org"),
        ("https://merit.example.org:443", "https://merit.example.org"),
        ("https://h:8443", "https://h:8443"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_origins_are_canonical(url, origin):
    assert signing.canonical_origin(url) == origin


@pytest.mark.parametrize(
    "url", ["ftp://h", "http://", "http://h/api", "http://u:p@h", "http://h?x=1", "http://h:99999"]
)
def test_what_is_not_an_origin_is_refused(url):
    with pytest.raises(ValueError):
        signing.canonical_origin(url)


def test_signature_verifies_and_binds_every_field():
    account = Account.create()
    body = b"some update bytes"
    headers = signing.sign_request(account.key, AUDIENCE, "POST", "/v1/x", body, timestamp=1700000000, nonce="abcdefgh")
    parsed = signing.parse_headers(headers)
    assert isinstance(parsed, signing.SignedHeaders) and parsed.address == account.address
    assert parsed.body_sha256 == signing.body_digest(body)
    assert signing.verify(AUDIENCE, "POST", "/v1/x", parsed)
    assert not signing.verify(AUDIENCE, "POST", "/v1/y", parsed)
    assert not signing.verify(AUDIENCE, "POST", "/v1/%78", parsed)  # the target as sent, not decoded
    assert not signing.verify(AUDIENCE, "PUT", "/v1/x", parsed)
    for other in (
        signing.Audience(1, AUDIENCE.market, AUDIENCE.origin),
        signing.Audience(AUDIENCE.chain_id, "0x" + "cd" * 20, AUDIENCE.origin),
        signing.Audience(AUDIENCE.chain_id, AUDIENCE.market, "http://127.0.0.1:8001"),
    ):
        assert not signing.verify(other, "POST", "/v1/x", parsed)
    for field, value in (
        ("timestamp", 1700000001),
        ("nonce", "abcdefgi"),
        ("address", Account.create().address),
        ("body_sha256", signing.body_digest(b"other")),
    ):
        forged = signing.SignedHeaders(**{**parsed.__dict__, field: value})
        assert not signing.verify(AUDIENCE, "POST", "/v1/x", forged)


def test_malformed_headers_are_reported():
    good = signing.sign_request(Account.create().key, AUDIENCE, "POST", "/v1/x", b"")
    assert "missing" in signing.parse_headers({})
    v1 = {k: v for k, v in good.items() if k != signing.HEADER_CONTENT_SHA256}
    assert "MERIT-API-1 clients must upgrade" in signing.parse_headers(v1)
    for name, bad in (
        (signing.HEADER_ADDRESS, "0x12"),
        (signing.HEADER_SIGNATURE, "0xzz"),
        (signing.HEADER_TIMESTAMP, "yesterday"),
        (signing.HEADER_NONCE, "no spaces allowed"),
        (signing.HEADER_CONTENT_SHA256, "AB" * 32),
    ):
        assert isinstance(signing.parse_headers({**good, name: bad}), str)
    garbage = signing.SignedHeaders(
        address=good[signing.HEADER_ADDRESS],
        signature="0x" + "ff" * 65,
        timestamp=1,
        nonce="abcdefgh",
        body_sha256=signing.body_digest(b""),
    )
    assert signing.recover_signer(AUDIENCE, "POST", "/v1/x", garbage) is None
