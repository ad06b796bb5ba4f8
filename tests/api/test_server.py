"""The API over a real uvicorn server on loopback, with a fake chain and an in-memory store."""

from __future__ import annotations

import pickle
import time

import httpx
import numpy as np
import pytest
from eth_account import Account
from safetensors.numpy import save

from backend import signing
from backend.api import create_app
from backend.api.chain_view import RoundPhase
from backend.api.limits import ApiLimits
from backend.config import Settings
from backend.errors import IntegrityError
from backend.storage import open_store
from backend.trainer.api_client import ApiClient, ApiRequestError
from tests.api.conftest import CAP, LAYOUT, signed, stored_blocks, tensors, update_bytes
from tests.api.fakes import FakeChain
from tests.api.server import serve

UPLOAD = "/v1/projects/1/rounds/{r}/updates"


def post(market, path, body, key=None, headers=None, **sign_kw):
    """POST raw bytes, signed by ``key`` (unless key is None) with overridable headers."""
    h = signed(market.url, key, path, body, **sign_kw) if key is not None else {}
    h.update(headers or {})
    return httpx.post(market.url + path, content=body, headers=h, timeout=30)


def one_project(home, rounds: int = 1):
    """A store in ``home`` and a fake chain with project 1 (round 0 Open) that one new trainer joined."""
    store, chain, trainer = open_store("embedded", home=home), FakeChain(), Account.create()
    chain.add_project(1, store.add_bytes(update_bytes(seed=0)), rounds=rounds)
    chain.join(1, trainer.address)
    return store, chain, trainer


