from eth_account import Account

from backend.api import signing


def test_canonical_string_is_the_documented_layout():
    text = signing.canonical_string("post", "/v1/projects/1/rounds/0/updates", "ab" * 32, 1700000000, "n0nce-123")
    assert text == "MERIT-API-1\nPOST\n/v1/projects/1/rounds/0/updates\n" + "ab" * 32 + "\n1700000000\nn0nce-123"


def test_signature_verifies_and_binds_every_field():
    account = Account.create()
    body = b"some update bytes"
    headers = signing.sign_request(account.key, "POST", "/v1/x", body, timestamp=1700000000, nonce="abcdefgh")
    parsed = signing.parse_headers(headers)
    assert isinstance(parsed, signing.SignedHeaders) and parsed.address == account.address
    digest = signing.body_digest(body)
    assert signing.verify("POST", "/v1/x", digest, parsed)
    assert not signing.verify("POST", "/v1/y", digest, parsed)
    assert not signing.verify("PUT", "/v1/x", digest, parsed)
    assert not signing.verify("POST", "/v1/x", signing.body_digest(b"other"), parsed)
    for field, value in (("timestamp", 1700000001), ("nonce", "abcdefgi"), ("address", Account.create().address)):
        forged = signing.SignedHeaders(**{**parsed.__dict__, field: value})
        assert not signing.verify("POST", "/v1/x", digest, forged)


def test_malformed_headers_are_reported():
    good = signing.sign_request(Account.create().key, "POST", "/v1/x", b"")
    assert "missing" in signing.parse_headers({})
    for name, bad in ((signing.HEADER_ADDRESS, "0x12"), (signing.HEADER_SIGNATURE, "0xzz"),
                      (signing.HEADER_TIMESTAMP, "yesterday"), (signing.HEADER_NONCE, "no spaces allowed")):
        assert isinstance(signing.parse_headers({**good, name: bad}), str)
    garbage = signing.SignedHeaders(address=good[signing.HEADER_ADDRESS], signature="0x" + "ff" * 65,
                                    timestamp=1, nonce="abcdefgh")
    assert signing.recover_signer("POST", "/v1/x", signing.body_digest(b""), garbage) is None