def assert_error(response, status, error=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and body["detail"]
    if error:
        assert body["error"] == error, body


def test_reads(market):
    with ApiClient(market.url) as client:
        assert client.health()["status"] == "ok"
        assert [p["project_id"] for p in client.projects()] == [1]
        assert httpx.get(market.url + "/v1/projects?offset=1").json() == {
            "projects": [],
            "total": 1,
            "offset": 1,
            "next_offset": None,
        }
        project = client.project(1)
        assert project["current_round"] == 1 and project["global_model_cid"] == market.model_cid
        assert client.round(1, 1)["phase"] == "Open"
        data, cid = client.model(1)
        assert cid == market.model_cid and data == market.store.get_bytes(cid)
        with pytest.raises(IntegrityError):
            client.model(1, expected_cid="bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
        rewards = client.rewards(1, market.trainer.address)
        assert rewards["joined"] is True and rewards["claimable_wei"] == "0"


def test_upload_then_duplicate(market):
    trainer = Account.create()
    market.chain.join(1, trainer.address)
    data = update_bytes(seed=7, metadata={"project": "1", "round": "1", "trainer": trainer.address})
    with ApiClient(market.url, private_key=trainer.key) as client:
        cid = client.upload_update(1, 1, data)
        assert market.store.get_bytes(cid) == data
        with pytest.raises(ApiRequestError) as err:
            client.upload_update(1, 1, update_bytes(seed=8))
        assert err.value.status == 409 and err.value.error == "duplicate_update"


def test_onchain_submission_counts_as_submitted(market):
    trainer = Account.create()
    market.chain.join(1, trainer.address)
    market.chain.submitted.add((1, 1, trainer.address.lower()))
    assert_error(post(market, UPLOAD.format(r=1), update_bytes(), trainer.key), 409, "duplicate_update")


def _bad_requests(market):
    """(name, request thunk, status, error): each must be refused and change nothing."""
    path = UPLOAD.format(r=1)
    key = market.trainer.key
    good = update_bytes(seed=3)
    replay = signed(market.url, key, path, good, nonce="replayed-nonce-1")
    wrong_shape = dict(LAYOUT, **{"fc1.weight": (16, 13)})
    with_nan = tensors(seed=3)
    with_nan["fc2.bias"][0] = np.nan
    nan = save(with_nan)
    return [
        ("unsigned", lambda: post(market, path, good), 401, "unauthorized"),
        (
            "forged signature",
            lambda: post(
                market, path, good, Account.create().key, headers={signing.HEADER_ADDRESS: market.trainer.address}
            ),
            401,
            "bad_signature",
        ),
        (
            "signature over other body",
            lambda: httpx.post(market.url + path, content=good, headers=signed(market.url, key, path, b"x")),
            401,
            "body_mismatch",
        ),
        (
            "replayed nonce",
            lambda: (
                httpx.post(
                    market.url + path,
                    content=b"not safetensors",
                    headers=signed(market.url, key, path, b"not safetensors", nonce="replayed-nonce-1"),
                ),
                httpx.post(market.url + path, content=good, headers=replay),
            )[1],
            401,
            "nonce_reused",
        ),
        (
            "stale timestamp",
            lambda: post(market, path, good, key, timestamp=int(time.time()) - 301),
            401,
            "stale_timestamp",
        ),
        (
            "future timestamp",
            lambda: post(market, path, good, key, timestamp=int(time.time()) + 3600),
            401,
            "stale_timestamp",
        ),
        ("not joined", lambda: post(market, path, good, market.outsider.key), 403, "not_joined"),
        ("wrong shapes", lambda: post(market, path, update_bytes(layout=wrong_shape), key), 422, "invalid_update"),
        (
            "missing tensor",
            lambda: post(market, path, update_bytes(layout={"fc1.weight": (16, 12)}), key),
            422,
            "invalid_update",
        ),
        ("wrong dtype", lambda: post(market, path, update_bytes(dtype=np.float64), key), 422, "invalid_update"),
        ("NaN", lambda: post(market, path, nan, key), 422, "invalid_update"),
        ("pickle bytes", lambda: post(market, path, pickle.dumps({"fc1.weight": [1.0]}), key), 422, "invalid_update"),
        ("empty body", lambda: post(market, path, b"", key), 422, "invalid_update"),
        (
            "wrong metadata",
            lambda: post(market, path, update_bytes(metadata={"round": "0"}), key),
            422,
            "invalid_update",
        ),
        ("oversize", lambda: post(market, path, b"\0" * (CAP + 1), key), 413, "too_large"),
        ("closed round", lambda: post(market, UPLOAD.format(r=0), good, key), 409, "round_not_open"),
        ("pending round", lambda: post(market, UPLOAD.format(r=2), good, key), 409, "round_not_open"),
        ("unknown round", lambda: post(market, UPLOAD.format(r=99), good, key), 404, "round_not_found"),
        (
            "unknown project",
            lambda: post(market, "/v1/projects/9/rounds/0/updates", good, key),
            404,
            "project_not_found",
        ),
    ]


def test_bad_requests_are_refused_and_leave_nothing(market):
    blocks_before = stored_blocks(market)
    for name, send, status, error in _bad_requests(market):
        response = send()
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        assert_error(response, status, error)
    assert stored_blocks(market) == blocks_before
    # The trainer's slot for round 1 is still free: a good upload goes through.
    with ApiClient(market.url, private_key=market.trainer.key) as client:
        cid = client.upload_update(1, 1, update_bytes(seed=3))
    assert market.store.has(cid) and stored_blocks(market) != blocks_before
    # ...and, now that it has, a second is a duplicate.
    assert_error(post(market, UPLOAD.format(r=1), update_bytes(seed=4), market.trainer.key), 409, "duplicate_update")


def test_oversize_chunked_body_is_refused_while_streaming(market):
    trainer = Account.create()
    market.chain.join(1, trainer.address)
    key = trainer.key
    path = UPLOAD.format(r=1)
    body_len = 64 * CAP

    def chunks():  # no Content-Length: the cap must be enforced on the stream itself
        for _ in range(64):
            yield b"\0" * CAP

    headers = signed(market.url, key, path, b"\0" * body_len)
    response = httpx.post(market.url + path, content=chunks(), headers=headers, timeout=30)
    assert_error(response, 413, "too_large")


def test_rate_limit_answers_429_with_retry_after(tmp_path):
    store, chain, trainer = one_project(tmp_path)
    app = create_app(
        Settings(home=tmp_path, chain="embedded", ipfs="embedded"),
        chain_view=chain,
        store=store,
        limits=ApiLimits(writes_per_minute=1, write_burst=2),
    )
    with serve(app) as url:
        path = "/v1/projects/1/rounds/0/updates"
        statuses = [
            httpx.post(url + path, content=b"junk", headers=signed(url, trainer.key, path, b"junk")) for _ in range(3)
        ]
        assert [r.status_code for r in statuses] == [422, 422, 429]
        assert int(statuses[2].headers["Retry-After"]) >= 1
        assert_error(statuses[2], 429, "rate_limited")
        # Requests in its name that are not signed by it are refused before they reach its bucket.
        other = Account.create()
        forged = signed(url, other.key, path, b"junk")
        forged[signing.HEADER_ADDRESS] = trainer.address
        assert_error(httpx.post(url + path, content=b"junk", headers=forged), 401, "bad_signature")
        chain.join(1, other.address)
        assert httpx.post(url + path, content=b"junk", headers=signed(url, other.key, path, b"junk")).status_code == 422


def test_errors_are_json_everywhere(market):
    assert_error(httpx.get(market.url + "/v1/nope"), 404, "not_found")
    assert_error(httpx.delete(market.url + "/v1/projects"), 405, "method_not_allowed")
    assert_error(httpx.get(market.url + "/v1/projects/abc"), 422, "invalid_request")
    assert_error(httpx.get(market.url + "/v1/projects/1/rewards/0xnothex"), 422, "invalid_request")
    assert_error(httpx.get(market.url + "/v1/projects/5"), 404, "project_not_found")
    assert_error(httpx.get(market.url + "/v1/projects/1/rounds/9"), 404, "round_not_found")


def test_health_answers_head_probes(market):
    head = httpx.head(market.url + "/v1/health")
    assert head.status_code == 200 and head.content == b""


def test_round_phase_is_read_from_chain(market):
    market.chain.set_phase(1, 3, RoundPhase.AGGREGATING)
    assert httpx.get(market.url + "/v1/projects/1/rounds/3").json()["phase"] == "Aggregating"


def test_metrics_and_openapi(market):
    httpx.get(market.url + "/v1/health")
    text = httpx.get(market.url + "/metrics").text
    assert 'merit_api_requests_total{method="GET",route="/v1/health",status="200"}' in text
    assert "merit_api_uploads_rejected_total" in text
    doc = httpx.get(market.url + "/openapi.json").json()
    upload = doc["paths"]["/v1/projects/{project_id}/rounds/{round}/updates"]["post"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert {"401", "403", "409", "413", "422", "429"} <= set(upload["responses"])
    headers = {p["name"] for p in upload["parameters"] if p["in"] == "header"}
    assert headers == set(signing.SIGNED_HEADERS)
    assert "HTTPValidationError" not in doc.get("components", {}).get("schemas", {})


def test_records_survive_a_restart(tmp_path):
    """On a persistent chain, a restarted server still refuses a duplicate upload and a replayed nonce."""
    store, chain, trainer = one_project(tmp_path, rounds=2)
    chain.set_phase(1, 1, RoundPhase.OPEN)
    chain.market_key = "31337-0xmarket"
    # one origin for both servers, as a restarted server keeps its public URL (though not, here, its port)
    origin = "http://merit.test"
    settings = Settings(home=tmp_path, chain="http://127.0.0.1:8545", ipfs="embedded", api_origin=origin)
    path, other = "/v1/projects/1/rounds/0/updates", "/v1/projects/1/rounds/1/updates"
    body = update_bytes(seed=5)
    junk = {**signed(origin, trainer.key, other, b"junk"), "Host": "merit.test"}

    def upload(url):
        return httpx.post(
            url + path, content=body, headers={**signed(origin, trainer.key, path, body), "Host": "merit.test"}
        )

    with serve(create_app(settings, chain_view=chain, store=store)) as url:
        assert_error(httpx.post(url + other, content=b"junk", headers=junk), 422, "invalid_update")
        assert upload(url).status_code == 201
    assert (tmp_path / "api" / "31337-0xmarket" / "uploads.sqlite3").exists()
    with serve(create_app(settings, chain_view=chain, store=store)) as url:
        assert_error(httpx.post(url + other, content=b"junk", headers=junk), 401, "nonce_reused")
        assert_error(upload(url), 409, "duplicate_update")


def test_a_trickling_body_times_out(tmp_path):
    store, chain, trainer = one_project(tmp_path)
    app = create_app(Settings(home=tmp_path), chain_view=chain, store=store, limits=ApiLimits(body_timeout_s=0.5))
    path = "/v1/projects/1/rounds/0/updates"

    def trickle():
        for _ in range(4):
            time.sleep(0.3)
            yield b"\0" * 16

    with serve(app) as url:
        response = httpx.post(url + path, content=trickle(), headers=signed(url, trainer.key, path, b""))
    assert_error(response, 408, "body_timeout")


def test_an_unreachable_api_is_retried_then_named():
    from backend.errors import MeritError
    from backend.chain.anvil import free_port

    with ApiClient(f"http://127.0.0.1:{free_port()}", retry_seconds=0.5) as client:
        with pytest.raises(MeritError, match="cannot reach the Merit API at http://127.0.0.1:") as err:
            client.health()
    assert "merit api serve" in err.value.hint

    calls = []

    def starting_up(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"status": "ok"})

    with ApiClient("http://api.test", transport=httpx.MockTransport(starting_up), retry_seconds=5) as client:
        assert client.health() == {"status": "ok"} and calls == ["GET"] * 3

    def reset_after_sending(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        raise httpx.ReadError("connection reset", request=request)

    calls.clear()
    trainer = Account.create()
    with ApiClient(
        "http://api.test",
        private_key=trainer.key,
        transport=httpx.MockTransport(reset_after_sending),
        retry_seconds=5,
        chain_id=31337,
        market="0x" + "ab" * 20,
    ) as client:
        with pytest.raises(MeritError, match="lost the connection to the Merit API .* during POST") as err:
            client.upload_update(1, 1, update_bytes(seed=3))
    assert calls == ["POST"]  # an upload that may have arrived is not sent again
    assert "check the round" in err.value.hint


def test_an_upload_cid_the_server_makes_up_is_refused():
    from backend.errors import IntegrityError

    def lying_server(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"cid": "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"})

    with ApiClient(
        "http://api.test",
        private_key=Account.create().key,
        transport=httpx.MockTransport(lying_server),
        chain_id=31337,
        market="0x" + "ab" * 20,
    ) as client:
        with pytest.raises(IntegrityError, match="not the CID of its bytes"):
            client.upload_update(1, 1, update_bytes(seed=3))
